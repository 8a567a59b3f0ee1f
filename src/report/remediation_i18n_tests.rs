//! The fix blocks in the report's language: every comment line comes from
//! a message key (`fix_comment.*` in the label files), so a zh-CN report
//! has Chinese comments; the commands are the same in both languages.

use super::tests::{finding, fixes, policy, ssh};
use super::*;

/// One finding of every remediation key that renders shell, PowerShell,
/// YAML, HCL, TOML or batch, over both families, TCP and UDP, admin ports
/// with and without declared sources, and the service-specific branches.
#[rustfmt::skip]
fn every_kind() -> Vec<Finding> {
    fixes(&[
        ("remote-admin-internet", "restrict-source", "198.18.0.5", Some(22), Some("ssh")),
        ("remote-admin-internet", "restrict-source", "2001:2::5", Some(3389), Some("rdp")),
        ("not-allowed", "close-port", "198.18.1.2", Some(22), Some("ssh")),
        ("not-allowed", "close-port", "198.18.1.3", Some(6379), Some("redis")),
        ("not-allowed", "close-port", "2001:2::9", Some(161), Some("snmp")),
        ("not-allowed", "close-port", "198.18.1.4", Some(9200), Some("elasticsearch")),
        ("cleartext-admin", "replace-cleartext", "198.18.1.5", Some(23), Some("telnet")),
        ("cleartext-admin", "replace-cleartext", "198.18.1.5", Some(21), Some("ftp")),
        ("cleartext-admin", "replace-cleartext", "198.18.1.5", Some(5900), Some("vnc")),
        ("cleartext-admin", "replace-cleartext", "198.18.1.5", Some(110), Some("pop3")),
        ("tls-cert", "renew-certificate", "198.18.0.6", Some(443), Some("https")),
        ("unmanaged-host", "add-host-to-policy", "198.18.7.1", None, None),
        ("port-cap", "reduce-exposure", "198.18.1.6", None, None),
        ("unapproved-change", "approve-or-revert-change", "198.18.1.7", Some(8080), Some("http")),
        ("unauth-service", "enable-auth", "198.18.1.8", Some(6379), Some("redis")),
        ("unauth-service", "enable-auth", "198.18.1.8", Some(27017), Some("mongodb")),
        ("unauth-service", "enable-auth", "198.18.1.8", Some(11211), Some("memcached")),
        ("unauth-service", "enable-auth", "198.18.1.8", Some(9201), Some("elasticsearch")),
        ("unauth-service", "enable-auth", "198.18.1.8", Some(2375), Some("docker")),
        ("unauth-service", "enable-auth", "198.18.1.8", Some(2379), Some("etcd")),
        ("unauth-service", "enable-auth", "198.18.1.8", Some(10250), Some("kubelet")),
        ("unauth-service", "enable-auth", "198.18.1.8", Some(5984), Some("couchdb")),
    ])
}

fn groups_in(fs: &[Finding], lang: Lang) -> Vec<FixGroup> {
    fix_groups(
        fs,
        &policy(),
        &RemediationCatalog::embedded(),
        &Catalogue::embedded(),
        lang,
    )
}

/// The comment of one line of a block, if it has one: a whole-line `#`
/// or `::` comment, or a `  # ` comment after code.
fn comment(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if let Some(c) = t.strip_prefix('#').or_else(|| t.strip_prefix("::")) {
        return Some(c.trim());
    }
    line.find("  # ").map(|i| line[i + 4..].trim())
}

fn cjk(c: char) -> bool {
    ('\u{3000}'..='\u{9fff}').contains(&c) || ('\u{ff00}'..='\u{ffef}').contains(&c)
}

/// English prose words that never belong in a zh-CN comment (command
/// names, flags, paths, states such as `open|filtered` and Kubernetes
/// kinds are code, kept as written).
const ENGLISH: &[&str] = &[
    "the",
    "and",
    "or",
    "only",
    "when",
    "with",
    "from",
    "this",
    "that",
    "these",
    "every",
    "each",
    "not",
    "then",
    "first",
    "must",
    "rule",
    "rules",
    "port",
    "ports",
    "host",
    "hosts",
    "allow",
    "deny",
    "fix",
    "stays",
    "stay",
    "above",
    "below",
    "before",
    "after",
    "unless",
    "until",
    "nothing",
    "else",
    "other",
    "source",
    "sources",
    "admin",
    "group",
    "address",
    "addresses",
    "family",
    "keeps",
    "added",
    "deleted",
    "removed",
    "session",
    "works",
    "cancel",
    "rollback",
    "minutes",
    "make",
    "permanent",
    "checked",
    "result",
    "once",
    "find",
    "revoke",
    "remove",
    "instance",
    "members",
    "listed",
    "loses",
    "too",
    "affects",
    "shared",
    "is",
    "are",
    "be",
    "its",
    "to",
    "of",
    "in",
    "on",
    "for",
    "by",
    "as",
    "at",
    "any",
    "all",
    "need",
    "needs",
    "service",
    "The",
    "Fix",
    "Make",
    "Timed",
    "Deletes",
    "Removes",
    "Run",
    "Find",
    "Revoke",
    "Delete",
    "Remove",
    "Allow",
    "Hosts",
    "Security",
    "Preferred",
    "Or",
    "Set",
    "Test",
    "Keep",
    "Move",
    "Replace",
    "When",
    "Issue",
    "Put",
    "Restore",
    "Create",
    "Turn",
    "Established",
    "SET",
    "THIS",
    "Desired",
    "From",
    "more",
    "until",
    "instead",
    "below",
    "new",
];

/// Command words: an ASCII run that holds one is a command kept as code.
const COMMANDS: &[&str] = &[
    "sudo",
    "for",
    "kubectl",
    "git",
    "terraform",
    "openssl",
    "aws",
    "gcloud",
    "mongosh",
    "Install-Module",
    "systemctl",
    "ssh",
    "firewall-cmd",
    "nft",
    "Unregister-ScheduledTask",
    "openstack",
    "az",
];

/// Every comment line of every zh-CN fix block is Chinese: a line with no
/// Chinese character is a commented-out command, and no English prose word
/// is left between the Chinese (the words that remain are code: commands,
/// flags, paths, identifiers, states). The same fixes in English carry
/// those prose words, so the test reads what it claims to read.
#[test]
fn zh_cn_fix_comments_have_no_english_prose() {
    let fs = every_kind();
    let zh = groups_in(&fs, Lang::ZhCn);
    let en = groups_in(&fs, Lang::En);
    assert_eq!(zh.len(), en.len());
    let mut bad = Vec::new();
    let (mut lines, mut english_in_en) = (0, 0);
    for (gz, ge) in zh.iter().zip(&en) {
        assert_eq!(gz.platforms.len(), ge.platforms.len(), "{}", gz.key);
        for (pz, pe) in gz.platforms.iter().zip(&ge.platforms) {
            for (tz, te) in [
                (&pz.commands, &pe.commands),
                (&pz.undo, &pe.undo),
                (&pz.verify, &pe.verify),
            ] {
                // The same code lines in both languages.
                let code = |t: &str| -> Vec<String> {
                    t.lines()
                        .filter(|l| {
                            !l.trim_start().starts_with('#') && !l.trim_start().starts_with("::")
                        })
                        .map(|l| l.split("  # ").next().unwrap_or(l).to_owned())
                        .collect()
                };
                assert_eq!(code(tz), code(te), "{} {}", gz.key, pz.platform);
                for l in te.lines().filter_map(comment) {
                    english_in_en += prose_words(l).len().min(1);
                }
                for l in tz.lines().filter_map(comment) {
                    lines += 1;
                    if !l.chars().any(cjk) {
                        let first = l.split_whitespace().next().unwrap_or("");
                        let command = COMMANDS.contains(&first)
                            || first.starts_with('-')
                            || first.starts_with('{')
                            || first.starts_with('/')
                            || first.starts_with('<')
                            || first.contains('=')
                            || first.starts_with("portwarden")
                            || l.is_empty();
                        if !command {
                            bad.push(format!("{} {} (no Chinese): {l}", gz.key, pz.platform));
                        }
                        continue;
                    }
                    let words = prose_words(l);
                    if !words.is_empty() {
                        bad.push(format!("{} {} {words:?}: {l}", gz.key, pz.platform));
                    }
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} English comment lines:\n{}",
        bad.len(),
        bad.join("\n")
    );
    // Exact lines: the group line, a message with its placeholders filled,
    // a fail-closed variable and a policy-edit comment.
    let ufw = |gs: &[FixGroup]| {
        gs.iter()
            .find(|g| g.key == "restrict-source" && g.port == Some(22))
            .and_then(|g| g.platforms.iter().find(|p| p.platform == "ufw"))
            .unwrap()
            .commands
            .clone()
    };
    let (z, e) = (ufw(&zh), ufw(&en));
    assert!(
        z.starts_with("# portwarden: restrict-source 22/tcp (ssh)，主机：198.18.0.5\n"),
        "{z}"
    );
    assert!(
        e.starts_with("# portwarden: restrict-source 22/tcp (ssh) on 198.18.0.5\n"),
        "{e}"
    );
    assert!(
        z.contains("\n# 定时回滚：5 分钟后恢复本修复保存的规则，除非取消。\n"),
        "{z}"
    );
    assert!(e.contains(
        "\n# Timed rollback: restores this fix's saved rules in 5 minutes unless cancelled.\n"
    ));
    let policy = |gs: &[FixGroup]| {
        gs.iter()
            .find(|g| g.key == "add-host-to-policy")
            .unwrap()
            .platforms[0]
            .commands
            .clone()
    };
    assert!(
        policy(&zh).contains("# 把这些主机加入其所属资产组的 `targets`：\"dmz\"（第 2 行）, \"db\"（第 13 行）。\n# 或为它们声明一个资产组：\n[[group]]"),
        "{}",
        policy(&zh)
    );
    let aws = zh
        .iter()
        .find(|g| g.key == "close-port" && g.port == Some(6379))
        .and_then(|g| g.platforms.iter().find(|p| p.platform == "aws"))
        .unwrap();
    assert!(
        aws.commands.contains("\nREGION=''  # 请设置：<REGION>\n"),
        "{}",
        aws.commands
    );
    assert!(lines > 300, "only {lines} comment lines read");
    assert!(
        english_in_en > 200,
        "the English fixes have {english_in_en} prose lines"
    );
}

/// The English prose words of a comment, outside backticks, quotes and
/// command runs.
fn prose_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut in_tick = false;
    let mut text = String::new();
    for c in line.chars() {
        match c {
            '`' => in_tick = !in_tick,
            _ if in_tick => {}
            _ if cjk(c) => text.push('\n'),
            _ => text.push(c),
        }
    }
    for run in text.split('\n') {
        let tokens: Vec<&str> = run.split_whitespace().collect();
        if tokens.iter().any(|t| COMMANDS.contains(t)) {
            continue;
        }
        for t in tokens {
            let w = t.trim_matches(|c: char| !c.is_ascii_alphabetic());
            if ENGLISH.contains(&w)
                && t.chars()
                    .all(|c| c.is_ascii_alphabetic() || ",.;:()\"'?!".contains(c))
            {
                words.push(w.to_owned());
            }
        }
    }
    words
}

/// The unit of the message mechanism: a key a template uses must be in
/// both label files, and a message may not include another.
#[test]
fn a_message_missing_in_one_language_or_unknown_is_named() {
    let with = |en: &str, zh: &str| {
        let policy: String = super::messages::POLICY_KEYS
            .iter()
            .map(|k| format!("{k} = \"{k}\"\n"))
            .collect();
        FixMessages::from_texts([
            (
                Lang::En,
                format!("{en}[fix_policy]\n{policy}"),
                "rules/i18n/en.toml".to_string(),
            ),
            (
                Lang::ZhCn,
                format!("{zh}[fix_policy]\n{policy}"),
                "rules/i18n/zh-CN.toml".to_string(),
            ),
        ])
    };
    let e = with(
        "[fix_comment]\na = \"A\"\nb = \"B\"\n",
        "[fix_comment]\na = \"甲\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("i18n/en.toml:3: fix_comment.b is missing from")
            && e.ends_with("i18n/zh-CN.toml"),
        "{e}"
    );
    let m = with(
        "[fix_comment]\na = \"port {{port}}\"\n",
        "[fix_comment]\na = \"端口 {{port}}\"\n",
    )
    .unwrap();
    let tpl = |commands: &str| {
        format!(
            "[[fix]]\nkey = \"close-port\"\ntitle_en = \"C\"\ntitle_zh = \"C\"\nabout_en = \"C\"\nabout_zh = \"C\"\nplatforms = [\"x\"]\n\n[[platform]]\nid = \"x\"\ntitle_en = \"X\"\ntitle_zh = \"X\"\nlanguage = \"toml\"\ncommands = '''\n{commands}\n'''\nundo = \"u\"\nverify = \"v\"\n"
        )
    };
    let parse = |commands: &str| {
        RemediationCatalog::parse_with(&tpl(commands), "r.toml", FirewalldServices::default(), &m)
    };
    let ok = parse("# {{t \"a\"}}\necho").unwrap();
    let ctx = super::parse::samples("close-port")[0].clone();
    let pick = |lang| ok.render(&ctx, &[], lang)[0].commands.clone();
    assert_eq!(pick(Lang::En), "# port 22\necho");
    assert_eq!(pick(Lang::ZhCn), "# 端口 22\necho");
    let e = parse("# {{t \"nope\"}}").unwrap_err().to_string();
    assert!(
        e.starts_with("r.toml:15: platform 'x', commands: unknown message 'nope'"),
        "{e}"
    );
}

/// Hosts in no asset group have no allow list: their close-port fix never
/// says "not allowed" (issue 23); a fix over managed and unmanaged hosts
/// says how many are in none; managed hosts keep the usual text.
#[test]
fn unmanaged_hosts_are_not_told_the_port_is_not_allowed() {
    let close = |ip: &str| {
        finding(
            "high-risk-exposed",
            "close-port",
            ip,
            Some(6379),
            Some("redis"),
        )
    };
    let about = |fs: &[Finding], lang| groups_in(fs, lang)[0].about.clone();
    let unmanaged = [close("198.18.7.1"), close("198.18.7.2")];
    assert!(unmanaged.iter().all(|f| f.group.is_none()));
    assert_eq!(
        about(&unmanaged, Lang::En),
        "No allow list covers the port: the hosts are in no asset group (bring them under the policy with its own fix). Until then, block the port in the host firewall and the cloud control, and stop the service if nothing needs it. An administration port keeps its admin sources allowed, so the fix cannot lock you out."
    );
    assert!(
        about(&unmanaged, Lang::ZhCn)
            .starts_with("没有放行清单覆盖该端口：这些主机不属于任何资产组")
    );
    let managed = [close("198.18.1.3")];
    assert!(about(&managed, Lang::En).starts_with("The port is open but not allowed: "));
    let mixed = [
        close("198.18.1.3"),
        close("198.18.7.1"),
        close("198.18.7.2"),
    ];
    let gs = groups_in(&mixed, Lang::En);
    assert_eq!(gs.len(), 1, "one fix for the three hosts");
    assert!(
        gs[0].about.starts_with("The port is open but not allowed: ")
            && gs[0].about.ends_with(
                " 2 of these hosts are in no asset group: no allow list covers them (the policy fix brings them under one)."
            ),
        "{}",
        gs[0].about
    );
    assert!(about(&mixed, Lang::ZhCn).ends_with(
        "其中 2 台主机不属于任何资产组：没有放行清单覆盖它们（策略修复可将其纳入资产组）。"
    ));
    // restrict-source for unmanaged hosts: no "the group's admin_sources".
    let ssh = [ssh("198.18.7.3")];
    let text = about(&ssh, Lang::En);
    assert!(
        text.starts_with(
            "The port may stay open, but only to the admin sources. The hosts are in no asset group"
        ),
        "{text}"
    );
}
