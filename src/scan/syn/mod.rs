//! Stateless SYN scan engine (raw sockets).

pub mod cookie;
pub mod engine;
pub mod io;
pub mod packet;

use tokio::sync::mpsc;

use super::{ScanConfig, ScanError, ScanSummary};
use crate::model::ScanEvent;
use crate::target::{PortSet, Targets};

pub async fn run(
    targets: &Targets,
    ports: &PortSet,
    cfg: &ScanConfig,
    events: mpsc::Sender<ScanEvent>,
) -> Result<ScanSummary, ScanError> {
    let _ = (targets, ports, cfg, events);
    Err(ScanError::Config("SYN scan is not built yet".into()))
}

#[cfg(test)]
mod tests;
