//! The port catalogue (`rules/ports.toml`).

use crate::model::{Proto, Severity};

#[derive(Debug, Clone)]
pub struct PortEntry {
    pub port: u16,
    pub proto: Proto,
    pub service: String,
    pub risk: Severity,
}

#[derive(Debug, Clone, Default)]
pub struct Catalogue {}

impl Catalogue {
    pub fn embedded() -> Catalogue {
        todo!()
    }
}
