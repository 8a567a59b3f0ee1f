use super::*;
use crate::report::charts::{shorten, url_component};
use crate::report::i18n::Lang;
use crate::report::model::fixture::{self, CMD, FORMULA, IMG, SCRIPT};

fn page(lang: Lang) -> (String, ReportModel) {
    let (m, ev, _) = fixture::parts(lang);
    (render(&m, Some(&ev)).unwrap(), m)
}

/// The JSON of the table block, parsed.
fn table(html: &str) -> Value {
    let start = html
        .find("<script type=\"application/json\" id=\"table-data\">")
        .unwrap();
    let body = &html[start..];
    let body = &body[body.find('>').unwrap() + 1..body.find("</script>").unwrap()];
    serde_json::from_str(body).unwrap()
}

#[test]
fn hostile_text_is_escaped_and_the_page_is_self_contained() {
    let (html, _) = page(Lang::En);
    // Our script and our data block, and no other.
    assert_eq!(html.matches("<script").count(), 2);
    assert!(!html.contains(SCRIPT));
    assert!(!html.contains("<img"));
    // The policy name with markup in it is text: its quote cannot end
    // an attribute nor its `<` open an element.
    assert!(html.contains(&esc(IMG)));
    assert_eq!(
        html.matches("onerror=alert").count(),
        html.matches(&esc(IMG)).count()
    );
    assert!(!html.contains('\x1b'));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains(&esc(CMD)));
    // The data block carries the hostile service name, unable to close its element.
    assert!(html.contains("\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"));
    let t = table(&html);
    assert!(t["rows"].as_array().unwrap().iter().any(|r| r[4] == SCRIPT));
    assert!(!html.contains("src=\"http"));
    assert!(!html.contains("href=\"http"));
    assert!(!html.contains("<link"));
    assert!(html.contains("default-src &#39;none&#39;"));
    let _ = FORMULA;
}

#[test]
fn control_characters_never_reach_the_page() {
    let (mut m, ev, _) = fixture::parts(Lang::En);
    m.ports[0].hostnames = vec!["h\x07\x00".into()];
    m.exceptions[0].reason = "a\x1b[2J\rb\u{9b}c".into();
    let html = render(&m, Some(&ev)).unwrap();
    assert!(html.contains("a\u{FFFD}[2J\u{FFFD}b\u{FFFD}c"));
    assert!(html.contains("h\u{FFFD}\u{FFFD}"));
    assert!(
        !html
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    );
    // Commands keep their lines.
    assert!(html.contains(&format!(
        "{}\n",
        esc(m.fix_groups[0].fix.platforms[0].commands.lines().next().unwrap())
    )));
}

#[test]
fn provenance_from_a_hostile_file_is_escaped_and_shown() {
    let nmap = "<nmaprun scanner=\"nmap\" version=\"7.94\" start=\"1764000000\" \
        args=\"nmap &lt;script&gt;alert(1)&lt;/script&gt; \x1b[2J -p 22\">\
        <scaninfo type=\"syn\" protocol=\"tcp\" services=\"22,&lt;b&gt;\"/>\
        <host><address addr=\"198.18.0.5\" addrtype=\"ipv4\"/><ports>\
        <port protocol=\"tcp\" portid=\"22\"><state state=\"open\" reason=\"syn-ack\"/></port>\
        </ports></host><runstats><finished time=\"1764000009\"/></runstats></nmaprun>";
    let run = crate::import::nmap::parse(nmap, "hostile.xml").unwrap();
    for lang in [Lang::En, Lang::ZhCn] {
        let (mut m, ev, _) = fixture::parts(lang);
        m.scope.inputs = vec![crate::report::InputFile {
            path: "hostile.xml".into(),
            sha256: "00".repeat(32),
            kind: "nmap-xml".into(),
            provenance: run.provenance.clone(),
        }];
        let html = render(&m, Some(&ev)).unwrap();
        let labels = Labels::embedded(lang).unwrap();
        assert!(html.contains(&format!(
            "{}{}nmap 7.94",
            labels.get("ui.input_scanner"),
            labels.get("first.colon")
        )));
        assert!(
            html.contains(
                "<code>nmap &lt;script&gt;alert(1)&lt;/script&gt; \u{FFFD}[2J -p 22</code>"
            ),
            "{html}"
        );
        assert!(html.contains("<code>tcp/syn</code> <code>22,&lt;b&gt;</code>"));
        assert!(html.contains(
            "<time datetime=\"2025-11-24T16:00:00Z\">2025-11-24 16:00:00 UTC</time> – \
             <time datetime=\"2025-11-24T16:00:09Z\">2025-11-24 16:00:09 UTC</time>"
        ));
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains('\x1b'));
        // The live scan's interface is named beside its address.
        assert!(html.contains("198.18.0.1 (eth0)"));
    }
}

#[test]
fn csp_allows_exactly_our_script_and_style() {
    let (html, _) = page(Lang::En);
    assert!(html.contains(&format!("script-src {}", esc(&csp_hash(JS)))));
    assert!(html.contains(&format!("style-src {}", esc(&csp_hash(CSS)))));
    assert!(html.contains(&format!("<script>{JS}</script>")));
    assert!(html.contains(&format!("<style>{CSS}</style>")));
}

#[test]
fn page_has_every_section_charts_links_and_one_row_per_port() {
    let (html, m) = page(Lang::En);
    for id in [
        "summary",
        "compliance",
        "findings",
        "remediation",
        "exceptions",
        "inventory",
        "scope",
    ] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
    }
    // Summary first.
    assert!(html.find("<section id=\"summary\">") < html.find("<section id=\"scope\">"));
    // Five inline charts: frameworks, severity, groups, services, heat map.
    assert_eq!(html.matches("<svg class=\"chart").count(), 5);
    assert!(html.contains("<a href=\"#fw-pci-dss-4.0\" class=\"fwbar\""));
    // Requirement rows: counts and a deep link, no id lists.
    assert!(html.contains("href=\"#req=pci-dss-4.0:1.2.5\""));
    assert!(!html.contains("class=\"fid\""));
    // The table data: one row per host:port, each check a chip.
    let t = table(&html);
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), m.ports.len());
    let chips: usize = rows.iter().map(|r| r[8].as_array().unwrap().len()).sum();
    assert_eq!(chips, m.summary.findings);
    // Failing ports link to their fix group, which lists the host.
    let fx = &m.fix_groups[0];
    assert!(html.contains(&format!("<article class=\"fix\" id=\"{}\">", fx.anchor)));
    assert!(html.contains(&format!("href=\"#fix={}\"", fx.anchor)));
    assert!(html.contains(&format!("<code>{}</code>", fx.fix.hosts[0])));
    assert_eq!(fx.fix.hosts.len(), 1);
    assert!(
        html.contains(" 1 host in lab</h3>") && !html.contains("1 hosts"),
        "{html}"
    );
    assert!(rows.iter().any(|r| r[10] == 0));
    // Static top table for readers without scripts, and the pointer to the full lists.
    assert_eq!(
        html.matches("<tr class=\"failing\">").count()
            + html.matches("<tr class=\"waived\">").count(),
        m.ports.len().min(TOP_ROWS)
    );
    assert!(html.contains("findings.csv and findings.jsonl"));
    // Inline, the platforms the hosts' groups declare (else the first),
    // as tabs that work without JS; every platform a link to its page.
    let inline = |g: &super::super::model::FixGroup| g.inline.len();
    assert_eq!(
        html.matches(&format!("type=\"radio\" name=\"{}\"", fx.anchor))
            .count(),
        inline(fx)
    );
    assert!(html.contains(&format!("id=\"{}-0\" checked", fx.anchor)));
    for p in &fx.fix.platforms {
        assert!(html.contains(&format!(
            "<a href=\"fixes/{}.html#{}\">{}</a>",
            p.platform,
            fx.anchor,
            esc(&p.title)
        )));
    }
    // Every inline panel has its undo beside the commands.
    let panels: usize = m.fix_groups.iter().map(inline).sum();
    assert_eq!(html.matches("<h4>Undo</h4>").count(), panels);
    assert!(html.contains("<tr class=\"expired\">"));
    assert!(html.contains("<h2>Compliance</h2>"));
}

#[test]
fn one_page_per_platform_with_every_group_full_commands_and_no_script() {
    let (m, _, _) = fixture::parts(Lang::En);
    let mut pages = Vec::new();
    render_platform_pages(&m, |id, page| {
        pages.push((id.to_owned(), page.to_owned()));
        Ok(())
    })
    .unwrap();
    let mut ids: Vec<&str> = m
        .fix_groups
        .iter()
        .flat_map(|g| g.fix.platforms.iter().map(|p| p.platform.as_str()))
        .collect();
    ids.sort();
    ids.dedup();
    let mut got: Vec<&str> = pages.iter().map(|(id, _)| id.as_str()).collect();
    got.sort();
    assert_eq!(got, ids);
    for (id, page) in &pages {
        assert!(!page.contains("<script"), "{id}");
        assert!(page.contains("script-src &#39;none&#39;"), "{id}");
        assert!(page.contains("<a href=\"../index.html#remediation\">"));
        for g in &m.fix_groups {
            let Some(p) = g.fix.platforms.iter().find(|p| &p.platform == id) else {
                assert!(!page.contains(&format!("id=\"{}\"", g.anchor)));
                continue;
            };
            assert!(page.contains(&format!("<article class=\"fix\" id=\"{}\">", g.anchor)));
            assert!(page.contains(&format!("<a href=\"../index.html#{}\">", g.anchor)));
            assert!(page.contains(&esc(&p.commands)), "{id}");
            assert!(page.contains(&esc(&p.undo)), "{id}");
        }
    }
}

#[test]
fn what_the_scan_could_not_decide_is_said_in_the_scope() {
    let (m, ev, _) = fixture::parts(Lang::En);
    assert!(m.scope.gaps.is_empty());
    assert!(!render(&m, Some(&ev)).unwrap().contains("Not decided"));
    for lang in [Lang::En, Lang::ZhCn] {
        let (m, ev, _) = fixture::parts_with(lang, |f| {
            f.local_errors = 2;
            f.udp_undecided = 37;
        });
        assert_eq!((m.scope.local_errors, m.scope.udp_undecided), (2, 37));
        assert_eq!(m.scope.gaps.len(), 2);
        let html = render(&m, Some(&ev)).unwrap();
        let want = match lang {
            Lang::En => ["2 pairs were never probed", "37 UDP pairs are undecided"],
            Lang::ZhCn => ["2 个端口从未探测", "37 个 UDP 端口未能判定"],
        };
        for w in want {
            assert!(html.contains(w), "{w}");
        }
    }
}

#[test]
fn zh_cn_page_is_in_chinese() {
    let (html, _) = page(Lang::ZhCn);
    assert!(html.contains("<html lang=\"zh-CN\">"));
    assert!(html.contains("<h2>合规评估</h2>"));
    assert!(html.contains("<h2>整改措施</h2>"));
    assert!(html.contains("安全区域边界 / 访问控制"));
    assert!(html.contains(">已过期<"));
    assert!(!html.contains("<h2>Findings</h2>"));
    let t = table(&html);
    assert!(t["st"][0] == json!(["fail", "不符合"]));
}

#[test]
fn chart_labels_are_cut_by_width() {
    assert_eq!(shorten("PCI DSS v4.0", 34), "PCI DSS v4.0");
    let zh = shorten("网络安全等级保护2.0 第三级 (GB/T 22239-2019)", 34);
    assert!(
        unicode_width::UnicodeWidthStr::width(zh.as_str()) <= 34,
        "{zh}"
    );
    assert!(zh.starts_with("网络安全等级保护") && zh.ends_with('…'));
}

#[test]
fn svg_text_is_escaped() {
    assert_eq!(
        esc("<a href='x'>&\"\x1b"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&quot;\u{FFFD}"
    );
    assert_eq!(url_component("cde zone/1"), "cde%20zone%2F1");
}

/// Relative luminance of `#rrggbb` / `#rgb` (WCAG 2.x).
fn luminance(hex: &str) -> f64 {
    let h = hex.trim_start_matches('#');
    let h: String = if h.len() == 3 {
        h.chars().flat_map(|c| [c, c]).collect()
    } else {
        h.to_string()
    };
    let ch = |i: usize| {
        let c = f64::from(u8::from_str_radix(&h[i..i + 2], 16).unwrap()) / 255.0;
        if c <= 0.03928 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * ch(0) + 0.7152 * ch(2) + 0.0722 * ch(4)
}

/// The colour variables of one `:root{…}` block of report.css.
fn colour_vars(block: &str) -> HashMap<String, String> {
    block
        .split(['{', ';', '}'])
        .filter_map(|decl| decl.trim().strip_prefix("--"))
        .filter_map(|d| d.split_once(':'))
        .filter(|(_, v)| v.starts_with('#'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// WCAG AA (4.5:1) for every text colour on the background it is drawn
/// on, in the light theme and in the dark one (`prefers-color-scheme`).
#[test]
fn every_text_colour_pair_meets_wcag_aa_in_both_themes() {
    let light = CSS.lines().next().unwrap();
    let dark = CSS
        .lines()
        .find(|l| l.starts_with("@media (prefers-color-scheme:dark)"))
        .expect("a dark theme");
    let mut pairs = vec![
        ("fg", "bg"),
        ("muted", "bg"),
        ("muted", "soft"),
        ("link", "bg"),
        ("link", "soft"),
        ("fg", "soft"),
        ("head-fg", "head-bg"),
        ("head-muted", "head-bg"),
        ("head-link", "head-bg"),
        ("fg", "verdict-bad"),
        ("fg", "verdict-good"),
        ("fg", "warn-bg"),
        ("fail", "expired-bg"),
        ("code-fg", "code-bg"),
        ("fg", "chip"),
        ("fg", "target-bg"),
        ("fg", "tab-bg"),
    ];
    for badge in [
        "crit", "high", "med", "low", "info", "pass", "fail", "na", "waived",
    ] {
        pairs.push(("on-badge", badge));
    }
    for (theme, block) in [("light", light), ("dark", dark)] {
        let vars = colour_vars(block);
        for (fg, bg) in &pairs {
            let (a, b) = (
                luminance(
                    vars.get(*fg)
                        .unwrap_or_else(|| panic!("{theme}: no --{fg}")),
                ),
                luminance(
                    vars.get(*bg)
                        .unwrap_or_else(|| panic!("{theme}: no --{bg}")),
                ),
            );
            let ratio = (a.max(b) + 0.05) / (a.min(b) + 0.05);
            assert!(ratio >= 4.5, "{theme}: --{fg} on --{bg} is {ratio:.2}:1");
        }
    }
    // No text colour outside the variables but the code blocks' copy
    // button (fixed light-on-dark in both themes).
    assert!(!CSS.contains("color:#0b57d0"));
}

#[test]
fn first_screen_has_the_verdict_fix_first_and_the_limits_box_before_the_findings() {
    for lang in [Lang::En, Lang::ZhCn] {
        let (html, m) = page(lang);
        let at = |id: &str| html.find(&format!("<section id=\"{id}\">")).unwrap();
        assert!(at("summary") < at("fix-first"));
        assert!(at("fix-first") < at("limits"));
        assert!(at("limits") < at("findings"));
        assert!(at("remediation") < at("compliance"));
        assert!(html.contains(&format!("id=\"verdict\">{}</p>", esc(&m.first.verdict))));
        let g = &m.fix_groups[0];
        assert!(html.contains(&format!("<a href=\"#{}\">{}</a>", g.anchor, esc(&g.name))));
        assert!(!html.contains("class=\"fxkey\""));
        // The "fix first" names are words, never the anchors.
        assert!(!g.name.contains(&g.anchor));
        // Failing requirement rows list their evidence.
        let pci = m.compliance.iter().find(|f| f.id == "pci-dss-4.0").unwrap();
        let r = pci.requirements.iter().find(|r| r.id == "1.2.5").unwrap();
        assert!(!r.evidence.is_empty());
        assert!(r.reason.is_none());
        assert!(html.contains(&format!("<li><code>{}</code>", r.evidence[0].target)));
        let labels = Labels::embedded(lang).unwrap();
        assert!(html.contains(&esc(&labels.get("limits.heading"))));
        if lang == Lang::ZhCn {
            assert!(!html.contains("得分: ") && !html.contains("门限"));
            assert!(m.first.verdict.ends_with('。'), "{}", m.first.verdict);
        }
    }
}

/// The framework badges show the evaluator's counts, which leave out the
/// mappings awaiting confirmation (as the verdict sentence does); those
/// have a badge of their own. Every requirement is in exactly one badge.
#[test]
fn framework_badges_count_unconfirmed_mappings_apart() {
    let (html, m) = page(Lang::En);
    let mut unconfirmed_seen = 0;
    for f in &m.compliance {
        let count = |s: &str| {
            f.requirements
                .iter()
                .filter(|r| r.confirmed && r.status.as_str() == s)
                .count()
        };
        assert_eq!(
            (f.passed, f.failed, f.partial, f.not_assessed, f.accepted),
            (
                count("pass"),
                count("fail"),
                count("partial"),
                count("not-assessed"),
                count("accepted")
            ),
            "{}",
            f.id
        );
        let unconfirmed = f.requirements.iter().filter(|r| !r.confirmed).count();
        assert_eq!(f.unconfirmed, unconfirmed, "{}", f.id);
        assert_eq!(
            f.passed + f.failed + f.partial + f.not_assessed + f.accepted + f.unconfirmed,
            f.requirements.len()
        );
        let article = &html[html.find(&format!("id=\"fw-{}\"", f.id)).unwrap()..];
        let counts = &article[..article.find("</p>").unwrap()];
        assert!(
            counts.contains(&format!(
                "<span class=\"badge fail\">Failed {}</span>",
                f.failed
            )),
            "{counts}"
        );
        if unconfirmed > 0 {
            assert!(
                counts.contains(&format!(
                    "<span class=\"badge unconfirmed\">mapping awaiting confirmation {unconfirmed}</span>"
                )),
                "{counts}"
            );
            unconfirmed_seen += 1;
        } else {
            assert!(!counts.contains("badge unconfirmed"), "{counts}");
        }
    }
    // PCI DSS has unconfirmed mappings: the case is exercised.
    assert!(unconfirmed_seen > 0);
}

/// Beyond what the page holds, every row is on a findings page of its
/// group and severity, linked from the page; each page carries its own
/// table JSON (filters and search work without a server), escapes the
/// hostile text and links fixes back to index.html.
#[test]
fn rows_beyond_the_page_go_to_linked_pages_by_group_and_severity() {
    let (m, ev, _) = fixture::parts(Lang::En);
    assert!(m.ports.len() >= 3, "{}", m.ports.len());
    let dir = std::env::temp_dir().join(format!("pw-pages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A budget of one row: index.html holds the most severe row only.
    let (page, json) = render_parts(&m, Some(&ev), Some(&dir), 1).unwrap();
    let html = page.replacen(TABLE_SLOT, &json, 1);
    let t = table(&html);
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    assert!(html.contains("id=\"finding-pages\""), "no list of pages");
    assert!(
        html.contains("href=\"#finding-pages\""),
        "the summary links the pages"
    );
    // The summary and the requirement tables still count the whole audit.
    assert!(html.contains(&format!(
        "id=\"tile-findings\"><span class=\"n\">{}</span>",
        m.summary.failing
    )));
    let mut seen: Vec<String> = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir.join(pages::FINDINGS_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with('g') && name.ends_with(".html") && name.is_ascii(),
            "{name}"
        );
        assert!(
            html.contains(&format!("href=\"findings/{name}\"")),
            "{name} not linked"
        );
        let p = std::fs::read_to_string(f).unwrap();
        assert!(!p.contains("<script>alert"), "{name}");
        assert!(p.contains("href=\"../index.html#finding-pages\""));
        assert!(p.contains("<div id=\"live\" hidden>"));
        let t = table(&p);
        assert_eq!(t["base"], "../index.html");
        let rows = t["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{name}: one row a page at this budget");
        // One group and one severity a page.
        for r in rows {
            let sev = r[6].as_u64().unwrap();
            let chips = r[8].as_array().unwrap();
            seen.push(format!("{}:{}:{sev}", r[0], r[2]));
            assert!(!chips.is_empty());
        }
    }
    // Every row of the audit is on exactly one page.
    let mut want: Vec<String> = m
        .ports
        .iter()
        .map(|r| {
            let port = r.port.map_or("null".to_string(), |p| p.to_string());
            format!("\"{}\":{port}:{}", r.ip, severity_rank(r.severity))
        })
        .collect();
    want.sort();
    seen.sort();
    assert_eq!(seen, want);
    std::fs::remove_dir_all(&dir).unwrap();
    // With the default budget nothing is paged at this size.
    let (page, _) = render_parts(&m, Some(&ev), None, TABLE_BYTES).unwrap();
    assert!(!page.contains("finding-pages"));
}
