//! Integration tests: one binary, one module per area. Real-packet tests run
//! the binary inside the namespace lab (`lab`), which needs root, iproute2
//! and nftables.

mod cli_errors;
mod lab;
mod scan_connect;
