//! Policy layer: how each host is seen from the vantages that scanned it.
//!
//! One audit, one vantage (a scan, or bundles of one vantage): every host
//! is judged from it. An audit that merges signed bundles of several
//! vantages judges each host from the bundles that scanned it:
//! * its internet checks only from a vantage proven to be the internet
//!   (named `internet`, every source public), and only the ports that
//!   vantage saw open. A host that no such vantage scanned is not assessed
//!   for them, and the reason names the vantages that did scan it;
//! * the segmentation test of a segment group (`expect = "unreachable"`)
//!   only from the vantages it names in `unreachable_from` (each a
//!   `[[scanner]]`'s vantage): their probes are its evidence, their
//!   answers its breaches, their reach of a live host its control. Never
//!   from another segment's bundle or the internet's: a segment no such
//!   bundle probed is not assessed, and says which vantages did probe it.
//!
//! A vantage is one thing throughout: the name a scan declared with
//! `--vantage` (signed into its bundle, matched to its `[[scanner]]`),
//! with the source addresses its probes left from.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::addr::AddrRange;
use super::config::{Group, Policy, Vantage};
use super::eval::NotRun;
use super::evidence::conclusive;
use crate::model::{AuditVantage, Message, Observation, PortState, Proto};

/// One vantage of a merged audit: what its bundles probed and saw open.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VantageScan {
    /// Its name and the source addresses its bundles recorded.
    pub vantage: AuditVantage,
    /// Every host its bundles probed.
    pub hosts: BTreeSet<IpAddr>,
    /// Every (host, port, protocol) its bundles saw open.
    pub open: BTreeSet<(IpAddr, u16, Proto)>,
    /// Some probe reached a live host (open or closed): the control of a
    /// segmentation test judged from this vantage.
    pub reached: bool,
    /// Every probe of the hosts of segment groups that name a vantage
    /// ([`Segments`]), the newest per (port, protocol): the evidence of
    /// their segmentation tests.
    pub segment: BTreeMap<IpAddr, BTreeMap<(u16, Proto), Observation>>,
}

impl VantageScan {
    /// Takes one probe of this vantage's bundles; the probes of `segments`
    /// hosts are kept whole.
    pub fn record(&mut self, o: &Observation, segments: &Segments) {
        self.hosts.insert(o.ip);
        if matches!(o.state, PortState::Open | PortState::Closed) {
            self.reached = true;
        }
        if o.state == PortState::Open {
            self.open.insert((o.ip, o.port, o.proto));
        }
        if segments.contains(o.ip) {
            let kept = self.segment.entry(o.ip).or_default();
            match kept.get(&(o.port, o.proto)) {
                Some(k) if k.time > o.time => {}
                _ => {
                    kept.insert((o.port, o.proto), o.clone());
                }
            }
        }
    }
}

/// The hosts of the policy's segment groups that name the vantages they
/// must be unreachable from: the hosts whose probes a merged audit keeps
/// per vantage.
#[derive(Debug, Clone, Default)]
pub struct Segments(Vec<AddrRange>);

impl Segments {
    pub fn of(policy: &Policy) -> Segments {
        Segments(
            policy
                .groups
                .iter()
                .filter(|g| !g.unreachable_from.is_empty())
                .flat_map(|g| g.ranges.iter().cloned())
                .collect(),
        )
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|r| r.contains(ip))
    }
}

/// Where the segmentation test of a host of a segment group is judged from.
#[derive(Debug, Default)]
pub(super) enum HostSegment<'s> {
    /// From the audit's probes: one vantage, and the group names none, or
    /// names the audit's (or the host is in no segment group).
    #[default]
    Audit,
    /// From the bundles of the vantages the group names.
    Bundles {
        /// Their answers (open or closed) on the host: each a breach.
        answers: Vec<&'s Observation>,
        /// Their conclusive probes of the host.
        conclusive: u64,
        /// The named vantages whose probes reached no live host.
        blind: Vec<String>,
        /// The named vantages whose bundles did not probe the host.
        missing: Option<(String, Message)>,
    },
    /// No probe can judge it; why.
    Unjudged((String, Message)),
}

impl<'s> HostSegment<'s> {
    /// The host `ip` in `groups`: the audit's one vantage is `audit`, the
    /// bundles of a merged audit `scans`.
    pub(super) fn of(
        ip: IpAddr,
        groups: &[&Group],
        audit: &AuditVantage,
        scans: &'s [VantageScan],
    ) -> HostSegment<'s> {
        let from: Vec<&str> = groups
            .iter()
            .flat_map(|g| g.unreachable_from.iter().map(String::as_str))
            .collect();
        let named = |list: &[&str]| list.join(", ");
        if scans.is_empty() {
            return match audit.name.as_deref() {
                _ if from.is_empty() => HostSegment::Audit,
                Some(n) if from.contains(&n) => HostSegment::Audit,
                Some(n) => HostSegment::Unjudged((
                    format!(
                        "the segment must be unreachable from vantage {}, and the audit ran from vantage {n}",
                        named(&from)
                    ),
                    Message::new("msg.cov.segment.other_vantage")
                        .arg("from", named(&from))
                        .arg("name", n),
                )),
                None => HostSegment::Unjudged((
                    format!(
                        "the segment must be unreachable from vantage {}, and the audit ran with no --vantage",
                        named(&from)
                    ),
                    Message::new("msg.cov.segment.no_vantage").arg("from", named(&from)),
                )),
            };
        }
        let probed: Vec<&VantageScan> = scans.iter().filter(|s| s.hosts.contains(&ip)).collect();
        if from.is_empty() {
            let list = scans.iter().map(|s| name(&s.vantage)).collect::<Vec<_>>();
            return HostSegment::Unjudged((
                format!(
                    "the audit merges the vantages {}, and the group names none it must be unreachable from (unreachable_from)",
                    named(&list)
                ),
                Message::new("msg.cov.segment.unnamed").arg("vantages", named(&list)),
            ));
        }
        let judging: Vec<&VantageScan> = probed
            .iter()
            .copied()
            .filter(|s| s.vantage.name.as_deref().is_some_and(|n| from.contains(&n)))
            .collect();
        let absent: Vec<&str> = from
            .iter()
            .copied()
            .filter(|n| !judging.iter().any(|s| s.vantage.name.as_deref() == Some(n)))
            .collect();
        if judging.is_empty() {
            return HostSegment::Unjudged(unsegmented(&absent, &probed));
        }
        let missing = (!absent.is_empty()).then(|| unsegmented(&absent, &probed));
        let probes = || {
            judging
                .iter()
                .filter_map(|s| s.segment.get(&ip))
                .flat_map(|m| m.values())
        };
        HostSegment::Bundles {
            answers: probes()
                .filter(|o| matches!(o.state, PortState::Open | PortState::Closed))
                .collect(),
            conclusive: probes().filter(|o| conclusive(o, true)).count() as u64,
            blind: judging
                .iter()
                .filter(|s| !s.reached)
                .map(|s| name(&s.vantage).to_string())
                .collect(),
            missing,
        }
    }

    /// The probes that breach the segment if they answered: the audit's
    /// (`all`), or the named vantages' own.
    pub(super) fn answers<'o>(&self, all: &[&'o Observation]) -> Vec<&'o Observation>
    where
        's: 'o,
    {
        match self {
            HostSegment::Audit => all.to_vec(),
            HostSegment::Bundles { answers, .. } => answers.clone(),
            HostSegment::Unjudged(_) => Vec::new(),
        }
    }

    /// The conclusive probes and the control of the test: the audit's
    /// (`audit`), or the named vantages' (each must reach a live host).
    pub(super) fn evidence(&self, audit: (u64, bool)) -> (u64, bool) {
        match self {
            HostSegment::Bundles {
                conclusive, blind, ..
            } => (*conclusive, blind.is_empty()),
            HostSegment::Audit => audit,
            HostSegment::Unjudged(_) => (0, false),
        }
    }

    /// Whether the named vantages could judge the host (before its probes
    /// are weighed).
    pub(super) fn ran(&self) -> Result<(), NotRun> {
        let gap = match self {
            HostSegment::Unjudged(why) => why,
            HostSegment::Bundles {
                missing: Some(why), ..
            } => why,
            _ => return Ok(()),
        };
        Err(NotRun {
            msg: gap.1.clone(),
            text: gap.0.clone(),
            nothing_to_judge: false,
        })
    }

    /// Why the control is missing: no probe of the audit, or of a named
    /// vantage, reached a live host.
    pub(super) fn no_control(&self) -> Option<(String, Message)> {
        let HostSegment::Bundles { blind, .. } = self else {
            return None;
        };
        let list = blind.join(", ");
        Some((
            format!(
                "no probe from vantage {list} reached a live host (open or closed): the path to the segment is unproven (scan a control host that answers)"
            ),
            Message::new("msg.cov.segment.no_control").arg("vantages", list),
        ))
    }
}

/// Why the named vantages `absent` cannot judge a host that `probed`
/// scanned.
fn unsegmented(absent: &[&str], probed: &[&VantageScan]) -> (String, Message) {
    let want = absent.join(", ");
    if probed.is_empty() {
        return (
            format!("probed by no bundle of vantage {want}, the segment's, nor by any other"),
            Message::new("msg.cov.segment.unprobed").arg("from", want),
        );
    }
    let list = probed
        .iter()
        .map(|s| format!("{} ({})", name(&s.vantage), s.vantage.sources_text()))
        .collect::<Vec<_>>()
        .join(", ");
    (
        format!(
            "probed by no bundle of vantage {want}, the segment's: scanned only from vantage {list}"
        ),
        Message::new("msg.cov.segment.no_bundle")
            .arg("from", want)
            .arg("vantages", list),
    )
}

/// How one host is seen from the internet.
#[derive(Debug, Clone, Default)]
pub(super) struct HostInternet {
    /// `Ok`: the proving vantage, in words; `Err`: why none proves it
    /// (English and translatable); `None`: nothing to judge (a host of an
    /// internal group, audited from one vantage that is not the internet).
    pub(super) proof: Option<Result<String, (String, Message)>>,
    /// With several vantages: the (port, protocol) pairs the proving
    /// vantages saw open. `None`: every open port of the host (one vantage).
    ports: Option<BTreeSet<(u16, Proto)>>,
}

impl HostInternet {
    /// The host `ip` of a group declared `declared`: judged from the
    /// audit's one vantage (`audit`, already checked) when `scans` is
    /// empty, else from the vantages whose bundles probed it.
    pub(super) fn of(
        ip: IpAddr,
        declared: Vantage,
        audit: &Result<String, (String, Message)>,
        scans: &[VantageScan],
    ) -> HostInternet {
        if scans.is_empty() {
            // From a proven internet vantage every host that answers is
            // reachable from the internet, whatever its group declares; else
            // a group declared internet lacks the evidence, and the others
            // have no internet exposure to judge.
            let proof = match (audit, declared) {
                (Ok(t), _) => Some(Ok(t.clone())),
                (Err(e), Vantage::Internet) => Some(Err(e.clone())),
                _ => None,
            };
            return HostInternet { proof, ports: None };
        }
        let from: Vec<&VantageScan> = scans.iter().filter(|s| s.hosts.contains(&ip)).collect();
        let proving: Vec<(&VantageScan, String)> = from
            .iter()
            .filter_map(|s| s.vantage.internet().ok().map(|t| (*s, t)))
            .collect();
        if proving.is_empty() {
            return HostInternet {
                proof: Some(Err(unproven(&from))),
                ports: Some(BTreeSet::new()),
            };
        }
        let text = proving
            .iter()
            .map(|(s, t)| format!("vantage {}: {t}", name(&s.vantage)))
            .collect::<Vec<_>>()
            .join("; ");
        let ports = proving
            .iter()
            .flat_map(|(s, _)| {
                s.open
                    .range((ip, 0, Proto::Tcp)..=(ip, u16::MAX, Proto::Udp))
                    .map(|&(_, p, proto)| (p, proto))
            })
            .collect();
        HostInternet {
            proof: Some(Ok(text)),
            ports: Some(ports),
        }
    }

    /// The host is proven to be seen from the internet.
    pub(super) fn proven(&self) -> bool {
        matches!(self.proof, Some(Ok(_)))
    }

    /// `port` is proven reachable from the internet (open from a proving
    /// vantage).
    pub(super) fn sees(&self, port: u16, proto: Proto) -> bool {
        self.proven()
            && self
                .ports
                .as_ref()
                .is_none_or(|p| p.contains(&(port, proto)))
    }

    /// Whether an internet check could run on the host.
    pub(super) fn ran(&self) -> Result<(), NotRun> {
        match &self.proof {
            Some(Ok(_)) => Ok(()),
            Some(Err((why, msg))) => Err(NotRun {
                msg: msg.clone(),
                text: why.clone(),
                nothing_to_judge: false,
            }),
            None => Err(NotRun {
                msg: Message::new("msg.cov.no_internet_vantage"),
                text: "no host in scope is internet-facing by declaration (vantage = \"internet\") and the audit did not run from a proven internet vantage".into(),
                nothing_to_judge: true,
            }),
        }
    }
}

fn name(v: &AuditVantage) -> &str {
    v.name.as_deref().unwrap_or("(unnamed)")
}

/// Why none of the vantages that probed a host proves the internet:
/// `scanned only from vantage internal (198.18.0.1)`, and for a vantage
/// named `internet` whose sources are not public, why not.
fn unproven(from: &[&VantageScan]) -> (String, Message) {
    if from.is_empty() {
        return (
            "probed by no signed bundle of a declared scanner".into(),
            Message::new("msg.cov.vantage.no_bundle"),
        );
    }
    let list = from
        .iter()
        .map(|s| match s.vantage.internet() {
            Err(why) if s.vantage.name.as_deref() == Some("internet") => {
                format!("{} ({why})", name(&s.vantage))
            }
            _ => format!("{} ({})", name(&s.vantage), s.vantage.sources_text()),
        })
        .collect::<Vec<_>>()
        .join(", ");
    (
        format!("scanned only from vantage {list}, none a proven internet vantage"),
        Message::new("msg.cov.vantage.scanned_from").arg("vantages", list),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(name: &str, src: &str, hosts: &[&str], open: &[(&str, u16)]) -> VantageScan {
        VantageScan {
            vantage: AuditVantage {
                name: Some(name.into()),
                sources: vec![src.parse().unwrap()],
                interfaces: vec![None],
                lab: false,
            },
            hosts: hosts.iter().map(|h| h.parse().unwrap()).collect(),
            open: open
                .iter()
                .map(|(h, p)| (h.parse().unwrap(), *p, Proto::Tcp))
                .collect(),
            ..VantageScan::default()
        }
    }

    #[test]
    fn each_host_is_judged_from_the_vantages_that_scanned_it() {
        let scans = [
            scan(
                "internal",
                "10.0.0.5",
                &["10.0.1.2", "20.30.40.9"],
                &[("10.0.1.2", 22), ("20.30.40.9", 22), ("20.30.40.9", 3306)],
            ),
            scan(
                "internet",
                "20.1.1.1",
                &["20.30.40.9"],
                &[("20.30.40.9", 3306)],
            ),
        ];
        let audit = Err(("unused".to_string(), Message::new("unused")));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let edge = HostInternet::of(ip("20.30.40.9"), Vantage::Internal, &audit, &scans);
        assert_eq!(
            edge.proof.clone().unwrap().unwrap(),
            "vantage internet: internet (20.1.1.1)"
        );
        assert!(edge.sees(3306, Proto::Tcp));
        // Open from inside only: not reachable from the internet.
        assert!(!edge.sees(22, Proto::Tcp));
        assert!(!edge.sees(3306, Proto::Udp));
        let inside = HostInternet::of(ip("10.0.1.2"), Vantage::Internet, &audit, &scans);
        let (why, msg) = inside.proof.clone().unwrap().unwrap_err();
        assert_eq!(
            why,
            "scanned only from vantage internal (10.0.0.5), none a proven internet vantage"
        );
        assert_eq!(msg.key, "msg.cov.vantage.scanned_from");
        assert!(!inside.sees(22, Proto::Tcp));
        assert!(!inside.ran().unwrap_err().nothing_to_judge);
        // A vantage named internet from a private source proves nothing.
        let fake = [scan("internet", "192.168.1.4", &["10.0.1.2"], &[])];
        let (why, _) = HostInternet::of(ip("10.0.1.2"), Vantage::Internal, &audit, &fake)
            .proof
            .unwrap()
            .unwrap_err();
        assert_eq!(
            why,
            "scanned only from vantage internet (declared internet, scanned from 192.168.1.4), none a proven internet vantage"
        );
        // One vantage: the audit's, as before.
        let one = HostInternet::of(ip("10.0.1.2"), Vantage::Internal, &audit, &[]);
        assert!(one.proof.is_none());
        assert!(one.ran().unwrap_err().nothing_to_judge);
        let ok = Ok("internet (20.1.1.1)".to_string());
        assert!(HostInternet::of(ip("10.0.1.2"), Vantage::Internal, &ok, &[]).sees(22, Proto::Tcp));
    }

    #[test]
    fn a_segment_is_judged_from_each_vantage_it_names() {
        use crate::model::{Observation, Reason};
        let a = crate::testkit::Audit::new(
            "[[group]]\nname = \"cde\"\ntargets = [\"10.0.9.8/29\"]\nexpect = \"unreachable\"\nunreachable_from = [\"office\", \"guest\"]\n",
        );
        let host: IpAddr = "10.0.9.9".parse().unwrap();
        let segments = Segments::of(&a.policy);
        let probe = |reason: Reason| Observation::new(host, 22, Proto::Tcp, reason, Some(1.0));
        let mut office = scan("office", "10.0.0.5", &[], &[]);
        office.record(&probe(Reason::NoResponse), &segments);
        let mut internal = scan("internal", "10.0.9.2", &[], &[]);
        internal.record(&probe(Reason::ConnRefused), &segments);
        let groups = a.policy.groups_of(host);
        let audit = AuditVantage::default();
        // The office probed it (silence, no control); the guest network did
        // not; the internal answer breaches nothing.
        let scans = [office, internal];
        let seg = HostSegment::of(host, &groups, &audit, &scans);
        assert!(seg.answers(&[]).is_empty());
        assert_eq!(seg.evidence((9, true)), (1, false));
        assert_eq!(
            seg.ran().unwrap_err().text,
            "probed by no bundle of vantage guest, the segment's: scanned only from vantage office (10.0.0.5), internal (10.0.9.2)"
        );
        assert_eq!(
            seg.no_control().unwrap().0,
            "no probe from vantage office reached a live host (open or closed): the path to the segment is unproven (scan a control host that answers)"
        );
        // A host outside every segment group keeps no probe.
        assert!(!segments.contains("10.0.9.2".parse().unwrap()));
        assert!(scans[1].segment.contains_key(&host) && scans[1].reached);
    }
}
