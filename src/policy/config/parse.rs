//! From policy text to a validated [`Policy`]: one builder per section
//! (groups, exceptions, changes, scanners), each error at file:line:col.

use toml::Spanned;

use super::raw::{
    DateField, PortField, RawAllow, RawChange, RawException, RawGroup, RawGroupScope, RawPolicy,
};
use super::*;

/// Turns byte spans into locations for one file. Line starts are found
/// once; each location is then a binary search, so a policy with tens of
/// thousands of entries parses in linear time.
pub(super) struct Src<'a> {
    pub(super) file: &'a str,
    text: &'a str,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
}

impl<'a> Src<'a> {
    pub(super) fn new(file: &'a str, text: &'a str) -> Src<'a> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Src {
            file,
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(super) fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        (line, self.text[start..offset].chars().count() + 1)
    }

    pub(super) fn at(&self, span: std::ops::Range<usize>) -> Location {
        let (line, col) = self.line_col(span.start);
        Location {
            file: self.file.to_string(),
            line,
            col,
        }
    }
    pub(super) fn invalid(
        &self,
        span: std::ops::Range<usize>,
        message: String,
        hint: &str,
    ) -> PolicyError {
        PolicyError::Invalid {
            at: self.at(span),
            message,
            hint: hint.to_string(),
        }
    }
}

fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn syntax_hint(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let expected: Vec<&str> = rest
            .split("expected ")
            .nth(1)
            .unwrap_or_default()
            .split('`')
            .skip(1)
            .step_by(2)
            .collect();
        return match closest(field, expected) {
            Some(c) => format!("did you mean `{c}`? (`portwarden policy init` prints a commented example)"),
            None => "remove the key or fix its spelling; `portwarden policy init` prints a commented example".into(),
        };
    }
    if message.contains("date") {
        return "write dates as YYYY-MM-DD, e.g. expires = 2027-01-31".into();
    }
    if message.contains("port") {
        return "write a port as a number (443) or a quoted range (\"8000-8010\")".into();
    }
    if message.starts_with("missing field") {
        return "add the field; `portwarden policy init` prints a policy that uses every field"
            .into();
    }
    if message.starts_with("unknown variant") {
        return "use one of the values the message lists".into();
    }
    if message.starts_with("invalid type") {
        return "check the value's type: numbers unquoted, text quoted, lists in [ ], dates as YYYY-MM-DD".into();
    }
    "see `portwarden policy init` for a valid example".into()
}

impl Policy {
    /// Parses and validates policy text; `file` names it in errors.
    pub fn parse(text: &str, file: &str, profiles: &Profiles) -> Result<Policy, PolicyError> {
        let src = Src::new(file, text);
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            PolicyError::Syntax {
                at: src.at(e.span().unwrap_or(0..0)),
                hint: syntax_hint(&message),
                message,
            }
        })?;
        let known = profiles.ids();
        let scanners = scanner::scanners(raw.scanners, &src)?;
        let (groups, group_spans) = groups(&src, raw.groups, profiles, &scanners)?;
        check_overlaps(&src, &groups, &group_spans)?;
        let exceptions = exceptions(&src, &groups, raw.exceptions)?;
        let changes = parse_changes(&src, &groups, raw.changes)?;
        let baseline_profiles = baseline_profiles(&src, raw.baseline_profiles, &known)?;
        let max_exception_months = max_exception_months(&src, raw.max_exception_months.as_ref())?;
        Ok(Policy {
            scanners,
            given: true,
            max_exception_months,
            baseline_profiles,
            sha256: None,
            file: file.to_string(),
            name: raw.name,
            owner: raw.owner,
            groups,
            exceptions,
            changes,
        })
    }
}

/// A date field's value, or an error at its span with `hint`.
fn date(src: &Src, d: &Spanned<DateField>, hint: &str) -> Result<NaiveDate, PolicyError> {
    d.get_ref()
        .0
        .clone()
        .map_err(|m| src.invalid(d.span(), m, hint))
}

/// Spans of each group's targets, for errors about overlaps.
type TargetSpans = Vec<std::ops::Range<usize>>;

/// `[[group]]`: every group, with the spans of its targets.
fn groups(
    src: &Src,
    raw: Vec<Spanned<RawGroup>>,
    profiles: &Profiles,
    scanners: &[super::Scanner],
) -> Result<(Vec<Group>, Vec<TargetSpans>), PolicyError> {
    let mut groups: Vec<Group> = Vec::new();
    let mut names: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut group_spans = Vec::new();
    for sg in raw {
        let (g, spans) = group(src, sg, profiles, scanners, &mut names)?;
        groups.push(g);
        group_spans.push(spans);
    }
    Ok((groups, group_spans))
}

/// One `[[group]]`; `names` holds the names seen so far.
fn group(
    src: &Src,
    sg: Spanned<RawGroup>,
    profiles: &Profiles,
    scanners: &[super::Scanner],
    names: &mut std::collections::HashSet<String>,
) -> Result<(Group, TargetSpans), PolicyError> {
    let gspan = sg.span();
    let g = sg.into_inner();
    let name = g.name.get_ref().trim().to_string();
    if name.is_empty() {
        return Err(src.invalid(
            g.name.span(),
            "a group needs a name".into(),
            "name = \"dmz\"",
        ));
    }
    if !names.insert(name.clone()) {
        return Err(src.invalid(
            g.name.span(),
            format!("group '{name}' is declared twice"),
            "give each [[group]] its own name, or merge them",
        ));
    }
    if g.targets.is_empty() {
        return Err(src.invalid(
            gspan,
            format!("group '{name}' has no targets"),
            "targets = [\"198.18.0.0/24\", \"198.18.1.10-20\"]",
        ));
    }
    let mut ranges = Vec::new();
    let mut spans = Vec::new();
    for t in &g.targets {
        let r = AddrRange::parse(t.get_ref()).map_err(|m| {
            src.invalid(
                t.span(),
                m,
                "use an address (198.18.0.5), a CIDR (198.18.0.0/24) or a range (198.18.0.10-20)",
            )
        })?;
        ranges.push(r);
        spans.push(t.span());
    }
    let gprofiles = group_profiles(src, &g.profiles, profiles)?;
    let max_open_ports = match &g.max_open_ports {
        None => None,
        Some(m) => Some(usize::try_from(*m.get_ref()).map_err(|_| {
            src.invalid(
                m.span(),
                format!("max_open_ports = {} is negative", m.get_ref()),
                "give the most open ports a host of this group may have, e.g. 15",
            )
        })?),
    };
    let allow = allowances(src, g.allow)?;
    let admin_sources = admin_sources(src, &g.admin_sources)?;
    let port_scope = match g.port_scope {
        None => None,
        Some(ps) => Some(group_port_scope(src, &name, ps)?),
    };
    let expect = g.expect.unwrap_or_default();
    let unreachable_from = scanner::unreachable_from(
        g.unreachable_from,
        expect == Expect::Unreachable,
        scanners,
        src,
    )?;
    let group = Group {
        unreachable_from,
        port_scope,
        name,
        targets: g.targets.iter().map(|t| t.get_ref().clone()).collect(),
        ranges,
        tags: g.tags,
        vantage: g.vantage.map(|v| *v.get_ref()).unwrap_or_default(),
        profiles: gprofiles,
        max_open_ports,
        platforms: g.platforms,
        admin_sources,
        allow,
        line: src.at(gspan).line,
        expect,
    };
    Ok((group, spans))
}

/// A group's `profiles`: known ids, each once; an extension (等保 cloud,
/// industrial) only beside one of the levels it extends.
fn group_profiles(
    src: &Src,
    raw: &[Spanned<String>],
    profiles: &Profiles,
) -> Result<Vec<String>, PolicyError> {
    let known = profiles.ids();
    let mut gprofiles = Vec::new();
    for p in raw {
        let n = known_profile(src, p, &known)?;
        if !gprofiles.contains(n) {
            gprofiles.push(n.clone());
        }
    }
    let ids: Vec<&str> = gprofiles.iter().map(String::as_str).collect();
    if let Some((i, message, hint)) = profiles.extension_without_level(&ids)
        && let Some(at) = raw.iter().find(|p| p.get_ref() == ids[i])
    {
        return Err(src.invalid(at.span(), message, &hint));
    }
    Ok(gprofiles)
}

/// `[[group.allow]]`: the ports a group may expose.
fn allowances(src: &Src, raw: Vec<Spanned<RawAllow>>) -> Result<Vec<AllowRule>, PolicyError> {
    let mut allow = Vec::new();
    for sa in raw {
        let aspan = sa.span();
        let a = sa.into_inner();
        let ports = a
            .port
            .get_ref()
            .0
            .clone()
            .map_err(|m| src.invalid(a.port.span(), m, "port = 443 or port = \"8000-8010\""))?;
        let review_by = a
            .review_by
            .as_ref()
            .map(|d| date(src, d, "review_by = 2027-06-30"))
            .transpose()?;
        allow.push(AllowRule {
            ports,
            proto: a.proto.unwrap_or(Proto::Tcp),
            service: a
                .service
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty()),
            justification: a.justification,
            approver: a.approver,
            ticket: a.ticket,
            review_by,
            line: src.at(aspan).line,
        });
    }
    Ok(allow)
}

/// A group's `admin_sources`: addresses or CIDRs, truncated to the network.
fn admin_sources(src: &Src, raw: &[Spanned<String>]) -> Result<Vec<ipnet::IpNet>, PolicyError> {
    let mut admin_sources = Vec::new();
    for a in raw {
        let text = a.get_ref().trim();
        let net = text
            .parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                src.invalid(
                    a.span(),
                    format!("admin source '{text}' is not an address or a CIDR"),
                    "admin_sources = [\"198.18.5.0/24\", \"2001:2:5::/64\"]",
                )
            })?;
        admin_sources.push(net.trunc());
    }
    Ok(admin_sources)
}

/// `[[exception]]`: each waiver, with a unique id.
fn exceptions(
    src: &Src,
    groups: &[Group],
    raw: Vec<Spanned<RawException>>,
) -> Result<Vec<Exception>, PolicyError> {
    let names: std::collections::HashSet<String> = groups.iter().map(|g| g.name.clone()).collect();
    let mut out = Vec::new();
    let mut ids: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (n, se) in raw.into_iter().enumerate() {
        out.push(exception(src, groups, &names, &mut ids, n, se)?);
    }
    Ok(out)
}

/// One `[[exception]]`, the `n`-th; `ids` maps the ids seen so far to
/// their lines.
fn exception(
    src: &Src,
    groups: &[Group],
    names: &std::collections::HashSet<String>,
    ids: &mut std::collections::HashMap<String, usize>,
    n: usize,
    se: Spanned<RawException>,
) -> Result<Exception, PolicyError> {
    let espan = se.span();
    let e = se.into_inner();
    let spec = e.target.get_ref().trim().to_string();
    let target = match AddrRange::parse(&spec) {
        Ok(r) => ExceptionTarget::Addr(r),
        Err(m) => {
            if names.contains(&spec) {
                ExceptionTarget::Group(spec.clone())
            } else {
                let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
                return Err(src.invalid(
                    e.target.span(),
                    format!("{m}, nor the name of a group"),
                    &format!(
                        "target = an address, CIDR or range, or one of the groups: {}",
                        names.join(", ")
                    ),
                ));
            }
        }
    };
    let ports = match &e.port {
        None => None,
        Some(p) => Some(
            p.get_ref()
                .0
                .clone()
                .map_err(|m| src.invalid(p.span(), m, "port = 23 or port = \"8000-8010\""))?,
        ),
    };
    let check = match &e.check {
        None => None,
        Some(c) => Some(c.get_ref().parse::<CheckKind>().map_err(|m| {
            let hint = match closest(c.get_ref(), CheckKind::ALL.map(CheckKind::as_str)) {
                Some(s) => format!("did you mean '{s}'?"),
                None => "leave `check` out to waive every check on the port".into(),
            };
            src.invalid(c.span(), m, &hint)
        })?),
    };
    if ports.is_none() && check.is_none() {
        return Err(src.invalid(
            espan,
            "a blanket exception (no port and no check) is not accepted: an auditor cannot tell what risk it accepts".into(),
            "name the port (port = 23) or the check (check = \"cleartext-admin\") it waives",
        ));
    }
    if let (Some(CheckKind::SegmentationBreach), Some(c)) = (check, &e.check) {
        return Err(src.invalid(
            c.span(),
            "a segmentation breach cannot be waived".into(),
            "a path into a segment that must be unreachable is fixed, never accepted",
        ));
    }
    if let (Some(CheckKind::ExceptionExpired), Some(c)) = (check, &e.check) {
        return Err(src.invalid(
            c.span(),
            "an exception cannot waive 'exception-expired'".into(),
            "extend the expired exception's `expires` instead, with a fresh approval",
        ));
    }
    for (field, v) in [("reason", &e.reason), ("approver", &e.approver)] {
        if v.get_ref().trim().is_empty() {
            return Err(src.invalid(
                v.span(),
                format!("an exception needs a non-empty {field}"),
                "auditors ask who accepted the risk and why",
            ));
        }
    }
    let expires = date(src, &e.expires, "expires = 2027-01-31")?;
    let review_by = e
        .review_by
        .as_ref()
        .map(|d| date(src, d, "review_by = 2027-06-30"))
        .transpose()?;
    let window = match &e.window {
        None => None,
        Some(w) => Some(Window::from_raw(w.get_ref()).map_err(|m| {
            src.invalid(
                w.span(),
                m,
                "window = { every = \"quarter\", last_days = 14 } or { every = \"month\", days = \"25-31\" }",
            )
        })?),
    };
    let id =
        e.id.clone()
            .or_else(|| e.ticket.clone())
            .unwrap_or_else(|| format!("exception-{}", n + 1));
    let line = src.at(espan.clone()).line;
    if let Some(first) = ids.insert(id.clone(), line) {
        return Err(src.invalid(
            espan,
            format!(
                "exception id '{id}' is used twice: {file}:{first} and {file}:{line}",
                file = src.file
            ),
            "give each [[exception]] its own `id` (findings name the exception that waived them)",
        ));
    }
    Ok(Exception {
        id,
        target_spec: spec,
        target,
        ports,
        proto: e.proto.unwrap_or(Proto::Tcp),
        check,
        reason: e.reason.into_inner(),
        approver: e.approver.into_inner(),
        ticket: e.ticket,
        expires,
        review_by,
        window,
        line,
    })
}

/// `baseline_profiles`: known ids.
fn baseline_profiles(
    src: &Src,
    raw: Option<Vec<Spanned<String>>>,
    known: &[&str],
) -> Result<Option<Vec<String>>, PolicyError> {
    raw.map(|list| {
        list.iter()
            .map(|p| known_profile(src, p, known).cloned())
            .collect()
    })
    .transpose()
}

/// A profile id the rulebook knows, or an error at its place naming the
/// closest known one.
fn known_profile<'a>(
    src: &Src,
    p: &'a Spanned<String>,
    known: &[&str],
) -> Result<&'a String, PolicyError> {
    let n = p.get_ref();
    if known.contains(&n.as_str()) {
        return Ok(n);
    }
    let hint = match closest(n, known.iter().copied()) {
        Some(c) => format!("did you mean '{c}'? known: {}", known.join(", ")),
        None => format!("known profiles: {}", known.join(", ")),
    };
    Err(PolicyError::UnknownProfile {
        at: src.at(p.span()),
        name: n.clone(),
        hint,
    })
}

/// `max_exception_months`: 1 to 120, default 12.
fn max_exception_months(src: &Src, raw: Option<&Spanned<i64>>) -> Result<u32, PolicyError> {
    let max_exception_months = match raw {
        None => 12,
        Some(m) => u32::try_from(*m.get_ref())
            .ok()
            .filter(|m| (1..=120).contains(m))
            .ok_or_else(|| {
                src.invalid(
                    m.span(),
                    format!("max_exception_months = {} is outside 1-120", m.get_ref()),
                    "max_exception_months = 12",
                )
            })?,
    };
    Ok(max_exception_months)
}

fn group_port_scope(
    src: &Src,
    group: &str,
    ps: Spanned<RawGroupScope>,
) -> Result<GroupPortScope, PolicyError> {
    let span = ps.span();
    let r = ps.into_inner();
    let justification = r
        .justification
        .map(|j| j.trim().to_string())
        .filter(|j| !j.is_empty())
        .ok_or_else(|| {
            src.invalid(
                span.clone(),
                format!("group '{group}' narrows its port scope without a justification"),
                "port_scope = { tcp = \"common\", justification = \"why the rest need not be scanned\" }",
            )
        })?;
    let scope = crate::rules::profiles::PortScope {
        tcp: r.tcp,
        udp: r.udp,
    };
    for spec in [&scope.tcp, &scope.udp].into_iter().flatten() {
        crate::rules::profiles::parse_port_list(spec, |_| Some(Vec::new())).map_err(|m| {
            src.invalid(
                span.clone(),
                m,
                "write \"all\", a named set (\"common\") or ports and ranges (\"22,80-90\")",
            )
        })?;
    }
    Ok(GroupPortScope {
        scope,
        justification,
        line: src.at(span).line,
    })
}

fn parse_changes(
    src: &Src,
    groups: &[Group],
    raw: Vec<Spanned<RawChange>>,
) -> Result<Vec<Change>, PolicyError> {
    let mut out: Vec<Change> = Vec::new();
    let names: std::collections::HashSet<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    let mut tickets: std::collections::HashSet<String> = std::collections::HashSet::new();
    for sc in raw {
        let cspan = sc.span();
        let c = sc.into_inner();
        for (field, v) in [("ticket", &c.ticket), ("approver", &c.approver)] {
            if v.get_ref().trim().is_empty() {
                return Err(src.invalid(
                    v.span(),
                    format!("a change needs a non-empty {field}"),
                    "auditors ask which ticket approved the change and who approved it",
                ));
            }
        }
        let ticket = c.ticket.get_ref().trim().to_string();
        if !tickets.insert(ticket.clone()) {
            return Err(src.invalid(
                c.ticket.span(),
                format!("change {ticket} is recorded twice"),
                "merge the two [[change]] records, or give the second its own ticket",
            ));
        }
        let approved = date(src, &c.approved, "approved = 2026-11-20")?;
        let spec = c.target.get_ref().trim().to_string();
        let target = match AddrRange::parse(&spec) {
            Ok(r) => ExceptionTarget::Addr(r),
            Err(_) if names.contains(spec.as_str()) => ExceptionTarget::Group(spec.clone()),
            Err(m) => {
                let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
                return Err(src.invalid(
                    c.target.span(),
                    format!("{m}, nor the name of a group"),
                    &format!(
                        "target = an address, CIDR or range, or one of the groups: {}",
                        names.join(", ")
                    ),
                ));
            }
        };
        let ports = |list: &[Spanned<PortField>]| {
            list.iter()
                .map(|p| {
                    p.get_ref()
                        .0
                        .clone()
                        .map_err(|m| src.invalid(p.span(), m, "opens = [8443, \"9000-9010\"]"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let opens = ports(&c.opens)?;
        let closes = ports(&c.closes)?;
        if opens.is_empty() && closes.is_empty() {
            return Err(src.invalid(
                cspan,
                format!("change {ticket} opens and closes no port"),
                "list the ports it changes: opens = [8443] and/or closes = [23]",
            ));
        }
        let (mut from, mut until) = (None, None);
        if let Some(w) = &c.window {
            let raw = w.get_ref();
            if let Some(f) = &raw.from {
                from = Some(date(
                    src,
                    f,
                    "window = { from = 2026-11-21, until = 2026-11-28 }",
                )?);
            }
            if let Some(u) = &raw.until {
                until = Some(date(
                    src,
                    u,
                    "window = { from = 2026-11-21, until = 2026-11-28 }",
                )?);
            }
            if let (Some(f), Some(u)) = (from, until)
                && u < f
            {
                return Err(src.invalid(
                    w.span(),
                    format!("change {ticket}'s window ends ({u}) before it starts ({f})"),
                    "window = { from = FIRST DAY, until = LAST DAY }",
                ));
            }
            if let Some(f) = from.filter(|f| *f < approved) {
                return Err(src.invalid(
                    w.span(),
                    format!(
                        "change {ticket}'s window starts ({f}) before its approval ({approved})"
                    ),
                    "a change may only be carried out once approved: move `from` or `approved`",
                ));
            }
        }
        out.push(Change {
            ticket,
            approver: c.approver.get_ref().trim().to_string(),
            approved,
            target_spec: spec,
            target,
            opens,
            closes,
            proto: c.proto.unwrap_or(Proto::Tcp),
            description: c.description,
            from,
            until,
            line: src.at(cspan).line,
        });
    }
    Ok(out)
}

/// Every (group `j`, earlier group `a`, range `k` of group `j`) where
/// range `k` shares an address with a range of group `a`, sorted and
/// without repeats. A sweep over the ranges sorted by their first address
/// keeps only the ranges still open, so disjoint groups cost n log n, not
/// n² (100,000 groups load in a second).
fn overlapping(groups: &[Group]) -> Vec<(usize, usize, usize)> {
    let mut all: Vec<((bool, u128, u128), usize, usize)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, gr)| {
            gr.ranges
                .iter()
                .enumerate()
                .map(move |(k, r)| (r.bounds(), g, k))
        })
        .collect();
    all.sort_unstable_by_key(|&((v6, lo, _), g, k)| (v6, lo, g, k));
    let mut open: Vec<((bool, u128, u128), usize, usize)> = Vec::new();
    let mut out = Vec::new();
    for item in all {
        let ((v6, lo, _), g, k) = item;
        open.retain(|&((ov6, _, ohi), _, _)| ov6 == v6 && ohi >= lo);
        for &(_, og, ok) in &open {
            match og.cmp(&g) {
                std::cmp::Ordering::Less => out.push((g, og, k)),
                std::cmp::Ordering::Greater => out.push((og, g, ok)),
                std::cmp::Ordering::Equal => {}
            }
        }
        open.push(item);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Overlapping groups are fine while they agree: a host in both gets the
/// union of their allowances. Disagreement on vantage, cap or the service
/// expected on a port would make the verdict depend on file order.
fn check_overlaps(
    src: &Src,
    groups: &[Group],
    spans: &[Vec<std::ops::Range<usize>>],
) -> Result<(), PolicyError> {
    const HINT: &str = "an address may be in several groups only when their rules agree: split the ranges, or align the groups";
    // Only pairs of groups that share an address are compared, in the
    // order a full pairwise scan would meet them (so the first conflict
    // reported is the same), found by one sweep over the sorted ranges.
    for (j, a, k) in overlapping(groups) {
        let (b, a) = (&groups[j], &groups[a]);
        let rb = &b.ranges[k];
        let Some(ip) = a.ranges.iter().find_map(|ra| ra.intersection(rb)) else {
            continue;
        };
        let conflict = |what: String| PolicyError::Conflict {
            at: src.at(spans[j][k].clone()),
            message: format!(
                "group '{}' target '{}' overlaps group '{}' ({ip} is in both) and {what}",
                b.name, b.targets[k], a.name
            ),
            hint: HINT.to_string(),
        };
        if a.vantage != b.vantage {
            return Err(conflict(format!(
                "their vantage differs ({} vs {})",
                a.vantage.as_str(),
                b.vantage.as_str()
            )));
        }
        if a.expect != b.expect {
            return Err(conflict(
                "one expects its hosts unreachable and the other does not".into(),
            ));
        }
        if let (Some(ca), Some(cb)) = (a.max_open_ports, b.max_open_ports)
            && ca != cb
        {
            return Err(conflict(format!(
                "their max_open_ports differ ({ca} vs {cb})"
            )));
        }
        for xa in &a.allow {
            for xb in &b.allow {
                if xa.proto == xb.proto
                    && xa.ports.overlaps(&xb.ports)
                    && let (Some(sa), Some(sb)) = (&xa.service, &xb.service)
                    && sa != sb
                {
                    return Err(conflict(format!(
                        "they expect different services on {}/{} ('{sa}' vs '{sb}')",
                        xb.ports, xb.proto
                    )));
                }
            }
        }
    }
    Ok(())
}
