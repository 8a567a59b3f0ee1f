//! Report layer: the exception and inventory sections of the model.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{
    BANNER_EXCERPT, ExceptionRow, InventoryRow, Labels, Observation, PortState, Proto, ReportInput,
    display_safe,
};

/// The exceptions as the evaluator judged them on the audit day (state and
/// days left are decided once, in `policy`); the rows only add the
/// policy's text and the labels.
pub(super) fn build_exceptions(input: &ReportInput<'_>, labels: &Labels) -> Vec<ExceptionRow> {
    input
        .evaluation
        .exceptions
        .iter()
        .map(|v| {
            let e = input.policy.exceptions.iter().find(|e| e.id == v.id);
            ExceptionRow {
                id: v.id.clone(),
                target: v.target.clone(),
                ports: if v.ports == "all" {
                    labels.get("label.all")
                } else {
                    v.ports.clone()
                },
                check: v.check.clone(),
                reason: v.reason.clone(),
                approver: v.approver.clone(),
                ticket: e.and_then(|e| e.ticket.clone()),
                expires: v.expires,
                days_left: v.days_left,
                state: v.state.clone(),
                state_label: labels.get(&format!("exception_state.{}", v.state.replace('-', "_"))),
                expired: v.state == "expired",
                window: e.and_then(|e| e.window).map(|w| window_text(&w, labels)),
            }
        })
        .collect()
}

/// An exception's recurring window in words, in the report's language.
fn window_text(w: &crate::policy::Window, labels: &Labels) -> String {
    use crate::policy::window::{Every, Span};
    let every = labels.get(&format!(
        "window.every_{}",
        match w.every {
            Every::Week => "week",
            Every::Month => "month",
            Every::Quarter => "quarter",
            Every::Year => "year",
        }
    ));
    let day = |n: u32| labels.get(&format!("window.weekday_{n}"));
    match w.span {
        Span::First(n) => labels.fmt("window.first", &[("n", &n.to_string()), ("every", &every)]),
        Span::Last(n) => labels.fmt("window.last", &[("n", &n.to_string()), ("every", &every)]),
        Span::Days(a, b) if w.every == Every::Week => {
            if a == b {
                labels.fmt("window.weekday", &[("day", &day(a))])
            } else {
                labels.fmt("window.weekdays", &[("from", &day(a)), ("to", &day(b))])
            }
        }
        Span::Days(a, b) => labels.fmt(
            "window.days",
            &[
                ("from", &a.to_string()),
                ("to", &b.to_string()),
                ("every", &every),
            ],
        ),
    }
}

/// Every open port with the allowance that covers it, as the evaluator
/// decided it (its port verdicts); product and banner from the observation.
pub(super) fn build_inventory(
    input: &ReportInput<'_>,
    names: &HashMap<IpAddr, Vec<String>>,
) -> Vec<InventoryRow> {
    let observed: HashMap<(IpAddr, u16, Proto), &Observation> = input
        .observations
        .iter()
        .filter(|o| o.state == PortState::Open)
        .map(|o| ((o.ip, o.port, o.proto), o))
        .collect();
    input
        .evaluation
        .ports
        .iter()
        .map(|v| {
            let info = observed
                .get(&(v.ip, v.port, v.proto))
                .and_then(|o| o.service.as_ref());
            InventoryRow {
                ip: v.ip,
                hostnames: names.get(&v.ip).cloned().unwrap_or_default(),
                group: v.group.clone(),
                port: v.port,
                proto: v.proto,
                service: v.service.clone(),
                product: info.and_then(|s| {
                    let text = [s.product.as_deref(), s.version.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ");
                    (!text.is_empty()).then(|| excerpt(&text, BANNER_EXCERPT))
                }),
                banner: info
                    .and_then(|s| s.banner.as_deref())
                    .map(|b| excerpt(b, BANNER_EXCERPT)),
                allowed: v.group.as_ref().map(|_| v.allowed_by.is_some()),
                justification: v.justification.clone(),
                approver: v.approver.clone(),
                ticket: v.ticket.clone(),
                review_by: v.review_by,
                review_overdue: v.review_overdue,
            }
        })
        .collect()
}

/// The first `max` characters of `s`, made safe to show (see
/// [`display_safe`]), with an ellipsis when cut.
fn excerpt(s: &str, max: usize) -> String {
    let safe = display_safe(s);
    if safe.chars().count() <= max {
        return safe;
    }
    let mut out: String = safe.chars().take(max).collect();
    out.push('…');
    out
}
