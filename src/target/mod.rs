//! Target layer: turns what the operator typed (addresses, CIDRs, ranges,
//! host names, `@file` lists, excludes, port specs) into the sets the scan
//! engine iterates. Address sets are kept as sorted, disjoint ranges so a
//! /8 costs a few bytes, and any address can be fetched by index — the scan
//! schedule permutes indices, never materialised lists.
//!
//! Accepted spec forms (targets and excludes alike):
//!
//! | form | example |
//! |---|---|
//! | address | `198.18.0.1`, `2001:db8::1` |
//! | CIDR (host bits are dropped, as nmap does) | `198.18.0.0/24`, `2001:db8::/120` |
//! | IPv4 range, last-octet form | `198.18.0.1-20` |
//! | range, full form | `198.18.0.1-198.18.1.5`, `2001:db8::1-2001:db8::ff` |
//! | host name (A and AAAA, system resolver config and `/etc/hosts`) | `localhost` |
//! | list file: one spec per line, `#` comments, blank lines ignored | `@targets.txt` |
//!
//! Target CIDRs of IPv4 shorter than /31 skip their network and broadcast
//! addresses; excludes never do (excluding a /24 removes all 256 addresses).
//!
//! Limits: more than [`LARGE_LIMIT`] addresses in total, counted after the
//! excludes are removed, or any IPv6 target wider than a /112 (checked per
//! spec, before excludes), is refused unless [`TargetOptions::allow_large`];
//! a total beyond `u64::MAX` is refused always.

pub mod ports;
mod ranges;
pub(crate) mod spec;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

pub use ports::{PortSet, PortSpecError};
pub use spec::SpecError;

use ranges::RangeSet;
use spec::Spec;

use crate::lines::{BoundedLines, LineError, MAX_LINE};

/// Addresses accepted without [`TargetOptions::allow_large`].
pub const LARGE_LIMIT: u64 = 16_777_216;

/// IPv6 prefixes shorter than this (and IPv6 ranges wider than one such
/// prefix) need [`TargetOptions::allow_large`].
pub const IPV6_MIN_PREFIX: u8 = 112;

/// How long one DNS query may take. The scan waits for name resolution
/// before it starts, so a dead resolver must cost seconds, not minutes.
const DNS_TIMEOUT: Duration = Duration::from_secs(2);

/// Names looked up at once; bounds sockets when an @file holds thousands.
const DNS_PARALLEL: usize = 32;

/// Options that change what target specs are accepted.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// Accept more than [`LARGE_LIMIT`] (16,777,216) addresses — counted
    /// after excludes are removed — or IPv6 prefixes shorter than /112.
    /// Totals beyond `u64::MAX` are refused even so.
    pub allow_large: bool,
}

/// A host name from the specs that did not resolve; the scan goes on without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub name: String,
    pub error: String,
}

/// Where a spec came from: the command line, or a line of an `@file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(Option<(PathBuf, usize)>);

impl Origin {
    const ARG: Origin = Origin(None);

    /// The list file and 1-based line, or `None` for a command-line spec.
    pub fn file_line(&self) -> Option<(&std::path::Path, usize)> {
        self.0.as_ref().map(|(p, l)| (p.as_path(), *l))
    }
}

/// `file:line: ` for specs read from a list, nothing for arguments.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some((path, line)) => write!(f, "{}:{line}: ", path.display()),
            None => Ok(()),
        }
    }
}

/// Errors in target specs. Each names the offending value (and file:line for `@file` lists).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A malformed spec.
    #[error("{at}{problem}")]
    Spec { at: Origin, problem: SpecError },
    /// An `@file` list that cannot be read.
    #[error("cannot read target list {}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An `@file` list with a line that is not text (too long, not UTF-8).
    #[error("{}:{line}: {problem}", path.display())]
    ListLine {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    /// An IPv6 target wider than a /112 without `allow_large`.
    #[error(
        "{at}IPv6 target `{value}` covers {count} addresses; IPv6 targets wider than a /112 \
         (65,536 addresses) are refused by default: narrow it or pass --allow-large"
    )]
    LargeIpv6 {
        at: Origin,
        value: String,
        count: String,
    },
    /// More than [`LARGE_LIMIT`] addresses without `allow_large`.
    #[error(
        "the targets add up to {} addresses after excludes, more than the {} allowed by \
         default: narrow them, add excludes, or pass --allow-large",
        group(*count), group(LARGE_LIMIT)
    )]
    TooLarge { count: u64 },
    /// More addresses than a `u64` index can reach.
    #[error(
        "{what} covers {count} addresses, more than can be scanned (at most 2^64 - 1) \
         even with --allow-large; narrow it"
    )]
    Overflow { what: String, count: String },
    /// An exclude name that did not resolve: scanning anyway could hit the
    /// very host the operator meant to spare.
    #[error(
        "{at}exclude `{name}` did not resolve ({error}); its addresses cannot be kept out \
         of the scan: fix the name or exclude its addresses instead"
    )]
    UnresolvedExclude {
        at: Origin,
        name: String,
        error: String,
    },
    /// A host name given to [`Targets::parse_static`].
    #[error("{at}host name `{name}` needs resolving; use Targets::resolve")]
    NeedsResolution { at: Origin, name: String },
    /// No target specs at all.
    #[error("no targets given; name addresses, CIDRs, ranges, host names or @file lists")]
    NoTargets,
    /// Specs were given but no address is left to scan.
    #[error("nothing to scan: {reason}")]
    NothingToScan { reason: String },
}

/// Whether a spec adds to the scan or removes from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Target,
    Exclude,
}

/// Specs after parsing and reading lists, before names are resolved.
#[derive(Debug, Default)]
struct Plan {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    ex4: Vec<(u32, u32)>,
    ex6: Vec<(u128, u128)>,
    /// Target names in first-seen order, without repeats.
    names: Vec<(String, Origin)>,
    ex_names: Vec<(String, Origin)>,
}

/// The resolved set of addresses to scan (specs minus excludes).
#[derive(Debug, Clone, Default)]
pub struct Targets {
    v4: RangeSet<u32>,
    v6: RangeSet<u128>,
    names: BTreeMap<IpAddr, Vec<String>>,
    unresolved: Vec<Unresolved>,
}

impl Targets {
    /// Parses the specs, resolves host names (A and AAAA), reads `@file` lists
    /// and removes the excludes (which take the same forms).
    ///
    /// Names use the system configuration (`/etc/resolv.conf`, `/etc/hosts`)
    /// with a 2 s timeout and no retry. A target name that does not resolve is
    /// listed in [`Targets::unresolved`] and the rest is scanned; an exclude
    /// that does not resolve is an error, because its addresses cannot be
    /// kept out of the scan.
    pub async fn resolve(
        specs: &[String],
        excludes: &[String],
        opts: &TargetOptions,
    ) -> Result<Targets, TargetError> {
        let plan = Plan::read(specs, excludes, opts)?;
        if plan.names.is_empty() && plan.ex_names.is_empty() {
            return plan.finish(&HashMap::new(), opts);
        }
        let resolver = system_resolver();
        Self::finish_with(plan, opts, move |name| {
            let resolver = resolver.clone();
            async move {
                match resolver {
                    Ok(r) => r
                        .lookup_ip(name.as_str())
                        .await
                        .map(|found| found.iter().collect())
                        .map_err(|e| lookup_error(&e)),
                    Err(e) => Err(e),
                }
            }
        })
        .await
    }

    /// [`Targets::resolve`] with a caller-supplied lookup (a fake in tests,
    /// or a resolver configured differently). `lookup` gets each distinct
    /// name once and returns its addresses or why it failed.
    pub async fn resolve_with<F, Fut>(
        specs: &[String],
        excludes: &[String],
        opts: &TargetOptions,
        lookup: F,
    ) -> Result<Targets, TargetError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<Vec<IpAddr>, String>> + Send + 'static,
    {
        let plan = Plan::read(specs, excludes, opts)?;
        Self::finish_with(plan, opts, lookup).await
    }

    /// Parses specs that need no name resolution (addresses, CIDRs, ranges,
    /// lists of those); a host name is an error.
    pub fn parse_static(
        specs: &[String],
        excludes: &[String],
        opts: &TargetOptions,
    ) -> Result<Targets, TargetError> {
        let plan = Plan::read(specs, excludes, opts)?;
        if let Some((name, at)) = plan.names.first().or(plan.ex_names.first()) {
            return Err(TargetError::NeedsResolution {
                at: at.clone(),
                name: name.clone(),
            });
        }
        plan.finish(&HashMap::new(), opts)
    }

    async fn finish_with<F, Fut>(
        plan: Plan,
        opts: &TargetOptions,
        lookup: F,
    ) -> Result<Targets, TargetError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<Vec<IpAddr>, String>> + Send + 'static,
    {
        let wanted: BTreeSet<String> = plan
            .names
            .iter()
            .chain(&plan.ex_names)
            .map(|(n, _)| n.clone())
            .collect();
        let mut pending = wanted.into_iter();
        let mut found = HashMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            while tasks.len() < DNS_PARALLEL {
                let Some(name) = pending.next() else { break };
                let query = lookup(name.clone());
                tasks.spawn(async move { (name, query.await) });
            }
            match tasks.join_next().await {
                Some(Ok((name, result))) => {
                    found.insert(name, result);
                }
                // A lookup that panicked or was cancelled leaves its name out
                // of `found`, which `finish` reports as unresolved.
                Some(Err(_)) => {}
                None => break,
            }
        }
        plan.finish(&found, opts)
    }

    /// Number of addresses.
    pub fn len(&self) -> u64 {
        // `finish` guarantees the sum fits.
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The address at `index` in ascending order (IPv4 before IPv6), in O(log ranges).
    pub fn get(&self, index: u64) -> Option<IpAddr> {
        match index.checked_sub(self.v4.len()) {
            None => self.v4.get(index).map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            Some(i) => self.v6.get(i).map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        }
    }

    /// Addresses in ascending order, lazily.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self
            .v4
            .ranges()
            .iter()
            .flat_map(|&(s, e)| (s..=e).map(|a| IpAddr::V4(Ipv4Addr::from(a))));
        let v6 = self
            .v6
            .ranges()
            .iter()
            .flat_map(|&(s, e)| (s..=e).map(|a| IpAddr::V6(Ipv6Addr::from(a))));
        v4.chain(v6)
    }

    /// The set as inclusive `(first, last)` ranges, ascending, IPv4 first.
    pub fn ranges(&self) -> impl Iterator<Item = (IpAddr, IpAddr)> + '_ {
        let v4 = self
            .v4
            .ranges()
            .iter()
            .map(|&(s, e)| (IpAddr::V4(Ipv4Addr::from(s)), IpAddr::V4(Ipv4Addr::from(e))));
        let v6 = self
            .v6
            .ranges()
            .iter()
            .map(|&(s, e)| (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(e))));
        v4.chain(v6)
    }

    /// Whether `ip` is in the set, in O(log ranges).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }

    /// Host names from the specs that resolved to `ip`.
    pub fn hostnames(&self, ip: IpAddr) -> Vec<String> {
        self.names.get(&ip).cloned().unwrap_or_default()
    }

    /// Host names that did not resolve.
    pub fn unresolved(&self) -> &[Unresolved] {
        &self.unresolved
    }
}

impl Plan {
    fn read(
        specs: &[String],
        excludes: &[String],
        opts: &TargetOptions,
    ) -> Result<Plan, TargetError> {
        if specs.is_empty() {
            return Err(TargetError::NoTargets);
        }
        let mut plan = Plan::default();
        for s in specs {
            plan.add_arg(s, Role::Target, opts)?;
        }
        for s in excludes {
            plan.add_arg(s, Role::Exclude, opts)?;
        }
        Ok(plan)
    }

    fn add_arg(&mut self, raw: &str, role: Role, opts: &TargetOptions) -> Result<(), TargetError> {
        let spec = spec::parse(raw).map_err(|problem| TargetError::Spec {
            at: Origin::ARG,
            problem,
        })?;
        let Spec::File(path) = spec else {
            return self.add(spec, raw.trim(), Origin::ARG, role, opts);
        };
        let path = PathBuf::from(path);
        let file_err = |source| TargetError::File {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(file_err)?;
        if file.metadata().map_err(file_err)?.is_dir() {
            return Err(file_err(std::io::Error::other("is a directory")));
        }
        // Line by line, each bounded: `@/dev/zero` fails at once instead
        // of filling memory.
        let mut lines = BoundedLines::new(std::io::BufReader::new(file), MAX_LINE);
        loop {
            let l = match lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(LineError::Io(source)) => return Err(file_err(source)),
                Err(e @ (LineError::TooLong { .. } | LineError::NotUtf8 { .. })) => {
                    let (line, problem) = match e {
                        LineError::TooLong { line, max } => (
                            line,
                            format!("line longer than {} KiB: not a list of targets", max >> 10),
                        ),
                        LineError::NotUtf8 { line } => (line, "not UTF-8 text".to_string()),
                        LineError::Io(_) => (0, String::new()),
                    };
                    return Err(TargetError::ListLine {
                        path: path.clone(),
                        line,
                        problem,
                    });
                }
            };
            let i = l.no - 1;
            // A byte-order mark from a Windows editor is not part of the first spec.
            let line = if i == 0 {
                l.text.strip_prefix('\u{feff}').unwrap_or(l.text)
            } else {
                l.text
            };
            let at = Origin(Some((path.clone(), i + 1)));
            let line = line.split_once('#').map_or(line, |(l, _)| l).trim();
            if line.is_empty() {
                continue;
            }
            let spec = match spec::parse(line) {
                Ok(Spec::File(_)) => Err(SpecError::NestedFile {
                    value: line.to_string(),
                }),
                other => other,
            }
            .map_err(|problem| TargetError::Spec {
                at: at.clone(),
                problem,
            })?;
            self.add(spec, line, at, role, opts)?;
        }
        Ok(())
    }

    fn add(
        &mut self,
        spec: Spec,
        value: &str,
        at: Origin,
        role: Role,
        opts: &TargetOptions,
    ) -> Result<(), TargetError> {
        let (v4, v6, names) = match role {
            Role::Target => (&mut self.v4, &mut self.v6, &mut self.names),
            Role::Exclude => (&mut self.ex4, &mut self.ex6, &mut self.ex_names),
        };
        match spec {
            Spec::Addr(IpAddr::V4(a)) => v4.push((a.into(), a.into())),
            Spec::Addr(IpAddr::V6(a)) => v6.push((a.into(), a.into())),
            Spec::Range(IpAddr::V4(s), IpAddr::V4(e)) => v4.push((s.into(), e.into())),
            Spec::Range(IpAddr::V6(s), IpAddr::V6(e)) => {
                let (s, e) = (u128::from(s), u128::from(e));
                if role == Role::Target {
                    // A /112 holds 2^16 addresses; a wider range is as large.
                    check_ipv6(value, &at, (e - s).checked_add(1), e - s >= 1 << 16, opts)?;
                }
                v6.push((s, e));
            }
            // The parser only builds ranges of one family.
            Spec::Range(..) => {}
            Spec::Net(IpNet::V4(n)) => {
                let (mut s, mut e) = (u32::from(n.network()), u32::from(n.broadcast()));
                if role == Role::Target && n.prefix_len() < 31 {
                    s += 1;
                    e -= 1;
                }
                v4.push((s, e));
            }
            Spec::Net(IpNet::V6(n)) => {
                let (s, e) = (u128::from(n.network()), u128::from(n.broadcast()));
                if role == Role::Target {
                    let bits = 128 - u32::from(n.prefix_len());
                    let count = 1u128.checked_shl(bits).filter(|_| bits < 128);
                    check_ipv6(value, &at, count, n.prefix_len() < IPV6_MIN_PREFIX, opts)?;
                }
                v6.push((s, e));
            }
            Spec::Name(name) => {
                if !names.iter().any(|(n, _)| *n == name) {
                    names.push((name, at));
                }
            }
            // Lists are expanded by `add_arg`; a nested one was refused there.
            Spec::File(_) => {}
        }
        Ok(())
    }

    /// Merges resolved names in, subtracts excludes and applies the limits.
    /// `found` maps each name to its lookup result; a missing name failed.
    fn finish(
        mut self,
        found: &HashMap<String, Result<Vec<IpAddr>, String>>,
        opts: &TargetOptions,
    ) -> Result<Targets, TargetError> {
        let lookup = |name: &str| -> Result<&[IpAddr], String> {
            match found.get(name) {
                Some(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
                Some(Ok(_)) => Err("no addresses".to_string()),
                Some(Err(e)) => Err(e.clone()),
                None => Err("lookup did not complete".to_string()),
            }
        };
        for (name, at) in &self.ex_names {
            let addrs = lookup(name).map_err(|error| TargetError::UnresolvedExclude {
                at: at.clone(),
                name: name.clone(),
                error,
            })?;
            push_addrs(&mut self.ex4, &mut self.ex6, addrs);
        }
        let mut names: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        let mut unresolved = Vec::new();
        for (name, _) in &self.names {
            match lookup(name) {
                Ok(addrs) => {
                    push_addrs(&mut self.v4, &mut self.v6, addrs);
                    for &ip in addrs {
                        let list = names.entry(ip).or_default();
                        if !list.contains(name) {
                            list.push(name.clone());
                        }
                    }
                }
                Err(error) => unresolved.push(Unresolved {
                    name: name.clone(),
                    error,
                }),
            }
        }

        let had_targets = !(self.v4.is_empty() && self.v6.is_empty());
        let v4 = ranges::subtract(&ranges::normalize(self.v4), &ranges::normalize(self.ex4));
        let v6 = ranges::subtract(&ranges::normalize(self.v6), &ranges::normalize(self.ex6));
        let n4 = ranges::total(&v4).unwrap_or(0);
        let total = ranges::total(&v6).and_then(|n6| n6.checked_add(n4));
        let count = match total.map(u64::try_from) {
            Some(Ok(n)) => n,
            Some(Err(_)) | None => {
                return Err(TargetError::Overflow {
                    what: "the target set".to_string(),
                    count: total.map_or("2^128".to_string(), |n| n.to_string()),
                });
            }
        };
        if count == 0 {
            return Err(TargetError::NothingToScan {
                reason: nothing_reason(had_targets, &unresolved),
            });
        }
        if count > LARGE_LIMIT && !opts.allow_large {
            return Err(TargetError::TooLarge { count });
        }
        // The total fits u64, so each family's does.
        let v4 = RangeSet::new(v4).unwrap_or_default();
        let v6 = RangeSet::new(v6).unwrap_or_default();
        let mut targets = Targets {
            v4,
            v6,
            names: BTreeMap::new(),
            unresolved,
        };
        names.retain(|ip, _| targets.contains(*ip));
        targets.names = names;
        Ok(targets)
    }
}

fn push_addrs(v4: &mut Vec<(u32, u32)>, v6: &mut Vec<(u128, u128)>, addrs: &[IpAddr]) {
    for &ip in addrs {
        match ip {
            IpAddr::V4(a) => v4.push((a.into(), a.into())),
            IpAddr::V6(a) => v6.push((a.into(), a.into())),
        }
    }
}

/// Refuses an IPv6 target spec that is too large: beyond `u64` always,
/// beyond a /112 unless `allow_large`. `count` is `None` for all of `::/0`.
fn check_ipv6(
    value: &str,
    at: &Origin,
    count: Option<u128>,
    large: bool,
    opts: &TargetOptions,
) -> Result<(), TargetError> {
    let shown = count.map_or("2^128".to_string(), |n| match u64::try_from(n) {
        Ok(n) => group(n),
        Err(_) => format!("2^{}", n.ilog2()),
    });
    if large && !opts.allow_large {
        return Err(TargetError::LargeIpv6 {
            at: at.clone(),
            value: value.to_string(),
            count: shown,
        });
    }
    if count.is_none_or(|n| n > u128::from(u64::MAX)) {
        return Err(TargetError::Overflow {
            what: format!("{at}IPv6 target `{value}`"),
            count: shown,
        });
    }
    Ok(())
}

/// Why the set came out empty: `had_targets` says whether there were
/// addresses before the excludes were taken away.
fn nothing_reason(had_targets: bool, unresolved: &[Unresolved]) -> String {
    let mut reason = if had_targets {
        "the excludes remove every target".to_string()
    } else if unresolved.is_empty() {
        "the target lists hold no specs".to_string()
    } else {
        "no target name resolved".to_string()
    };
    if !unresolved.is_empty() {
        let failed: Vec<String> = unresolved
            .iter()
            .map(|u| format!("`{}` ({})", u.name, u.error))
            .collect();
        reason.push_str("; did not resolve: ");
        reason.push_str(&failed.join(", "));
    }
    reason
}

/// `16777216` → `16,777,216`, for counts in messages.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A resolver failure in words an operator can act on; the resolver's own
/// text (which dumps its query struct) is kept for anything unusual.
fn lookup_error(e: &hickory_resolver::net::NetError) -> String {
    use hickory_resolver::net::NetError;
    if e.is_nx_domain() {
        "no such host".to_string()
    } else if e.is_no_records_found() {
        "no A or AAAA records".to_string()
    } else if matches!(e, NetError::Timeout) {
        format!(
            "DNS timed out after {} s; check /etc/resolv.conf",
            DNS_TIMEOUT.as_secs()
        )
    } else {
        e.to_string()
    }
}

/// The system resolver, with short timeouts. An unreadable
/// `/etc/resolv.conf` still leaves `/etc/hosts` and the built-in
/// `localhost`, so it is not fatal.
fn system_resolver() -> Result<hickory_resolver::TokioResolver, String> {
    use hickory_resolver::config::{LookupIpStrategy, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    let mut builder = hickory_resolver::TokioResolver::builder_tokio().unwrap_or_else(|_| {
        hickory_resolver::TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(Vec::new()),
            TokioRuntimeProvider::default(),
        )
    });
    let o = builder.options_mut();
    o.timeout = DNS_TIMEOUT;
    // hickory counts retries after the first try: 0 means one query.
    o.attempts = 0;
    o.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    builder
        .build()
        .map_err(|e| format!("cannot set up the name resolver: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn s(list: &[&str]) -> Vec<String> {
        list.iter().map(|x| x.to_string()).collect()
    }

    fn ip(x: &str) -> IpAddr {
        x.parse().unwrap()
    }

    fn stat(specs: &[&str], excludes: &[&str]) -> Result<Targets, TargetError> {
        Targets::parse_static(&s(specs), &s(excludes), &TargetOptions::default())
    }

    fn large(specs: &[&str]) -> Result<Targets, TargetError> {
        Targets::parse_static(&s(specs), &[], &TargetOptions { allow_large: true })
    }

    fn all(t: &Targets) -> Vec<String> {
        t.iter().map(|a| a.to_string()).collect()
    }

    /// A list file in the temp dir, removed on drop.
    struct TempList(PathBuf);

    impl TempList {
        fn new(body: &str) -> TempList {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("portwarden-targets-{}-{n}.txt", std::process::id()));
            std::fs::write(&path, body).unwrap();
            TempList(path)
        }
        fn arg(&self) -> String {
            format!("@{}", self.0.display())
        }
    }

    impl Drop for TempList {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn single_addresses_of_both_families() {
        let t = stat(&["2001:db8::1", "198.18.0.7"], &[]).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(all(&t), vec!["198.18.0.7", "2001:db8::1"]);
        assert_eq!(t.get(0), Some(ip("198.18.0.7")));
        assert_eq!(t.get(1), Some(ip("2001:db8::1")));
        assert_eq!(t.get(2), None);
        assert!(t.contains(ip("2001:db8::1")));
        assert!(!t.contains(ip("2001:db8::2")));
    }

    #[test]
    fn ipv4_cidr_skips_network_and_broadcast() {
        let t = stat(&["198.18.0.0/24"], &[]).unwrap();
        assert_eq!(t.len(), 254);
        assert_eq!(t.get(0), Some(ip("198.18.0.1")));
        assert_eq!(t.get(253), Some(ip("198.18.0.254")));
        assert!(!t.contains(ip("198.18.0.0")) && !t.contains(ip("198.18.0.255")));

        let t = stat(&["198.18.0.4/30"], &[]).unwrap();
        assert_eq!(all(&t), vec!["198.18.0.5", "198.18.0.6"]);
        let t = stat(&["198.18.0.4/31"], &[]).unwrap();
        assert_eq!(all(&t), vec!["198.18.0.4", "198.18.0.5"]);
        let t = stat(&["198.18.0.4/32"], &[]).unwrap();
        assert_eq!(all(&t), vec!["198.18.0.4"]);
        // Host bits are dropped: the whole /24 is meant.
        let t = stat(&["198.18.0.99/24"], &[]).unwrap();
        assert_eq!(t.len(), 254);
    }

    #[test]
    fn ipv6_cidr_keeps_every_address() {
        let t = stat(&["2001:db8::/120"], &[]).unwrap();
        assert_eq!(t.len(), 256);
        assert_eq!(t.get(0), Some(ip("2001:db8::")));
        assert_eq!(t.get(255), Some(ip("2001:db8::ff")));
        let t = stat(&["2001:db8::/112"], &[]).unwrap();
        assert_eq!(t.len(), 65_536);
    }

    #[test]
    fn ranges_in_every_form() {
        let t = stat(&["198.18.0.1-20"], &[]).unwrap();
        assert_eq!(t.len(), 20);
        assert_eq!(t.get(19), Some(ip("198.18.0.20")));
        let t = stat(&["198.18.0.250-198.18.1.5"], &[]).unwrap();
        assert_eq!(t.len(), 12);
        assert_eq!(t.get(6), Some(ip("198.18.1.0")));
        let t = stat(&["2001:db8::1-2001:db8::ff"], &[]).unwrap();
        assert_eq!(t.len(), 255);
        assert_eq!(t.get(254), Some(ip("2001:db8::ff")));
    }

    #[test]
    fn duplicates_and_overlaps_merge() {
        let t = stat(
            &[
                "198.18.0.10",
                "198.18.0.1-20",
                "198.18.0.15-198.18.0.30",
                "198.18.0.31",
                "198.18.0.10",
                "198.18.0.0/28",
                "2001:db8::5",
                "2001:db8::1-2001:db8::9",
            ],
            &[],
        )
        .unwrap();
        // /28 gives .1-.14, inside .1-.20; .31 touches .30.
        assert_eq!(t.len(), 31 + 9);
        assert_eq!(
            t.ranges().collect::<Vec<_>>(),
            vec![
                (ip("198.18.0.1"), ip("198.18.0.31")),
                (ip("2001:db8::1"), ip("2001:db8::9"))
            ]
        );
        let listed = all(&t);
        let unique: BTreeSet<&String> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len());
    }

    #[test]
    fn excludes_take_every_form_and_are_subtracted_whole() {
        let t = stat(
            &["198.18.0.0/24", "2001:db8::/120"],
            &[
                "198.18.0.1-10",
                "198.18.0.128/25",
                "198.18.0.50",
                "2001:db8::-2001:db8::7f",
            ],
        )
        .unwrap();
        // .11-.127 minus .50
        assert_eq!(t.len(), 116 + 128);
        assert_eq!(t.get(0), Some(ip("198.18.0.11")));
        assert!(!t.contains(ip("198.18.0.50")));
        assert!(!t.contains(ip("198.18.0.200")));
        assert_eq!(t.get(116), Some(ip("2001:db8::80")));
        // An exclude that touches nothing changes nothing.
        let t = stat(&["198.18.0.1"], &["198.19.0.0/16"]).unwrap();
        assert_eq!(all(&t), vec!["198.18.0.1"]);
    }

    #[test]
    fn excluding_everything_is_an_error() {
        let e = stat(&["198.18.0.1-5"], &["198.18.0.0/24"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nothing to scan: the excludes remove every target"
        );
    }

    #[test]
    fn no_specs_is_an_error() {
        assert!(matches!(stat(&[], &[]), Err(TargetError::NoTargets)));
        assert!(matches!(
            stat(&[], &["198.18.0.1"]),
            Err(TargetError::NoTargets)
        ));
    }

    #[test]
    fn malformed_specs_name_the_value() {
        let cases = [
            (
                "198.18.0.0/33",
                "bad prefix length `/33` in `198.18.0.0/33`",
            ),
            ("198.18.0.20-1", "range `198.18.0.20-1` is reversed"),
            ("", "empty target spec"),
            (
                "!!",
                "`!!` is not an address, CIDR, range, host name or @file",
            ),
            (
                "198.18.0.256",
                "octet `256` in `198.18.0.256` is out of range",
            ),
        ];
        for (spec, want) in cases {
            let e = stat(&[spec], &[]).unwrap_err().to_string();
            assert!(e.starts_with(want), "{spec}: {e}");
        }
        let e = stat(&["198.18.0.1"], &["198.18.0.0/40"]).unwrap_err();
        assert!(matches!(e, TargetError::Spec { .. }), "{e}");
    }

    #[test]
    fn list_files_skip_comments_and_blank_lines() {
        let list = TempList::new(
            "# lab hosts\n\n198.18.0.1\n  198.18.0.5-6   # two more\n2001:db8::1\n\t\n",
        );
        let t = stat(&[&list.arg()], &[]).unwrap();
        assert_eq!(
            all(&t),
            vec!["198.18.0.1", "198.18.0.5", "198.18.0.6", "2001:db8::1"]
        );
        let ex = TempList::new("198.18.0.5\n# keep .6\n");
        let t = stat(&[&list.arg(), "198.18.0.9"], &[&ex.arg()]).unwrap();
        assert_eq!(
            all(&t),
            vec!["198.18.0.1", "198.18.0.6", "198.18.0.9", "2001:db8::1"]
        );
    }

    #[test]
    fn list_files_tolerate_crlf_and_bom() {
        let list = TempList::new("\u{feff}198.18.0.1\r\n198.18.0.2 # x\r\n");
        let t = stat(&[&list.arg()], &[]).unwrap();
        assert_eq!(all(&t), vec!["198.18.0.1", "198.18.0.2"]);
    }

    #[test]
    fn an_empty_list_is_nothing_to_scan() {
        let list = TempList::new("# nothing yet\n\n");
        let e = stat(&[&list.arg()], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nothing to scan: the target lists hold no specs"
        );
    }

    #[test]
    fn endless_or_binary_lists_fail_fast_naming_the_line() {
        // /dev/zero has no newline: the reader stops at the line cap.
        let e = stat(&["@/dev/zero"], &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            "/dev/zero:1: line longer than 1024 KiB: not a list of targets"
        );
        let list = TempList::new("198.18.0.1\n\u{1b}]0;x\u{7}\n");
        std::fs::write(&list.0, b"198.18.0.1\n\xff\xfe\n").unwrap();
        let e = stat(&[&list.arg()], &[]).unwrap_err().to_string();
        assert_eq!(e, format!("{}:2: not UTF-8 text", list.0.display()));
        let e = stat(&["@/"], &[]).unwrap_err().to_string();
        assert!(e.starts_with("cannot read target list /:"), "{e}");
    }

    #[test]
    fn list_file_errors_name_file_and_line() {
        let list = TempList::new("198.18.0.1\n# fine\n198.18.0.999\n");
        let e = stat(&[&list.arg()], &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:3: octet `999` in `198.18.0.999` is out of range: each octet is 0 to 255",
                list.0.display()
            )
        );
        let TargetError::Spec { at, .. } = stat(&[&list.arg()], &[]).unwrap_err() else {
            panic!("not a spec error")
        };
        assert_eq!(at.file_line(), Some((list.0.as_path(), 3)));
        let nested = TempList::new("@other.txt\n");
        let e = stat(&[&nested.arg()], &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:1: `@other.txt`: @file lists cannot include other @file lists",
                nested.0.display()
            )
        );
        let wide = TempList::new("\n2001:db8::/64\n");
        let e = stat(&[&wide.arg()], &[]).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}:2: IPv6 target `2001:db8::/64`",
                wide.0.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn unreadable_list_names_path_and_os_error() {
        let path =
            std::env::temp_dir().join(format!("portwarden-missing-{}.txt", std::process::id()));
        let e = stat(&[&format!("@{}", path.display())], &[]).unwrap_err();
        let TargetError::File { path: p, source } = &e else {
            panic!("{e}")
        };
        assert_eq!(p, &path);
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("cannot read target list {}: ", path.display())),
            "{msg}"
        );
        assert!(msg.contains("No such file"), "{msg}");
    }

    #[test]
    fn large_sets_need_allow_large() {
        // A /8 is exactly at the limit (minus network and broadcast).
        assert_eq!(stat(&["10.0.0.0/8"], &[]).unwrap().len(), 16_777_214);
        let e = stat(&["10.0.0.0/7"], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the targets add up to 33,554,430 addresses after excludes, more than the \
             16,777,216 allowed by default: narrow them, add excludes, or pass --allow-large"
        );
        // Counted after excludes.
        let t = stat(&["10.0.0.0/7"], &["11.0.0.0/8"]).unwrap();
        assert_eq!(t.len(), 16_777_215);
        assert!(matches!(
            stat(&["0.0.0.0/0"], &[]),
            Err(TargetError::TooLarge {
                count: 4_294_967_294
            })
        ));
        assert_eq!(large(&["0.0.0.0/0"]).unwrap().len(), 4_294_967_294);
        // The limit is on the total, not per spec.
        let e = stat(&["10.0.0.0/8", "12.0.0.0/24"], &[]).unwrap_err();
        assert!(
            matches!(e, TargetError::TooLarge { count: 16_777_468 }),
            "{e}"
        );
    }

    #[test]
    fn wide_ipv6_needs_allow_large() {
        let e = stat(&["2001:db8::/111"], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "IPv6 target `2001:db8::/111` covers 131,072 addresses; IPv6 targets wider than \
             a /112 (65,536 addresses) are refused by default: narrow it or pass --allow-large"
        );
        let e = stat(&["2001:db8::1-2001:db8::1:1"], &[]).unwrap_err();
        assert!(matches!(e, TargetError::LargeIpv6 { .. }), "{e}");
        assert_eq!(
            stat(&["2001:db8::1-2001:db8::1:0"], &[]).unwrap().len(),
            65_536
        );
        assert!(matches!(
            stat(&["::/0"], &[]),
            Err(TargetError::LargeIpv6 { .. })
        ));
        // An exclude may be as wide as it likes.
        let t = stat(&["2001:db8::1"], &["2001:db8::/32"]);
        assert!(matches!(t, Err(TargetError::NothingToScan { .. })));
        // With allow_large: fine while the count fits u64, refused beyond.
        assert_eq!(large(&["2001:db8::/65"]).unwrap().len(), 1 << 63);
        let e = large(&["2001:db8::/64"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "IPv6 target `2001:db8::/64` covers 2^64 addresses, more than can be scanned \
             (at most 2^64 - 1) even with --allow-large; narrow it"
        );
        assert!(matches!(
            large(&["::/0"]),
            Err(TargetError::Overflow { .. })
        ));
        let e = large(&["2001:db8::/65", "2001:db8:0:0:8000::/65"]).unwrap_err();
        assert!(matches!(e, TargetError::Overflow { .. }), "{e}");
    }

    #[test]
    fn get_on_a_slash_8_is_lazy() {
        let t = large(&["10.0.0.0/8", "198.18.0.0/24", "2001:db8::/112"]).unwrap();
        // Three ranges are stored, not sixteen million addresses.
        assert_eq!(t.ranges().count(), 3);
        assert_eq!(t.len(), 16_777_214 + 254 + 65_536);
        assert_eq!(t.get(0), Some(ip("10.0.0.1")));
        assert_eq!(t.get(12_345_678), Some(ip("10.188.97.79")));
        assert_eq!(t.get(16_777_213), Some(ip("10.255.255.254")));
        assert_eq!(t.get(16_777_214), Some(ip("198.18.0.1")));
        assert_eq!(t.get(16_777_214 + 254), Some(ip("2001:db8::")));
        assert_eq!(t.get(t.len() - 1), Some(ip("2001:db8::ffff")));
        assert_eq!(t.get(t.len()), None);
        assert_eq!(
            t.iter().take(3).collect::<Vec<_>>(),
            vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]
        );
    }

    #[test]
    fn names_need_resolve() {
        let e = stat(&["198.18.0.1", "web.example"], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "host name `web.example` needs resolving; use Targets::resolve"
        );
    }

    /// A fake resolver: `web` has two addresses, `alias` shares one, `gone` fails.
    async fn fake(name: String) -> Result<Vec<IpAddr>, String> {
        match name.as_str() {
            "web" => Ok(vec![ip("198.18.0.10"), ip("2001:db8::10")]),
            "alias" => Ok(vec![ip("198.18.0.10")]),
            "db" => Ok(vec![ip("198.18.0.20")]),
            "empty" => Ok(vec![]),
            _ => Err("no such host".to_string()),
        }
    }

    #[tokio::test]
    async fn names_keep_which_name_gave_which_address() {
        let opts = TargetOptions::default();
        let t = Targets::resolve_with(
            &s(&["web", "alias", "gone", "198.18.0.10", "empty", "web"]),
            &[],
            &opts,
            fake,
        )
        .await
        .unwrap();
        assert_eq!(all(&t), vec!["198.18.0.10", "2001:db8::10"]);
        assert_eq!(t.hostnames(ip("198.18.0.10")), vec!["web", "alias"]);
        assert_eq!(t.hostnames(ip("2001:db8::10")), vec!["web"]);
        assert!(t.hostnames(ip("198.18.0.11")).is_empty());
        assert_eq!(
            t.unresolved(),
            &[
                Unresolved {
                    name: "gone".into(),
                    error: "no such host".into()
                },
                Unresolved {
                    name: "empty".into(),
                    error: "no addresses".into()
                },
            ]
        );
    }

    #[tokio::test]
    async fn names_as_excludes() {
        let opts = TargetOptions::default();
        let t = Targets::resolve_with(&s(&["198.18.0.0/27"]), &s(&["db", "web"]), &opts, fake)
            .await
            .unwrap();
        assert_eq!(t.len(), 28);
        assert!(!t.contains(ip("198.18.0.10")) && !t.contains(ip("198.18.0.20")));
        // An excluded address keeps no host name.
        let t = Targets::resolve_with(&s(&["web"]), &s(&["198.18.0.10"]), &opts, fake)
            .await
            .unwrap();
        assert_eq!(all(&t), vec!["2001:db8::10"]);
        assert!(t.hostnames(ip("198.18.0.10")).is_empty());
        let e = Targets::resolve_with(&s(&["198.18.0.1"]), &s(&["gone"]), &opts, fake)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "exclude `gone` did not resolve (no such host); its addresses cannot be kept out \
             of the scan: fix the name or exclude its addresses instead"
        );
    }

    #[tokio::test]
    async fn only_unresolved_names_is_an_error() {
        let opts = TargetOptions::default();
        let e = Targets::resolve_with(&s(&["gone"]), &[], &opts, fake)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "nothing to scan: no target name resolved; did not resolve: `gone` (no such host)"
        );
    }

    #[tokio::test]
    async fn excluded_and_unresolved_together() {
        let opts = TargetOptions::default();
        let e = Targets::resolve_with(&s(&["db", "gone"]), &s(&["198.18.0.20"]), &opts, fake)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "nothing to scan: the excludes remove every target; did not resolve: `gone` \
             (no such host)"
        );
    }

    #[tokio::test]
    async fn localhost_resolves_and_invalid_does_not() {
        let opts = TargetOptions::default();
        let t = Targets::resolve(&s(&["localhost", "does-not-exist.invalid"]), &[], &opts)
            .await
            .unwrap();
        assert!(t.contains(ip("127.0.0.1")), "{:?}", all(&t));
        assert!(t.iter().all(|a| a.is_loopback()), "{:?}", all(&t));
        assert_eq!(t.hostnames(ip("127.0.0.1")), vec!["localhost"]);
        assert_eq!(t.unresolved().len(), 1);
        assert_eq!(t.unresolved()[0].name, "does-not-exist.invalid");
        // `.invalid` is answered inside the resolver (RFC 6761), never sent.
        assert_eq!(t.unresolved()[0].error, "no such host");
    }

    #[tokio::test]
    async fn resolve_without_names_needs_no_resolver() {
        let opts = TargetOptions::default();
        let t = Targets::resolve(&s(&["198.18.0.1-3"]), &s(&["198.18.0.2"]), &opts)
            .await
            .unwrap();
        assert_eq!(all(&t), vec!["198.18.0.1", "198.18.0.3"]);
        assert!(t.unresolved().is_empty());
    }

    #[test]
    fn group_digits() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(16_777_216), "16,777,216");
        assert_eq!(group(u64::MAX), "18,446,744,073,709,551,615");
    }
}
