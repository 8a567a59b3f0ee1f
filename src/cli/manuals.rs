//! `portwarden completions SHELL` and `portwarden man`: shell completion
//! scripts (clap_complete) and manual pages (clap_mangen), generated from
//! the same clap definitions the command line is parsed with.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::args::{Cli, CompletionsCmd, ManCmd, Shell};
use super::exit;

/// `portwarden completions bash|zsh|fish|powershell`: the script on stdout.
pub fn completions(cmd: CompletionsCmd) -> Result<u8> {
    let mut app = Cli::command();
    let shell = match cmd.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    let mut out = io::stdout().lock();
    clap_complete::generate(shell, &mut app, "portwarden", &mut out);
    out.flush()?;
    Ok(exit::OK)
}

/// `portwarden man --out DIR`: portwarden.1 and portwarden-SUB.1 for each
/// subcommand (and nested ones: portwarden-policy-check.1).
pub fn man(cmd: ManCmd) -> Result<u8> {
    std::fs::create_dir_all(&cmd.out)
        .with_context(|| format!("cannot create {}", cmd.out.display()))?;
    let mut app = Cli::command();
    app.build();
    let mut written = Vec::new();
    write_pages(&app, "portwarden", &cmd.out, &mut written)?;
    eprintln!(
        "wrote {} manual pages to {}/ (`man -l {}/portwarden.1`; install them under /usr/share/man/man1/)",
        written.len(),
        cmd.out.display(),
        cmd.out.display()
    );
    Ok(exit::OK)
}

/// One page for `app` named `name`, then one for each of its subcommands.
fn write_pages(
    app: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<String>,
) -> Result<()> {
    // clap names are &'static str without its `string` feature; this
    // one-shot command leaks a few page names rather than build clap twice.
    let static_name: &'static str = Box::leak(name.to_string().into_boxed_str());
    let page = app.clone().name(static_name);
    let mut buf = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut buf)
        .with_context(|| format!("cannot render the page of {name}"))?;
    let file = dir.join(format!("{name}.1"));
    portwarden::safe_fs::write(&file, &buf)
        .with_context(|| format!("cannot write {}", file.display()))?;
    written.push(name.to_string());
    for sub in app.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
