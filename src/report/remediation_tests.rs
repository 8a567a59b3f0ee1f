//! Tests of the remediation catalogue and of `fix_groups`. The rendered
//! fixes of a few scenarios are golden files in `tests/golden/remediation/`,
//! compared byte for byte; regenerate them with
//! `PORTWARDEN_BLESS=1 cargo test --lib report::remediation`.

use super::*;
use crate::model::FindingStatus;
use crate::rules::RemediationRulesError;
use crate::testkit::{FixRow, PolicyToml, finding_in, findings_in, profiles};

/// The remediation tests' policy: an internet-facing group with declared
/// admin sources and one incomplete allowance, an internal group, and an
/// expired exception. Its line numbers are in the golden files.
pub(super) fn policy_text() -> String {
    PolicyToml::default()
        .line("")
        .group_over("dmz", &["198.18.0.0/28", "2001:2::/120"])
        .line("vantage = \"internet\"")
        .line("admin_sources = [\"198.18.5.0/24\", \"2001:2:5::/64\"]")
        .line("")
        .allow_only(22, &["service = \"ssh\"", "justification = \"bastion\""])
        .line("")
        .group("db", "198.18.1.0/28")
        .line("")
        .exception(
            Some("telnet-legacy"),
            "198.18.1.2",
            23,
            &[
                "reason = \"legacy switch\"",
                "approver = \"ops\"",
                "expires = 2026-01-31",
            ],
        )
        .toml()
        .to_string()
}

pub(super) fn policy() -> Policy {
    Policy::parse(&policy_text(), "policy.toml", &profiles()).unwrap()
}

/// The failing finding of `check` on `ip:port` with remediation `key`
/// against [`policy`].
pub(super) fn finding(
    check: &str,
    key: &str,
    ip: &str,
    port: Option<u16>,
    service: Option<&str>,
) -> Finding {
    finding_in(&policy(), (check, key, ip, port, service))
}

/// The fixtures of the firewall snippets' syntax checks: SSH restricted to
/// the admin sources, and ports closed over both families and protocols.
#[rustfmt::skip]
const FIREWALL_SNIPPETS: [FixRow<'static>; 3] = [
    ("remote-admin-internet", "restrict-source", "198.18.0.5", Some(22), Some("ssh")),
    ("not-allowed", "close-port", "2001:2::9", Some(161), Some("snmp")),
    ("not-allowed", "close-port", "198.18.1.3", Some(6379), Some("redis")),
];

/// [`finding`] of each row.
pub(super) fn fixes(rows: &[FixRow]) -> Vec<Finding> {
    findings_in(&policy(), rows)
}

pub(super) fn groups(findings: &[Finding]) -> Vec<FixGroup> {
    fix_groups(
        findings,
        &policy(),
        &RemediationCatalog::embedded(),
        &Catalogue::embedded(),
        Lang::En,
    )
}

fn platform<'a>(g: &'a FixGroup, id: &str) -> &'a PlatformFix {
    g.platforms
        .iter()
        .find(|p| p.platform == id)
        .unwrap_or_else(|| panic!("{} has no {id}", g.key))
}

/// One text for a list of groups, as the golden files hold it.
fn render_text(gs: &[FixGroup]) -> String {
    let mut out = String::new();
    for g in gs {
        out.push_str(&format!(
            "=== fix {} {} {:?}/{:?} {:?} hosts={:?} findings={:?}\n",
            g.id, g.key, g.port, g.proto, g.service, g.hosts, g.finding_ids
        ));
        for p in &g.platforms {
            out.push_str(&format!("--- {} [{}]\n", p.platform, p.language));
            if let Some(w) = &p.warning {
                out.push_str(&format!("warning: {w}\n"));
            }
            out.push_str(&format!(
                "{}\n-- undo\n{}\n-- verify\n{}\n",
                p.commands, p.undo, p.verify
            ));
        }
    }
    out
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/remediation")
        .join(format!("{name}.txt"));
    if std::env::var_os("PORTWARDEN_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run PORTWARDEN_BLESS=1 cargo test --lib report::remediation",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name} differs from {}; if the change is intended, run \
         PORTWARDEN_BLESS=1 cargo test --lib report::remediation",
        path.display()
    );
}

#[test]
fn embedded_catalogue_loads_and_every_check_key_has_a_fix() {
    let cat = RemediationCatalog::embedded();
    for c in profiles().checks() {
        assert!(
            cat.fix(&c.remediation).is_some(),
            "check {} uses key {} with no [[fix]]",
            c.kind.as_str(),
            c.remediation
        );
    }
    let ids: Vec<&str> = cat.platforms().iter().map(|p| p.id.as_str()).collect();
    for id in [
        "openstack",
        "windows-dsc",
        "terraform-azure",
        "terraform-gcp",
        "terraform-alicloud",
        "policy",
    ] {
        assert!(ids.contains(&id), "{id}");
    }
}

#[test]
fn ssh_restrict_source_keeps_admin_sources_and_has_rollback_golden() {
    #[rustfmt::skip]
    let fs = fixes(&[
        ("remote-admin-internet", "restrict-source", "198.18.0.5", Some(22), Some("ssh")),
        ("remote-admin-internet", "restrict-source", "198.18.0.6", Some(22), Some("ssh")),
    ]);
    let gs = groups(&fs);
    assert_eq!(gs.len(), 1, "two hosts, one fix");
    let g = &gs[0];
    assert_eq!(g.hosts.len(), 2);
    assert_eq!(g.finding_ids.len(), 2);
    for id in [
        "ufw",
        "iptables",
        "nftables",
        "firewalld",
        "windows-powershell",
    ] {
        let p = platform(g, id);
        assert!(
            p.warning.as_deref().unwrap().starts_with("WARNING: 22/tcp"),
            "{id}"
        );
        assert!(p.commands.contains("198.18.5.0/24"), "{id}");
        assert!(
            !p.commands.contains("2001:2:5::/64"),
            "{id}: v6 source on v4 hosts"
        );
        assert!(!p.undo.is_empty() && !p.verify.is_empty(), "{id}");
    }
    for id in ["ufw", "iptables", "nftables", "firewalld"] {
        assert!(
            platform(g, id)
                .commands
                .contains("systemd-run --on-active=300"),
            "{id}: timed rollback"
        );
    }
    assert!(
        platform(g, "windows-powershell")
            .commands
            .contains("Register-ScheduledTask")
    );
    // iptables: the drop goes right after the ESTABLISHED accept, never at the top.
    let ipt = &platform(g, "iptables").commands;
    assert!(!ipt.contains("-I INPUT -p tcp --dport 22 -j DROP"));
    assert!(ipt.contains("-I INPUT \"$POS\" -p tcp --dport 22"));
    // netsh cannot restrict without a bare block: left out.
    assert!(g.platforms.iter().all(|p| p.platform != "windows-netsh"));
    golden("ssh-restrict-source", &render_text(&gs));
}

#[test]
fn close_port_of_an_admin_port_is_never_a_bare_deny() {
    let fs = [close("198.18.1.2", 22, "ssh")];
    let g = &groups(&fs)[0];
    // No admin_sources in group "db": a placeholder, never a deny-all.
    for p in &g.platforms {
        if [
            "ufw",
            "iptables",
            "nftables",
            "firewalld",
            "windows-powershell",
        ]
        .contains(&p.platform.as_str())
        {
            assert!(p.commands.contains("SET THIS"), "{}", p.platform);
        }
        assert!(!p.commands.contains("disable --now ssh"), "{}", p.platform);
    }
    assert!(g.platforms.iter().all(|p| p.platform != "systemd"));
    let w = platform(g, "iptables").warning.as_deref().unwrap();
    assert!(w.contains("declares no admin_sources"), "{w}");
    // A database restricted without admin sources warns too, without the lock-out text.
    #[rustfmt::skip]
    let fs = fixes(&[
        ("database-internet", "restrict-source", "198.18.1.3", Some(6379), Some("redis")),
    ]);
    let g = &groups(&fs)[0];
    let w = platform(g, "nftables").warning.as_deref().unwrap();
    assert!(w.starts_with("The group declares no admin_sources"), "{w}");
}

#[test]
fn close_port_golden_for_tcp_v4_and_udp_v6() {
    #[rustfmt::skip]
    let fs = fixes(&[
        ("not-allowed", "close-port", "198.18.1.3", Some(6379), Some("redis")),
        ("not-allowed", "close-port", "198.18.1.4", Some(6379), Some("redis")),
        ("not-allowed", "close-port", "2001:2::9", Some(161), Some("snmp")),
    ]);
    let gs = groups(&fs);
    assert_eq!(gs.len(), 2);
    let redis = gs.iter().find(|g| g.port == Some(6379)).unwrap();
    assert!(
        platform(redis, "systemd")
            .commands
            .contains("disable --now redis-server")
    );
    assert!(
        platform(redis, "firewalld")
            .commands
            .contains("family=\"ipv4\" port port=\"6379\" protocol=\"tcp\" drop")
    );
    // Cloud commands are scoped to the hosts.
    assert!(
        platform(redis, "azure")
            .commands
            .contains("DEST='198.18.1.3 198.18.1.4'")
    );
    assert!(
        platform(redis, "azure")
            .commands
            .contains("--destination-address-prefixes $DEST --destination-port-ranges 6379")
    );
    assert!(
        platform(redis, "gcp")
            .commands
            .contains("--target-tags=\"${TARGET_TAG}\"")
    );
    assert!(
        platform(redis, "aliyun")
            .commands
            .contains("--Permissions.1.DestCidrIp \"$h/32\"")
    );
    assert!(
        !platform(redis, "aws")
            .commands
            .contains("create-network-acl-entry")
    );
    let snmp = gs.iter().find(|g| g.port == Some(161)).unwrap();
    assert!(
        platform(snmp, "kubernetes")
            .commands
            .contains("protocol: UDP")
    );
    assert!(
        platform(snmp, "iptables")
            .commands
            .contains("sudo ip6tables")
    );
    golden("close-port", &render_text(&gs));
}

#[test]
fn policy_fixes_edit_the_entry_and_touch_no_firewall() {
    #[rustfmt::skip]
    let mut fs = fixes(&[
        ("allowed-unjustified", "document-justification", "198.18.0.5", Some(22), Some("ssh")),
        ("exception-expired", "renew-or-remove-exception", "198.18.1.2", Some(23), Some("telnet")),
        ("unmanaged-host", "add-host-to-policy", "198.18.9.9", None, None),
    ]);
    fs[1].exception = Some("telnet-legacy".into());
    let gs = groups(&fs);
    assert_eq!(gs.len(), 3);
    for g in &gs {
        let ids: Vec<&str> = g.platforms.iter().map(|p| p.platform.as_str()).collect();
        assert_eq!(ids, ["policy"], "{}", g.key);
    }
    let doc = gs
        .iter()
        .find(|g| g.key == "document-justification")
        .unwrap();
    let text = &doc.platforms[0].commands;
    assert!(
        text.contains("policy.toml:8: the [[group.allow]] entry for 22/tcp in group \"dmz\""),
        "{text}"
    );
    assert!(text.contains("justification = \"bastion\""));
    assert!(text.contains("approver = \"<APPROVER>\""));
    let exc = gs
        .iter()
        .find(|g| g.key == "renew-or-remove-exception")
        .unwrap();
    assert!(exc.platforms[0].commands.contains("expired on 2026-01-31"));
    let host = gs.iter().find(|g| g.key == "add-host-to-policy").unwrap();
    assert!(
        host.platforms[0]
            .commands
            .contains("targets = [\"198.18.9.9\"]")
    );
    golden("policy-fixes", &render_text(&gs));
}

#[test]
fn enable_auth_and_replace_cleartext_are_per_service() {
    #[rustfmt::skip]
    let fs = fixes(&[
        ("unauth-service", "enable-auth", "198.18.1.3", Some(6379), Some("redis")),
        ("unauth-service", "enable-auth", "198.18.1.3", Some(27017), Some("mongodb")),
        ("unauth-service", "enable-auth", "198.18.1.3", Some(10250), Some("kubelet")),
        ("cleartext-admin", "replace-cleartext", "198.18.1.3", Some(23), Some("telnet")),
    ]);
    let gs = groups(&fs);
    let by = |port| &gs.iter().find(|g| g.port == Some(port)).unwrap().platforms[0].commands;
    assert!(by(6379).contains("requirepass") && by(6379).contains("protected-mode yes"));
    assert!(by(27017).contains("authorization: enabled"));
    assert!(by(10250).contains("anonymous:\n    enabled: false"));
    assert!(by(23).contains("openssh-server"));
    golden("service-fixes", &render_text(&gs));
}

#[test]
fn firewalld_service_names_come_from_firewalld_list() {
    let fw = RemediationCatalog::embedded().firewalld().clone();
    assert_eq!(fw.lookup("smb", 445, Proto::Tcp), Some("samba"));
    assert_eq!(fw.lookup("rdp", 3389, Proto::Tcp), Some("rdp"));
    assert_eq!(fw.lookup("ssh", 22, Proto::Tcp), Some("ssh"));
    // firewalld has no service for 8080, nor "ssh" on another port.
    assert_eq!(fw.lookup("http-proxy", 8080, Proto::Tcp), None);
    assert_eq!(fw.lookup("ssh", 2222, Proto::Tcp), None);
    let fs = [close("198.18.1.3", 8080, "http-proxy")];
    let gs = groups(&fs);
    let cmds = &platform(&gs[0], "firewalld").commands;
    assert!(!cmds.contains("--remove-service"), "{cmds}");
    assert!(
        cmds.contains("port port=\"8080\" protocol=\"tcp\" drop"),
        "{cmds}"
    );
    let bad = FirewalldServices::parse("ssh 22/tcp\nalias smb = sambaa\n", "fw.txt").unwrap_err();
    assert_eq!(
        bad.to_string(),
        "fw.txt:2:1: alias 'smb': firewalld has no service 'sambaa'"
    );
}

#[test]
fn fix_ids_are_stable_and_families_and_sources_split_groups() {
    #[rustfmt::skip]
    let fs = fixes(&[
        ("not-allowed", "close-port", "198.18.0.5", Some(3306), Some("mysql")),
        ("not-allowed", "close-port", "198.18.1.5", Some(3306), Some("mysql")),
        ("not-allowed", "close-port", "2001:2::5", Some(3306), Some("mysql")),
    ]);
    let a = groups(&fs);
    assert_eq!(a.len(), 3, "dmz v4, db v4 (other sources), dmz v6");
    let b = groups(&fs[..1]);
    assert_eq!(
        a.iter().find(|g| g.hosts == b[0].hosts).unwrap().id,
        b[0].id
    );
    assert_eq!(b[0].id.len(), 12);
    // Waived findings get no fix.
    let mut w = fs[0].clone();
    w.status = FindingStatus::Waived;
    assert!(groups(&[w]).is_empty());
}

#[test]
fn unknown_placeholder_fails_at_load_naming_platform_and_line() {
    let text = "[[fix]]\nkey = \"close-port\"\ntitle_en = \"a\"\ntitle_zh = \"a\"\nabout_en = \"a\"\nabout_zh = \"a\"\nplatforms = [\"x\"]\n\n[[platform]]\nid = \"x\"\ntitle_en = \"x\"\ntitle_zh = \"x\"\nlanguage = \"sh\"\ncommands = '''\nblock {{prot}}\n'''\nundo = \"u\"\nverify = \"v\"\n";
    let e = RemediationCatalog::parse(text, "r.toml", FirewalldServices::default()).unwrap_err();
    assert!(
        e.to_string().starts_with("r.toml:15: platform 'x', commands: unknown placeholder {{prot}} (did you mean {{proto}}?)"),
        "{e}"
    );
    let text = text
        .replace("{{prot}}", "{{port}}")
        .replace("[\"x\"]", "[\"y\"]");
    let e = RemediationCatalog::parse(&text, "r.toml", FirewalldServices::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("r.toml:1: fix 'close-port': unknown platform 'y'"),
        "{e}"
    );
}

#[test]
fn nftables_rules_pass_nft_check() {
    // `nft -c` checks without applying; in a fresh network namespace so that
    // even a bug could not touch this machine's ruleset.
    if !Path::new("/usr/sbin/nft").exists() {
        assert!(std::env::var("CI").is_err(), "nft missing under CI");
        return;
    }
    let fs = fixes(&FIREWALL_SNIPPETS);
    let mut script = String::from(
        "table inet filter {\n chain input {\n  type filter hook input priority 0;\n  ct state established,related accept\n }\n}\n",
    );
    for g in groups(&fs) {
        for line in platform(&g, "nftables").commands.lines() {
            if let Some((_, rule)) = line.split_once("sudo nft add rule ") {
                // Drop the shell's quoting, the loop and the position (the handle
                // of a rule that exists only on the real host).
                let rule = rule
                    .trim_end_matches("; done")
                    .replace("position \"$H\" ", "")
                    .replace("\"$s\"", "198.18.5.0/24")
                    .replace("\\\"", "\"");
                script.push_str(&format!("add rule {rule}\n"));
            }
        }
    }
    assert_eq!(script.matches("add rule").count(), 4, "{script}");
    let out = std::process::Command::new("unshare")
        .args(["-n", "nft", "-c", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(script.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn terraform_snippets_parse_as_hcl() {
    let fs = fixes(&FIREWALL_SNIPPETS);
    let mut seen = 0;
    for g in groups(&fs) {
        for p in g.platforms.iter().filter(|p| p.language == "hcl") {
            let body: hcl::Body = hcl::from_str(&p.commands)
                .unwrap_or_else(|e| panic!("{} {}: {e}\n{}", g.key, p.platform, p.commands));
            if p.platform != "terraform" || g.key == "restrict-source" {
                assert!(body.blocks().count() >= 1, "{}: no resource", p.platform);
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 12);
}

#[test]
fn tidy_keeps_single_blank_lines_only() {
    assert_eq!(tidy("\n\na\n\n\n b  \n\n"), "a\n\n b");
}

#[test]
fn admin_sources_are_parsed_per_group_and_checked() {
    let p = policy();
    let dmz = &p.groups[0];
    assert_eq!(
        dmz.admin_sources,
        vec![
            "198.18.5.0/24".parse::<IpNet>().unwrap(),
            "2001:2:5::/64".parse().unwrap()
        ]
    );
    assert!(p.groups[1].admin_sources.is_empty());
    let bad = "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.1\"]\nadmin_sources = [\"198.18.5.0/33\"]\n";
    let e = Policy::parse(bad, "p.toml", &profiles()).unwrap_err();
    assert!(
        e.to_string().contains("p.toml:4:18") && e.to_string().contains("not an address or a CIDR"),
        "{e}"
    );
}

#[test]
fn unapproved_change_offers_the_change_record_or_the_revert() {
    #[rustfmt::skip]
    let fs = fixes(&[
        ("unapproved-change", "approve-or-revert-change", "198.18.1.3", Some(8080), Some("http-proxy")),
    ]);
    let g = &groups(&fs)[0];
    let ids: Vec<&str> = g.platforms.iter().map(|p| p.platform.as_str()).collect();
    assert_eq!(ids[..3], ["policy", "ufw", "iptables"]);
    let record = &g.platforms[0].commands;
    assert!(
        record.contains("[[change]]\nticket = \"<TICKET>\""),
        "{record}"
    );
    assert!(
        record.contains("target = \"db\"\nopens = [8080]\nproto = \"tcp\""),
        "{record}"
    );
    // The revert closes the port.
    assert!(
        platform(g, "iptables")
            .commands
            .contains("--dport 8080 -m comment --comment portwarden-")
    );
}

fn parse_err(toml: &str) -> RemediationError {
    RemediationCatalog::parse(toml, "test.toml", FirewalldServices::default()).unwrap_err()
}

/// A platform without its templates: lines 1-5 of the test files.
const HEAD: &str =
    "[[platform]]\nid = \"demo\"\ntitle_en = \"Demo\"\ntitle_zh = \"演示\"\nlanguage = \"sh\"\n";

#[test]
fn unknown_placeholder_in_an_untaken_branch_is_still_found() {
    let toml = format!(
        "{HEAD}commands = \"x\"\nundo = \"u\"\nverify = '''\nok\n{{{{#if udp}}}}\n\
         {{{{#unless ipv6}}}}{{{{hostname}}}}{{{{/unless}}}}\n{{{{/if}}}}\n'''\n"
    );
    let err = parse_err(&toml);
    assert!(
        matches!(&err, RemediationError::UnknownPlaceholder { line: 11, place, name, .. }
            if place == "platform 'demo', verify" && name == "hostname"),
        "{err:?}"
    );
}

#[test]
fn partials_are_checked_too() {
    let toml = format!(
        "[partials]\nrecheck = \"portwarden scan {{{{host}}}}\"\n\n\
         {HEAD}commands = \"{{{{> recheck}}}}\"\nundo = \"u\"\nverify = \"v\"\n"
    );
    let err = parse_err(&toml);
    assert!(
        matches!(&err, RemediationError::UnknownPlaceholder { line: 2, place, name, .. }
            if place == "partial 'recheck'" && name == "host"),
        "{err:?}"
    );
    let toml = format!("{HEAD}commands = \"{{{{> nowhere}}}}\"\nundo = \"u\"\nverify = \"v\"\n");
    assert_eq!(
        parse_err(&toml).to_string(),
        "test.toml:6: platform 'demo', commands: unknown partial 'nowhere'; \
         known: none (define them under [partials])"
    );
}

#[test]
fn a_partial_cannot_include_a_partial_and_a_file_needs_a_platform() {
    let toml = format!(
        "[partials]\na = \"{{{{> b}}}}\"\nb = \"x\"\n\n{HEAD}commands = \"c\"\nundo = \"u\"\nverify = \"v\"\n"
    );
    assert_eq!(
        parse_err(&toml).to_string(),
        "test.toml:2: partial 'a': '{{> b}}': a partial cannot include another partial"
    );
    assert_eq!(
        parse_err("# nothing here\n").to_string(),
        "test.toml:1: no [[platform]] entries: a remediation file needs at least one"
    );
}

#[test]
fn unsupported_helpers_and_syntax_errors_are_reported_with_the_line() {
    let toml = format!(
        "{HEAD}commands = \"{{{{#each port}}}}x{{{{/each}}}}\"\nundo = \"u\"\nverify = \"v\"\n"
    );
    assert_eq!(
        parse_err(&toml).to_string(),
        "test.toml:6: platform 'demo', commands: unsupported helper 'each'; \
         known: if, unless, eq, ne, and, or, not"
    );
    let toml = format!(
        "{HEAD}commands = \"ok\"\nundo = \"u\"\nverify = '''\nline one\n{{{{#if udp}}}}\n'''\n"
    );
    let err = parse_err(&toml);
    // The unclosed block is noticed where the template ends.
    assert!(
        err.to_string()
            .starts_with("test.toml:11: platform 'demo', verify: invalid handlebars syntax"),
        "{err}"
    );
}

#[test]
fn toml_errors_and_bad_fields_name_file_and_line() {
    let err = parse_err("[[platform]]\nid = \"demo\"\ntitle_en = \n");
    assert!(
        matches!(&err, RemediationError::Rules(RemediationRulesError::Toml { file, line: 3, .. }) if file == "test.toml"),
        "{err:?}"
    );
    let err = parse_err(&format!(
        "{HEAD}commands = \"a\"\nundo = \"u\"\nverify = \"b\"\ncolour = \"red\"\n"
    ));
    assert!(
        matches!(&err, RemediationError::Rules(RemediationRulesError::Toml { line: 9, message, .. }) if message.contains("colour")),
        "{err:?}"
    );
    // Every platform needs its undo.
    let err = parse_err(&format!("{HEAD}commands = \"a\"\nverify = \"b\"\n"));
    assert!(
        matches!(&err, RemediationError::Rules(RemediationRulesError::Toml { message, .. }) if message.contains("undo")),
        "{err:?}"
    );
    let one = format!("{HEAD}commands = \"a\"\nundo = \"u\"\nverify = \"b\"\n");
    assert_eq!(
        parse_err(&format!("{one}\n{one}")).to_string(),
        "test.toml:10: platform id 'demo' is used twice"
    );
    let fix = "[[fix]]\nkey = \"close-port\"\ntitle_en = \"a\"\ntitle_zh = \"a\"\nabout_en = \"a\"\nabout_zh = \"a\"\nplatforms = [\"demo\"]\n\n";
    assert_eq!(
        parse_err(&format!("{fix}{fix}{one}")).to_string(),
        "test.toml:9: fix key 'close-port' is used twice"
    );
    let bad_id = one.replace("\"demo\"", "\"Demo Platform\"");
    assert_eq!(
        parse_err(&bad_id).to_string(),
        "test.toml:1: platform id 'Demo Platform': use lower-case letters, digits and '-'"
    );
}

#[test]
fn templates_render_without_html_escaping_and_load_dir_overrides() {
    let fix = "[[fix]]\nkey = \"close-port\"\ntitle_en = \"a\"\ntitle_zh = \"a\"\nabout_en = \"a\"\nabout_zh = \"a\"\nplatforms = [\"demo\"]\n\n";
    let toml = format!(
        "{fix}{HEAD}commands = '''\necho \"<A>\" 'b' & {{{{finding}}}}\n'''\nundo = \"u {{{{tag}}}}\"\n\
         verify = \"{{{{host_cidrs}}}} {{{{any_cidr}}}} {{{{ip_family}}}} {{{{proto_title}}}}\"\n"
    );
    let dir = std::env::temp_dir().join(format!("portwarden-remed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("remediation.toml"), &toml).unwrap();
    std::fs::write(dir.join("firewalld-services.txt"), "ssh 22/tcp\n").unwrap();
    let load = || {
        let rules = crate::rules::Rules::load(Some(&dir)).map_err(|e| e.to_string())?;
        RemediationCatalog::from_rules(&rules).map_err(|e| e.to_string())
    };
    let c = load();
    std::fs::write(dir.join("firewalld-services.txt"), "alias a = b\n").unwrap();
    let bad = load().unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        bad.ends_with("firewalld-services.txt:1:1: alias 'a': firewalld has no service 'b'"),
        "{bad}"
    );
    let c = c.unwrap();
    assert_eq!(c.firewalld().lookup("ssh", 22, Proto::Tcp), Some("ssh"));
    let ctx = &samples("close-port")[1];
    let r = c.render(ctx, &[], Lang::En);
    assert_eq!(
        (
            r[0].commands.as_str(),
            r[0].undo.as_str(),
            r[0].verify.as_str(),
            r[0].verify_language.as_str()
        ),
        (
            // Handlebars output unescaped; a placeholder becomes a checked variable.
            "A=''  # SET THIS: <A>\n: \"${A:?set A}\" && {\necho \"${A}\" 'b' & close-port 161/udp on 2001:2::5\n}",
            "u portwarden-0123456789ab",
            "2001:2::5/128 ::/0 ipv6 Udp",
            "sh"
        )
    );
}

#[test]
fn a_page_names_the_first_hosts_and_fixes_jsonl_keeps_them_all() {
    // 40 unmanaged hosts with 3389 open: one group, wider than a page.
    let hosts: Vec<String> = (1..=40).map(|i| format!("198.18.9.{i}")).collect();
    let fs: Vec<Finding> = hosts
        .iter()
        .map(|h| finding("port-not-allowed", "close-port", h, Some(3389), Some("rdp")))
        .collect();
    let gs = groups(&fs);
    assert_eq!(gs.len(), 1);
    let g = &gs[0];
    assert_eq!(g.hosts.len(), 40);
    assert!(g.page_is_cut());
    assert_eq!(g.page_fixes().len(), g.platforms.len());
    // The Azure deny names its destinations: all 40 in full, 24 on a page.
    let full = &platform(g, "azure").commands;
    let page = &g
        .page_fixes()
        .iter()
        .find(|p| p.platform == "azure")
        .unwrap()
        .commands;
    assert!(full.contains("198.18.9.40'"));
    assert!(page.contains("198.18.9.24'"));
    assert!(!page.contains("198.18.9.25 ") && !page.contains("198.18.9.40"));
    // The header counts every host, on the page too.
    assert!(page.starts_with("# portwarden: close-port 3389/tcp (rdp) on 198.18.9.1, "));
    assert!(page.lines().next().unwrap().ends_with(" and 34 more"));
    // A group within a page has no second rendering.
    let small = groups(&fs[..PAGE_HOSTS]);
    assert!(!small[0].page_is_cut());

    // report.json keeps the platform ids; fixes.jsonl the texts; read_fixes
    // joins them back to what was rendered.
    let dir = std::env::temp_dir().join(format!("pw-fixes-jsonl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let json = serde_json::to_value(&gs).unwrap();
    let ids: Vec<&str> = g.platforms.iter().map(|p| p.platform.as_str()).collect();
    assert_eq!(json[0]["platforms"], serde_json::json!(ids));
    assert!(json[0].get("page_platforms").is_none());
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_vec(&serde_json::json!({ "fix_groups": json })).unwrap(),
    )
    .unwrap();
    let mut lines = Vec::new();
    write_fixes_jsonl(&mut lines, &gs).unwrap();
    assert_eq!(
        lines.iter().filter(|b| **b == b'\n').count(),
        g.platforms.len()
    );
    std::fs::write(dir.join(FIXES_JSONL), &lines).unwrap();
    let back = read_fixes(&dir).unwrap();
    assert_eq!(back[0].platforms, g.platforms);
    assert_eq!(back[0].hosts, g.hosts);
    // A line for a fix report.json does not know is named by its number.
    let mut bad = lines.clone();
    bad.extend_from_slice(b"{\"fix\":\"000000000000\",\"platform\":\"ufw\",\"title\":\"t\",\"language\":\"sh\",\"verify_language\":\"sh\",\"commands\":\"\",\"undo\":\"\",\"verify\":\"\"}\n");
    std::fs::write(dir.join(FIXES_JSONL), &bad).unwrap();
    let e = read_fixes(&dir).unwrap_err().to_string();
    let n = g.platforms.len() + 1;
    assert!(
        e.contains(&format!(
            "line {n}: fix '000000000000' is not in report.json"
        )),
        "{e}"
    );
    // A report from before fixes.jsonl (texts inline) still reads.
    std::fs::remove_file(dir.join(FIXES_JSONL)).unwrap();
    let mut inline = serde_json::to_value(&gs).unwrap();
    inline[0]["platforms"] = serde_json::to_value(&g.platforms).unwrap();
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_vec(&serde_json::json!({ "fix_groups": inline })).unwrap(),
    )
    .unwrap();
    assert_eq!(read_fixes(&dir).unwrap()[0].platforms, g.platforms);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A restrict-source finding on 22/tcp (ssh).
pub(super) fn ssh(ip: &str) -> Finding {
    finding(
        "remote-admin-internet",
        "restrict-source",
        ip,
        Some(22),
        Some("ssh"),
    )
}

/// A close-port finding.
pub(super) fn close(ip: &str, port: u16, service: &str) -> Finding {
    finding("not-allowed", "close-port", ip, Some(port), Some(service))
}

/// Runs shell text under bash with no PATH: every external command it
/// tries is logged (bash's command_not_found_handle) instead of run.
/// Returns (exit code, commands tried, stderr).
fn run_inert(text: &str) -> (i32, Vec<String>, String) {
    let script = format!(
        "command_not_found_handle() {{ printf 'RAN %s\\n' \"$*\" >&3; return 0; }}\nsudo() {{ printf 'RAN %s\\n' \"$*\" >&3; }}\n{text}\n"
    );
    let dir = std::env::temp_dir().join(format!(
        "pw-inert-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let out = std::process::Command::new("/bin/bash")
        .arg("-c")
        .arg(format!(
            "exec 3>'{}'; PATH=/nonexistent; {script}",
            log.display()
        ))
        .current_dir(&dir)
        .env_clear()
        .output()
        .unwrap();
    let ran = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        ran,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[test]
fn placeholders_fail_closed_nothing_runs_until_they_are_set() {
    // ssh on a host whose group ("db") declares no admin_sources.
    let fs = [close("198.18.1.2", 22, "ssh")];
    let g = &groups(&fs)[0];
    let mut checked = 0;
    for p in g.platforms.iter().filter(|p| p.language == "sh") {
        let (code, ran, err) = run_inert(&p.commands);
        assert_ne!(code, 0, "{}: ran to the end\n{}", p.platform, p.commands);
        assert!(
            ran.is_empty(),
            "{}: ran {ran:?}\n{}",
            p.platform,
            p.commands
        );
        if ["ufw", "iptables", "nftables", "firewalld"].contains(&p.platform.as_str()) {
            assert!(err.contains("set the"), "{}: {err}", p.platform);
        }
        checked += 1;
    }
    // ufw, iptables, nftables, firewalld, aws, azure, gcp, aliyun, openstack.
    assert_eq!(checked, 9);
    // With the sources declared, the same blocks run (each command once, as the real tools would).
    let fs = [ssh("198.18.0.5")];
    let g = &groups(&fs)[0];
    let (code, ran, err) = run_inert(&platform(g, "ufw").commands);
    assert_eq!(code, 0, "{err}");
    let tag = format!("portwarden-{}", g.id);
    assert_eq!(
        ran.iter()
            .filter(|l| l.contains("ufw prepend"))
            .cloned()
            .collect::<Vec<_>>(),
        vec![
            format!("RAN ufw prepend deny proto tcp from 0.0.0.0/1 to any port 22 comment {tag}"),
            format!("RAN ufw prepend deny proto tcp from 128.0.0.0/1 to any port 22 comment {tag}"),
            format!(
                "RAN ufw prepend allow proto tcp from 198.18.5.0/24 to any port 22 comment {tag}"
            ),
        ]
    );
}

#[test]
fn nothing_permanent_runs_before_the_rollback_is_cancelled() {
    let fs = [ssh("198.18.0.5")];
    let g = &groups(&fs)[0];
    for p in &g.platforms {
        let lines: Vec<&str> = p.commands.lines().collect();
        let cancel = lines.iter().position(|l| l.contains("cancel the rollback"));
        for (i, l) in lines.iter().enumerate() {
            if l.contains("--runtime-to-permanent") || l.contains("netfilter-persistent save") {
                assert!(l.trim_start().starts_with('#'), "{}: {l}", p.platform);
                assert!(
                    cancel.is_some_and(|c| c < i),
                    "{}: before the cancel",
                    p.platform
                );
            }
        }
    }
    // firewalld changes the running configuration only.
    let fw = &platform(g, "firewalld").commands;
    assert!(!fw.contains("--permanent"), "{fw}");
    assert!(
        !fw.contains("--remove-service") && !fw.contains("--remove-port"),
        "{fw}"
    );
}

#[test]
fn one_identity_per_fix_group_in_every_name() {
    // The same port in both families: two groups, two names, nothing shared.
    let fs = [ssh("198.18.0.5"), ssh("2001:2::5")];
    let gs = groups(&fs);
    assert_eq!(gs.len(), 2);
    assert_ne!(gs[0].id, gs[1].id);
    for (g, other) in [(&gs[0], &gs[1]), (&gs[1], &gs[0])] {
        let tag = format!("portwarden-{}", g.id);
        for p in &g.platforms {
            let all = format!("{}\n{}\n{}", p.commands, p.undo, p.verify);
            assert!(
                !all.contains(&other.id),
                "{}: names the other group",
                p.platform
            );
            assert!(!all.contains("portwarden-tcp-"), "{}", p.platform);
            if !["policy", "service"].contains(&p.platform.as_str()) {
                assert!(
                    all.contains(&tag) || all.contains(&format!("portwarden_{}", g.id)),
                    "{}: no {tag}",
                    p.platform
                );
            }
            if all.contains("systemd-run") {
                assert!(
                    all.contains(&format!("--unit=rollback-{tag}")),
                    "{}",
                    p.platform
                );
                assert!(
                    !all.contains("/var/backups/") || all.contains(&format!("/var/backups/{tag}"))
                );
            }
        }
    }
}

#[test]
fn each_family_keeps_to_its_own_rules() {
    let fs = [ssh("2001:2::5"), close("198.18.1.3", 6379, "redis")];
    let gs = groups(&fs);
    let v6 = gs.iter().find(|g| g.port == Some(22)).unwrap();
    let v4 = gs.iter().find(|g| g.port == Some(6379)).unwrap();
    let ufw6 = &platform(v6, "ufw").commands;
    assert!(
        ufw6.contains(
            "for n in ::/1 8000::/1; do sudo ufw prepend deny proto tcp from \"$n\" to any port 22"
        ),
        "{ufw6}"
    );
    assert!(!ufw6.contains("ufw delete"), "{ufw6}");
    assert!(
        platform(v4, "ufw")
            .commands
            .contains("for n in 0.0.0.0/1 128.0.0.0/1; do")
    );
    assert!(
        platform(v6, "nftables")
            .commands
            .contains("meta nfproto ipv6 tcp dport 22 drop")
    );
    assert!(!platform(v4, "nftables").commands.contains("daddr"));
    assert!(
        platform(v6, "firewalld")
            .commands
            .contains("family=\"ipv6\"")
    );
    let ps = &platform(v6, "windows-powershell").commands;
    assert!(!ps.contains("Disable-NetFirewallRule"), "{ps}");
    // Every v6 address but 2001:2:5::/64, as ranges.
    assert!(
        ps.contains("$Blocked = '::-2001:2:4:ffff:ffff:ffff:ffff:ffff,2001:2:5:1::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'"),
        "{ps}"
    );
    assert!(
        platform(v4, "windows-netsh")
            .commands
            .contains("remoteip=0.0.0.0-255.255.255.255")
    );
    // Undo: only what the fix added, found by its name; never an allow for everyone.
    let undo = &platform(v4, "ufw").undo;
    assert!(undo.contains(&format!("# portwarden-{}", v4.id)), "{undo}");
    assert!(!undo.contains("ufw allow"), "{undo}");
}

#[test]
fn udp_verify_probes_udp() {
    let fs = [close("2001:2::9", 161, "snmp")];
    let g = &groups(&fs)[0];
    for p in &g.platforms {
        assert!(!p.verify.contains("nc -zvu"), "{}", p.platform);
        if p.verify.contains("portwarden scan") {
            assert!(
                p.verify.contains("portwarden scan 2001:2::9 -p U:161"),
                "{}: {}",
                p.platform,
                p.verify
            );
        }
    }
}

#[test]
fn close_port_takes_the_restrict_source_finding_of_the_same_port() {
    #[rustfmt::skip]
    let fs = fixes(&[
        ("not-allowed", "close-port", "198.18.1.3", Some(6379), Some("redis")),
        ("database-internet", "restrict-source", "198.18.1.3", Some(6379), Some("redis")),
        ("database-internet", "restrict-source", "198.18.1.4", Some(6379), Some("redis")),
    ]);
    let gs = groups(&fs);
    let close = gs.iter().find(|g| g.key == "close-port").unwrap();
    assert_eq!(close.hosts, vec![IpAddr::from([198, 18, 1, 3])]);
    assert_eq!(close.finding_ids.len(), 2);
    assert!(
        close
            .about
            .contains("restrict-source findings on the same ports")
    );
    let restrict = gs.iter().find(|g| g.key == "restrict-source").unwrap();
    assert_eq!(restrict.hosts, vec![IpAddr::from([198, 18, 1, 4])]);
}

#[test]
fn complement_ranges_cover_everything_but_the_sources() {
    let nets: Vec<IpNet> = vec![
        "10.0.0.0/8".parse().unwrap(),
        "10.1.0.0/16".parse().unwrap(),
        "192.168.1.0/24".parse().unwrap(),
    ];
    assert_eq!(
        complement(&nets, false),
        vec![
            "0.0.0.0-9.255.255.255",
            "11.0.0.0-192.168.0.255",
            "192.168.2.0-255.255.255.255"
        ]
    );
    assert_eq!(
        complement(&["0.0.0.0/0".parse().unwrap()], false),
        Vec::<String>::new()
    );
    assert_eq!(complement(&[], false), vec!["0.0.0.0-255.255.255.255"]);
}

/// Issue 27.4: hostile policy paths and names go through every platform's
/// renderer, and the real parsers read the result as intended: bash (syntax,
/// then a run where every command is only logged), the TOML, HCL and YAML
/// parsers. PowerShell quoting is checked in `quote` (no pwsh here).
#[test]
fn hostile_names_and_paths_stay_inert_in_every_language() {
    let evil = "ev'il\"$(touch PWNED)`id`\n[[group]]\nname = \"x\" # ${a}%{b}\u{202E}";
    let text = format!(
        "[[group]]\nname = {}\ntargets = [\"198.18.1.0/28\"]\nadmin_sources = [\"198.18.5.0/24\"]\n\n[[group.allow]]\nport = 23\nproto = \"tcp\"\n",
        toml_str(evil)
    );
    let file = "p/$(touch PWNED)/x;id;'q'\n.toml";
    let policy = Policy::parse(&text, file, &profiles()).unwrap();
    let mut fs = vec![];
    for (check, key, port) in [
        ("allow-undocumented", "document-justification", 23),
        ("not-allowed", "close-port", 6379),
        ("remote-admin-internet", "restrict-source", 22),
    ] {
        let mut f = finding(check, key, "198.18.1.3", Some(port), Some("ssh"));
        f.group = Some(evil.to_owned());
        fs.push(f);
    }
    let gs = fix_groups(
        &fs,
        &policy,
        &RemediationCatalog::embedded(),
        &Catalogue::embedded(),
        Lang::En,
    );
    assert_eq!(gs.len(), 3);
    let mut yaml = Vec::new();
    let mut langs = HashSet::new();
    let date = regex::Regex::new(r"= <[A-Z_]+>").unwrap();
    for g in &gs {
        for p in &g.platforms {
            for (lang, body) in [
                (p.language.as_str(), &p.commands),
                (p.language.as_str(), &p.undo),
                (p.verify_language.as_str(), &p.verify),
            ] {
                langs.insert(lang.to_owned());
                let what = format!("{} {}:\n{body}", g.key, p.platform);
                match lang {
                    "sh" => {
                        let check = std::process::Command::new("bash")
                            .args(["-n", "-c", body])
                            .output()
                            .unwrap();
                        assert!(check.status.success(), "bash -n {what}");
                        let (_, ran, _) = run_inert(body);
                        for r in &ran {
                            assert!(
                                !r.starts_with("RAN touch") && !r.starts_with("RAN id"),
                                "{r}: {what}"
                            );
                            if r.starts_with("RAN portwarden policy")
                                || r.starts_with("RAN portwarden audit")
                            {
                                // One argument, the path as given (its newline made inert).
                                assert!(r.ends_with(" p/$(touch PWNED)/x;id;'q'?.toml"), "{r}");
                            }
                        }
                    }
                    "toml" => {
                        // Dates left for the user are bare <NAME>s: give them one.
                        let filled = date.replace_all(body, "= 2027-01-01");
                        let t: toml::Table =
                            toml::from_str(&filled).unwrap_or_else(|e| panic!("TOML {e}: {what}"));
                        // The comment naming the group stayed a comment.
                        assert!(
                            !t.contains_key("name") && !body.contains("\n[[group]]"),
                            "{what}"
                        );
                    }
                    "hcl" => {
                        hcl::from_str::<hcl::Body>(body)
                            .unwrap_or_else(|e| panic!("HCL {e}: {what}"));
                    }
                    "yaml" => yaml.push(body.clone()),
                    _ => {}
                }
            }
        }
    }
    for l in ["sh", "toml", "hcl", "yaml", "powershell"] {
        assert!(langs.contains(l), "no {l} rendered");
    }
    // The YAML through the YAML parser (PyYAML, as kubernetes-validate reads it).
    if !python_yaml() {
        return;
    }
    for body in yaml {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, yaml; list(yaml.safe_load_all(sys.stdin))",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(body.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{body}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn python_yaml() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "python3-yaml missing under CI (tests/setup.sh)"
        );
    }
    ok
}

#[test]
fn placeholders_become_checked_variables_quoted_where_they_stand() {
    let t = fail_closed("# head\naws x --r <REGION> \"a=<CIDR>\" 'q<REGION>' <lower>\n# <KEEP>");
    assert_eq!(
        t,
        "# head\nREGION=''  # SET THIS: <REGION>\nCIDR=''  # SET THIS: <CIDR>\n\
         : \"${REGION:?set REGION}\" \"${CIDR:?set CIDR}\" && {\n\
         aws x --r \"${REGION}\" \"a=${CIDR}\" 'q'\"${REGION}\"'' <lower>\n# <KEEP>\n}"
    );
    assert_eq!(fail_closed("echo ok"), "echo ok");
}

/// Every Terraform snippet of several fixes (the same port in both
/// families, another port) in one configuration: no resource name twice.
#[test]
fn terraform_snippets_combine_without_duplicate_names() {
    let fs = [
        ssh("198.18.0.5"),
        ssh("2001:2::5"),
        close("198.18.1.3", 6379, "redis"),
        close("2001:2::9", 161, "snmp"),
    ];
    let mut all = String::new();
    for g in groups(&fs) {
        for p in g.platforms.iter().filter(|p| p.language == "hcl") {
            all.push_str(&p.commands);
            all.push('\n');
        }
    }
    let body: hcl::Body = hcl::from_str(&all).unwrap();
    let mut names = HashSet::new();
    for b in body.blocks() {
        let labels: Vec<String> = b.labels().iter().map(|l| l.as_str().to_owned()).collect();
        assert!(
            names.insert(labels.clone()),
            "duplicate resource {labels:?}"
        );
    }
    assert!(names.len() >= 8, "{names:?}");
}
