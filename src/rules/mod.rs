//! Rules layer: the data of `rules/` (port catalogue, and later compliance
//! profiles, remediation templates and identification probes), embedded in
//! the binary as defaults and overridable with `--rules DIR`. Loaded and
//! validated at start; errors name the file and line.

pub mod ports;
pub mod profiles;

pub use ports::{Catalogue, PortEntry};
