//! Policy layer: the checks only a UDP answer can raise.
//!
//! `amplification-vector`: an open UDP service that answers a small request
//! with a large one can be aimed at a third party with a spoofed source
//! (US-CERT TA14-017A): memcached, SSDP, chargen, QOTD, CLDAP, NTP that
//! answers monlist, and a DNS server that resolves for strangers.
//! `snmp-default-community`: SNMP answered a request carrying a default
//! community (`public`, `private`), so anyone can read (or write) it.
//!
//! Pure functions of one observation; the facts come from
//! [`crate::identify::udp`], which read the answer.

use crate::identify::udp::fact;
use crate::model::{Message, Observation, PortState, Proto, Reason};
use crate::rules::profiles::CheckKind;

/// The UDP checks `o` fires, each with its message (`label` names the
/// port, e.g. `161/udp (snmp)`).
pub fn udp_checks(o: &Observation, label: &str) -> Vec<(CheckKind, String, Message)> {
    let mut out = Vec::new();
    if o.proto != Proto::Udp || o.state != PortState::Open || o.reason != Reason::UdpResponse {
        return out;
    }
    let Some(s) = &o.service else {
        return out;
    };
    // (why in English, the i18n key of the same reason)
    let amplifier = match s.name.as_str() {
        // nmap names memcached "memcache".
        "memcached" | "memcache" | "ssdp" | "chargen" | "qotd" => Some((
            "answers a small datagram with a large one",
            "msg.amp_small_to_large",
        )),
        "ntp" if fact(&s.extra, "monlist") == Some("answered") => {
            Some(("answers NTP monlist (factor ~557)", "msg.amp_monlist"))
        }
        "ldap" if fact(&s.extra, "cldap") == Some("answered") => Some((
            "answers connectionless LDAP (CLDAP, factor 56-70)",
            "msg.amp_cldap",
        )),
        "dns" if fact(&s.extra, "resolves") == Some("yes") => Some((
            "resolves recursively for anyone (an open resolver)",
            "msg.amp_open_resolver",
        )),
        _ => None,
    };
    if let Some((why, why_key)) = amplifier {
        out.push((
            CheckKind::AmplificationVector,
            format!("{label} {why}: a reflection/amplification vector against third parties"),
            Message::new(why_key).arg("port", label),
        ));
    }
    if s.name == "snmp"
        && let Some(c) = fact(&s.extra, "community")
        && matches!(c, "public" | "private")
    {
        out.push((
            CheckKind::SnmpDefaultCommunity,
            format!("{label} accepts the default SNMP community '{c}'"),
            Message::new("msg.snmp_default_community")
                .arg("port", label)
                .arg("community", c),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceInfo;

    fn obs(port: u16, name: &str, facts: &[(&str, &str)]) -> Observation {
        let mut o = Observation::new(
            "198.18.0.5".parse().unwrap(),
            port,
            Proto::Udp,
            Reason::UdpResponse,
            Some(1.0),
        );
        let mut s = ServiceInfo {
            name: name.into(),
            ..ServiceInfo::default()
        };
        for (k, v) in facts {
            s.extra.insert((*k).into(), (*v).into());
        }
        o.service = Some(s);
        o
    }

    fn kinds(o: &Observation) -> Vec<CheckKind> {
        udp_checks(o, "x").into_iter().map(|(k, _, _)| k).collect()
    }

    #[test]
    fn amplifiers_and_default_communities() {
        use CheckKind::*;
        assert_eq!(kinds(&obs(11211, "memcached", &[])), [AmplificationVector]);
        assert_eq!(kinds(&obs(1900, "ssdp", &[])), [AmplificationVector]);
        assert_eq!(kinds(&obs(19, "chargen", &[])), [AmplificationVector]);
        assert!(kinds(&obs(123, "ntp", &[("stratum", "2")])).is_empty());
        assert_eq!(
            kinds(&obs(123, "ntp", &[("monlist", "answered")])),
            [AmplificationVector]
        );
        assert_eq!(
            kinds(&obs(389, "ldap", &[("cldap", "answered")])),
            [AmplificationVector]
        );
        assert!(
            kinds(&obs(
                53,
                "dns",
                &[("recursion", "available"), ("resolves", "no")]
            ))
            .is_empty()
        );
        assert_eq!(
            kinds(&obs(53, "dns", &[("resolves", "yes")])),
            [AmplificationVector]
        );
        assert_eq!(
            kinds(&obs(161, "snmp", &[("community", "public")])),
            [SnmpDefaultCommunity]
        );
        assert!(kinds(&obs(161, "snmp", &[("community", "s3cr3t")])).is_empty());
        let (_, msg, _) = &udp_checks(
            &obs(161, "snmp", &[("community", "public")]),
            "161/udp (snmp)",
        )[0];
        assert_eq!(
            msg,
            "161/udp (snmp) accepts the default SNMP community 'public'"
        );
    }

    #[test]
    fn only_open_udp_answers_count() {
        let mut o = obs(11211, "memcached", &[]);
        o.proto = Proto::Tcp;
        assert!(kinds(&o).is_empty());
        let mut o = obs(11211, "memcached", &[]);
        o.state = PortState::OpenFiltered;
        o.reason = Reason::NoResponse;
        assert!(kinds(&o).is_empty());
    }
}
