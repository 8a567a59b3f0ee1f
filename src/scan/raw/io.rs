//! Scan layer, raw packets: the seam between the probe engines and the
//! network.
//!
//! An engine talks to the network only through [`PacketIo`], so the same
//! schedule, retry and rate logic runs over raw sockets
//! ([`super::socket::RawIo`]) and, in unit tests, over
//! [`super::fake::FakeNet`] (an in-memory network answering from a
//! ground-truth table) wrapped in [`Faulty`] (seeded loss, duplication,
//! reordering, delay and local refusals). Time is part of the seam: the
//! engine reads the clock through `now()` and waits only inside `recv()`,
//! so the fake can run on a virtual clock and tests are exact and instant
//! instead of depending on timing. The trait is protocol-neutral: each
//! engine's reply type says how it is read from the wire ([`FromWire`]).

use std::io;
use std::net::IpAddr;
use std::time::Duration;

/// One outgoing packet: a complete IP datagram and where it goes.
#[derive(Debug, Clone, Copy)]
pub struct OutPacket<'a> {
    pub dst: IpAddr,
    pub bytes: &'a [u8],
}

/// A parsed reply and when it was received (on the I/O's clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Received<R> {
    pub reply: R,
    pub at: Duration,
}

/// A reply an engine reads from a received packet (from its IP header on).
pub trait FromWire: Sized {
    /// `None` for anything that is not a reply of this engine's kind.
    fn parse(pkt: &[u8]) -> Option<Self>;
}

pub trait PacketIo {
    /// What the replies are parsed into.
    type Reply;
    /// Time since the I/O was opened (monotonic).
    fn now(&self) -> Duration;
    /// The local address packets to `target` leave from; `None` when there
    /// is no route.
    fn local_addr(&mut self, target: IpAddr) -> Option<IpAddr>;
    /// Sends the packets in order; returns how many leading packets were
    /// accepted (the rest should be offered again later).
    fn send(&mut self, batch: &[OutPacket<'_>]) -> io::Result<usize>;
    /// Appends replies to `out`, waiting up to `timeout` when none is ready.
    fn recv(&mut self, timeout: Duration, out: &mut Vec<Received<Self::Reply>>) -> io::Result<()>;
    /// Appends the replies that are ready, without waiting (and, on a
    /// virtual clock, without letting time pass).
    fn poll(&mut self, out: &mut Vec<Received<Self::Reply>>) -> io::Result<()> {
        self.recv(Duration::ZERO, out)
    }
}
