//! portwarden: a port-exposure scanner and compliance auditor.
//!
//! Layers, top to bottom (an arrow never points up):
//!
//! ```text
//! cli (the binary: the only place that prints or exits)
//!  └─ app: audit = targets → scan → identify → evaluate → report
//!      ├─ target    target and port specs
//!      ├─ scan      probe engines (connect, SYN) and their schedule
//!      ├─ identify  service identification
//!      ├─ policy    declared policy + compliance profiles → findings
//!      ├─ report    renderers and the evidence bundle
//!      ├─ store     audit history and drift
//!      └─ import    nmap XML / masscan JSON / JSONL in, nmap XML out
//!  rules: the data files of `rules/`, embedded and overridable
//!  model: the plain data every layer shares
//!  safe_fs: output files replaced atomically, never over what is not ours
//! ```
//!
//! The library never prints, never exits and never sees clap types: the
//! engine emits [`model::ScanEvent`]s and returns typed errors.

pub mod app;
pub mod identify;
pub mod import;
pub mod lines;
pub mod model;
pub mod policy;
pub mod report;
pub mod rules;
pub mod safe_fs;
pub mod scan;
pub mod store;
pub mod target;
#[cfg(test)]
pub(crate) mod testkit;
