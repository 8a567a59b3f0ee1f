//! Command-line arguments (clap). These types stay in the binary: they are
//! turned into the library's validated configs in `cli::config` and never
//! passed below.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `--version`: the crate version, and the git revision when the build set
/// PORTWARDEN_VERSION (deploy/container/build.sh does: `0.1.0 (git 1a2b3c)`).
pub const VERSION: &str = match option_env!("PORTWARDEN_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

#[derive(Debug, Parser)]
#[command(
    name = "portwarden",
    version = VERSION,
    about = "Port-exposure scanner and compliance auditor",
    long_about = "Scans hosts for open ports (SYN or connect scan), checks them against your port policy and \
                  compliance profiles, and writes reports that say how to close each finding."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What `scan --help` and `audit --help` say about nmap's spellings.
pub const NMAP_HELP: &str = "\
nmap's spellings (where the meaning is the same):
  -iL FILE          targets from FILE (--targets-file FILE, @FILE)
  --top-ports N     the first N ports of portwarden's ranked TCP list (-p top-tcp:N); -F is --top-ports 100
  -sS / -sT         --scan syn / --scan connect
  -sU               the ports are UDP ports (-p 53 is U:53; default top-udp); with -sS or -sT, both
  -sV               --identify (audits identify by default)
  -oX / -oN / -oG FILE   scan only: nmap XML / portwarden's table / greppable to FILE (- is standard output)
  -oA BASE          scan only: BASE.xml, BASE.nmap and BASE.gnmap
  -T0 … -T5         timing presets (0 paranoid … 5 insane): rate, retries and time-outs, see the README
  -Pn               accepted: portwarden never pings first, every target is probed
  --max-retries N   --retries N; --excludefile FILE is --exclude-file FILE
Flags that mean something else here or cannot be honoured (-O, -A, -sn, -sC, --script, -v, -6, …) are refused with the reason.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan targets and print port states (table, JSON, JSONL, CSV, nmap XML or greppable).
    #[command(after_help = NMAP_HELP)]
    Scan(Box<ScanCmd>),
    /// Scan targets and write an audit report directory.
    #[command(after_help = NMAP_HELP)]
    Audit(Box<AuditCmd>),
    /// Expand a port spec (numbers, ranges, service names, named sets) and list its ports.
    Ports(PortsCmd),
    /// List the compliance profiles: version, requirements, confirmed mappings, partial evidence.
    Profiles(ProfilesCmd),
    /// Validate or start a declared port policy.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Check a report directory against its manifest.json (exit 1 when a file was altered, removed or added).
    Verify(VerifyCmd),
    /// The audit history: list the recorded runs (the default), verify the hash chain.
    History(HistoryArgs),
    /// What changed between two recorded runs (default: the last two of the same scope).
    Diff(DiffCmd),
    /// Write a new Ed25519 key pair for signing reports (`audit --sign-key`, `verify --pubkey`).
    Keygen(KeygenCmd),
    /// Print the fix for one finding of a report (commands, undo, verification), for runbooks and tickets.
    Fix(FixCmd),
    /// Print a shell completion script (bash, zsh, fish or powershell) to standard output.
    Completions(CompletionsCmd),
    /// Write the manual pages (portwarden.1 and one per subcommand) into a directory.
    Man(ManCmd),
}

#[derive(Debug, Args)]
pub struct CompletionsCmd {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

#[derive(Debug, Args)]
pub struct ManCmd {
    /// Directory for the pages (created if missing); existing pages of
    /// portwarden there are replaced.
    #[arg(long, value_name = "DIR", default_value = "man")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct KeygenCmd {
    /// Directory for portwarden-signing.key (secret, mode 0600) and
    /// portwarden-signing.pub; existing key files are never overwritten.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct FixCmd {
    /// The report directory (written by `portwarden audit --out DIR`).
    #[arg(long, value_name = "DIR")]
    pub report: PathBuf,
    /// The finding's id (findings.json, the report's findings table).
    #[arg(value_name = "FINDING_ID")]
    pub finding: String,
    /// Only this platform (`ufw`, `aws`, …) or family (`windows`, `terraform`).
    #[arg(long, value_name = "P")]
    pub platform: Option<String>,
    /// Print the undo instead of the commands.
    #[arg(long, conflicts_with = "verify")]
    pub undo: bool,
    /// Print the verification instead of the commands.
    #[arg(long)]
    pub verify: bool,
    /// `text`: one part (commands, or --undo, or --verify), safe to paste; `json`: all three for every platform.
    #[arg(long, value_enum, default_value = "text")]
    pub format: FixFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FixFormat {
    Text,
    Json,
}

/// Where the audit history is.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The history database [default: $XDG_DATA_HOME/portwarden/history.db,
    /// else ~/.local/share/portwarden/history.db].
    #[arg(long, value_name = "PATH", env = "PORTWARDEN_STORE")]
    pub store: Option<PathBuf>,
    /// Read the history key from FILE (at least 16 bytes): the chain becomes
    /// an HMAC-SHA256 chain that cannot be recomputed without it. The key
    /// may instead be given in PORTWARDEN_HISTORY_KEY.
    #[arg(long, value_name = "FILE")]
    pub history_key_file: Option<PathBuf>,
}

/// `portwarden history [list|verify]`: without a subcommand, `list`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub command: Option<HistoryCmd>,
    #[command(flatten)]
    pub list: HistoryListArgs,
}

/// The options of `history list`.
#[derive(Debug, Args)]
pub struct HistoryListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only runs of this scope key.
    #[arg(long, value_name = "KEY")]
    pub scope: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: DiffFormat,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCmd {
    /// List the recorded runs: id, time, scope, open ports, failing findings by severity.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Only runs of this scope key.
        #[arg(long, value_name = "KEY")]
        scope: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: DiffFormat,
    },
    /// Check the hash chain: name every edited or deleted run (exit 1 when one is found).
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Also check that the history still holds the runs these report
        /// directories recorded (their manifest.json anchors): detects the
        /// newest runs deleted and a database replaced wholesale.
        #[arg(long, value_name = "DIR", num_args = 1..)]
        against: Vec<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DiffCmd {
    /// The earlier run's id [default: the run before RUN_B of the same scope].
    #[arg(value_name = "RUN_A")]
    pub run_a: Option<i64>,
    /// The later run's id [default: the newest run].
    #[arg(value_name = "RUN_B")]
    pub run_b: Option<i64>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: DiffFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct VerifyCmd {
    /// The report directory (written by `portwarden audit --out DIR`).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Check manifest.sig against this public key (written by `keygen`):
    /// a missing, foreign or broken signature fails (exit 1, SIGNATURE).
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Validate a policy file and summarise its groups, allowances and exceptions.
    Check {
        file: PathBuf,
        /// A directory whose rule files replace the embedded ones.
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        /// Judge expiries and review dates as of this day (YYYY-MM-DD) [default: today].
        #[arg(long, value_name = "DATE")]
        as_of: Option<chrono::NaiveDate>,
    },
    /// Write a commented starter policy to edit (to standard output, or FILE).
    Init {
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct ScanCmd {
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Output format [default: table on a terminal, jsonl otherwise].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write the output to FILE instead of standard output (a regular file is
    /// replaced only when the scan ends; a FIFO or /dev/null is written in place).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only report open ports (the table always shows only open ports).
    #[arg(long)]
    pub open: bool,
    /// Identify the service on every open port (banners, TLS, protocol probes).
    #[arg(long)]
    pub identify: bool,
    /// Ports identified at the same time.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub identify_concurrency: usize,
    /// nmap's -oX/-oN/-oG/-oA outputs, as FORMAT=FILE (see `scan --help`).
    #[arg(long = "nmap-output", hide = true, value_name = "FORMAT=FILE")]
    pub nmap_output: Vec<String>,
    /// Write a bundle (needs -o FILE): JSONL framed by a header (version,
    /// scope, seed, shard, this vantage's name and source addresses, times)
    /// and a closing summary, for `audit --from-jsonl` to merge and check.
    #[arg(long, value_name = "NAME")]
    pub vantage: Option<String>,
    /// Sign the bundle with this Ed25519 secret key (`portwarden keygen`):
    /// writes FILE.sig, checked against the policy's [[scanner]] keys.
    #[arg(long, value_name = "KEY", requires = "vantage")]
    pub sign_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AuditCmd {
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Skip service identification (on by default in audits).
    #[arg(long)]
    pub no_identify: bool,
    /// Ports identified at the same time.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub identify_concurrency: usize,
    /// Report directory, replaced atomically; only a missing or empty
    /// directory or a previous portwarden report is ever replaced.
    #[arg(long, value_name = "DIR", default_value = "portwarden-report")]
    pub out: PathBuf,
    /// Sign manifest.json with this Ed25519 secret key (from `portwarden keygen`):
    /// writes manifest.sig, checked by `verify --pubkey`.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// The declared port policy (TOML; `portwarden policy init` writes a starter).
    /// Without targets, the policy's groups are scanned.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Exit 1 when a non-waived finding at or above this severity exists.
    #[arg(long, value_name = "SEVERITY", default_value = "high")]
    pub fail_on: portwarden::model::Severity,
    /// Judge exceptions, windows and review dates as of this day (YYYY-MM-DD) [default: today].
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<chrono::NaiveDate>,
    /// Report language: en or zh-CN [default: zh-CN when LC_ALL/LC_MESSAGES/LANG starts with zh, else en].
    #[arg(long, value_name = "LANG")]
    pub lang: Option<portwarden::report::Lang>,
    /// Who runs the audit, recorded in the evidence manifest [default: the user name].
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Do not record the run in the history (and judge no drift); wins over
    /// --store and PORTWARDEN_STORE.
    #[arg(long)]
    pub no_store: bool,
    /// Audit this nmap XML file (`nmap -oX`) instead of scanning.
    #[arg(long, value_name = "FILE")]
    pub from_nmap: Vec<PathBuf>,
    /// Audit this masscan JSON file (`masscan -oJ`) instead of scanning.
    #[arg(long, value_name = "FILE")]
    pub from_masscan: Vec<PathBuf>,
    /// Audit these portwarden JSONL files (merged; e.g. the shards of a split scan) instead of scanning.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub from_jsonl: Vec<PathBuf>,
    /// Accept an nmap or masscan file that was cut short (or a JSONL scan
    /// that says it was interrupted), auditing what it holds; the report's
    /// source then says "partial import".
    #[arg(long)]
    pub allow_partial_import: bool,
    /// Write Prometheus textfile-collector metrics to FILE (e.g. /var/lib/node_exporter/textfile/portwarden.prom).
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Start the report's CSV files with a UTF-8 byte-order mark, for Excel (always on with --lang zh-CN).
    #[arg(long)]
    pub csv_bom: bool,
    /// Write the report's data files (every .jsonl and .csv, and findings.json) zstd-compressed as NAME.zst; the manifest lists and signs them as written, and `portwarden verify` checks each decodes whole.
    #[arg(long)]
    pub compress: bool,
    /// Also write report.pdf, the printed executive report, with headless Chromium (PORTWARDEN_CHROMIUM, or chromium / google-chrome on PATH); without one the audit stops before scanning.
    #[arg(long)]
    pub pdf: bool,
    /// Paper of report.pdf: a4 or letter [default: a4 with --lang zh-CN, else letter].
    #[arg(long, value_name = "a4|letter", requires = "pdf")]
    pub paper: Option<portwarden::report::print::Paper>,
    /// Where this audit runs from (e.g. `internet`, `dmz-jump`). Groups with
    /// vantage = "internet" are judged only when this is `internet` and every
    /// source address of the probes is public (not loopback, RFC 1918,
    /// RFC 6598, link-local or ULA); otherwise their internet requirements
    /// are not assessed, and the report says why.
    #[arg(long, value_name = "NAME", value_parser = vantage_name)]
    pub vantage: Option<String>,
    /// Also send the NTP monlist request to 123/udp (an amplifier check; some
    /// operators ask before it is sent). Without it an NTP amplifier cannot
    /// be seen, and the requirements that need it say so.
    #[arg(long)]
    pub udp_monlist: bool,
}

/// `--vantage NAME`: a short name, printable.
fn vantage_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "'{s}' is not a vantage name: use letters, digits, '-', '_' or '.' (at most 64), e.g. internet"
        ))
    }
}

#[derive(Debug, Args)]
pub struct PortsCmd {
    /// Port spec, e.g. `common`, `high-risk`, `ssh,8000-8100`, `U:53,161`, `high-risk-udp`.
    #[arg(default_value = "common")]
    pub spec: String,
    /// A directory whose rule files replace the embedded ones.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProfilesCmd {
    /// Output format (`csv` is the table's columns).
    #[arg(long, value_enum, default_value = "table")]
    pub format: DiffFormat,
    /// A directory whose rule files replace the embedded ones.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
}

/// What to scan.
#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Targets: IPs, CIDRs (198.18.0.0/24), ranges (198.18.0.1-20), host names, @FILE lists.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Ports: `22,80`, `1-1024`, `-`/`all`, service names, named sets (`common`, `high-risk`),
    /// UDP as `53/udp` or `U:53,161,T:22` (`high-risk-udp`, `top-udp`, `top-udp:100`)
    /// [default: common for scan; common,high-risk-udp for audit].
    #[arg(short = 'p', long, value_name = "PORTS")]
    pub ports: Option<String>,
    /// Add the first N ports of portwarden's ranked UDP list (rules/top-udp.txt, 1-1000)
    /// to the ports given or defaulted; `-p top-udp:N` alone scans only them.
    #[arg(long, value_name = "N")]
    pub top_udp: Option<u32>,
    /// Scan the first N ports of portwarden's ranked TCP list (rules/top-tcp.txt,
    /// 1-1000; with -sU the UDP list, with -sS -sU both) instead of the default
    /// ports; nmap's spelling of `-p top-tcp:N` (`-F` is `--top-ports 100`).
    #[arg(long, value_name = "N", conflicts_with = "ports")]
    pub top_ports: Option<u32>,
    /// Read targets from FILE, one spec a line, # comments (nmap's -iL; same as @FILE).
    #[arg(long = "targets-file", value_name = "FILE")]
    pub targets_file: Vec<PathBuf>,
    /// Leave these targets out (same forms as targets; repeatable).
    #[arg(long, value_name = "SPEC")]
    pub exclude: Vec<String>,
    /// Leave out the targets listed in FILE (one spec a line, # comments; repeatable).
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Allow more than 16,777,216 addresses or IPv6 prefixes shorter than /112.
    #[arg(long)]
    pub allow_large: bool,
    /// A directory whose rule files (ports.toml, …) replace the embedded ones.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
}

/// How to probe.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Probe engine: `syn` needs root or CAP_NET_RAW; `auto` uses it when it can.
    #[arg(long = "scan", value_enum, default_value = "auto")]
    pub scan: ScanType,
    /// Cap on probes per second [default: none, or the -T preset's].
    #[arg(long, value_name = "N")]
    pub rate: Option<u64>,
    /// Extra probes for a port that did not answer [default: 1, or the -T preset's].
    #[arg(long, visible_alias = "max-retries", value_name = "N")]
    pub retries: Option<u8>,
    /// First probe time-out before any RTT is measured, in ms [default: 1000, or the -T preset's].
    #[arg(long, value_name = "MS")]
    pub timeout_initial: Option<u64>,
    /// Floor of the adaptive probe time-out, in ms [default: 100, or the -T preset's].
    #[arg(long, value_name = "MS")]
    pub timeout_min: Option<u64>,
    /// Ceiling of the adaptive probe time-out, in ms [default: 3000, or the -T preset's].
    #[arg(long, value_name = "MS")]
    pub timeout_max: Option<u64>,
    /// Timing preset, as nmap's -T0 … -T5 (0 paranoid, 1 sneaky, 2 polite,
    /// 3 normal, 4 aggressive, 5 insane): sets --rate, --retries and the
    /// time-outs that are not given (table in the README); 3 is the default.
    #[arg(short = 'T', long, value_name = "0-5", value_parser = parse_timing)]
    pub timing: Option<u8>,
    /// nmap's -sS / -sT / -sU / -sV, collected (see `scan --help`).
    #[arg(long = "nmap-scan", hide = true, value_name = "LETTER")]
    pub nmap_scan: Vec<char>,
    /// nmap's -Pn was given (portwarden never pings first).
    #[arg(long = "nmap-pn", hide = true)]
    pub nmap_pn: bool,
    /// Most probes in flight (connect scan) [default: from the open-file limit].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Seed of the probe order [default: random]. Scanners that share a seed
    /// can split one scan with --shard.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Hard cap on the SYN engine's adaptive rate, probes per second.
    #[arg(long, value_name = "N")]
    pub max_rate: Option<u64>,
    /// Scan only shard I of N (0 ≤ I < N) of the seeded probe order; N scanners
    /// with the same --seed cover the space exactly once between them.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// SYN scan: finish the scan saved in this resume file (written when a scan
    /// is interrupted); no probe is lost or sent twice.
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
    /// UDP: how long retries paced by one host's ICMP rate limit may go on, from its
    /// first probe (`90s`, `30m`, `1h`; a bare number is seconds). Linux answers about
    /// one closed port a second, so 1,000 ports need ~17 min per host (hosts run in
    /// parallel); what is still silent after it is open|filtered and counted undecided.
    #[arg(long, value_name = "TIME", default_value = "30m", value_parser = parse_duration)]
    pub host_timeout: std::time::Duration,
    /// SYN scan: where an interrupted scan saves its resume state.
    #[arg(long, value_name = "FILE", default_value = "portwarden-resume.json")]
    pub resume_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanType {
    Auto,
    Connect,
    Syn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
    /// nmap's XML (`-oX`), for tools that read nmap output.
    NmapXml,
    /// nmap's greppable output (`-oG`): one `Host:` line per host.
    Grepable,
}

/// `-T`: 0-5 or nmap's names (paranoid, sneaky, polite, normal, aggressive, insane).
pub fn parse_timing(text: &str) -> Result<u8, String> {
    const NAMES: [&str; 6] = [
        "paranoid",
        "sneaky",
        "polite",
        "normal",
        "aggressive",
        "insane",
    ];
    let t = text.trim().to_ascii_lowercase();
    if let Ok(n) = t.parse::<u8>()
        && n <= 5
    {
        return Ok(n);
    }
    NAMES
        .iter()
        .position(|n| *n == t)
        .map(|i| i as u8)
        .ok_or_else(|| {
            format!(
                "'{text}' is not a timing preset: use 0-5 (-T4) or one of {}",
                NAMES.join(", ")
            )
        })
}

/// `90s`, `30m`, `1h`, `1500ms`, or a bare number of seconds; at least 1 s.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a duration: write e.g. 90s, 30m or 1h"))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => {
            return Err(format!(
                "'{text}' has an unknown unit: use ms, s, m or h (30m)"
            ));
        }
    }
    .ok_or_else(|| format!("'{text}' is too long"))?;
    if ms < 1000 {
        return Err(format!("'{text}' is below the 1 s minimum"));
    }
    Ok(std::time::Duration::from_millis(ms))
}
