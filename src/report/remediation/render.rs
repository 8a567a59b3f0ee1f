use super::*;

impl RemediationCatalog {
    /// The platforms in file order.
    pub fn platforms(&self) -> &[Platform] {
        &self.platforms
    }

    /// The fixes in file order.
    pub fn fixes(&self) -> &[Fix] {
        &self.fixes
    }

    /// The fix for a remediation key.
    pub fn fix(&self, key: &str) -> Option<&Fix> {
        self.fixes.iter().find(|f| f.key == key)
    }

    /// The firewalld service list the fixes are checked against.
    pub fn firewalld(&self) -> &FirewalldServices {
        &self.firewalld
    }

    /// Checks that every id names a platform, so that a typo in a policy's
    /// preferred list is reported when the policy is loaded.
    pub fn check_platforms(&self, ids: &[String]) -> Result<(), RemediationError> {
        for id in ids {
            if !self.platforms.iter().any(|p| platform_matches(&p.id, id)) {
                let known: Vec<&str> = self.platforms.iter().map(|p| p.id.as_str()).collect();
                return Err(RemediationError::UnknownPlatform {
                    id: id.clone(),
                    hint: did_you_mean(id, &known)
                        .map(|s| format!(" (did you mean '{s}'?)"))
                        .unwrap_or_default(),
                    known: known.join(", "),
                });
            }
        }
        Ok(())
    }

    /// The fix for one context on every platform its key lists: the
    /// `preferred` ones first, in the given order, then the rest in the
    /// fix's order. A platform whose commands render empty is left out.
    /// An unknown key gives no platform.
    pub fn render(&self, ctx: &FixContext, preferred: &[String], lang: Lang) -> Vec<PlatformFix> {
        let Some(fix) = self.fix(&ctx.key) else {
            return Vec::new();
        };
        let mut order: Vec<&str> = Vec::with_capacity(fix.platforms.len());
        for id in preferred {
            if fix.platforms.contains(id) && !order.contains(&id.as_str()) {
                order.push(id);
            }
        }
        for id in &fix.platforms {
            if !order.contains(&id.as_str()) {
                order.push(id);
            }
        }
        let mut data = self.context(ctx);
        data["zh"] = json!(lang == Lang::ZhCn);
        let service = ctx.service.as_deref().and_then(safe_name);
        data["finding"] = json!(finding_line(ctx, service, lang));
        order
            .into_iter()
            .filter_map(|id| {
                let p = self.platforms.iter().find(|p| p.id == id)?;
                localize(&mut data, ctx, &p.language);
                let shell = |language: &str, text: String| {
                    if language == "sh" && p.id != "service" {
                        fail_closed_in(&text, lang)
                    } else {
                        text
                    }
                };
                let commands = shell(&p.language, self.render_one(id, "commands", &data));
                if commands.trim().is_empty() {
                    return None;
                }
                let warning = self.render_one(id, "warning", &data);
                let undo = shell(&p.language, self.render_one(id, "undo", &data));
                localize(&mut data, ctx, &p.verify_language);
                let verify = shell(&p.verify_language, self.render_one(id, "verify", &data));
                Some(PlatformFix {
                    platform: p.id.clone(),
                    title: match lang {
                        Lang::ZhCn => p.title_zh.clone(),
                        Lang::En => p.title_en.clone(),
                    },
                    language: p.language.clone(),
                    verify_language: p.verify_language.clone(),
                    warning: (!warning.trim().is_empty()).then(|| warning.trim().to_owned()),
                    commands,
                    undo,
                    verify,
                })
            })
            .collect()
    }

    pub(super) fn render_one(&self, id: &str, field: &str, data: &Value) -> String {
        let name = template_name(id, field);
        if !self.registry.has_template(&name) {
            return String::new();
        }
        match self.registry.render(&name, data) {
            Ok(text) => tidy(&text),
            // Loading rendered every template with the same set of keys, so
            // this is not expected; say so in the output rather than panic.
            Err(e) => format!("# portwarden could not render this template: {e}"),
        }
    }

    /// The template data for one fix; [`localize`] adds the values that
    /// are quoted for the language of the field being rendered.
    pub(super) fn context(&self, c: &FixContext) -> Value {
        let port = c.port.unwrap_or(0);
        let proto = c.proto.unwrap_or(Proto::Tcp);
        let udp = proto == Proto::Udp;
        let ipv6 = c.ipv6;
        let service = c.service.as_deref().and_then(safe_name);
        let unit = c.unit.as_deref().and_then(unit_base);
        let admin = c.port.is_some() && is_admin(port, proto, service);
        let restrict = c.key == "restrict-source" || admin;
        let sources: Vec<String> = c.sources.iter().map(|n| n.to_string()).collect();
        let shown = if sources.is_empty() {
            vec![SOURCE_PLACEHOLDER.to_owned()]
        } else {
            sources.clone()
        };
        let prefix = if ipv6 { 128 } else { 32 };
        let hosts: Vec<String> = c.hosts.iter().map(|h| h.to_string()).collect();
        let firewalld = service.and_then(|s| self.firewalld.lookup(s, port, proto));
        let halves = family_halves(ipv6);
        let mut data = json!({
            "key": c.key,
            "id": c.id,
            "finding": finding_line(c, service, Lang::En),
            "port": port,
            "proto": proto.as_str(),
            "proto_upper": if udp { "UDP" } else { "TCP" },
            "proto_title": if udp { "Udp" } else { "Tcp" },
            "proto_number": if udp { 17 } else { 6 },
            "udp": udp,
            "scan_ports": if udp { format!("U:{port}") } else { port.to_string() },
            "ipv6": ipv6,
            "ip_family": if ipv6 { "ipv6" } else { "ipv4" },
            "iptables": if ipv6 { "ip6tables" } else { "iptables" },
            "any_cidr": if ipv6 { "::/0" } else { "0.0.0.0/0" },
            "host_prefix": prefix,
            "ss_flags": if udp { "-ulnp" } else { "-tlnp" },
            "nft_family": if ipv6 { "ip6" } else { "ip" },
            "service": service.unwrap_or(SERVICE_PLACEHOLDER),
            "has_service": service.is_some(),
            "unit": unit.unwrap_or(UNIT_PLACEHOLDER),
            "has_unit": unit.is_some(),
            "admin": admin,
            "restrict": restrict,
            "sources": shown.join(","),
            "sources_space": shown.join(" "),
            "sources_sh": sh_str(&sources.join(" ")),
            "sources_complement": if sources.is_empty() {
                "<ADDRESSES_OTHER_THAN_THE_ADMIN_SOURCES>".to_owned()
            } else {
                complement(&c.sources, ipv6).join(",")
            },
            "family_range": complement(&[], ipv6).join(","),
            "family_halves": halves.join(" "),
            "has_sources": !sources.is_empty(),
            "nft_sources": if shown.len() == 1 { shown[0].clone() } else { format!("{{ {} }}", shown.join(", ")) },
            "k8s_ip_blocks": shown
                .iter()
                .map(|s| format!("        - ipBlock:\n            cidr: {s}"))
                .collect::<Vec<_>>()
                .join("\n"),
            "hosts": hosts.join(" "),
            "host_cidrs": hosts.iter().map(|h| format!("{h}/{prefix}")).collect::<Vec<_>>().join(","),
            "host_count": hosts.len(),
            "tag": format!("portwarden-{}", c.id),
            "tag_hcl": format!("portwarden_{}", c.id),
            "firewalld_service": firewalld.unwrap_or(""),
            "has_firewalld_service": firewalld.is_some(),
            "policy_line": c.policy_line.unwrap_or(0),
            "policy_snippet": c.policy_snippet,
        });
        localize(&mut data, c, "sh");
        data
    }
}

/// Shell text with `<PLACEHOLDER>`s made fail-closed: each becomes a
/// variable set empty at the top of the block (after its leading
/// comments), checked with `: "${NAME:?set NAME}" && {` before anything
/// runs; the commands use `"${NAME}"`. Comment lines keep `<NAME>`.
#[cfg(test)]
pub(super) fn fail_closed(text: &str) -> String {
    fail_closed_in(text, Lang::En)
}

/// [`fail_closed`] with the `SET THIS` comments in `lang`.
pub(super) fn fail_closed_in(text: &str, lang: Lang) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut body = String::with_capacity(text.len());
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            body.push_str(line);
        } else {
            body.push_str(&placeholders_to_vars(line, &mut names));
        }
        body.push('\n');
    }
    if names.is_empty() {
        return text.to_owned();
    }
    let mut lines = body.lines().peekable();
    let mut out = String::new();
    while let Some(l) = lines.next_if(|l| l.trim_start().starts_with('#')) {
        out.push_str(l);
        out.push('\n');
    }
    let set_this = match lang {
        Lang::En => "SET THIS: ",
        Lang::ZhCn => "请设置：",
    };
    for n in &names {
        out.push_str(&format!("{n}=''  # {set_this}<{n}>\n"));
    }
    let checks: Vec<String> = names
        .iter()
        .map(|n| format!("\"${{{n}:?set {n}}}\""))
        .collect();
    out.push_str(&format!(": {} && {{\n", checks.join(" ")));
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out.push('}');
    out
}

/// One shell line with every `<NAME>` replaced by the variable, quoted for
/// where it stands (bare, inside "…", inside '…').
fn placeholders_to_vars(line: &str, names: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(line.len());
    let (mut single, mut double) = (false, false);
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            let name: String = rest[1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty()
                && name.starts_with(|c: char| c.is_ascii_uppercase())
                && rest[1 + name.len()..].starts_with('>')
            {
                let var = format!("${{{name}}}");
                out.push_str(&if single {
                    format!("'\"{var}\"'")
                } else if double {
                    var
                } else {
                    format!("\"{var}\"")
                });
                if !names.contains(&name) {
                    names.push(name.clone());
                }
                rest = &rest[name.len() + 2..];
                continue;
            }
        }
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '\\' if !single => {
                // An escaped character stays as it is.
                out.push(c);
                rest = &rest[1..];
                if let Some(n) = rest.chars().next() {
                    out.push(n);
                    rest = &rest[n.len_utf8()..];
                }
                continue;
            }
            _ => {}
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// One line naming the group: key, port/proto (service) and the first
/// hosts, in the report's language.
fn finding_line(c: &FixContext, service: Option<&str>, lang: Lang) -> String {
    let on = match (c.port, c.proto) {
        (Some(p), proto) => {
            let proto = proto.unwrap_or(Proto::Tcp);
            match service {
                Some(s) => format!(" {p}/{proto} ({s})"),
                None => format!(" {p}/{proto}"),
            }
        }
        (None, _) => String::new(),
    };
    let total = c.host_total.max(c.hosts.len());
    let shown: Vec<String> = c.hosts.iter().take(6).map(|h| h.to_string()).collect();
    let more = total - 6.min(c.hosts.len());
    comment_str(&match (lang, total > 6) {
        (Lang::En, false) => format!("{}{on} on {}", c.key, shown.join(", ")),
        (Lang::En, true) => format!("{}{on} on {}, and {more} more", c.key, shown.join(", ")),
        (Lang::ZhCn, false) => format!("{}{on}，主机：{}", c.key, shown.join("、")),
        (Lang::ZhCn, true) => format!("{}{on}，主机：{} 等另 {more} 台", c.key, shown.join("、")),
    })
}

/// Sets the values that come from outside (paths, names) or are lists,
/// quoted for `language` by its one quoting function ([`quote_for`]).
pub(super) fn localize(data: &mut Value, c: &FixContext, language: &str) {
    let q = quote_for(language);
    let list =
        |v: &mut dyn Iterator<Item = String>| v.map(|s| q(&s)).collect::<Vec<_>>().join(", ");
    let prefix = if c.ipv6 { 128 } else { 32 };
    let sources: Vec<String> = if c.sources.is_empty() {
        vec![SOURCE_PLACEHOLDER.to_owned()]
    } else {
        c.sources.iter().map(|n| n.to_string()).collect()
    };
    data["sources_quoted"] = json!(list(&mut sources.into_iter()));
    data["family_halves_quoted"] = json!(list(
        &mut family_halves(c.ipv6).iter().map(|s| s.to_string())
    ));
    data["hosts_quoted"] = json!(list(&mut c.hosts.iter().map(|h| h.to_string())));
    data["host_cidrs_quoted"] = json!(list(&mut c.hosts.iter().map(|h| format!("{h}/{prefix}"))));
    data["policy_file"] = json!(q(&c.policy_file));
    data["group"] = json!(q(c.group.as_deref().unwrap_or_default()));
}

/// The family's whole address space as two /1 networks: a ufw deny "from
/// 0.0.0.0/0" has the same tuple as an allow "from anywhere", and ufw
/// would skip it as existing.
fn family_halves(ipv6: bool) -> [&'static str; 2] {
    if ipv6 {
        ["::/1", "8000::/1"]
    } else {
        ["0.0.0.0/1", "128.0.0.0/1"]
    }
}

/// The addresses of one family outside `nets`, as `first-last` ranges
/// (what a Windows Firewall `-RemoteAddress` takes): a block over these
/// leaves the admin sources to the allow rules.
pub(super) fn complement(nets: &[IpNet], ipv6: bool) -> Vec<String> {
    let bits = |a: IpAddr| -> u128 {
        match a {
            IpAddr::V4(v) => u32::from(v) as u128,
            IpAddr::V6(v) => u128::from(v),
        }
    };
    let addr = |n: u128| -> IpAddr {
        if ipv6 {
            IpAddr::from(std::net::Ipv6Addr::from(n))
        } else {
            IpAddr::from(std::net::Ipv4Addr::from(n as u32))
        }
    };
    let max: u128 = if ipv6 { u128::MAX } else { u32::MAX as u128 };
    let mut ranges: Vec<(u128, u128)> = nets
        .iter()
        .filter(|n| matches!(n, IpNet::V6(_)) == ipv6)
        .map(|n| (bits(n.network()), bits(n.broadcast())))
        .collect();
    ranges.sort();
    let mut out = Vec::new();
    let mut next: Option<u128> = Some(0);
    for (lo, hi) in ranges {
        if let Some(start) = next
            && lo > start
        {
            out.push(format!("{}-{}", addr(start), addr(lo - 1)));
        }
        next = match next {
            Some(n) if hi < n => Some(n),
            _ => hi.checked_add(1).filter(|&v| v <= max),
        };
    }
    if let Some(start) = next {
        out.push(format!("{}-{}", addr(start), addr(max)));
    }
    out
}

pub(super) fn template_name(id: &str, field: &str) -> String {
    format!("{id}.{field}")
}

/// Blank lines left by block tags are kept only singly, and the text ends
/// without trailing blank lines.
pub(super) fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if blank > 0 && !out.is_empty() {
            out.push('\n');
        }
        blank = 0;
        out.push_str(line.trim_end());
        out.push('\n');
    }
    while out.ends_with('\n') {
        out.pop();
    }
    out
}

/// A name that is safe to paste into a shell command line, or `None`.
/// It may not start with `-` (it would read as an option) and holds only
/// characters that no shell, YAML or HCL gives a meaning to.
pub(super) fn safe_name(s: &str) -> Option<&str> {
    let s = s.trim();
    let ok = s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | ':' | '+' | '-'));
    ok.then_some(s)
}

/// The unit name without its `.service` / `.socket` suffix, so that the
/// templates can name both `UNIT` and `UNIT.socket`.
pub(super) fn unit_base(s: &str) -> Option<&str> {
    let s = safe_name(s)?;
    let base = s
        .strip_suffix(".service")
        .or_else(|| s.strip_suffix(".socket"))
        .unwrap_or(s);
    safe_name(base)
}
