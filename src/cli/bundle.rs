//! `scan --vantage NAME [--sign-key KEY] -o FILE`: the scan writes a bundle
//! (`portwarden::import::bundle`) and signs it.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};

use portwarden::app::{self, Scope};
use portwarden::import::bundle::{self, BundleScope, BundleWriter, Header, Shard, Summary};
use portwarden::model::AuditVantage;
use portwarden::scan::{ScanConfig, ScanSummary};

use super::args::{Format, ScanCmd};

/// What a bundle scan needs beyond a plain one.
pub(super) struct Plan {
    vantage: String,
    key: Option<ed25519_dalek::SigningKey>,
    output: PathBuf,
    started: DateTime<Utc>,
}

/// `None` for a plain scan; checks the flags and reads the key before
/// anything is scanned.
pub(super) fn plan(cmd: &ScanCmd) -> Result<Option<Plan>> {
    let Some(vantage) = cmd.vantage.as_deref() else {
        return Ok(None);
    };
    let vantage = vantage.trim();
    if vantage.is_empty() || vantage.len() > 64 || vantage.chars().any(char::is_control) {
        bail!("--vantage must be 1 to 64 printable characters (e.g. internet, internal, dmz)");
    }
    let Some(output) = cmd.output.clone() else {
        bail!("--vantage writes a bundle and its signature: give -o FILE");
    };
    if !matches!(cmd.format, None | Some(Format::Jsonl)) {
        bail!("--vantage writes a JSONL bundle: drop --format or give --format jsonl");
    }
    if cmd.open {
        bail!("--vantage writes every state a merged audit judges: drop --open");
    }
    let key = cmd
        .sign_key
        .as_deref()
        .map(portwarden::report::evidence::load_signing_key)
        .transpose()?;
    Ok(Some(Plan {
        vantage: vantage.to_string(),
        key,
        output,
        started: Utc::now(),
    }))
}

impl Plan {
    /// The writer that collects the observations beside the output.
    pub(super) fn writer(&self) -> Result<BundleWriter> {
        BundleWriter::new(&self.output)
            .with_context(|| format!("cannot write beside {}", self.output.display()))
    }

    /// The header and summary of the finished (or stopped) scan.
    pub(super) fn frame(
        &self,
        body: &BundleWriter,
        scope: &Scope,
        cfg: &ScanConfig,
        summary: &ScanSummary,
    ) -> (Header, Summary) {
        let sources = app::source_addresses(body.addresses());
        let (index, count) = cfg.shard.unwrap_or((0, 1));
        let header = Header {
            record: "header".into(),
            format: bundle::FORMAT.into(),
            tool: "portwarden".into(),
            version: super::args::VERSION.into(),
            scope: BundleScope {
                targets: scope.targets.clone(),
                excludes: scope.excludes.clone(),
                ports: scope.ports.clone(),
            },
            seed: cfg.seed,
            shard: Shard { index, count },
            engine: cfg.kind.to_string(),
            vantage: AuditVantage {
                name: Some(self.vantage.clone()),
                lab: false,
                interfaces: app::interfaces_of(&sources),
                sources,
            },
            started: self.started,
            finished: Utc::now(),
        };
        let summary = Summary {
            record: "summary".into(),
            complete: !summary.interrupted,
            observations: body.observations(),
            probed: summary.probed,
            sent: summary.sent,
            open: summary.open,
            closed: summary.closed,
            filtered: summary.filtered,
        };
        (header, summary)
    }

    /// Writes FILE.sig (before FILE itself goes in place, so a reader that
    /// waits for FILE finds its signature).
    pub(super) fn sign(&self, digest: &[u8; 32]) -> Result<()> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let sig = bundle::sign(&self.output, digest, key);
        let mut text = serde_json::to_vec_pretty(&sig)?;
        text.push(b'\n');
        let path = bundle::signature_path(&self.output);
        portwarden::safe_fs::write(&path, &text)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}
