//! firewalld's own services (`rules/firewalld-services.txt`): the ports
//! each opens, so a firewalld fix removes the service only when it opens
//! exactly the finding's port, else the port itself.

use std::collections::HashMap;

use super::RulesError;
use crate::model::Proto;

/// A name safe to paste into a shell command: the same character set the
/// fixes accept for service and unit names.
fn is_service_name(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | ':' | '+' | '-'))
}

/// firewalld's own service names and the ports each opens
/// (`rules/firewalld-services.txt`), with our names mapped to theirs.
#[derive(Debug, Clone, Default)]
pub struct FirewalldServices {
    services: HashMap<String, Vec<(u16, u16, Proto)>>,
    aliases: HashMap<String, String>,
}

impl FirewalldServices {
    /// Parses the list; `file` names it in errors. An alias must name a
    /// listed service: that is the load-time check the fixes rely on.
    pub fn parse(text: &str, file: &str) -> Result<FirewalldServices, RulesError> {
        let mut out = FirewalldServices::default();
        let mut aliases = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let invalid = |message: String| RulesError::Invalid {
                origin: file.to_owned(),
                line: n + 1,
                column: 1,
                message,
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("alias ") {
                let (ours, theirs) = rest
                    .split_once('=')
                    .ok_or_else(|| invalid("write 'alias OURS = FIREWALLD'".into()))?;
                aliases.push((n + 1, ours.trim().to_owned(), theirs.trim().to_owned()));
                continue;
            }
            let mut words = line.split_whitespace();
            let name = words.next().unwrap_or_default().to_owned();
            if !is_service_name(&name) {
                return Err(invalid(format!("'{name}' is not a service name")));
            }
            let mut ports = Vec::new();
            for w in words {
                let parsed = w.split_once('/').and_then(|(range, proto)| {
                    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                    let proto = match proto {
                        "tcp" => Proto::Tcp,
                        "udp" => Proto::Udp,
                        _ => return None,
                    };
                    Some((lo.parse().ok()?, hi.parse().ok()?, proto))
                });
                // sctp/dccp entries exist in firewalld; we only judge TCP/UDP.
                match parsed {
                    Some(p) => ports.push(p),
                    None if w.ends_with("/sctp") || w.ends_with("/dccp") => {}
                    None => return Err(invalid(format!("'{w}' is not PORT/tcp or PORT/udp"))),
                }
            }
            out.services.insert(name, ports);
        }
        for (line, ours, theirs) in aliases {
            if !out.services.contains_key(&theirs) {
                return Err(RulesError::Invalid {
                    origin: file.to_owned(),
                    line,
                    column: 1,
                    message: format!("alias '{ours}': firewalld has no service '{theirs}'"),
                });
            }
            out.aliases.insert(ours, theirs);
        }
        Ok(out)
    }

    /// firewalld's service for our service name, if it exists and opens
    /// exactly this port; else `None` (the fix uses `--remove-port`).
    pub fn lookup(&self, service: &str, port: u16, proto: Proto) -> Option<&str> {
        let name = self
            .aliases
            .get(service)
            .map(String::as_str)
            .unwrap_or(service);
        let (name, ports) = self.services.get_key_value(name)?;
        ports
            .iter()
            .any(|&(lo, hi, p)| p == proto && lo <= port && port <= hi)
            .then_some(name.as_str())
    }
}
