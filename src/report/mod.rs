//! Report layer: turns findings into what people act on — the renderers of
//! the report formats, the evidence bundle, and the per-platform commands
//! that close an exposed port. It reads the model and the rules data and
//! never touches the network; nothing here prints.

pub mod remediation;

pub use remediation::{
    Platform, RemediationCatalog, RemediationError, RemediationTarget, RenderedRemediation,
};
