//! Test environment: the network-namespace lab every real-packet test and
//! the lab benchmark stand on.
//!
//! A [`Lab`] is two network namespaces — a *scanner* and a *target* — joined
//! by a veth pair. The target namespace answers for whole prefixes
//! (`ip route add local 198.19.1.0/24 dev lo`), so one namespace plays a /24
//! of hosts; nftables in the target decides which (address, port) pairs are
//! open (a real listener), closed (the kernel's RST), silently dropped,
//! rejected with ICMP admin-prohibited, or whose host is down. The helper
//! keeps that ground truth so tests can assert exact scan results.
//!
//! Safety: every address is checked to lie in the lab ranges 198.18.0.0/15
//! and 2001:2::/48, neither namespace has a default route, and the namespaces
//! (and with them the veth pair) are deleted when the `Lab` is dropped, also
//! when a test panics. Names carry the process id and a counter, so
//! concurrent tests and concurrent test processes never collide.
//!
//! This file is also compiled into `benches/lab.rs` (`#[path]` include), so
//! it only uses the crate's normal dependencies (`libc`, `socket2`).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// The scanner's side of the veth link.
pub const SCANNER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The target's side of the veth link (the scanner's gateway into the lab).
pub const TARGET_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const SCANNER_MAC: &str = "02:00:00:00:00:01";
const TARGET_MAC: &str = "02:00:00:00:00:02";
pub const SCANNER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
pub const TARGET_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

/// The standard lab's IPv4 prefix.
pub const STD_V4: &str = "198.19.1.0/24";
/// The standard lab's IPv6 prefix.
pub const STD_V6: &str = "2001:2:0:1::/120";
/// The ports the standard lab's ground truth covers.
pub const STD_PORTS: [u16; 26] = [
    21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 443, 445, 993, 995, 1433, 1521, 3306, 3389,
    5432, 5900, 6379, 8080, 8443, 9200, 27017,
];

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// What the network does with one (address, port) pair, as set up in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Truth {
    /// A listener accepts the connection.
    Open,
    /// The host is up, nothing listens: the kernel answers RST.
    Closed,
    /// nftables drops the SYN silently.
    Dropped,
    /// nftables answers ICMP / ICMPv6 administratively prohibited.
    Rejected,
    /// All traffic to the host is dropped.
    Down,
}

impl Truth {
    /// The state a correct scanner reports.
    pub fn state(self) -> &'static str {
        match self {
            Truth::Open => "open",
            Truth::Closed => "closed",
            Truth::Dropped | Truth::Rejected | Truth::Down => "filtered",
        }
    }

    /// What the network answered, in the JSONL reason vocabulary. A connect
    /// scan may see `Rejected` differently (the kernel turns the ICMP into
    /// an errno): tests map that themselves.
    pub fn reason(self) -> &'static str {
        match self {
            Truth::Open => "connected",
            Truth::Closed => "conn-refused",
            Truth::Dropped | Truth::Down => "no-response",
            Truth::Rejected => "admin-prohibited",
        }
    }
}

/// Loss and rate-limit knobs applied by nftables in the target namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Incoming SYNs dropped at random, per thousand.
    pub syn_loss_permille: u32,
    /// Incoming SYNs above this many per second are dropped.
    pub syn_rate_limit: Option<u32>,
    /// Outgoing TCP replies (SYN-ACK, RST, data) dropped at random, per thousand.
    pub reply_loss_permille: u32,
}

/// Builds a [`Lab`]. Every address must lie inside one of the prefixes.
#[derive(Debug, Clone, Default)]
pub struct LabBuilder {
    v4: Option<(Ipv4Addr, u8)>,
    v6: Option<(Ipv6Addr, u8)>,
    ports: BTreeSet<u16>,
    open: BTreeMap<(IpAddr, u16), Option<Vec<u8>>>,
    dropped: BTreeSet<(IpAddr, u16)>,
    rejected: BTreeSet<(IpAddr, u16)>,
    down: BTreeSet<IpAddr>,
    faults: Faults,
}

fn parse_net(s: &str) -> (IpAddr, u8) {
    let (a, l) = s
        .split_once('/')
        .unwrap_or_else(|| panic!("lab prefix '{s}' needs a /length"));
    let ip: IpAddr = a
        .parse()
        .unwrap_or_else(|e| panic!("lab prefix '{s}': {e}"));
    let len: u8 = l
        .parse()
        .unwrap_or_else(|e| panic!("lab prefix '{s}': {e}"));
    (ip, len)
}

fn v4_in(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

fn v6_in(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    u128::from(ip) & mask == u128::from(net) & mask
}

/// The only addresses a lab may ever use (the project's network-safety rule).
pub fn in_lab_range(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => v4_in(a, Ipv4Addr::new(198, 18, 0, 0), 15),
        IpAddr::V6(a) => v6_in(a, Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0), 48),
    }
}

impl LabBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The IPv4 prefix the target answers for, e.g. `198.19.1.0/24`.
    pub fn v4_prefix(mut self, net: &str) -> Self {
        let (ip, len) = parse_net(net);
        let IpAddr::V4(a) = ip else {
            panic!("'{net}' is not IPv4")
        };
        assert!(
            (16..=32).contains(&len),
            "lab v4 prefix /{len} not in /16–/32"
        );
        assert!(
            v4_in(a, Ipv4Addr::new(198, 19, 0, 0), 16),
            "lab v4 prefix {net} must be inside 198.19.0.0/16"
        );
        self.v4 = Some((a, len));
        self
    }

    /// The IPv6 prefix the target answers for, e.g. `2001:2:0:1::/120`.
    pub fn v6_prefix(mut self, net: &str) -> Self {
        let (ip, len) = parse_net(net);
        let IpAddr::V6(a) = ip else {
            panic!("'{net}' is not IPv6")
        };
        assert!(
            (112..=128).contains(&len),
            "lab v6 prefix /{len} not in /112–/128"
        );
        assert!(
            v6_in(a, Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0), 64),
            "lab v6 prefix {net} must be inside 2001:2:0:1::/64"
        );
        self.v6 = Some((a, len));
        self
    }

    /// Ports the ground truth ([`Lab::expected`]) covers.
    pub fn ports(mut self, ports: &[u16]) -> Self {
        self.ports.extend(ports.iter().copied());
        self
    }

    /// A listener that accepts and closes.
    pub fn open(mut self, ip: IpAddr, port: u16) -> Self {
        self.open.insert((ip, port), None);
        self
    }

    /// A listener that sends `banner` on every accepted connection, then closes.
    pub fn open_with_banner(mut self, ip: IpAddr, port: u16, banner: &[u8]) -> Self {
        self.open.insert((ip, port), Some(banner.to_vec()));
        self
    }

    /// SYNs to (ip, port) are dropped silently.
    pub fn drop(mut self, ip: IpAddr, port: u16) -> Self {
        self.dropped.insert((ip, port));
        self
    }

    /// SYNs to (ip, port) get ICMP (v4) / ICMPv6 (v6) administratively prohibited.
    pub fn reject(mut self, ip: IpAddr, port: u16) -> Self {
        self.rejected.insert((ip, port));
        self
    }

    /// Every packet to `ip` is dropped.
    pub fn down(mut self, ip: IpAddr) -> Self {
        self.down.insert(ip);
        self
    }

    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    pub fn syn_loss(mut self, permille: u32) -> Self {
        self.faults.syn_loss_permille = permille;
        self
    }

    pub fn syn_rate_limit(mut self, per_second: u32) -> Self {
        self.faults.syn_rate_limit = Some(per_second);
        self
    }

    pub fn reply_loss(mut self, permille: u32) -> Self {
        self.faults.reply_loss_permille = permille;
        self
    }

    fn check(&self) {
        let covered = |ip: IpAddr| {
            assert!(in_lab_range(ip), "{ip} is outside the lab ranges");
            let ok = match ip {
                IpAddr::V4(a) => self.v4.is_some_and(|(n, l)| v4_in(a, n, l)),
                IpAddr::V6(a) => self.v6.is_some_and(|(n, l)| v6_in(a, n, l)),
            };
            assert!(ok, "{ip} is not inside the lab's prefixes");
        };
        let mut seen = BTreeSet::new();
        for &(ip, port) in self
            .open
            .keys()
            .chain(self.dropped.iter())
            .chain(self.rejected.iter())
        {
            covered(ip);
            assert!(
                seen.insert((ip, port)),
                "{ip} port {port} is given two states"
            );
            assert!(
                !self.down.contains(&ip),
                "{ip} is down but port {port} has a state"
            );
        }
        for &ip in &self.down {
            covered(ip);
        }
        assert!(
            self.v4.is_some() || self.v6.is_some(),
            "a lab needs at least one prefix"
        );
    }

    /// Creates the namespaces, the link, the routes, the ruleset and the
    /// listeners. Panics (after cleaning up) when any step fails: a lab that
    /// cannot be built makes every test on it meaningless.
    pub fn build(self) -> Lab {
        self.check();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = format!("pw{}x{n}", std::process::id());
        // The guard exists before the first namespace does, so a failure
        // half-way still tears down whatever was made.
        let mut lab = Lab {
            scanner: format!("{base}s"),
            target: format!("{base}t"),
            spec: self,
            stop: Arc::new(AtomicBool::new(false)),
            listener: None,
        };
        assert!(lab.scanner.len() <= 15, "name {} too long", lab.scanner);
        if let Err(e) = lab.setup() {
            drop(lab);
            panic!("lab setup failed: {e}");
        }
        lab
    }
}

/// A built lab. Dropping it stops the listeners and deletes both namespaces.
#[derive(Debug)]
pub struct Lab {
    scanner: String,
    target: String,
    spec: LabBuilder,
    stop: Arc<AtomicBool>,
    listener: Option<JoinHandle<()>>,
}

fn run_checked(cmd: &mut Command, stdin: Option<&str>) -> Result<(), String> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("{cmd:?}: {e}"))?;
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().ok_or("no stdin pipe")?;
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("{cmd:?}: writing stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            stdin.map(|s| format!("\ninput:\n{s}")).unwrap_or_default()
        ))
    }
}

fn ip_cmd(args: &[&str]) -> Result<(), String> {
    run_checked(Command::new("ip").args(args), None)
}

/// Moves the calling thread into the named network namespace. Only this
/// thread moves (setns on a thread of a multi-threaded process), and threads
/// it spawns afterwards inherit the namespace.
pub fn enter_netns(name: &str) -> io::Result<()> {
    let f = File::open(format!("/var/run/netns/{name}"))?;
    // SAFETY: setns on a valid open namespace fd; it only changes this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Deterministic splitmix64: the lab layouts must not change between runs.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Sizes of a generated lab (see [`Lab::generated`]).
#[derive(Debug, Clone)]
pub struct Layout {
    pub prefix: String,
    /// Host addresses used (index into the prefix); the others are down.
    pub hosts: std::ops::RangeInclusive<u32>,
    pub ports: Vec<u16>,
    /// Ports open pairs are drawn from (default: `ports`).
    pub open_ports: Vec<u16>,
    pub down: usize,
    pub open: usize,
    pub dropped: usize,
    pub rejected: usize,
    pub seed: u64,
}

impl Lab {
    pub fn builder() -> LabBuilder {
        LabBuilder::new()
    }

    /// The standard lab: 198.19.1.0/24 over [`STD_PORTS`], hosts .1–.254 of
    /// which 100 are down (154 live; .0 and .255 are down too), 130 open
    /// pairs, 40 dropped and 40 rejected pairs, the rest closed; plus
    /// 2001:2:0:1::/120 with hosts ::1–::fe, 120 down, 40 open, 10 dropped,
    /// 10 rejected. Deterministic.
    pub fn standard() -> Lab {
        Self::standard_builder().build()
    }

    pub fn standard_builder() -> LabBuilder {
        let v4 = Layout {
            prefix: STD_V4.into(),
            hosts: 1..=254,
            ports: STD_PORTS.to_vec(),
            open_ports: STD_PORTS.to_vec(),
            down: 100,
            open: 130,
            dropped: 40,
            rejected: 40,
            seed: 0x5eed_0001,
        };
        let v6 = Layout {
            prefix: STD_V6.into(),
            hosts: 1..=254,
            ports: STD_PORTS.to_vec(),
            open_ports: STD_PORTS.to_vec(),
            down: 120,
            open: 40,
            dropped: 10,
            rejected: 10,
            seed: 0x5eed_0006,
        };
        Self::generated(Self::generated(LabBuilder::new(), &v4), &v6)
    }

    /// Adds a seeded random layout to `b`: addresses of the prefix outside
    /// `hosts` are down, `down` of the hosts are down, and the open, dropped
    /// and rejected pairs are drawn without overlap from the live hosts.
    pub fn generated(b: LabBuilder, l: &Layout) -> LabBuilder {
        let (net, len) = parse_net(&l.prefix);
        let mut b = match net {
            IpAddr::V4(_) => b.v4_prefix(&l.prefix),
            IpAddr::V6(_) => b.v6_prefix(&l.prefix),
        }
        .ports(&l.ports);
        let size: u32 = match net {
            IpAddr::V4(_) => 1 << (32 - len),
            IpAddr::V6(_) => 1 << (128 - len),
        };
        let at = |i: u32| match net {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) + i)),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) + u128::from(i))),
        };
        let mut rng = SplitMix(l.seed);
        for i in (0..size).filter(|i| !l.hosts.contains(i)) {
            b = b.down(at(i));
        }
        let mut hosts: Vec<IpAddr> = l.hosts.clone().filter(|&i| i < size).map(at).collect();
        rng.shuffle(&mut hosts);
        assert!(l.down <= hosts.len(), "more down hosts than hosts");
        for &ip in &hosts[..l.down] {
            b = b.down(ip);
        }
        let live = &hosts[l.down..];
        let mut used = BTreeSet::new();
        let mut draw = |ports: &[u16]| loop {
            let ip = live[rng.below(live.len() as u64) as usize];
            let port = ports[rng.below(ports.len() as u64) as usize];
            if used.insert((ip, port)) {
                return (ip, port);
            }
        };
        let want = l.open + l.dropped + l.rejected;
        assert!(
            want <= live.len() * l.ports.len() / 2,
            "layout asks for too many pairs"
        );
        for _ in 0..l.open {
            let (ip, port) = draw(&l.open_ports);
            b = b.open(ip, port);
        }
        for _ in 0..l.dropped {
            let (ip, port) = draw(&l.ports);
            b = b.drop(ip, port);
        }
        for _ in 0..l.rejected {
            let (ip, port) = draw(&l.ports);
            b = b.reject(ip, port);
        }
        b
    }

    /// The portwarden binary under test (`PORTWARDEN_BIN` overrides it).
    pub fn bin() -> PathBuf {
        match std::env::var_os("PORTWARDEN_BIN") {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(env!("CARGO_BIN_EXE_portwarden")),
        }
    }

    pub fn scanner_ns(&self) -> &str {
        &self.scanner
    }

    pub fn target_ns(&self) -> &str {
        &self.target
    }

    /// `program` set up to run inside the scanner namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.scanner]).arg(program);
        isolate_history(&mut c, &self.scanner);
        c
    }

    /// Runs portwarden with `args` in the scanner namespace and waits for it.
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        self.run_program(Self::bin(), args)
    }

    pub fn run_program<S: AsRef<std::ffi::OsStr>>(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
        args: &[S],
    ) -> Output {
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn ip netns exec")
    }

    /// Runs `f` on a thread inside the scanner namespace (threads and tokio
    /// runtimes it creates are in the namespace too).
    pub fn in_scanner<R: Send, F: FnOnce() -> R + Send>(&self, f: F) -> R {
        in_netns(&self.scanner, f)
    }

    pub fn in_target<R: Send, F: FnOnce() -> R + Send>(&self, f: F) -> R {
        in_netns(&self.target, f)
    }

    /// The target specs covering the lab, e.g. `["198.19.1.0/24"]`.
    pub fn prefixes(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some((a, l)) = self.spec.v4 {
            v.push(format!("{a}/{l}"));
        }
        if let Some((a, l)) = self.spec.v6 {
            v.push(format!("{a}/{l}"));
        }
        v
    }

    pub fn v4_prefix(&self) -> Option<String> {
        self.spec.v4.map(|(a, l)| format!("{a}/{l}"))
    }

    pub fn v6_prefix(&self) -> Option<String> {
        self.spec.v6.map(|(a, l)| format!("{a}/{l}"))
    }

    /// Every address of the lab's prefixes, ascending, IPv4 first.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut v = Vec::new();
        if let Some((a, l)) = self.spec.v4 {
            let base = u32::from(a) & (u32::MAX.checked_shl(32 - u32::from(l)).unwrap_or(0));
            for i in 0..(1u64 << (32 - l)) {
                v.push(IpAddr::V4(Ipv4Addr::from(base + i as u32)));
            }
        }
        if let Some((a, l)) = self.spec.v6 {
            let base = u128::from(a) & (u128::MAX.checked_shl(128 - u32::from(l)).unwrap_or(0));
            for i in 0..(1u128 << (128 - l)) {
                v.push(IpAddr::V6(Ipv6Addr::from(base + i)));
            }
        }
        v
    }

    /// The ports the ground truth covers.
    pub fn ports(&self) -> Vec<u16> {
        self.spec.ports.iter().copied().collect()
    }

    /// `ports()` as a `-p` argument.
    pub fn ports_arg(&self) -> String {
        let v: Vec<String> = self.spec.ports.iter().map(u16::to_string).collect();
        v.join(",")
    }

    /// The network's truth for one pair (any port, not only `ports()`).
    pub fn truth(&self, ip: IpAddr, port: u16) -> Truth {
        if self.spec.down.contains(&ip) {
            Truth::Down
        } else if self.spec.open.contains_key(&(ip, port)) {
            Truth::Open
        } else if self.spec.dropped.contains(&(ip, port)) {
            Truth::Dropped
        } else if self.spec.rejected.contains(&(ip, port)) {
            Truth::Rejected
        } else {
            Truth::Closed
        }
    }

    /// Ground truth over every address × `ports()`.
    pub fn truth_map(&self) -> BTreeMap<(IpAddr, u16), Truth> {
        let mut m = BTreeMap::new();
        for ip in self.addresses() {
            for &port in &self.spec.ports {
                m.insert((ip, port), self.truth(ip, port));
            }
        }
        m
    }

    /// Ground truth as (state, reason) over every address × `ports()`.
    pub fn expected(&self) -> BTreeMap<(IpAddr, u16), (&'static str, &'static str)> {
        self.truth_map()
            .into_iter()
            .map(|(k, t)| (k, (t.state(), t.reason())))
            .collect()
    }

    pub fn open_pairs(&self) -> BTreeSet<(IpAddr, u16)> {
        self.spec.open.keys().copied().collect()
    }

    pub fn dropped_pairs(&self) -> BTreeSet<(IpAddr, u16)> {
        self.spec.dropped.clone()
    }

    pub fn rejected_pairs(&self) -> BTreeSet<(IpAddr, u16)> {
        self.spec.rejected.clone()
    }

    pub fn down_hosts(&self) -> BTreeSet<IpAddr> {
        self.spec.down.clone()
    }

    /// Addresses of the prefixes that are not down.
    pub fn live_hosts(&self) -> BTreeSet<IpAddr> {
        self.addresses()
            .into_iter()
            .filter(|ip| !self.spec.down.contains(ip))
            .collect()
    }

    /// Live (address, port) pairs over `ports()` with no listener and no rule.
    pub fn closed_pairs(&self) -> BTreeSet<(IpAddr, u16)> {
        self.truth_map()
            .into_iter()
            .filter(|(_, t)| *t == Truth::Closed)
            .map(|(k, _)| k)
            .collect()
    }

    pub fn faults(&self) -> Faults {
        self.spec.faults
    }

    /// Replaces the fault knobs (loss, rate limit) of a running lab; the
    /// pair states stay. Atomic: one nftables transaction.
    pub fn set_faults(&mut self, faults: Faults) {
        self.spec.faults = faults;
        let rules = self.ruleset();
        run_checked(
            Command::new("ip").args(["netns", "exec", &self.target, "nft", "-f", "-"]),
            Some(&rules),
        )
        .unwrap_or_else(|e| panic!("reloading lab ruleset: {e}"));
    }

    fn setup(&mut self) -> Result<(), String> {
        let (s, t) = (self.scanner.clone(), self.target.clone());
        ip_cmd(&["netns", "add", &s])?;
        ip_cmd(&["netns", "add", &t])?;
        ip_cmd(&[
            "link",
            "add",
            &s,
            "address",
            SCANNER_MAC,
            "netns",
            &s,
            "type",
            "veth",
            "peer",
            "name",
            &t,
            "address",
            TARGET_MAC,
            "netns",
            &t,
        ])?;
        // No default route on either side: nothing can leave the lab.
        let mut sb = String::new();
        let _ = writeln!(sb, "link set lo up");
        let _ = writeln!(sb, "addr add {SCANNER_V4}/30 dev {s}");
        let _ = writeln!(sb, "addr add {SCANNER_V6}/126 dev {s} nodad");
        let _ = writeln!(sb, "link set {s} up");
        // Static neighbours: no ARP / ND in the probe path, so the first
        // SYN of a scan is not lost while the link is still resolving.
        let _ = writeln!(
            sb,
            "neigh add {TARGET_V4} lladdr {TARGET_MAC} dev {s} nud permanent"
        );
        let _ = writeln!(
            sb,
            "neigh add {TARGET_V6} lladdr {TARGET_MAC} dev {s} nud permanent"
        );
        let _ = writeln!(sb, "route add 198.18.0.0/15 via {TARGET_V4}");
        let _ = writeln!(sb, "route add 2001:2::/48 via {TARGET_V6}");
        run_checked(
            Command::new("ip").args(["-n", &s, "-batch", "-"]),
            Some(&sb),
        )?;
        let mut tb = String::new();
        let _ = writeln!(tb, "link set lo up");
        let _ = writeln!(tb, "addr add {TARGET_V4}/30 dev {t}");
        let _ = writeln!(tb, "addr add {TARGET_V6}/126 dev {t} nodad");
        let _ = writeln!(tb, "link set {t} up");
        let _ = writeln!(
            tb,
            "neigh add {SCANNER_V4} lladdr {SCANNER_MAC} dev {t} nud permanent"
        );
        let _ = writeln!(
            tb,
            "neigh add {SCANNER_V6} lladdr {SCANNER_MAC} dev {t} nud permanent"
        );
        if let Some((a, l)) = self.spec.v4 {
            let _ = writeln!(tb, "route add local {a}/{l} dev lo");
        }
        if let Some((a, l)) = self.spec.v6 {
            let _ = writeln!(tb, "route add local {a}/{l} dev lo");
        }
        run_checked(
            Command::new("ip").args(["-n", &t, "-batch", "-"]),
            Some(&tb),
        )?;
        // ICMP rate limits would turn rejected pairs into silent ones under
        // a fast scan; non-local bind lets listeners bind v6 addresses that
        // only a `local` route covers.
        run_checked(
            Command::new("ip").args([
                "netns",
                "exec",
                &t,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.icmp_ratelimit=0",
                "net.ipv6.icmp.ratelimit=0",
                "net.ipv4.icmp_msgs_per_sec=10000000",
                "net.ipv4.icmp_msgs_burst=10000000",
                "net.ipv4.ip_nonlocal_bind=1",
                "net.ipv6.ip_nonlocal_bind=1",
                "net.ipv4.tcp_max_syn_backlog=65536",
            ]),
            None,
        )?;
        let rules = self.ruleset();
        run_checked(
            Command::new("ip").args(["netns", "exec", &t, "nft", "-f", "-"]),
            Some(&rules),
        )?;
        self.start_listeners()
    }

    fn ruleset(&self) -> String {
        let sp = &self.spec;
        let mut r = String::new();
        // Declaring then deleting the table makes the load idempotent, so
        // `set_faults` can replace the whole ruleset in one transaction.
        r.push_str("table inet lab\ndelete table inet lab\ntable inet lab {\n");
        let pairs = |set: &BTreeSet<(IpAddr, u16)>, v4: bool| -> Vec<String> {
            set.iter()
                .filter(|(ip, _)| ip.is_ipv4() == v4)
                .map(|(ip, p)| format!("{ip} . {p}"))
                .collect()
        };
        let mut set = |name: &str, ty: &str, elems: Vec<String>| {
            let _ = writeln!(r, "  set {name} {{\n    type {ty}");
            if !elems.is_empty() {
                let _ = writeln!(r, "    elements = {{ {} }}", elems.join(", "));
            }
            r.push_str("  }\n");
        };
        set(
            "down4",
            "ipv4_addr",
            sp.down
                .iter()
                .filter(|i| i.is_ipv4())
                .map(|i| i.to_string())
                .collect(),
        );
        set(
            "down6",
            "ipv6_addr",
            sp.down
                .iter()
                .filter(|i| i.is_ipv6())
                .map(|i| i.to_string())
                .collect(),
        );
        set(
            "drop4",
            "ipv4_addr . inet_service",
            pairs(&sp.dropped, true),
        );
        set(
            "drop6",
            "ipv6_addr . inet_service",
            pairs(&sp.dropped, false),
        );
        set(
            "rej4",
            "ipv4_addr . inet_service",
            pairs(&sp.rejected, true),
        );
        set(
            "rej6",
            "ipv6_addr . inet_service",
            pairs(&sp.rejected, false),
        );
        r.push_str("  chain input {\n    type filter hook input priority 0; policy accept;\n");
        r.push_str("    ip daddr @down4 drop\n    ip6 daddr @down6 drop\n");
        let f = sp.faults;
        let _ = writeln!(
            r,
            "{}",
            loss_rule("tcp flags & (syn|ack) == syn", f.syn_loss_permille)
        );
        if let Some(rate) = f.syn_rate_limit {
            let _ = writeln!(
                r,
                "    tcp flags & (syn|ack) == syn limit rate over {rate}/second drop"
            );
        }
        r.push_str("    ip daddr . tcp dport @drop4 drop\n    ip6 daddr . tcp dport @drop6 drop\n");
        r.push_str("    ip daddr . tcp dport @rej4 reject with icmp type admin-prohibited\n");
        r.push_str("    ip6 daddr . tcp dport @rej6 reject with icmpv6 type admin-prohibited\n");
        r.push_str("  }\n");
        if f.reply_loss_permille > 0 {
            // Outgoing, so both raw-socket and kernel-socket scanners lose
            // the same replies.
            r.push_str(
                "  chain output {\n    type filter hook output priority 0; policy accept;\n",
            );
            let _ = writeln!(
                r,
                "{}\n  }}",
                loss_rule("meta l4proto tcp", f.reply_loss_permille)
            );
        }
        r.push_str("}\n");
        r
    }

    fn start_listeners(&mut self) -> Result<(), String> {
        let specs: Vec<(SocketAddr, Option<Vec<u8>>)> = self
            .spec
            .open
            .iter()
            .map(|(&(ip, port), b)| (SocketAddr::new(ip, port), b.clone()))
            .collect();
        if specs.is_empty() {
            return Ok(());
        }
        let (tx, rx) = mpsc::channel::<Result<(), String>>();
        let stop = Arc::clone(&self.stop);
        let ns = self.target.clone();
        let handle = std::thread::Builder::new()
            .name(format!("lab-listen-{ns}"))
            .spawn(move || {
                let bound = enter_netns(&ns)
                    .map_err(|e| format!("setns {ns}: {e}"))
                    .and_then(|()| bind_all(&specs));
                match bound {
                    Ok(socks) => {
                        let _ = tx.send(Ok(()));
                        serve(&socks, &stop);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| format!("spawning listener thread: {e}"))?;
        self.listener = Some(handle);
        rx.recv()
            .map_err(|_| "listener thread died before binding".to_string())?
    }

    fn teardown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
        for ns in [&self.scanner, &self.target] {
            if std::path::Path::new(&format!("/var/run/netns/{ns}")).exists() {
                let _ = Command::new("ip")
                    .args(["netns", "del", ns])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// An nftables rule dropping `permille`/1000 of the packets `matching`
/// (an empty line for 0).
fn loss_rule(matching: &str, permille: u32) -> String {
    match permille {
        0 => String::new(),
        1000.. => format!("    {matching} drop"),
        p => format!("    {matching} numgen random mod 1000 < {p} drop"),
    }
}

/// A bare network namespace (only `lo`, up; no routes out), for running
/// the binary where a bug could not send a packet anywhere. Deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let ns = Netns {
            name: format!("pw{}x{n}e", std::process::id()),
        };
        let made = ip_cmd(&["netns", "add", &ns.name])
            .and_then(|()| ip_cmd(&["-n", &ns.name, "link", "set", "lo", "up"]));
        if let Err(e) = made {
            drop(ns);
            panic!("bare namespace: {e}");
        }
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program` set up to run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        isolate_history(&mut c, &self.name);
        c
    }
}

/// Connect-scan flags that keep lab tests quick: no retries, and a dropped
/// pair or a down host costs one 300 ms time-out.
#[allow(dead_code)] // the benchmark includes this module but not these
pub const FAST_CONNECT: [&str; 10] = [
    "--scan",
    "connect",
    "--retries",
    "0",
    "--timeout-initial",
    "300",
    "--timeout-max",
    "300",
    "--seed",
    "7",
];

/// Audits record their runs in a history database; a test's runs go to one
/// of its own (an explicit `--store` still wins) so they never meet the
/// operator's history or another test's.
pub fn isolate_history(c: &mut Command, owner: &str) {
    let path = std::env::temp_dir().join(format!("{owner}-history.db"));
    c.env("PORTWARDEN_STORE", path);
}

impl Drop for Netns {
    fn drop(&mut self) {
        if netns_exists(&self.name) {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Deletes lab namespaces (`pw<pid>x<n>{s,t,e}`) left behind by processes
/// that no longer exist — a test binary killed before its `Drop`s ran.
/// Never touches a namespace whose creating process is alive. Returns the
/// names removed. Not called automatically: a lab only removes its own.
pub fn remove_stale_namespaces() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/var/run/netns") else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = lab_owner(&name) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if ip_cmd(&["netns", "del", &name]).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// The pid in a lab namespace name `pw<pid>x<n><s|t|e>`.
fn lab_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("pw")?;
    let (pid, rest) = rest.split_once('x')?;
    let n = rest.strip_suffix(['s', 't', 'e'])?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// True when a namespace of that name exists (teardown checks).
pub fn netns_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/var/run/netns/{name}")).exists()
}

fn in_netns<R: Send, F: FnOnce() -> R + Send>(ns: &str, f: F) -> R {
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            enter_netns(ns).unwrap_or_else(|e| panic!("setns {ns}: {e}"));
            f()
        });
        match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

struct Listener {
    sock: Socket,
    banner: Option<Vec<u8>>,
}

fn bind_all(specs: &[(SocketAddr, Option<Vec<u8>>)]) -> Result<Vec<Listener>, String> {
    let mut out = Vec::with_capacity(specs.len());
    for (addr, banner) in specs {
        let dom = if addr.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let sock = Socket::new(dom, Type::STREAM, None).map_err(|e| format!("socket: {e}"))?;
        let _ = sock.set_reuse_address(true);
        if addr.is_ipv6() {
            let _ = sock.set_only_v6(true);
        }
        // Addresses covered only by a `local` route are not "configured";
        // freebind (and the namespace's nonlocal_bind) lets bind accept them.
        if addr.is_ipv4() {
            let _ = sock.set_freebind_v4(true);
        } else {
            let _ = sock.set_freebind_v6(true);
        }
        sock.bind(&(*addr).into())
            .map_err(|e| format!("bind {addr}: {e}"))?;
        sock.listen(4096)
            .map_err(|e| format!("listen {addr}: {e}"))?;
        sock.set_nonblocking(true)
            .map_err(|e| format!("nonblocking {addr}: {e}"))?;
        out.push(Listener {
            sock,
            banner: banner.clone(),
        });
    }
    Ok(out)
}

/// Accepts on every listener until `stop`; each connection gets the banner
/// (if any) and is closed.
fn serve(socks: &[Listener], stop: &AtomicBool) {
    let mut fds: Vec<libc::pollfd> = socks
        .iter()
        .map(|l| libc::pollfd {
            fd: l.sock.as_raw_fd() as RawFd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    while !stop.load(Ordering::SeqCst) {
        // SAFETY: fds is a valid, correctly sized array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        if n <= 0 {
            continue;
        }
        for (pfd, l) in fds.iter_mut().zip(socks) {
            if pfd.revents == 0 {
                continue;
            }
            pfd.revents = 0;
            while let Ok((conn, _)) = l.sock.accept() {
                if let Some(b) = &l.banner {
                    let _ = conn.set_write_timeout(Some(Duration::from_millis(200)));
                    let _ = (&conn).write_all(b);
                    let _ = conn.shutdown(std::net::Shutdown::Write);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// UDP support (additive): real UDP daemons and extra nftables rules in the
// target namespace, for tests/udp.rs and the benchmark's --udp mode.
// ---------------------------------------------------------------------------

/// A process started inside a lab namespace; killed (by its own pid) and
/// reaped on drop.
#[derive(Debug)]
pub struct NsChild {
    child: std::process::Child,
    what: String,
}

impl NsChild {
    pub fn what(&self) -> &str {
        &self.what
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Lab {
    /// Starts `program args` in the target namespace (`ip netns exec`
    /// execs it, so the child's pid is the program's). Output is discarded
    /// unless `log` names a file.
    pub fn spawn_in_target(
        &self,
        program: &str,
        args: &[&str],
        log: Option<&std::path::Path>,
    ) -> NsChild {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.target, program])
            .args(args)
            .stdin(Stdio::null());
        match log.map(File::create) {
            Some(Ok(f)) => {
                let f2 = f.try_clone().expect("clone log handle");
                c.stdout(f).stderr(f2);
            }
            _ => {
                c.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program} in the target namespace: {e}"));
        NsChild {
            child,
            what: format!("{program} {}", args.join(" ")),
        }
    }

    /// Adds an address of the lab's prefix to the target's loopback, for
    /// daemons that bind only to configured addresses.
    pub fn add_target_address(&self, ip: IpAddr) {
        assert!(in_lab_range(ip), "{ip} is outside the lab ranges");
        let len = if ip.is_ipv4() { "32" } else { "128" };
        ip_cmd(&[
            "-n",
            &self.target,
            "addr",
            "add",
            &format!("{ip}/{len}"),
            "dev",
            "lo",
        ])
        .unwrap_or_else(|e| panic!("adding {ip} to the target: {e}"));
    }

    /// Loads an extra nftables ruleset (its own table) in the target.
    pub fn load_target_rules(&self, rules: &str) {
        run_checked(
            Command::new("ip").args(["netns", "exec", &self.target, "nft", "-f", "-"]),
            Some(rules),
        )
        .unwrap_or_else(|e| panic!("loading target rules: {e}"));
    }
}

/// The nftables table of a UDP lab: `dropped` pairs vanish, `rejected`
/// pairs get ICMP admin-prohibited, and every destination unreachable the
/// target sends goes through one limiter per source address (`rate`/s,
/// burst `burst`), like a real host's own `icmp_ratelimit` (the kernel's
/// limiter is per peer, and in the lab the one peer is the scanner, so it
/// is switched off and emulated here per address).
pub fn udp_ruleset(
    dropped: &BTreeSet<(IpAddr, u16)>,
    rejected: &BTreeSet<(IpAddr, u16)>,
    icmp_limit: Option<(u32, u32)>,
) -> String {
    let pairs = |set: &BTreeSet<(IpAddr, u16)>, v4: bool| -> String {
        let v: Vec<String> = set
            .iter()
            .filter(|(ip, _)| ip.is_ipv4() == v4)
            .map(|(ip, p)| format!("{ip} . {p}"))
            .collect();
        if v.is_empty() {
            String::new()
        } else {
            format!("elements = {{ {} }}", v.join(", "))
        }
    };
    let mut r = String::new();
    r.push_str("table inet labudp\ndelete table inet labudp\ntable inet labudp {\n");
    let _ = writeln!(
        r,
        "  set udrop4 {{ type ipv4_addr . inet_service; {} }}",
        pairs(dropped, true)
    );
    let _ = writeln!(
        r,
        "  set udrop6 {{ type ipv6_addr . inet_service; {} }}",
        pairs(dropped, false)
    );
    let _ = writeln!(
        r,
        "  set urej4 {{ type ipv4_addr . inet_service; {} }}",
        pairs(rejected, true)
    );
    let _ = writeln!(
        r,
        "  set urej6 {{ type ipv6_addr . inet_service; {} }}",
        pairs(rejected, false)
    );
    r.push_str("  chain input {\n    type filter hook input priority 0; policy accept;\n");
    r.push_str("    ip daddr . udp dport @udrop4 drop\n    ip6 daddr . udp dport @udrop6 drop\n");
    r.push_str("    ip daddr . udp dport @urej4 reject with icmp type admin-prohibited\n");
    r.push_str("    ip6 daddr . udp dport @urej6 reject with icmpv6 type admin-prohibited\n");
    r.push_str("  }\n");
    if let Some((rate, burst)) = icmp_limit {
        r.push_str("  chain output {\n    type filter hook output priority 0; policy accept;\n");
        let _ = writeln!(
            r,
            "    icmp type destination-unreachable meter pu4 size 65535 {{ ip saddr limit rate over {rate}/second burst {burst} packets }} drop"
        );
        let _ = writeln!(
            r,
            "    icmpv6 type destination-unreachable meter pu6 size 65535 {{ ip6 saddr limit rate over {rate}/second burst {burst} packets }} drop"
        );
        r.push_str("  }\n");
    }
    r.push_str("}\n");
    r
}

/// A minimal SSDP responder: answers an M-SEARCH on `addr` with a 200 and
/// a SERVER header until `stop` is raised. Runs inside `netns`.
pub fn ssdp_responder(
    netns: &str,
    addr: SocketAddr,
    server: &str,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let (tx, rx) = mpsc::channel::<Result<(), String>>();
    let ns = netns.to_string();
    let server = server.to_string();
    let h = std::thread::spawn(move || {
        let sock = enter_netns(&ns)
            .map_err(|e| format!("setns {ns}: {e}"))
            .and_then(|()| {
                std::net::UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))
            });
        let sock = match sock {
            Ok(s) => {
                let _ = tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::SeqCst) {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if buf[..n].starts_with(b"M-SEARCH * HTTP/1.1\r\n") {
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\nLOCATION: http://{}:49152/desc.xml\r\nSERVER: {server}\r\nST: upnp:rootdevice\r\nUSN: uuid:7077-lab::upnp:rootdevice\r\n\r\n",
                    addr.ip()
                );
                let _ = sock.send_to(reply.as_bytes(), peer);
            }
        }
    });
    rx.recv()
        .expect("ssdp responder thread")
        .unwrap_or_else(|e| panic!("ssdp responder: {e}"));
    h
}

/// The UDP lab of tests/udp.rs and the benchmark's `--udp` mode:
/// 198.19.1.0/24 × `high-risk-udp` with real daemons, drops, rejects and a
/// per-address ICMP limiter.
pub mod udp {
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use super::{Lab, NsChild, ssdp_responder, udp_ruleset};

    /// The `high-risk-udp` set.
    pub const PORTS: [u16; 12] = [19, 53, 69, 123, 137, 138, 161, 389, 623, 1434, 1900, 11211];

    pub fn v4(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 19, 1, i as u8))
    }

    pub const DNS: u32 = 11;
    pub const SNMP: u32 = 12;
    pub const NTP: u32 = 14;
    pub const MEMCACHED: u32 = 16;
    pub const SSDP: u32 = 17;

    /// The binary of a daemon, or `None` (skip) — a failure under `CI=true`.
    pub fn need(path: &str, package: &str) -> Option<String> {
        if Path::new(path).exists() {
            return Some(path.to_string());
        }
        crate::prereq::missing(&format!(
            "{path} not found: install the Debian package '{package}' (tests/setup.sh)"
        ));
        None
    }

    /// A scratch directory removed on drop (only what we created in it).
    pub struct Scratch(pub PathBuf);

    impl Scratch {
        pub fn new() -> Scratch {
            let p = std::env::temp_dir().join(format!(
                "pw-udp-{}-{}",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::create_dir(&p).expect("scratch dir");
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn rand_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Want {
        Open,
        Closed,
        Prohibited,
        Silent,
    }

    impl Want {
        pub fn view(self) -> (&'static str, &'static str) {
            match self {
                Want::Open => ("open", "udp-response"),
                Want::Closed => ("closed", "port-unreach"),
                Want::Prohibited => ("filtered", "admin-prohibited"),
                Want::Silent => ("open|filtered", "no-response"),
            }
        }
    }

    /// The running UDP lab: namespaces, rules, daemons, truth.
    pub struct UdpLab {
        pub lab: Lab,
        pub truth: BTreeMap<(IpAddr, u16), Want>,
        pub _daemons: Vec<NsChild>,
        ssdp_stop: Arc<AtomicBool>,
        ssdp: Option<std::thread::JoinHandle<()>>,
        pub _dir: Scratch,
    }

    impl Drop for UdpLab {
        fn drop(&mut self) {
            self.ssdp_stop.store(true, Ordering::SeqCst);
            if let Some(h) = self.ssdp.take() {
                let _ = h.join();
            }
        }
    }

    /// What a UDP lab holds: live hosts (last octets in 198.19.1.0/24; the
    /// rest of the /24 is down), the ports the truth covers, and how many
    /// pairs are dropped and rejected at most.
    pub struct UdpLabSpec {
        pub live: BTreeSet<u32>,
        /// The last octets a scan covers (the truth's addresses).
        pub scanned: std::ops::RangeInclusive<u32>,
        pub ports: Vec<u16>,
        pub max_dropped: usize,
        pub max_rejected: usize,
    }

    /// Builds 198.19.1.0/24: hosts with `i % 5` of 0 or 3 are down (102 of
    /// 256), the five service hosts run their daemons, 30 pairs are dropped
    /// and 20 rejected, the rest of the live pairs are closed.
    pub fn udp_lab() -> Option<UdpLab> {
        udp_lab_with(&UdpLabSpec {
            live: (1..=254u32)
                .filter(|i| !(i % 5 == 0 || i % 5 == 3))
                .collect(),
            scanned: 1..=254,
            ports: PORTS.to_vec(),
            max_dropped: 30,
            max_rejected: 20,
        })
    }

    /// The second benchmark's lab: the 16 hosts 198.19.1.8–23 (all live,
    /// the five service hosts among them) × `ports` (the top-1000 UDP
    /// list), about 1 % of pairs dropped and 0.5 % rejected.
    pub fn udp_lab_16(ports: &[u16]) -> Option<UdpLab> {
        udp_lab_with(&UdpLabSpec {
            live: (8..=23u32).collect(),
            scanned: 8..=23,
            ports: ports.to_vec(),
            max_dropped: 160,
            max_rejected: 80,
        })
    }

    /// A UDP lab as `spec` says, with the same daemons and per-address ICMP
    /// limiter (1/s, burst 6) as [`udp_lab`].
    pub fn udp_lab_with(spec: &UdpLabSpec) -> Option<UdpLab> {
        let dnsmasq = need("/usr/sbin/dnsmasq", "dnsmasq-base")?;
        let snmpd = need("/usr/sbin/snmpd", "snmpd")?;
        let chronyd = need("/usr/sbin/chronyd", "chrony")?;
        let memcached = need("/usr/bin/memcached", "memcached")?;
        let down: BTreeSet<u32> = (0..=255).filter(|i| !spec.live.contains(i)).collect();
        let mut b = Lab::builder().v4_prefix("198.19.1.0/24").ports(&spec.ports);
        for &i in &down {
            b = b.down(v4(i));
        }
        let lab = b.build();
        let services = [
            (DNS, 53u16),
            (SNMP, 161),
            (NTP, 123),
            (MEMCACHED, 11211),
            (SSDP, 1900),
        ];
        let mut truth = BTreeMap::new();
        let mut dropped = BTreeSet::new();
        let mut rejected = BTreeSet::new();
        for i in spec.scanned.clone() {
            for (k, &port) in spec.ports.iter().enumerate() {
                let key = (v4(i), port);
                let want = if down.contains(&i) {
                    Want::Silent
                } else if services.contains(&(i, port)) {
                    Want::Open
                } else if (i * 7 + k as u32 * 13).is_multiple_of(61)
                    && dropped.len() < spec.max_dropped
                {
                    dropped.insert(key);
                    Want::Silent
                } else if (i * 11 + k as u32 * 5).is_multiple_of(71)
                    && rejected.len() < spec.max_rejected
                {
                    rejected.insert(key);
                    Want::Prohibited
                } else {
                    Want::Closed
                };
                truth.insert(key, want);
            }
        }
        assert!(
            spec.max_dropped < 10 || (dropped.len() >= 10 && rejected.len() >= 10),
            "{} {}",
            dropped.len(),
            rejected.len()
        );
        lab.load_target_rules(&udp_ruleset(&dropped, &rejected, Some((1, 6))));
        for (i, _) in services {
            lab.add_target_address(v4(i));
        }
        let dir = Scratch::new();
        let d = &dir.0;
        std::fs::write(
            d.join("snmpd.conf"),
            "rocommunity public\nsysDescr portwarden lab snmpd\n",
        )
        .unwrap();
        std::fs::write(
            d.join("chrony.conf"),
            format!(
                "port 123\nbindaddress {}\nallow all\nlocal stratum 8\ncmdport 0\npidfile {}\n",
                v4(NTP),
                d.join("chronyd.pid").display()
            ),
        )
        .unwrap();
        let s = |p: PathBuf| p.display().to_string();
        let daemons = vec![
            lab.spawn_in_target(
                &dnsmasq,
                &[
                    "--no-daemon",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    &format!("--listen-address={}", v4(DNS)),
                    "--port=53",
                    "--user=root",
                    &format!("--pid-file={}", s(d.join("dnsmasq.pid"))),
                ],
                Some(&d.join("dnsmasq.log")),
            ),
            lab.spawn_in_target(
                &snmpd,
                &[
                    "-f",
                    "-Lo",
                    "-C",
                    "-c",
                    &s(d.join("snmpd.conf")),
                    "-p",
                    &s(d.join("snmpd.pid")),
                    &format!("udp:{}:161", v4(SNMP)),
                ],
                Some(&d.join("snmpd.log")),
            ),
            lab.spawn_in_target(
                &chronyd,
                &["-d", "-x", "-u", "root", "-f", &s(d.join("chrony.conf"))],
                Some(&d.join("chronyd.log")),
            ),
            lab.spawn_in_target(
                &memcached,
                &[
                    "-u",
                    "root",
                    "-l",
                    &v4(MEMCACHED).to_string(),
                    "-U",
                    "11211",
                    "-p",
                    "11211",
                ],
                Some(&d.join("memcached.log")),
            ),
        ];
        let stop = Arc::new(AtomicBool::new(false));
        let ssdp = ssdp_responder(
            lab.target_ns(),
            SocketAddr::new(v4(SSDP), 1900),
            "Linux/6.1 UPnP/1.0 portwarden-lab/1.0",
            stop.clone(),
        );
        let mut ul = UdpLab {
            lab,
            truth,
            _daemons: daemons,
            ssdp_stop: stop,
            ssdp: Some(ssdp),
            _dir: dir,
        };
        wait_listening(&mut ul);
        Some(ul)
    }

    /// Waits (bounded) until every daemon has bound its UDP socket.
    fn wait_listening(ul: &mut UdpLab) {
        let want = [
            format!("{}:53", v4(DNS)),
            format!("{}:161", v4(SNMP)),
            format!("{}:123", v4(NTP)),
            format!("{}:11211", v4(MEMCACHED)),
        ];
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", ul.lab.target_ns(), "ss", "-uln"])
                .output()
                .expect("ss");
            let text = String::from_utf8_lossy(&out.stdout);
            let missing: Vec<&String> =
                want.iter().filter(|w| !text.contains(w.as_str())).collect();
            if missing.is_empty() {
                return;
            }
            for d in &mut ul._daemons {
                assert!(d.alive(), "{} exited early (see its log)", d.what());
            }
            assert!(
                Instant::now() < deadline,
                "daemons not listening: {missing:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
