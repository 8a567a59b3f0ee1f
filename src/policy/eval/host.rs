//! How the policy sees one host ([`HostCtx`]): its groups, vantage,
//! profiles and evidence, and whether each check could run on it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::super::cadence::CadenceGate;
use super::super::config::{AllowRule, DEFAULT_BASELINE_PROFILES, Expect, Group, Policy, Vantage};
use super::super::evidence::{HostEvidence, ScopeTable};
use super::super::vantage::{HostInternet, HostSegment, VantageScan};
use crate::model::{AuditVantage, Message, Proto};
use crate::rules::profiles::{CheckCondition, CheckKind, Profiles};

/// Why a check could not run: English text and its translation key.
#[derive(Debug, Clone)]
pub(in crate::policy) struct NotRun {
    pub(in crate::policy) msg: Message,
    pub(in crate::policy) text: String,
    /// Nothing of the check's kind exists (no exception, no allowance):
    /// not missing data, so it does not keep a requirement from passing.
    pub(in crate::policy) nothing_to_judge: bool,
}

pub(in crate::policy) fn not_run(key: &str, text: &str) -> NotRun {
    NotRun {
        msg: Message::new(key),
        text: text.to_string(),
        nothing_to_judge: false,
    }
}

fn nothing_to_judge(key: &str, text: &str) -> NotRun {
    NotRun {
        nothing_to_judge: true,
        ..not_run(key, text)
    }
}

/// How the policy sees one host.
pub(in crate::policy) struct HostCtx<'a> {
    pub(in crate::policy) ip: IpAddr,
    pub(in crate::policy) groups: Vec<&'a Group>,
    /// The declared vantage of its groups.
    pub(in crate::policy) vantage: Vantage,
    /// How the host is seen from the internet, from the vantages that
    /// scanned it.
    pub(in crate::policy) internet: HostInternet,
    pub(in crate::policy) cap: Option<usize>,
    pub(in crate::policy) profiles: Vec<&'a str>,
    pub(in crate::policy) tags: Vec<&'a str>,
    /// In a group that must be unreachable from this vantage.
    pub(in crate::policy) unreachable: bool,
    /// Some probe of this audit reached a live host from this vantage: the
    /// control a segmentation test needs.
    pub(in crate::policy) control: bool,
    /// Where its segmentation test is judged from (a merged audit: the
    /// vantages its group names).
    pub(in crate::policy) segment: HostSegment<'a>,
    /// Open ports, and those identification named with confidence.
    pub(in crate::policy) open: usize,
    pub(in crate::policy) identified: usize,
    /// Probes concluded on the host (any state).
    pub(in crate::policy) probes: u64,
    /// Exceptions of the policy that cover the host.
    pub(in crate::policy) exceptions: usize,
    /// What the probes show beyond the open ports.
    pub(in crate::policy) ev: HostEvidence,
    /// The port scope each of its profiles asks for (index in the audit's
    /// [`ScopeTable`]).
    pub(in crate::policy) scopes: Vec<(&'a str, usize)>,
    /// What the audit history lets the calendar checks judge.
    pub(in crate::policy) cadence: CadenceGate,
}

impl<'a> HostCtx<'a> {
    pub(in crate::policy) fn new(
        policy: &'a Policy,
        profiles: &'a Profiles,
        ip: IpAddr,
        table: &ScopeTable,
        audit: (&AuditVantage, &Result<String, (String, Message)>),
        scans: &'a [VantageScan],
    ) -> HostCtx<'a> {
        let (audit_vantage, audit_internet) = audit;
        let groups = policy.groups_of(ip);
        let mut ctx = HostCtx {
            ip,
            groups: Vec::new(),
            vantage: Vantage::Internal,
            internet: HostInternet::default(),
            cap: None,
            profiles: Vec::new(),
            tags: Vec::new(),
            unreachable: false,
            control: false,
            segment: HostSegment::Audit,
            open: 0,
            identified: 0,
            probes: 0,
            exceptions: 0,
            ev: HostEvidence::default(),
            scopes: Vec::new(),
            cadence: CadenceGate::default(),
        };
        if groups.is_empty() {
            let baseline: Vec<&str> = match &policy.baseline_profiles {
                Some(list) => list.iter().map(String::as_str).collect(),
                None => DEFAULT_BASELINE_PROFILES.to_vec(),
            };
            ctx.profiles = profiles
                .ids()
                .into_iter()
                .filter(|p| baseline.contains(p))
                .collect();
        } else {
            // Overlapping groups were checked to agree on vantage and cap.
            ctx.vantage = groups[0].vantage;
            ctx.cap = groups.iter().find_map(|g| g.max_open_ports);
            let declared: BTreeSet<&str> = groups
                .iter()
                .flat_map(|g| g.profiles.iter().map(String::as_str))
                .collect();
            ctx.profiles = profiles
                .ids()
                .into_iter()
                .filter(|p| declared.contains(p))
                .collect();
            ctx.tags = groups
                .iter()
                .flat_map(|g| g.tags.iter().map(String::as_str))
                .collect();
            ctx.unreachable = groups.iter().any(|g| g.expect == Expect::Unreachable);
            ctx.groups = groups;
        }
        ctx.internet = HostInternet::of(ip, ctx.vantage, audit_internet, scans);
        if ctx.unreachable {
            ctx.segment = HostSegment::of(ip, &ctx.groups, audit_vantage, scans);
        }
        ctx.scopes = ctx
            .profiles
            .iter()
            .filter_map(|p| table.of(p, &ctx.groups).map(|i| (*p, i)))
            .collect();
        ctx
    }

    pub(in crate::policy) fn managed(&self) -> bool {
        !self.groups.is_empty()
    }

    /// The host answered, or its silence is the evidence (segmentation).
    pub(in crate::policy) fn in_scope(&self) -> bool {
        self.ev.answered || self.unreachable
    }

    pub(in crate::policy) fn group_name(&self) -> Option<String> {
        self.groups.first().map(|g| g.name.clone())
    }

    /// The first allowance, over every group of the host, that admits the port.
    pub(in crate::policy) fn allowance(&self, port: u16, proto: Proto) -> Option<&'a AllowRule> {
        self.groups
            .iter()
            .flat_map(|g| g.allow.iter())
            .find(|a| a.matches(port, proto))
    }

    pub(in crate::policy) fn allowances(&self) -> usize {
        self.groups.iter().map(|g| g.allow.len()).sum()
    }

    /// Whether a mapping's condition holds for the host, or for its port
    /// `at` (`@unapproved` is judged per finding, so it holds for every
    /// host; `@vantage:internet` for a port needs it open from the internet).
    pub(in crate::policy) fn satisfies(
        &self,
        cond: &CheckCondition,
        at: Option<(u16, Proto)>,
    ) -> bool {
        match cond {
            CheckCondition::Always | CheckCondition::Unapproved => true,
            CheckCondition::Tag(t) => self.tags.iter().any(|x| x.eq_ignore_ascii_case(t)),
            CheckCondition::Vantage(v) if v == "internet" => match at {
                Some((port, proto)) => self.internet.sees(port, proto),
                None => self.internet.proven(),
            },
            CheckCondition::Vantage(v) => self.vantage.as_str() == v,
        }
    }

    /// Whether `check` ran on this host with the data it needs.
    pub(in crate::policy) fn ran(&self, check: CheckKind, history: bool) -> Result<(), NotRun> {
        let identified = || {
            if self.open == 0 {
                // Nothing open: nothing for these checks to judge, which is
                // no gap in the evidence.
                Err(nothing_to_judge(
                    "msg.cov.no_open_ports",
                    "no open port to identify on the hosts in scope",
                ))
            } else if self.identified == 0 {
                Err(not_run(
                    "msg.cov.no_identification",
                    "no service was identified (identification off, or imported results without service detection such as nmap -sV)",
                ))
            } else {
                Ok(())
            }
        };
        let internet = || self.internet.ran();
        let managed = || {
            if self.managed() {
                Ok(())
            } else {
                Err(not_run(
                    "msg.cov.unmanaged",
                    "the hosts are in no group: there is no allow list to judge against",
                ))
            }
        };
        let allowances = || {
            managed()?;
            if self.allowances() == 0 {
                Err(nothing_to_judge(
                    "msg.cov.no_allowances",
                    "the groups in scope allow no port: there is no allowance to review",
                ))
            } else {
                Ok(())
            }
        };
        let exceptions = || {
            if self.exceptions > 0 {
                Ok(())
            } else {
                Err(nothing_to_judge(
                    "msg.cov.no_exceptions",
                    "no exception of the policy covers the hosts in scope",
                ))
            }
        };
        match check {
            CheckKind::HighRiskExposed | CheckKind::CleartextAdmin => Ok(()),
            CheckKind::ExceptionExpired | CheckKind::ExceptionOverlong => exceptions(),
            CheckKind::NotAllowed => managed(),
            CheckKind::RemoteAdminInternet | CheckKind::DatabaseInternet => internet(),
            CheckKind::TlsCert => identified(),
            CheckKind::PortCap => {
                managed()?;
                match self.cap {
                    Some(_) => Ok(()),
                    None => Err(not_run(
                        "msg.cov.no_cap",
                        "no group in scope declares max_open_ports",
                    )),
                }
            }
            CheckKind::AllowedUnjustified
            | CheckKind::AllowedReviewOverdue
            | CheckKind::AllowedReviewMissing
            | CheckKind::AllowanceUnused
            | CheckKind::AllowanceIncomplete => allowances(),
            CheckKind::UnexpectedService => {
                managed()?;
                identified()
            }
            CheckKind::UnauthService => identified(),
            CheckKind::AmplificationVector => self.udp_ran(self.ev.udp_judged > 0),
            CheckKind::SnmpDefaultCommunity => self.udp_ran(self.ev.snmp_judged),
            CheckKind::UnmanagedHost => {
                if self.managed() {
                    Err(nothing_to_judge(
                        "msg.cov.all_managed",
                        "every host of this scope is in a group (hosts outside every group are judged by the baseline profiles)",
                    ))
                } else {
                    Ok(())
                }
            }
            CheckKind::UnapprovedChange => {
                if history {
                    Ok(())
                } else {
                    Err(not_run(
                        "msg.cov.no_history",
                        "needs the audit history: no previous run of this scope to compare with (drift)",
                    ))
                }
            }
            CheckKind::SegmentationBreach => self.segmentation_ran(),
            CheckKind::ScanCadence
            | CheckKind::RescanAfterChange
            | CheckKind::SegmentationCadence => {
                super::super::cadence::ran(check, &self.cadence, self)
            }
        }
    }

    fn udp_ran(&self, judged: bool) -> Result<(), NotRun> {
        if judged {
            Ok(())
        } else if self.ev.udp_sent > 0 {
            Err(not_run(
                "msg.cov.udp_no_evidence",
                "the UDP probes carried no service request and name no service (a bare import): their answers cannot show an amplifier",
            ))
        } else {
            Err(not_run(
                "msg.cov.no_udp",
                "no UDP port was probed on the hosts in scope (add UDP ports, e.g. high-risk-udp)",
            ))
        }
    }

    /// A segmentation test needs conclusive probes (a reject, or TCP
    /// silence after the retries) and a control probe that reached a live
    /// host from the same vantage; a probe never sent proves nothing.
    fn segmentation_ran(&self) -> Result<(), NotRun> {
        if !self.unreachable {
            return Err(not_run(
                "msg.cov.no_segmentation_test",
                "no group in scope declares expect = \"unreachable\" (no segmentation test)",
            ));
        }
        self.segment.ran()?;
        if self.ev.seg_conclusive == 0 {
            let text = format!(
                "no conclusive probe: {} never sent (local errors), {} UDP probes open|filtered (silence does not prove isolation for UDP)",
                self.ev.local_errors,
                self.ev.sent.saturating_sub(self.ev.seg_conclusive)
            );
            return Err(NotRun {
                msg: Message::new("msg.cov.seg_inconclusive")
                    .arg("local", self.ev.local_errors)
                    .arg(
                        "silent",
                        self.ev.sent.saturating_sub(self.ev.seg_conclusive),
                    ),
                text,
                nothing_to_judge: false,
            });
        }
        if !self.control {
            if let Some((text, msg)) = self.segment.no_control() {
                return Err(NotRun {
                    msg,
                    text,
                    nothing_to_judge: false,
                });
            }
            return Err(not_run(
                "msg.cov.seg_no_control",
                "no probe of this audit reached a live host (open or closed): the path to the segment is unproven (scan a control host that answers)",
            ));
        }
        Ok(())
    }
}
