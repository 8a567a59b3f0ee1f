use super::*;

pub(super) fn platform_ids<S: serde::Serializer>(
    p: &[PlatformFix],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(p.iter().map(|p| p.platform.as_str()))
}

/// Reports before `fixes.jsonl` held the texts inline; newer ones hold ids
/// (the texts come from `fixes.jsonl`).
pub(super) fn platforms_or_ids<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<PlatformFix>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Full(PlatformFix),
        Id(#[allow(dead_code)] String),
    }
    Ok(Vec::<Entry>::deserialize(d)?
        .into_iter()
        .filter_map(|e| match e {
            Entry::Full(p) => Some(p),
            Entry::Id(_) => None,
        })
        .collect())
}

/// One line of `fixes.jsonl`: one platform's fix for one group.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct FixLine<'a> {
    /// The group's [`FixGroup::id`].
    fix: std::borrow::Cow<'a, str>,
    #[serde(flatten)]
    platform: std::borrow::Cow<'a, PlatformFix>,
}

/// The file beside report.json that holds every fix's texts.
pub const FIXES_JSONL: &str = "fixes.jsonl";

/// Writes `fixes.jsonl`: one JSON object per group and platform, in report
/// order (`{"fix": ID, "platform": …, "commands": …, "undo": …, …}`).
pub fn write_fixes_jsonl<'a>(
    w: &mut impl std::io::Write,
    groups: impl IntoIterator<Item = &'a FixGroup>,
) -> std::io::Result<()> {
    for g in groups {
        for p in &g.platforms {
            let line = FixLine {
                fix: std::borrow::Cow::Borrowed(&g.id),
                platform: std::borrow::Cow::Borrowed(p),
            };
            serde_json::to_writer(&mut *w, &line)?;
            w.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Largest report.json [`read_fixes`] reads: far above any real report,
/// low enough that a hostile file cannot exhaust memory.
pub(super) const MAX_REPORT_JSON: u64 = 512 * 1024 * 1024;
/// Largest line of `fixes.jsonl` [`read_fixes`] accepts.
pub(super) const MAX_FIX_LINE: u64 = 64 * 1024 * 1024;

/// The fixes recorded in a report directory's `report.json`.
pub fn read_fixes(dir: &Path) -> Result<Vec<FixGroup>, RemediationError> {
    #[derive(Deserialize)]
    struct Doc {
        /// The report model's fix groups (each flattens a [`FixGroup`]).
        fix_groups: Vec<FixGroup>,
    }
    let path = dir.join("report.json");
    // The same guarded read as the evidence files: a regular file within
    // the bound, never a link, FIFO or device.
    let text = crate::report::evidence::read_small(&path, MAX_REPORT_JSON).map_err(|e| {
        RemediationError::Report {
            path: path.clone(),
            message: e.to_string(),
        }
    })?;
    let mut doc: Doc = serde_json::from_slice(&text).map_err(|e| RemediationError::Report {
        path: path.clone(),
        message: format!("not a portwarden report ({e})"),
    })?;
    drop(text);
    if doc.fix_groups.iter().all(|g| g.platforms.is_empty()) && !doc.fix_groups.is_empty() {
        read_fix_lines(dir, &mut doc.fix_groups)?;
    }
    Ok(doc.fix_groups)
}

/// Puts `fixes.jsonl`'s texts (or `fixes.jsonl.zst`'s, in a `--compress`
/// folder) back into their groups, streaming the file through the evidence
/// layer's guarded open (a regular file, never a link, FIFO or device) with
/// every line bounded.
pub(super) fn read_fix_lines(dir: &Path, groups: &mut [FixGroup]) -> Result<(), RemediationError> {
    use std::io::BufRead;
    let path = &dir.join(FIXES_JSONL);
    let bad = |line: usize, message: String| RemediationError::Report {
        path: path.to_path_buf(),
        message: if line == 0 {
            message
        } else {
            format!("line {line}: {message}")
        },
    };
    let file = crate::report::compress::open_data(dir, FIXES_JSONL)
        .map_err(|e| bad(0, e.to_string()))?
        .ok_or_else(|| bad(0, "not found".into()))?;
    let by_id: HashMap<String, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.clone(), i))
        .collect();
    let mut reader = std::io::BufReader::new(file);
    let mut buf = Vec::new();
    for n in 1.. {
        buf.clear();
        let read = std::io::Read::take(&mut reader, MAX_FIX_LINE + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| bad(n, e.to_string()))?;
        if read == 0 {
            break;
        }
        if buf.len() as u64 > MAX_FIX_LINE {
            return Err(bad(n, format!("longer than {MAX_FIX_LINE} bytes")));
        }
        let line: FixLine<'static> =
            serde_json::from_slice(&buf).map_err(|e| bad(n, format!("not a fix line ({e})")))?;
        let Some(&i) = by_id.get(line.fix.as_ref()) else {
            return Err(bad(n, format!("fix '{}' is not in report.json", line.fix)));
        };
        groups[i].platforms.push(line.platform.into_owned());
    }
    Ok(())
}

/// The fix that closes a finding, by finding id.
pub fn fix_for<'a>(fixes: &'a [FixGroup], finding_id: &str) -> Option<&'a FixGroup> {
    fixes
        .iter()
        .find(|g| g.finding_ids.iter().any(|f| f == finding_id))
}
