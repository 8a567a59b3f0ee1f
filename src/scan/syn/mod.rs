//! Stateless SYN scan engine (raw sockets).

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

/// True when this process may open raw sockets (root or CAP_NET_RAW).
pub fn raw_sockets_available() -> bool {
    false
}
