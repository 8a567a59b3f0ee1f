//! Report layer: on which page of a PDF Chromium printed each section —
//! read from the PDF's named destinations (`/Dests` in the catalogue: one
//! per element id a link points to) and its page tree. Only what Chromium
//! (Skia) writes is understood: uncompressed object dictionaries. Anything
//! else yields no pages, and the contents then show none.

use std::collections::HashMap;

/// Deepest page tree followed.
const MAX_DEPTH: usize = 16;

/// Section id → 1-based page number, for every named destination found.
pub fn section_pages(pdf: &[u8]) -> HashMap<String, usize> {
    let objects = objects(pdf);
    let mut out = HashMap::new();
    let Some(catalog) = objects.values().find(|d| has_name(d, b"/Type /Catalog")) else {
        return out;
    };
    let (Some(pages_root), Some(dests)) =
        (reference(catalog, b"/Pages"), reference(catalog, b"/Dests"))
    else {
        return out;
    };
    let mut order = Vec::new();
    collect_pages(&objects, pages_root, 0, &mut order);
    let index: HashMap<u32, usize> = order.iter().enumerate().map(|(i, n)| (*n, i + 1)).collect();
    let Some(dests) = objects.get(&dests) else {
        return out;
    };
    // `/name [12 0 R /XYZ …]`
    let mut rest: &[u8] = dests;
    while let Some(slash) = rest.iter().position(|&b| b == b'/') {
        rest = &rest[slash + 1..];
        let end = rest
            .iter()
            .position(|b| b.is_ascii_whitespace() || matches!(b, b'[' | b'/' | b'>' | b'<'))
            .unwrap_or(rest.len());
        let name = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end..];
        let trimmed = trim_start(rest);
        if let Some(after) = trimmed.strip_prefix(b"[")
            && let Some((obj, _)) = leading_ref(after)
            && let Some(page) = index.get(&obj)
        {
            out.insert(name, *page);
        }
    }
    out
}

/// Object number → its dictionary text (up to `stream` or `endobj`).
fn objects(pdf: &[u8]) -> HashMap<u32, &[u8]> {
    let mut out = HashMap::new();
    let mut i = 0;
    while let Some(pos) = find(&pdf[i..], b" 0 obj") {
        let at = i + pos;
        // The object number is the digits right before " 0 obj".
        let start = pdf[..at]
            .iter()
            .rposition(|b| !b.is_ascii_digit())
            .map_or(0, |p| p + 1);
        let body_start = at + b" 0 obj".len();
        let body_end = [
            find(&pdf[body_start..], b"endobj"),
            find(&pdf[body_start..], b"stream"),
        ]
        .into_iter()
        .flatten()
        .min()
        .map_or(pdf.len(), |e| body_start + e);
        if let Ok(n) = std::str::from_utf8(&pdf[start..at])
            .unwrap_or("")
            .parse::<u32>()
        {
            out.insert(n, &pdf[body_start..body_end]);
        }
        i = body_end.max(body_start);
    }
    out
}

fn collect_pages(objects: &HashMap<u32, &[u8]>, node: u32, depth: usize, out: &mut Vec<u32>) {
    let Some(dict) = objects.get(&node) else {
        return;
    };
    if depth > MAX_DEPTH {
        return;
    }
    if has_name(dict, b"/Type /Pages") {
        let Some(kids) = find(dict, b"/Kids") else {
            return;
        };
        let mut rest = &dict[kids + 5..];
        rest = trim_start(rest);
        let Some(list) = rest.strip_prefix(b"[") else {
            return;
        };
        let end = list.iter().position(|&b| b == b']').unwrap_or(list.len());
        let mut items = &list[..end];
        while let Some((kid, after)) = leading_ref(items) {
            collect_pages(objects, kid, depth + 1, out);
            items = after;
        }
    } else if has_name(dict, b"/Type /Page") {
        out.push(node);
    }
}

/// `/Type /Page` but not `/Type /Pages` (and the like).
fn has_name(dict: &[u8], name: &[u8]) -> bool {
    let mut i = 0;
    while let Some(p) = find(&dict[i..], name) {
        let end = i + p + name.len();
        if dict.get(end).is_none_or(|b| !b.is_ascii_alphanumeric()) {
            return true;
        }
        i = end;
    }
    false
}

/// The object a key refers to: `/Pages 19 0 R` → 19.
fn reference(dict: &[u8], key: &[u8]) -> Option<u32> {
    let mut i = 0;
    while let Some(p) = find(&dict[i..], key) {
        let end = i + p + key.len();
        if dict.get(end).is_some_and(|b| b.is_ascii_whitespace()) {
            return leading_ref(&dict[end..]).map(|(n, _)| n);
        }
        i = end;
    }
    None
}

/// `12 0 R` at the start of `s` (after white space): 12 and the rest.
fn leading_ref(s: &[u8]) -> Option<(u32, &[u8])> {
    let s = trim_start(s);
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let n: u32 = std::str::from_utf8(&s[..digits]).ok()?.parse().ok()?;
    let rest = trim_start(&s[digits..]);
    let gen_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if gen_len == 0 {
        return None;
    }
    let rest = trim_start(&rest[gen_len..]);
    let rest = rest.strip_prefix(b"R")?;
    Some((n, rest))
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[n..]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape Chromium 156 writes (objects abridged).
    const PDF: &[u8] = b"%PDF-1.4\n2 0 obj\n<</Type /Page\n/Parent 19 0 R>>\nendobj\n\
        9 0 obj\n<</Type /Page\n/Contents 10 0 R\n/Parent 19 0 R>>\nendobj\n\
        10 0 obj\n<</Filter /FlateDecode\n/Length 3>> stream\nx/Type /Pages\nendstream\nendobj\n\
        11 0 obj\n<</Type /Page\n/Parent 30 0 R>>\nendobj\n\
        30 0 obj\n<</Type /Pages\n/Count 1\n/Kids [11 0 R]>>\nendobj\n\
        19 0 obj\n<</Type /Pages\n/Count 3\n/Kids [2 0 R 9 0 R 30 0 R]>>\nendobj\n\
        20 0 obj\n<</p-summary [9 0 R /XYZ 6 827.66998 0]\n/p-limits [11 0 R /XYZ 6 827.66998 0]>>\nendobj\n\
        48 0 obj\n<</Type /Catalog\n/Pages 19 0 R\n/Dests 20 0 R>>\nendobj\n%%EOF";

    #[test]
    fn named_destinations_give_section_pages() {
        let pages = section_pages(PDF);
        assert_eq!(pages.get("p-summary"), Some(&2));
        assert_eq!(pages.get("p-limits"), Some(&3));
        assert_eq!(pages.len(), 2);
        assert!(section_pages(b"%PDF-1.4 garbage 0 obj << /Type /Catalog").is_empty());
        assert!(section_pages(b"").is_empty());
    }
}
