//! Policy layer: how each host is seen from the internet, from the
//! vantages that scanned it.
//!
//! One audit, one vantage (a scan, or bundles of one vantage): every host
//! is judged from it. An audit that merges signed bundles of several
//! vantages judges each host from the bundles that scanned it: its internet
//! checks only from a vantage proven to be the internet (named `internet`,
//! every source public), and only the ports that vantage saw open. A host
//! that no such vantage scanned is not assessed for them, and the reason
//! names the vantages that did scan it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::config::Vantage;
use super::eval::NotRun;
use crate::model::{AuditVantage, Message, Proto};

/// One vantage of a merged audit: what its bundles probed and saw open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VantageScan {
    /// Its name and the source addresses its bundles recorded.
    pub vantage: AuditVantage,
    /// Every host its bundles probed.
    pub hosts: BTreeSet<IpAddr>,
    /// Every (host, port, protocol) its bundles saw open.
    pub open: BTreeSet<(IpAddr, u16, Proto)>,
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
}
