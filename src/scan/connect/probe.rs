//! One connect probe: the socket, the non-blocking connect and what its
//! end means, including a TCP self-connect on a local address (probed
//! again from a source port bound apart from the destination port).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Job;
use crate::model::Reason;

#[derive(Debug)]
pub(super) enum Outcome {
    Answered {
        reason: Reason,
        rtt: Duration,
    },
    /// An error answer (ICMP unreachable, …); `rtt` when it came from the network.
    Unreachable {
        reason: Reason,
        rtt: Option<Duration>,
    },
    TimedOut,
    /// The socket connected to itself (source port == destination port on
    /// a local address): no answer from any listener; probed again.
    SelfConnect,
    /// The local system refused the probe; `shortage` when trying again
    /// later may succeed (descriptors, buffers, ephemeral ports).
    Local {
        error: io::Error,
        shortage: bool,
    },
}

/// Attempts at a probe that keeps connecting to itself (each from a source
/// port chosen apart from the destination port, so one is enough).
const SELF_CONNECT_TRIES: u32 = 4;

pub(super) async fn probe(
    job: Job,
    timeout: TimeoutClock,
    injected: Option<io::Error>,
) -> (Job, Outcome) {
    if let Some(e) = injected {
        return (job, local(e));
    }
    let mut outcome = connect_once(job.addr, &timeout, false).await;
    let mut tries = 0;
    // A self-connect (TCP simultaneous open: the kernel picked the
    // destination port as the source port of a connect to a local address)
    // says nothing about the port: probe it again from a source port bound
    // apart from it.
    while matches!(outcome, Outcome::SelfConnect) && tries < SELF_CONNECT_TRIES {
        tries += 1;
        outcome = connect_once(job.addr, &timeout, true).await;
    }
    if matches!(outcome, Outcome::SelfConnect) {
        outcome = local(io::Error::other(
            "every attempt connected the socket to itself (TCP self-connect)",
        ));
    }
    (job, outcome)
}

/// A socket for a probe of `addr`. With `apart`, it is first bound to a
/// source port other than `addr`'s, so the connect cannot meet itself.
fn probe_socket(addr: SocketAddr, apart: bool) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    for _ in 0..SELF_CONNECT_TRIES {
        // Non-blocking from the start: one system call, not three.
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        if !apart {
            return Ok(socket);
        }
        let any: SocketAddr = match addr {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        socket.bind(&any.into())?;
        let port = socket
            .local_addr()?
            .as_socket()
            .map(|a| a.port())
            .unwrap_or(0);
        if port != addr.port() {
            return Ok(socket);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EADDRNOTAVAIL))
}

/// True when the socket is connected to itself: local address == remote.
fn connected_to_itself(socket: &socket2::SockRef<'_>, addr: SocketAddr) -> bool {
    socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .is_some_and(|local| local == addr)
}

/// Starts a non-blocking connect and waits for its end. An error from the
/// `connect()` call itself is local; one reported later is the network's.
async fn connect_once(addr: SocketAddr, timeout: &TimeoutClock, apart: bool) -> Outcome {
    let socket = match probe_socket(addr, apart) {
        Ok(s) => s,
        Err(e) => return local(e),
    };
    let start = Instant::now();
    match socket.connect(&addr.into()) {
        Ok(()) => return connected(&(&socket).into(), addr, start),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return refused(start),
        Err(e) => return local(e),
    }
    // Over a short path the answer is often in before `connect()` returns
    // (the kernel handles the reply on the way out): a socket already
    // connected or closed ends the probe here, without registering it with
    // the reactor or arming a timer. Only the TCP state is read: a soft
    // error (an ICMP error that reached the socket while `connect()` held
    // it) stays where the waiting path would leave it.
    match tcp_state(&socket) {
        Ok(TCP_ESTABLISHED) => return connected(&(&socket).into(), addr, start),
        Ok(TCP_CLOSE) => match socket.take_error() {
            Ok(Some(e)) => return network_error(e, start),
            Ok(None) => {}
            Err(e) => return local(e),
        },
        Ok(_) => {}
        Err(e) => return local(e),
    }
    let std_stream = std::net::TcpStream::from(socket);
    let stream = match tokio::net::TcpStream::from_std(std_stream) {
        Ok(s) => s,
        Err(e) => return local(e),
    };
    let done = async {
        stream.writable().await?;
        match stream.take_error()? {
            Some(e) => Err(e),
            None => Ok(()),
        }
    };
    match timeout.run(start, done).await {
        Some(Ok(())) => connected(&socket2::SockRef::from(&stream), addr, start),
        Some(Err(e)) => network_error(e, start),
        None => Outcome::TimedOut,
    }
}

/// `tcpi_state` values (include/net/tcp_states.h).
const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE: u8 = 7;

/// The socket's TCP state, from `TCP_INFO` (which, unlike `SO_ERROR`,
/// consumes nothing).
fn tcp_state(socket: &socket2::Socket) -> io::Result<u8> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is a plain C struct; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info and len are live for the call and len is info's size.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info.tcpi_state)
}

/// A connected probe. Its socket will close with a RST (a zero linger, set
/// here: only a connected socket sends anything on close), so no TIME_WAIT
/// piles up and ephemeral ports are not exhausted.
fn connected(socket: &socket2::SockRef<'_>, addr: SocketAddr, start: Instant) -> Outcome {
    if let Err(e) = socket.set_linger(Some(Duration::ZERO)) {
        return local(e);
    }
    if connected_to_itself(socket, addr) {
        return Outcome::SelfConnect;
    }
    Outcome::Answered {
        reason: Reason::Connected,
        rtt: start.elapsed(),
    }
}

fn refused(start: Instant) -> Outcome {
    Outcome::Answered {
        reason: Reason::ConnRefused,
        rtt: start.elapsed(),
    }
}

/// The end of a probe that went out, told by the error the network sent.
fn network_error(e: io::Error, start: Instant) -> Outcome {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        return refused(start);
    }
    match classify_error(e) {
        Outcome::Unreachable { reason, .. } => Outcome::Unreachable {
            reason,
            rtt: Some(start.elapsed()),
        },
        other => other,
    }
}

/// The probe time-out, read when it is due rather than fixed when the
/// probe starts: the first probes go out before any RTT is measured (with
/// the initial time-out, 1 s by default), and a probe that stayed silent
/// ends by the estimate of when it ends, not of when it began.
#[derive(Debug, Clone)]
pub(super) struct TimeoutClock {
    /// The current estimate, in microseconds (the engine updates it).
    pub current_us: Arc<AtomicU64>,
    /// The floor: a probe is checked first at this age.
    pub min: Duration,
}

impl TimeoutClock {
    fn current(&self) -> Duration {
        Duration::from_micros(self.current_us.load(Ordering::Relaxed))
    }

    /// Runs `done` until it ends (`Some`) or the probe, started at
    /// `start`, is older than the current time-out (`None`).
    async fn run<T>(&self, start: Instant, done: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(done);
        let mut wait = self.current().min(self.min.max(Duration::from_millis(1)));
        loop {
            let at = tokio::time::Instant::from_std(start + wait);
            if let Ok(v) = tokio::time::timeout_at(at, &mut done).await {
                return Some(v);
            }
            let due = self.current();
            if start.elapsed() >= due {
                return None;
            }
            wait = due;
        }
    }
}

/// A refusal by the local system, before anything was sent.
pub(super) fn local(e: io::Error) -> Outcome {
    let shortage = matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::EADDRNOTAVAIL
                | libc::EAGAIN
        )
    );
    Outcome::Local { error: e, shortage }
}

/// An error the network reported for a probe that went out.
pub(super) fn classify_error(e: io::Error) -> Outcome {
    match e.raw_os_error() {
        Some(libc::ETIMEDOUT) => Outcome::TimedOut,
        code => Outcome::Unreachable {
            reason: match code {
                Some(libc::EHOSTUNREACH) => Reason::HostUnreach,
                Some(libc::ENETUNREACH) => Reason::NetUnreach,
                Some(libc::EACCES | libc::EPERM) => Reason::AdminProhibited,
                Some(libc::ENOPROTOOPT) => Reason::ProtoUnreach,
                _ => Reason::IcmpUnreach,
            },
            rtt: None,
        },
    }
}
