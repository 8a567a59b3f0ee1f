//! CLI: `portwarden profiles` — the compliance profiles of the rulebook in
//! effect (embedded, or `--rules DIR`), with what each one covers: its
//! version, requirement count, how many mappings are confirmed against the
//! standard's text, which requirements a scan can only partly evidence and
//! which it cannot judge at all.

use std::io::{self, BufWriter, Write};

use anyhow::Result;
use portwarden::report::csv_inert;
use portwarden::rules::Rules;
use portwarden::rules::profiles::ProfileSummary;

use super::args::{DiffFormat, ProfilesCmd};
use super::exit;
use super::output::terminal_safe;

pub(super) fn profiles(cmd: ProfilesCmd) -> Result<u8> {
    let rules = Rules::load(cmd.rules.as_deref())?;
    let rows: Vec<ProfileSummary> = rules
        .profiles
        .profiles()
        .iter()
        .map(|p| p.summary())
        .collect();
    let mut w = BufWriter::new(io::stdout());
    match cmd.format {
        DiffFormat::Json => {
            serde_json::to_writer_pretty(&mut w, &serde_json::json!({ "profiles": rows }))?;
            writeln!(w)?;
        }
        DiffFormat::Csv => {
            let mut c = csv::Writer::from_writer(&mut w);
            c.write_record([
                "id",
                "version",
                "requirements",
                "confirmed",
                "partial_evidence",
                "not_assessed",
                "extends",
                "name",
            ])?;
            for r in &rows {
                c.write_record([
                    csv_inert(&r.id).as_ref(),
                    &csv_inert(&r.version),
                    &r.requirements.to_string(),
                    &r.confirmed.to_string(),
                    &csv_inert(&r.partial_evidence.join(" | ")),
                    &csv_inert(&r.not_assessed.join(" | ")),
                    &csv_inert(&r.extends.join(" ")),
                    &csv_inert(&r.name),
                ])?;
            }
            c.flush()?;
        }
        DiffFormat::Table => table(&mut w, &rows)?,
    }
    w.flush()?;
    Ok(exit::OK)
}

/// The counts, one line a profile, then the partial-evidence requirements.
fn table(w: &mut impl Write, rows: &[ProfileSummary]) -> io::Result<()> {
    let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let vwidth = rows
        .iter()
        .map(|r| r.version.chars().count())
        .max()
        .unwrap_or(7)
        .max(7);
    writeln!(
        w,
        "{:width$}  {:vwidth$}  {:>4}  {:>9}  {:>7}  {:>12}  NAME",
        "ID", "VERSION", "REQS", "CONFIRMED", "PARTIAL", "NOT-ASSESSED"
    )?;
    for r in rows {
        let name = match r.extends.is_empty() {
            true => r.name.clone(),
            false => format!("{} (beside {})", r.name, r.extends.join(" / ")),
        };
        writeln!(
            w,
            "{:width$}  {:vwidth$}  {:>4}  {:>9}  {:>7}  {:>12}  {}",
            terminal_safe(&r.id),
            terminal_safe(&r.version),
            r.requirements,
            r.confirmed,
            r.partial_evidence.len(),
            r.not_assessed.len(),
            terminal_safe(&name)
        )?;
    }
    writeln!(w)?;
    writeln!(
        w,
        "Partial evidence (a scan can show these failing, never met):"
    )?;
    for r in rows.iter().filter(|r| !r.partial_evidence.is_empty()) {
        writeln!(
            w,
            "  {:width$}  {}",
            terminal_safe(&r.id),
            terminal_safe(&r.partial_evidence.join(", "))
        )?;
    }
    Ok(())
}
