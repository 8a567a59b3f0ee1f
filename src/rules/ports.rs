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
    pub fn entry(&self, port: u16, proto: Proto) -> Option<&PortEntry> {
        let _ = (port, proto);
        todo!()
    }
    pub fn load_dir(dir: &std::path::Path) -> Result<Catalogue, std::io::Error> {
        let _ = dir;
        todo!()
    }
}
