//! Policy layer: what the checks need to know about a port.
//!
//! The evaluator asks a small trait rather than the catalogue type itself,
//! so it stays pure and testable with a handful of entries, and so the
//! catalogue (`rules::Catalogue`) can evolve on its own: it only has to
//! answer these two questions.

use crate::model::{Proto, Severity};
use crate::rules::{Catalogue, PortEntry};

/// What the catalogue registers for a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFacts {
    /// Service name in the catalogue's vocabulary (`ssh`, `redis`, …).
    pub service: String,
    pub risk: Severity,
    /// Tags such as `cleartext`, `remote-admin`, `database`, `cache`.
    pub tags: Vec<String>,
}

/// The port catalogue as the policy engine sees it.
pub trait PortCatalogue {
    /// Facts registered for `port/proto`, if the catalogue knows it.
    fn port(&self, port: u16, proto: Proto) -> Option<PortFacts>;

    /// Facts for a service name wherever it runs (telnet on 2323): used
    /// when identification named the service. Default: unknown.
    fn service(&self, name: &str) -> Option<PortFacts> {
        let _ = name;
        None
    }

    /// The ports of a named set (`common`, `high-risk-udp`). Default: none.
    fn set(&self, name: &str) -> Option<Vec<u16>> {
        let _ = name;
        None
    }
}

fn facts(e: &PortEntry) -> PortFacts {
    PortFacts {
        service: e.service.clone(),
        risk: e.risk,
        tags: e.tags.clone(),
    }
}

/// The real catalogue (`rules/ports.toml`).
impl PortCatalogue for Catalogue {
    fn port(&self, port: u16, proto: Proto) -> Option<PortFacts> {
        self.entry(port, proto).map(facts)
    }

    /// The lowest TCP port registered under the name (or alias), else any.
    fn service(&self, name: &str) -> Option<PortFacts> {
        let entries = self.by_service(name);
        entries
            .iter()
            .find(|e| e.proto == Proto::Tcp)
            .or_else(|| entries.first())
            .map(|e| facts(e))
    }

    fn set(&self, name: &str) -> Option<Vec<u16>> {
        Catalogue::set(self, name)
    }
}

/// A fixed list of entries: for tests, and for callers without a catalogue.
#[derive(Debug, Clone, Default)]
pub struct StaticCatalogue {
    entries: Vec<(u16, Proto, PortFacts)>,
    sets: Vec<(String, Vec<u16>)>,
}

impl StaticCatalogue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry; `tags` is a list of tag names.
    pub fn with(
        mut self,
        port: u16,
        proto: Proto,
        service: &str,
        risk: Severity,
        tags: &[&str],
    ) -> Self {
        self.entries.push((
            port,
            proto,
            PortFacts {
                service: service.to_string(),
                risk,
                tags: tags.iter().map(|t| t.to_string()).collect(),
            },
        ));
        self
    }

    /// Adds a named port set (`common`, `high-risk-udp`).
    pub fn with_set(mut self, name: &str, ports: &[u16]) -> Self {
        self.sets.push((name.to_string(), ports.to_vec()));
        self
    }
}

impl PortCatalogue for StaticCatalogue {
    fn port(&self, port: u16, proto: Proto) -> Option<PortFacts> {
        self.entries
            .iter()
            .find(|(p, pr, _)| *p == port && *pr == proto)
            .map(|(_, _, f)| f.clone())
    }

    fn service(&self, name: &str) -> Option<PortFacts> {
        self.entries
            .iter()
            .find(|(_, _, f)| f.service.eq_ignore_ascii_case(name))
            .map(|(_, _, f)| f.clone())
    }

    fn set(&self, name: &str) -> Option<Vec<u16>> {
        self.sets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
    }
}

/// Any closure `Fn(port, proto) -> Option<PortFacts>` is a catalogue.
impl<F> PortCatalogue for F
where
    F: Fn(u16, Proto) -> Option<PortFacts>,
{
    fn port(&self, port: u16, proto: Proto) -> Option<PortFacts> {
        self(port, proto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_catalogue_answers() {
        let c = Catalogue::embedded();
        let telnet = PortCatalogue::port(&c, 23, Proto::Tcp).unwrap();
        assert_eq!(telnet.service, "telnet");
        assert!(telnet.tags.iter().any(|t| t == "cleartext"));
        assert!(telnet.risk >= Severity::High);
        let by_name = PortCatalogue::service(&c, "telnet").unwrap();
        assert_eq!(by_name.service, "telnet");
    }
}
