//! Target layer: turns what the operator typed (addresses, CIDRs, ranges,
//! host names, `@file` lists, excludes, port specs) into the sets the scan
//! engine iterates. Address sets are kept as sorted, disjoint ranges so a
//! /8 costs a few bytes, and any address can be fetched by index — the scan
//! schedule permutes indices, never materialised lists.

pub mod ports;

use std::net::IpAddr;

pub use ports::{PortSet, PortSpecError};

/// Options that change what target specs are accepted.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// Accept more than 16,777,216 addresses, or IPv6 prefixes shorter than /112.
    pub allow_large: bool,
}

/// A host name from the specs that did not resolve; the scan goes on without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub name: String,
    pub error: String,
}

/// Errors in target specs. Each names the offending value (and file:line for `@file` lists).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Invalid(String),
}

/// The resolved set of addresses to scan (specs minus excludes).
#[derive(Debug, Clone, Default)]
pub struct Targets {}

impl Targets {
    /// Parses the specs, resolves host names (A and AAAA), reads `@file` lists
    /// and removes the excludes (which take the same forms).
    pub async fn resolve(
        specs: &[String],
        excludes: &[String],
        opts: &TargetOptions,
    ) -> Result<Targets, TargetError> {
        let _ = (specs, excludes, opts);
        todo!("target resolution")
    }

    /// Number of addresses.
    pub fn len(&self) -> u64 {
        todo!()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The address at `index` in ascending order (IPv4 before IPv6), in O(log ranges).
    pub fn get(&self, index: u64) -> Option<IpAddr> {
        let _ = index;
        todo!()
    }

    /// Addresses in ascending order, lazily.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Host names from the specs that resolved to `ip`.
    pub fn hostnames(&self, ip: IpAddr) -> Vec<String> {
        let _ = ip;
        todo!()
    }

    /// Host names that did not resolve.
    pub fn unresolved(&self) -> &[Unresolved] {
        todo!()
    }
}
