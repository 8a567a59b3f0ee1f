//! Model: where an audit looked from, measured (the `--vantage` name and
//! the probes' source addresses), and whether that proves an internet
//! vantage. One definition for scans, signed bundles and the evaluator.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::Message;

/// Where an audit looked from: the operator's `--vantage` and the source
/// addresses the probes left from. A group's `vantage = "internet"` is
/// judged only from a measured internet vantage.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuditVantage {
    /// `--vantage NAME` as given (`internet`, `dmz-jump`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Source addresses of the probes (empty for an import that does not
    /// record them).
    #[serde(default)]
    pub sources: Vec<IpAddr>,
    /// Interface of each source, where known.
    #[serde(default)]
    pub interfaces: Vec<Option<String>>,
    /// Test setting (`PORTWARDEN_TEST_VANTAGE=lab`): the lab's benchmarking
    /// range 198.18.0.0/15 counts as an internet source. The report names it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lab: bool,
}

impl AuditVantage {
    /// `203.0.113.7 (eth0), 127.0.0.1 (lo)`, or `no source address recorded`.
    pub fn sources_text(&self) -> String {
        if self.sources.is_empty() {
            return "no source address recorded".into();
        }
        self.sources
            .iter()
            .enumerate()
            .map(|(i, a)| match self.interfaces.get(i).cloned().flatten() {
                Some(ifc) => format!("{a} ({ifc})"),
                None => a.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The first source address that is not public, with its interface
    /// (`127.0.0.1 (lo)`): what keeps an internet vantage from being proven.
    fn first_private_source(&self) -> Option<String> {
        let bad = self
            .sources
            .iter()
            .position(|a| !is_internet_source(*a, self.lab))?;
        let one = AuditVantage {
            sources: vec![self.sources[bad]],
            interfaces: vec![self.interfaces.get(bad).cloned().flatten()],
            ..AuditVantage::default()
        };
        Some(one.sources_text())
    }

    /// Why [`Self::internet`] is not proven, as a translatable message
    /// (`msg.cov.vantage.*`); `None` when it is proven.
    pub fn internet_gap(&self) -> Option<Message> {
        if self.internet().is_ok() {
            return None;
        }
        let sources = self.sources_text();
        Some(match &self.name {
            None => Message::new("msg.cov.vantage.not_named").arg("sources", sources),
            Some(n) if n != "internet" => Message::new("msg.cov.vantage.other_name")
                .arg("name", n)
                .arg("sources", sources),
            Some(_) if self.sources.is_empty() => Message::new("msg.cov.vantage.no_sources"),
            Some(_) => Message::new("msg.cov.vantage.private")
                .arg("sources", self.first_private_source().unwrap_or_default()),
        })
    }

    /// The vantage in words for the report's scope: the operator's name,
    /// the sources, and whether it proves an internet vantage.
    pub fn describe(&self) -> String {
        let proof = match self.internet() {
            Ok(t) => format!("proven {t}"),
            Err(_) => "not proven to be the internet".to_string(),
        };
        match &self.name {
            None => format!(
                "no --vantage given; probes left from {}; {proof}",
                self.sources_text()
            ),
            Some(n) => format!(
                "--vantage {n}; probes left from {}; {proof}",
                self.sources_text()
            ),
        }
    }

    /// `Ok(text)` when the audit ran from the internet: `--vantage internet`
    /// and every source address public (not loopback, link-local, RFC 1918,
    /// RFC 6598, ULA, …; the lab range only under the test setting).
    /// Otherwise why not, in English.
    pub fn internet(&self) -> Result<String, String> {
        let declared = "declared internet";
        if self.name.as_deref() != Some("internet") {
            return Err(match &self.name {
                None => format!(
                    "{declared}, but the audit was not run with --vantage internet (scanned from {})",
                    self.sources_text()
                ),
                Some(n) => format!(
                    "{declared}, but the audit ran with --vantage {n} (scanned from {})",
                    self.sources_text()
                ),
            });
        }
        if self.sources.is_empty() {
            return Err(format!(
                "{declared}, but no source address is recorded (an import without a signed vantage)"
            ));
        }
        if let Some(bad) = self.first_private_source() {
            return Err(format!("{declared}, scanned from {bad}"));
        }
        let lab = if self.lab {
            " — lab range accepted by the test setting PORTWARDEN_TEST_VANTAGE=lab"
        } else {
            ""
        };
        Ok(format!("internet ({}){lab}", self.sources_text()))
    }
}

/// The vantages of several scans (signed bundles), each name once in the
/// order first met, with every source address and interface they recorded.
pub fn merge_by_name<'a>(all: impl IntoIterator<Item = &'a AuditVantage>) -> Vec<AuditVantage> {
    let mut out: Vec<AuditVantage> = Vec::new();
    for v in all {
        let i = match out.iter().position(|o| o.name == v.name) {
            Some(i) => i,
            None => {
                out.push(AuditVantage {
                    name: v.name.clone(),
                    ..AuditVantage::default()
                });
                out.len() - 1
            }
        };
        let o = &mut out[i];
        for (k, a) in v.sources.iter().enumerate() {
            if !o.sources.contains(a) {
                o.sources.push(*a);
                o.interfaces.push(v.interfaces.get(k).cloned().flatten());
            }
        }
    }
    out
}

/// A source address that can stand for "the internet": globally routable.
/// The lab range 198.18.0.0/15 (RFC 2544 benchmarking) only when `lab`.
pub fn is_internet_source(a: IpAddr, lab: bool) -> bool {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            if o[0] == 198 && (o[1] & 0xfe) == 18 {
                return lab;
            }
            !(v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_multicast()
                || v.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] >= 240)
        }
        IpAddr::V6(v) => {
            let s = v.segments();
            if let Some(m) = v.to_ipv4_mapped() {
                return is_internet_source(IpAddr::V4(m), lab);
            }
            !(v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}
