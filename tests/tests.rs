//! Integration tests: one binary, one module per area. Real-packet tests run
//! the binary inside the namespace lab (`lab`), which needs root, iproute2
//! and nftables.

mod cli_errors;
mod common;
mod deb;
mod everyday;
mod fix_apply;
mod frameworks;
mod identify;
mod k8s;
mod k8s_readme;
mod lab;
// The lab's own test lives beside it but is declared here, so the lab can
// also be compiled into `benches/lab.rs` without it.
mod history;
mod hostile;
#[path = "lab/selftest.rs"]
mod lab_selftest;
mod policy;
mod prereq;
mod report;
mod safety;
mod scan_connect;
mod syn;
mod udp;
mod vantages;
mod verdicts;
