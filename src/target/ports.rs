//! Port specs: `22,80,443`, `1-1024`, `-`/`all`, service names and named sets
//! from the port catalogue.

use crate::rules::Catalogue;

#[derive(Debug, thiserror::Error)]
pub enum PortSpecError {
    #[error("{0}")]
    Invalid(String),
}

/// A sorted, de-duplicated, non-empty set of TCP ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSet {
    ports: Vec<u16>,
}

impl PortSet {
    pub fn parse(spec: &str, catalogue: &Catalogue) -> Result<PortSet, PortSpecError> {
        let _ = (spec, catalogue);
        todo!()
    }
    pub fn from_ports(ports: impl IntoIterator<Item = u16>) -> PortSet {
        let mut ports: Vec<u16> = ports.into_iter().collect();
        ports.sort_unstable();
        ports.dedup();
        PortSet { ports }
    }
    pub fn as_slice(&self) -> &[u16] {
        &self.ports
    }
    pub fn len(&self) -> usize {
        self.ports.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}
