//! Model: results per asset (测评对象) — each audited host × each
//! requirement of a profile that applies to it, the way a 等保 测评师
//! writes them (符合 / 部分符合 / 不符合 / 不适用 / 未测评). Decided by the
//! policy layer (`policy::assets`); the report only formats them.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// How one requirement fared on one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AssetStatus {
    /// 符合: every mapped check ran on the host with full evidence; none
    /// failed.
    Met,
    /// 部分符合: some mapped checks found a failure on the host while the
    /// others ran clean (a deficiency in part, never "evidence missing").
    PartlyMet,
    /// 不符合: every mapped check that ran on the host found a failure.
    NotMet,
    /// 不适用: none of the requirement's checks concerns this host (a tag,
    /// vantage or level it lacks; nothing of the kind to judge).
    NotApplicable,
    /// 未测评: a scan cannot judge it, the host did not answer, or none of
    /// its checks could run on the host.
    NotAssessed,
    /// 证据不完整: nothing failed, but the evidence is incomplete (a check
    /// could not run, the port scope was not covered, or a scan can only
    /// partly evidence the requirement).
    Incomplete,
    /// 风险接受: the failures are waived by an active exception.
    Accepted,
}

impl AssetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AssetStatus::Met => "met",
            AssetStatus::PartlyMet => "partly-met",
            AssetStatus::NotMet => "not-met",
            AssetStatus::NotApplicable => "not-applicable",
            AssetStatus::NotAssessed => "not-assessed",
            AssetStatus::Incomplete => "incomplete",
            AssetStatus::Accepted => "accepted",
        }
    }
}

/// One requirement on one asset, and what decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetCell {
    pub requirement: String,
    pub status: AssetStatus,
    /// The failing (or waived) findings on this host that decided it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    /// Why it is not met / not assessed / incomplete, in English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One asset (测评对象): a host and its group, with a cell per requirement
/// of the profile (in profile order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetRow {
    pub ip: IpAddr,
    pub group: Option<String>,
    pub cells: Vec<AssetCell>,
}

/// The per-asset results of one profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileAssets {
    pub profile: String,
    pub assets: Vec<AssetRow>,
}
