//! The policy file as written: serde types with spans, before validation.

use std::fmt;

use chrono::NaiveDate;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use super::{Expect, PortRange, Vantage, scanner};
use crate::model::Proto;
use crate::policy::window::RawWindow;

/// A port as written: `443` or `"8000-8010"`.
pub(super) struct PortField(pub(super) Result<PortRange, String>);

impl<'de> Deserialize<'de> for PortField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number (443) or a range string (\"8000-8010\")")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortField, E> {
                Ok(PortField(
                    u16::try_from(v)
                        .ok()
                        .filter(|p| *p != 0)
                        .map(|p| PortRange { lo: p, hi: p })
                        .ok_or_else(|| format!("port {v} is outside 1-65535")),
                ))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortField, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortField, E> {
                let (a, b) = v.split_once('-').unwrap_or((v, v));
                let p = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p != 0);
                Ok(PortField(match (p(a), p(b)) {
                    (Some(lo), Some(hi)) if lo <= hi => Ok(PortRange { lo, hi }),
                    _ => Err(format!(
                        "port \"{v}\" is not a port or a range like \"8000-8010\" within 1-65535"
                    )),
                }))
            }
        }
        d.deserialize_any(V)
    }
}

/// A date as written: a TOML date (`2027-01-31`) or the string "2027-01-31".
pub(super) struct DateField(pub(super) Result<NaiveDate, String>);

impl<'de> Deserialize<'de> for DateField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        let bad = |s: &str| format!("'{s}' is not a date; write YYYY-MM-DD, e.g. 2027-01-31");
        Ok(DateField(match v {
            toml::Value::String(s) => {
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| bad(&s))
            }
            toml::Value::Datetime(dt) => match (dt.date, dt.time) {
                (Some(date), None) => NaiveDate::from_ymd_opt(
                    i32::from(date.year),
                    u32::from(date.month),
                    u32::from(date.day),
                )
                .ok_or_else(|| bad(&dt.to_string())),
                _ => Err(format!(
                    "'{dt}' has a time of day; write just the date, YYYY-MM-DD"
                )),
            },
            other => Err(format!(
                "expected a date (YYYY-MM-DD), found {}",
                other.type_str()
            )),
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) owner: Option<String>,
    #[serde(default, rename = "group")]
    pub(super) groups: Vec<Spanned<RawGroup>>,
    #[serde(default, rename = "exception")]
    pub(super) exceptions: Vec<Spanned<RawException>>,
    #[serde(default, rename = "change")]
    pub(super) changes: Vec<Spanned<RawChange>>,
    #[serde(default)]
    pub(super) baseline_profiles: Option<Vec<Spanned<String>>>,
    /// Longest an exception may last, in months (default 12).
    #[serde(default)]
    pub(super) max_exception_months: Option<Spanned<i64>>,
    #[serde(default, rename = "scanner")]
    pub(super) scanners: Vec<Spanned<scanner::RawScanner>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChange {
    pub(super) ticket: Spanned<String>,
    pub(super) approver: Spanned<String>,
    pub(super) approved: Spanned<DateField>,
    pub(super) target: Spanned<String>,
    #[serde(default)]
    pub(super) opens: Vec<Spanned<PortField>>,
    #[serde(default)]
    pub(super) closes: Vec<Spanned<PortField>>,
    #[serde(default)]
    pub(super) proto: Option<Proto>,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) window: Option<Spanned<RawChangeWindow>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChangeWindow {
    #[serde(default)]
    pub(super) from: Option<Spanned<DateField>>,
    #[serde(default)]
    pub(super) until: Option<Spanned<DateField>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    pub(super) name: Spanned<String>,
    pub(super) targets: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) tags: Vec<String>,
    #[serde(default)]
    pub(super) vantage: Option<Spanned<Vantage>>,
    #[serde(default)]
    pub(super) profiles: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) max_open_ports: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) platforms: Vec<String>,
    #[serde(default)]
    pub(super) admin_sources: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) allow: Vec<Spanned<RawAllow>>,
    #[serde(default)]
    pub(super) expect: Option<Expect>,
    #[serde(default)]
    pub(super) unreachable_from: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(super) port_scope: Option<Spanned<RawGroupScope>>,
}

/// `port_scope = { tcp = "common", udp = "high-risk-udp", justification = "…" }`:
/// a group narrows its profiles' port scope, with a reason the report shows.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroupScope {
    #[serde(default)]
    pub(super) tcp: Option<String>,
    #[serde(default)]
    pub(super) udp: Option<String>,
    #[serde(default)]
    pub(super) justification: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAllow {
    pub(super) port: Spanned<PortField>,
    #[serde(default)]
    pub(super) proto: Option<Proto>,
    #[serde(default)]
    pub(super) service: Option<String>,
    #[serde(default)]
    pub(super) justification: Option<String>,
    #[serde(default)]
    pub(super) approver: Option<String>,
    #[serde(default)]
    pub(super) ticket: Option<String>,
    #[serde(default)]
    pub(super) review_by: Option<Spanned<DateField>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawException {
    #[serde(default)]
    pub(super) id: Option<String>,
    pub(super) target: Spanned<String>,
    #[serde(default)]
    pub(super) port: Option<Spanned<PortField>>,
    #[serde(default)]
    pub(super) proto: Option<Proto>,
    #[serde(default)]
    pub(super) check: Option<Spanned<String>>,
    pub(super) reason: Spanned<String>,
    pub(super) approver: Spanned<String>,
    #[serde(default)]
    pub(super) ticket: Option<String>,
    pub(super) expires: Spanned<DateField>,
    #[serde(default)]
    pub(super) review_by: Option<Spanned<DateField>>,
    #[serde(default)]
    pub(super) window: Option<Spanned<RawWindow>>,
}
