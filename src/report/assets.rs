//! Report layer: the results per asset (测评对象) — `assets.csv` (every
//! profile, every asset) and the view of the HTML section (the 等保
//! profiles, bounded). The statuses are the policy's (`Evaluation.assets`);
//! this module only formats them.

use std::path::Path;

use serde_json::{Value, json};

use super::ReportError;
use super::i18n::Labels;
use super::model::FrameworkReport;
use super::tables::Sheet;
use crate::model::{AssetStatus, ProfileAssets};

/// Every status, for their labels.
const STATUSES: [AssetStatus; 7] = [
    AssetStatus::Met,
    AssetStatus::PartlyMet,
    AssetStatus::NotMet,
    AssetStatus::NotApplicable,
    AssetStatus::NotAssessed,
    AssetStatus::Incomplete,
    AssetStatus::Accepted,
];

/// The header of `assets.csv`.
pub(super) const ASSETS_HEADER: &[&str] = &[
    "framework",
    "asset",
    "group",
    "requirement",
    "status",
    "status_label",
    "findings",
    "reason",
];

/// At most this many assets per profile in the HTML table (all of them
/// are in `assets.csv`).
pub const HTML_ASSETS: usize = 500;

/// `assets.csv`: one row per profile × asset × requirement.
pub(super) fn write_assets(
    path: &Path,
    labels: &Labels,
    assets: &[ProfileAssets],
    bom: bool,
) -> Result<(), ReportError> {
    let mut sheet = Sheet::create(path, bom, ASSETS_HEADER)?;
    let status: std::collections::HashMap<&str, String> = STATUSES
        .iter()
        .map(|s| {
            (
                s.as_str(),
                labels.get(&format!("asset_status.{}", s.as_str())),
            )
        })
        .collect();
    for pa in assets {
        for a in &pa.assets {
            let ip = a.ip.to_string();
            let group = a.group.clone().unwrap_or_default();
            for c in &a.cells {
                sheet.row([
                    pa.profile.as_str(),
                    &ip,
                    &group,
                    &c.requirement,
                    c.status.as_str(),
                    status.get(c.status.as_str()).map_or("", String::as_str),
                    &c.findings.join(" "),
                    c.reason.as_deref().unwrap_or(""),
                ])?;
            }
        }
    }
    sheet.finish()
}

/// The HTML section's data: the 等保 profiles (whose 测评 results are
/// given per object), each a table of assets × requirements.
pub(super) fn html_view(
    labels: &Labels,
    compliance: &[FrameworkReport],
    assets: &[ProfileAssets],
) -> Value {
    let views: Vec<Value> = assets
        .iter()
        .filter(|pa| pa.profile.starts_with("mlps2-") && !pa.assets.is_empty())
        .map(|pa| {
            let name = compliance
                .iter()
                .find(|f| f.id == pa.profile)
                .map_or(pa.profile.clone(), |f| f.name.clone());
            let reqs: Vec<&str> = pa.assets[0]
                .cells
                .iter()
                .map(|c| c.requirement.as_str())
                .collect();
            let rows: Vec<Value> = pa
                .assets
                .iter()
                .take(HTML_ASSETS)
                .map(|a| {
                    let cells: Vec<Value> = a
                        .cells
                        .iter()
                        .map(|c| {
                            json!({
                                "status": c.status.as_str(),
                                "label": labels.get(&format!("asset_status.{}", c.status.as_str())),
                                "findings": c.findings.join(" "),
                                "why": c.reason.clone().unwrap_or_default(),
                            })
                        })
                        .collect();
                    json!({ "ip": a.ip.to_string(), "group": a.group, "cells": cells })
                })
                .collect();
            let more = (pa.assets.len() > HTML_ASSETS).then(|| {
                labels.fmt(
                    "label.assets_more",
                    &[
                        ("shown", &HTML_ASSETS.to_string()),
                        ("total", &pa.assets.len().to_string()),
                    ],
                )
            });
            json!({ "id": pa.profile, "name": name, "reqs": reqs, "rows": rows, "more": more })
        })
        .collect();
    Value::Array(views)
}
