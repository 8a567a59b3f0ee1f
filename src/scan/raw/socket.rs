//! Scan layer, raw packets: the real [`PacketIo`] over raw sockets, for
//! every probe engine (each reads the replies its own way, [`FromWire`]).
//!
//! Replies are read from a memory-mapped `PACKET_RX_RING` (TPACKET_V3,
//! [`super::ring`]) behind a kernel filter that passes only replies to our
//! source ports; where the ring cannot be set up (an old kernel, a
//! sandbox), from the same sockets with `recvmmsg`, with a notice.
//!
//! Probes leave through `IPPROTO_RAW` sockets (header included; one per
//! address family) in `sendmmsg` batches, so a batch of 64 SYNs costs one
//! system call; a helper thread with its own sockets sends half of each
//! large batch, since the kernel's per-packet work (not ours) is what
//! limits the rate and it then runs on both cores. Replies come from two
//! cooked `AF_PACKET` sockets (IPv4, IPv6), which see TCP and ICMP alike
//! with their full IP headers; the engine thread drains them with
//! `recvmmsg` between batches and sleeps in `ppoll` when idle. There is
//! no receiver thread: waking one per reply cost more kernel time than the
//! replies themselves (measured with perf).

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::io::{FromWire, OutPacket, PacketIo, Received};
use super::ring::{BLOCKS_V4, BLOCKS_V6, RxRing, attach_filter, reply_filter};

/// True when this process may open the raw sockets a SYN or UDP scan needs
/// (root, or CAP_NET_RAW).
pub fn raw_sockets_available() -> bool {
    let ok = |domain, ty, proto| open(domain, ty, proto).is_ok();
    ok(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW)
        && ok(
            libc::AF_PACKET,
            libc::SOCK_DGRAM,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        )
}

fn open(domain: i32, ty: i32, proto: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the option value is a live i32 of the size we pass.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Raw-socket packet I/O. Replies are drained without blocking from two
/// `AF_PACKET` sockets (IPv4 and IPv6) in the engine's own thread.
pub struct RawIo<R> {
    start: Instant,
    sender: Sender,
    worker: Option<Worker>,
    recv: Vec<Rx>,
    bufs: Vec<[u8; RECV_BUF]>,
    /// Replies parsed (for diagnostics).
    pub received: u64,
    /// Set when the receive rings could not be set up: one line saying
    /// why, for the engine to pass on.
    pub notice: Option<String>,
    parse: std::marker::PhantomData<fn() -> R>,
}

const RECV_BUF: usize = 2048;
const RECV_BATCH: usize = 64;

/// A packet socket replies are read from.
enum Rx {
    Ring(RxRing),
    Plain(OwnedFd),
}

impl Rx {
    fn fd(&self) -> RawFd {
        match self {
            Rx::Ring(r) => r.fd(),
            Rx::Plain(s) => s.as_raw_fd(),
        }
    }
}

/// Wall-clock time, nanoseconds since the Unix epoch.
fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Set to `0` to read replies with `recvmmsg` instead of the ring (to
/// compare the two).
const RINGS_ENV: &str = "PORTWARDEN_PACKET_RINGS";

fn open_packet_socket(ethertype: u16, sports: (u16, u16)) -> io::Result<OwnedFd> {
    // Protocol-specific packet sockets (not ETH_P_ALL) are not tapped on
    // the transmit path, so our own probes never reach them.
    let sock = open(
        libc::AF_PACKET,
        libc::SOCK_DGRAM | libc::SOCK_NONBLOCK,
        ethertype.to_be() as i32,
    )?;
    let family = if ethertype == libc::ETH_P_IP as u16 {
        4
    } else {
        6
    };
    attach_filter(sock.as_raw_fd(), &reply_filter(family, sports))?;
    Ok(sock)
}

/// The receive side for one family: a ring, or (`why` says why not) a
/// plain socket with a large buffer.
fn open_receiver(ethertype: u16, sports: (u16, u16)) -> io::Result<(Rx, Option<String>)> {
    let why = if std::env::var(RINGS_ENV).is_ok_and(|v| v == "0") {
        format!("{RINGS_ENV}=0")
    } else {
        let blocks = if ethertype == libc::ETH_P_IP as u16 {
            BLOCKS_V4
        } else {
            BLOCKS_V6
        };
        match RxRing::new(open_packet_socket(ethertype, sports)?, blocks) {
            Ok(ring) => return Ok((Rx::Ring(ring), None)),
            Err(e) => e.to_string(),
        }
    };
    let sock = open_packet_socket(ethertype, sports)?;
    let fd = sock.as_raw_fd();
    // Room for a burst of replies while the engine is busy sending.
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 32 << 20).is_err() {
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 32 << 20);
    }
    Ok((Rx::Plain(sock), Some(why)))
}

impl<R: FromWire> RawIo<R> {
    /// Opens the sockets; `helper_thread` adds a second sending thread
    /// (worth it when a second core is free: the kernel's per-packet work,
    /// not ours, is what limits the rate).
    pub fn open(helper_thread: bool) -> io::Result<RawIo<R>> {
        RawIo::open_for(helper_thread, (1, 65535))
    }

    /// Like [`RawIo::open`], the kernel passing on only replies to the
    /// source ports `sports` (inclusive).
    pub fn open_for(helper_thread: bool, sports: (u16, u16)) -> io::Result<RawIo<R>> {
        let sender = Sender::open()?;
        let worker = if helper_thread {
            Some(Worker::spawn()?)
        } else {
            None
        };
        let (rx4, why4) = open_receiver(libc::ETH_P_IP as u16, sports)?;
        let (rx6, why6) = open_receiver(libc::ETH_P_IPV6 as u16, sports)?;
        let notice = why4
            .or(why6)
            .map(|why| format!("packet rings unavailable ({why}): reading replies with recvmmsg"));
        Ok(RawIo {
            start: Instant::now(),
            sender,
            worker,
            recv: vec![rx4, rx6],
            bufs: vec![[0u8; RECV_BUF]; RECV_BATCH],
            received: 0,
            notice,
            parse: std::marker::PhantomData,
        })
    }

    /// Replies the kernel dropped (full ring or buffer) since the last call.
    pub fn drops(&self) -> u64 {
        self.recv.iter().map(|r| super::ring::drops(r.fd())).sum()
    }

    /// Reads everything queued on the packet sockets without blocking.
    fn drain(&mut self, out: &mut Vec<Received<R>>) -> io::Result<usize> {
        let mut parsed = 0;
        let n = self.drain_bytes(&mut |bytes, at| {
            if let Some(reply) = R::parse(bytes) {
                out.push(Received { reply, at });
                parsed += 1;
            }
        })?;
        self.received += parsed;
        Ok(n)
    }

    /// Hands every packet queued on the packet sockets (from its IP header
    /// on; from plain sockets truncated to 2,048 bytes) to `f` with its
    /// arrival time, without blocking; returns how many there were.
    fn drain_bytes(&mut self, f: &mut dyn FnMut(&[u8], Duration)) -> io::Result<usize> {
        let mut total = 0;
        let start = self.start;
        for rx in &mut self.recv {
            let fd = match rx {
                Rx::Ring(ring) => {
                    // Kernel receive times are wall-clock: take their age.
                    let (at, wall) = (start.elapsed(), wall_ns());
                    total += ring.drain(&mut |b, ts| {
                        let age = Duration::from_nanos(wall.saturating_sub(ts));
                        f(b, at.saturating_sub(age.min(Duration::from_secs(1))))
                    });
                    continue;
                }
                Rx::Plain(sock) => sock.as_raw_fd(),
            };
            loop {
                // SAFETY: zeroed iovec/mmsghdr are valid; each points at a
                // live buffer of RECV_BUF bytes for the duration of the call.
                let mut iovs: Vec<libc::iovec> = self
                    .bufs
                    .iter_mut()
                    .map(|b| libc::iovec {
                        iov_base: b.as_mut_ptr().cast(),
                        iov_len: RECV_BUF,
                    })
                    .collect();
                let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { mem::zeroed() }; RECV_BATCH];
                for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
                    m.msg_hdr.msg_iov = iov;
                    m.msg_hdr.msg_iovlen = 1;
                }
                // SAFETY: as above; the count matches the array.
                let n = unsafe {
                    libc::recvmmsg(
                        fd,
                        msgs.as_mut_ptr(),
                        RECV_BATCH as libc::c_uint,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                    )
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EAGAIN) | Some(libc::EINTR) => break,
                        _ => return Err(e),
                    }
                }
                let at = self.start.elapsed();
                let n = n as usize;
                for (m, b) in msgs.iter().zip(self.bufs.iter()).take(n) {
                    // Truncated datagrams still carry the headers we read.
                    let len = (m.msg_len as usize).min(RECV_BUF);
                    f(&b[..len], at);
                }
                total += n;
                if n < RECV_BATCH {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Sleeps until a packet socket is readable or `timeout` passes.
    fn wait_readable(&self, timeout: Duration) -> io::Result<()> {
        let mut fds: Vec<libc::pollfd> = self
            .recv
            .iter()
            .map(|s| libc::pollfd {
                fd: s.fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        // SAFETY: fds and ts are live for the call; the count matches.
        let r = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// The two raw sending sockets (IPv4, IPv6).
struct Sender {
    send4: OwnedFd,
    send6: Option<OwnedFd>,
}

impl Sender {
    fn open() -> io::Result<Sender> {
        let send4 = open(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
        let _ = setsockopt_int(
            send4.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            4 << 20,
        );
        // IPv6 may be disabled on the host; IPv4-only scans still work.
        let send6 = open(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW).ok();
        if let Some(s) = &send6 {
            let _ = setsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, 4 << 20);
        }
        Ok(Sender { send4, send6 })
    }

    /// Sends runs of one address family each; returns how many leading
    /// packets went out.
    fn send(&self, batch: &[OutPacket<'_>]) -> io::Result<usize> {
        let mut sent = 0;
        while sent < batch.len() {
            let v4 = batch[sent].dst.is_ipv4();
            let run = batch[sent..]
                .iter()
                .take_while(|p| p.dst.is_ipv4() == v4)
                .count();
            // An error after some packets went out reports those; the
            // refused packet comes first in the next call, which then
            // returns the error for it alone.
            let n = match self.send_family(&batch[sent..sent + run]) {
                Ok(n) => n,
                Err(_) if sent > 0 => return Ok(sent),
                Err(e) => return Err(e),
            };
            sent += n;
            if n < run {
                break;
            }
        }
        Ok(sent)
    }

    fn send_family(&self, batch: &[OutPacket<'_>]) -> io::Result<usize> {
        let Some(first) = batch.first() else {
            return Ok(0);
        };
        let fd = match first.dst {
            IpAddr::V4(_) => self.send4.as_raw_fd(),
            IpAddr::V6(_) => match &self.send6 {
                Some(s) => s.as_raw_fd(),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "IPv6 raw sockets are unavailable on this host (is IPv6 disabled?)",
                    ));
                }
            },
        };
        // SAFETY (all zeroed below): sockaddr_storage, iovec and mmsghdr are
        // plain C structs for which all-zero is a valid value.
        let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { mem::zeroed() }; batch.len()];
        let mut iovs: Vec<libc::iovec> = Vec::with_capacity(batch.len());
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { mem::zeroed() }; batch.len()];
        for (i, p) in batch.iter().enumerate() {
            let len = sockaddr_for(p.dst, &mut addrs[i]);
            iovs.push(libc::iovec {
                iov_base: p.bytes.as_ptr() as *mut libc::c_void,
                iov_len: p.bytes.len(),
            });
            msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = len;
        }
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_iov = &mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
        }
        let mut done = 0;
        while done < msgs.len() {
            // SAFETY: every mmsghdr points at live iovecs / addresses /
            // packet bytes that outlive the call; the count is in bounds.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    msgs[done..].as_mut_ptr(),
                    (msgs.len() - done) as libc::c_uint,
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                // Report what went out; a refused packet is offered first
                // next time and gets its error then.
                if done > 0 {
                    return Ok(done);
                }
                return Err(e);
            }
            if n == 0 {
                break;
            }
            done += n as usize;
        }
        Ok(done)
    }
}

/// An owned copy of a batch for the helper thread.
struct OwnedBatch {
    bytes: Vec<u8>,
    packets: Vec<(IpAddr, usize, usize)>,
}

/// A second sending thread with its own sockets.
struct Worker {
    tx: Option<mpsc::SyncSender<OwnedBatch>>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn() -> io::Result<Worker> {
        let sender = Sender::open()?;
        let (tx, rx) = mpsc::sync_channel::<OwnedBatch>(256);
        let handle = std::thread::Builder::new()
            .name("syn-send".into())
            .spawn(move || {
                while let Ok(b) = rx.recv() {
                    let pkts: Vec<OutPacket<'_>> = b
                        .packets
                        .iter()
                        .filter_map(|(dst, from, to)| {
                            Some(OutPacket {
                                dst: *dst,
                                bytes: b.bytes.get(*from..*to)?,
                            })
                        })
                        .collect();
                    // A packet the kernel refuses here is simply lost: the
                    // engine's retransmission covers it like any other loss.
                    let _ = sender.send(&pkts);
                }
            })?;
        Ok(Worker {
            tx: Some(tx),
            handle: Some(handle),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn sockaddr_for(ip: IpAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match ip {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let sin =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        IpAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.octets();
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

impl<R: FromWire> PacketIo for RawIo<R> {
    type Reply = R;

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn local_addr(&mut self, target: IpAddr) -> Option<IpAddr> {
        // A connected UDP socket asks the routing table which source
        // address the kernel would use; nothing is sent.
        let bind: SocketAddr = if target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .ok()?;
        let s = UdpSocket::bind(bind).ok()?;
        s.connect(SocketAddr::new(target, 9)).ok()?;
        s.local_addr().ok().map(|a| a.ip())
    }

    fn send(&mut self, batch: &[OutPacket<'_>]) -> io::Result<usize> {
        // Hand the second half of larger batches to the helper thread.
        if let Some(tx) = self.worker.as_ref().and_then(|w| w.tx.as_ref())
            && batch.len() >= 16
        {
            let half = batch.len() / 2;
            let mut owned = OwnedBatch {
                bytes: Vec::with_capacity(half * 80),
                packets: Vec::with_capacity(half),
            };
            for p in &batch[half..] {
                let from = owned.bytes.len();
                owned.bytes.extend_from_slice(p.bytes);
                owned.packets.push((p.dst, from, owned.bytes.len()));
            }
            if tx.try_send(owned).is_ok() {
                let n = self.sender.send(&batch[..half])?;
                // Whatever the first half could not send is offered again
                // later; the second half is in the helper's hands.
                return Ok(if n < half { n } else { batch.len() });
            }
        }
        self.sender.send(batch)
    }

    fn poll(&mut self, out: &mut Vec<Received<R>>) -> io::Result<()> {
        self.drain(out).map(|_| ())
    }

    fn recv(&mut self, timeout: Duration, out: &mut Vec<Received<R>>) -> io::Result<()> {
        if self.drain(out)? > 0 || timeout.is_zero() {
            return Ok(());
        }
        self.wait_readable(timeout)?;
        self.drain(out)?;
        Ok(())
    }
}
