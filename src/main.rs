//! The `portwarden` binary: parse, run, map the outcome to an exit code
//! (0 done, 1 findings at or above the gate, 2 bad input or error).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err((code, msg)) => {
            if !msg.is_empty() {
                eprintln!("portwarden: error: {msg}");
            }
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portwarden: error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::exit::ERROR);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line: the error and its causes, outermost first; a cause
            // the message already quotes is not repeated.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg = format!("{msg}: {c}");
                }
            }
            // Errors quote file contents and paths: no escape reaches the terminal.
            let msg = portwarden::report::display_safe(&msg.replace('\n', " "));
            eprintln!("portwarden: error: {msg}");
            ExitCode::from(cli::exit::ERROR)
        }
    }
}
