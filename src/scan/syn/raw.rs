//! Scan layer, the SYN engine's raw-socket I/O: the raw core's sockets
//! ([`crate::scan::raw::socket`]) reading TCP and ICMP replies.

use super::packet::Reply;
pub use crate::scan::raw::socket::raw_sockets_available;

/// Raw-socket I/O for the SYN engine.
pub type RawIo = crate::scan::raw::socket::RawIo<Reply>;
