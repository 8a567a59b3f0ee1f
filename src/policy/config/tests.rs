//! Tests of the policy parser: exact errors, locations and values.
use super::*;

fn profiles() -> Profiles {
    Profiles::embedded().unwrap()
}

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text, "p.toml", &profiles())
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

const GROUP: &str = "[[group]]\nname = \"web\"\ntargets = [\"198.18.0.0/28\"]\n";

#[test]
fn starter_policy_parses() {
    let p = parse(crate::policy::policy_init_text()).unwrap();
    let names: Vec<&str> = p.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["cardholder", "dmz", "ot"]);
    assert_eq!(p.groups[2].max_open_ports, Some(3));
    assert_eq!(p.groups[1].vantage, Vantage::Internet);
    assert_eq!(p.exceptions.len(), 2);
    assert_eq!(
        p.exceptions[1].target,
        ExceptionTarget::Group("cardholder".into())
    );
    assert_eq!(
        p.exceptions[1].window.unwrap().to_string(),
        "last 14 days of each quarter"
    );
    assert_eq!(
        p.groups[0].allow[0].review_by,
        NaiveDate::from_ymd_opt(2027, 5, 31)
    );
}

#[test]
fn change_records() {
    let ok = format!(
        "{GROUP}[[change]]\nticket = \"CHG-1\"\napprover = \"cab\"\napproved = 2026-11-20\ntarget = \"web\"\nopens = [8443, \"9000-9001\"]\ncloses = [23]\nwindow = {{ from = 2026-11-21, until = 2026-11-28 }}\n"
    );
    let p = parse(&ok).unwrap();
    let c = &p.changes[0];
    assert_eq!(c.ticket, "CHG-1");
    assert_eq!(c.target, ExceptionTarget::Group("web".into()));
    assert_eq!(c.line, 4);
    assert!(c.opens_port(9001, Proto::Tcp) && !c.opens_port(9002, Proto::Tcp));
    assert!(c.closes_port(23, Proto::Tcp) && !c.opens_port(23, Proto::Tcp));
    let day = |s: &str| s.parse::<NaiveDate>().unwrap();
    assert_eq!(c.state(day("2026-11-20")), ChangeState::Pending);
    assert_eq!(c.state(day("2026-11-21")), ChangeState::Active);
    assert_eq!(c.state(day("2026-11-28")), ChangeState::Active);
    assert_eq!(c.state(day("2026-11-29")), ChangeState::Ended);

    let head = format!(
        "{GROUP}[[change]]\nticket = \"CHG-1\"\napprover = \"cab\"\napproved = 2026-11-20\ntarget = \"198.18.0.5\"\n"
    );
    let e = err(&format!("{head}opens = [80]\napprove = \"x\"\n"));
    assert!(e.starts_with("p.toml:10:1: unknown field `approve`"), "{e}");
    assert!(e.contains("did you mean `approved`?"), "{e}");
    let e = err(&head);
    assert!(
        e.starts_with("p.toml:4:1: change CHG-1 opens and closes no port"),
        "{e}"
    );
    let e = err(&format!(
        "{head}opens = [80]\nwindow = {{ from = 2026-11-19 }}\n"
    ));
    assert!(
        e.starts_with("p.toml:10:10: change CHG-1's window starts (2026-11-19) before its approval (2026-11-20)"),
        "{e}"
    );
    let e = err(&format!("{head}opens = [0]\n"));
    assert!(
        e.starts_with("p.toml:9:10: port 0 is outside 1-65535"),
        "{e}"
    );
    let e = err(&format!(
        "{head}opens = [80]\n[[change]]\nticket = \"CHG-1\"\napprover = \"x\"\napproved = 2026-11-20\ntarget = \"nowhere\"\nopens = [1]\n"
    ));
    assert!(
        e.starts_with("p.toml:11:10: change CHG-1 is recorded twice"),
        "{e}"
    );
}

#[test]
fn unknown_key_points_at_it_with_a_suggestion() {
    let e = err(&format!("{GROUP}vantge = \"internet\"\n"));
    assert!(e.starts_with("p.toml:4:1: unknown field `vantge`"), "{e}");
    assert!(e.contains("hint: did you mean `vantage`?"), "{e}");
}

#[test]
fn wrong_type_and_bad_dates() {
    let e = err(&format!("{GROUP}max_open_ports = \"ten\"\n"));
    assert!(e.starts_with("p.toml:4:18: invalid type"), "{e}");
    let e = err(&format!(
        "{GROUP}[[group.allow]]\nport = 22\nreview_by = \"2027/01/31\"\n"
    ));
    assert!(
        e.starts_with("p.toml:6:13: '2027/01/31' is not a date"),
        "{e}"
    );
    assert!(e.contains("hint: review_by = 2027-06-30"), "{e}");
    let e = err(&format!(
        "{GROUP}[[group.allow]]\nport = 22\nreview_by = 2027-02-30\n"
    ));
    assert!(e.starts_with("p.toml:6:"), "{e}");
    let e = err(&format!("{GROUP}[[group.allow]]\nport = 70000\n"));
    assert!(
        e.starts_with("p.toml:5:8: port 70000 is outside 1-65535"),
        "{e}"
    );
}

#[test]
fn unknown_profile_suggests() {
    let e = err(&format!("{GROUP}profiles = [\"pci-dss-4\"]\n"));
    assert!(
        e.starts_with("p.toml:4:13: unknown profile 'pci-dss-4'"),
        "{e}"
    );
    assert!(e.contains("did you mean 'pci-dss-4.0'?"), "{e}");
    match parse(&format!("{GROUP}profiles = [\"sox\"]\n")).unwrap_err() {
        PolicyError::UnknownProfile { at, name, .. } => {
            assert_eq!((at.line, at.col, name.as_str()), (4, 13, "sox"))
        }
        other => panic!("{other}"),
    }
}

#[test]
fn bad_target_and_exception_fields() {
    let e = err("[[group]]\nname = \"a\"\ntargets = [\"db.example\"]\n");
    assert!(
        e.starts_with("p.toml:3:12: 'db.example' is not an address"),
        "{e}"
    );
    let exc = "[[exception]]\ntarget = \"198.18.0.1\"\nreason = \"r\"\napprover = \"a\"\n";
    let e = err(&format!("{GROUP}{exc}"));
    assert!(e.starts_with("p.toml:4:1: missing field `expires`"), "{e}");
    let e = err(&format!(
        "{GROUP}{exc}expires = 2027-01-01\ncheck = \"cleartext\"\n"
    ));
    assert!(
        e.starts_with("p.toml:9:9: unknown check 'cleartext'"),
        "{e}"
    );
    assert!(e.contains("did you mean 'cleartext-admin'?"), "{e}");
    let e = err(&format!(
        "{GROUP}{exc}expires = 2027-01-01\nport = 23\nwindow = {{ every = \"month\", last_days = 40 }}\n"
    ));
    assert!(
        e.starts_with("p.toml:10:10: a month window covers 1-31 days, not 40"),
        "{e}"
    );
    // A blanket exception says nothing an auditor can weigh.
    let e = err(&format!("{GROUP}{exc}expires = 2027-01-01\n"));
    assert!(
        e.starts_with("p.toml:4:1: a blanket exception (no port and no check) is not accepted"),
        "{e}"
    );
    // A breach of a segment is never waived.
    let e = err(&format!(
        "{GROUP}{exc}expires = 2027-01-01\ncheck = \"segmentation-breach\"\n"
    ));
    assert!(
        e.starts_with("p.toml:9:9: a segmentation breach cannot be waived"),
        "{e}"
    );
    let e = err(&format!(
        "{GROUP}{exc}expires = 2027-01-01\ncheck = \"exception-expired\"\n"
    ));
    assert!(
        e.starts_with("p.toml:9:9: an exception cannot waive 'exception-expired'"),
        "{e}"
    );
    let e = err(&format!(
        "{GROUP}[[exception]]\ntarget = \"nowhere\"\nreason = \"r\"\napprover = \"a\"\nexpires = 2027-01-01\n"
    ));
    assert!(e.contains("nor the name of a group"), "{e}");
    assert!(e.contains("one of the groups: web"), "{e}");
    let e = err(&format!(
        "{GROUP}{exc}expires = 2027-01-01\nwindow = {{ every = \"fortnight\", days = \"1\" }}\n"
    ));
    assert!(e.starts_with("p.toml:9:"), "{e}");
    assert!(e.contains("unknown variant `fortnight`"), "{e}");
}

#[test]
fn expect_parses_and_overlaps_must_agree_on_it() {
    let p = parse(
        "[[group]]\nname = \"cde\"\ntargets = [\"198.18.0.0/28\"]\nexpect = \"unreachable\"\n",
    )
    .unwrap();
    assert_eq!(p.groups[0].expect, Expect::Unreachable);
    let e = err(
        "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\nexpect = \"unreachable\"\n[[group]]\nname = \"b\"\ntargets = [\"198.18.0.1\"]\n",
    );
    assert!(
        e.contains("one expects its hosts unreachable and the other does not"),
        "{e}"
    );
    let e = err("[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\nexpect = \"closed\"\n");
    assert!(e.contains("unknown variant `closed`"), "{e}");
}

#[test]
fn overlapping_groups_must_agree() {
    let a = "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\nvantage = \"internal\"\n";
    let b = "[[group]]\nname = \"b\"\ntargets = [\"198.18.1.0/24\", \"198.18.0.8-20\"]\nvantage = \"internet\"\n";
    match parse(&format!("{a}{b}")).unwrap_err() {
        PolicyError::Conflict { at, message, .. } => {
            assert_eq!((at.line, at.col), (7, 29));
            assert_eq!(
                message,
                "group 'b' target '198.18.0.8-20' overlaps group 'a' (198.18.0.8 is in both) and their vantage differs (internal vs internet)"
            );
        }
        other => panic!("{other}"),
    }
    let caps = "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\nmax_open_ports = 3\n[[group]]\nname = \"b\"\ntargets = [\"198.18.0.4\"]\nmax_open_ports = 5\n";
    assert!(err(caps).contains("max_open_ports differ (3 vs 5)"));
    let svc = "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\n[[group.allow]]\nport = 8080\nservice = \"http\"\n[[group]]\nname = \"b\"\ntargets = [\"198.18.0.4\"]\n[[group.allow]]\nport = \"8000-8100\"\nservice = \"ssh\"\n";
    assert!(err(svc).contains("different services on 8000-8100/tcp ('http' vs 'ssh')"));
    // Agreeing overlap is fine; a duplicate name is not.
    let ok = "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\n[[group]]\nname = \"b\"\ntargets = [\"198.18.0.4\"]\ntags = [\"x\"]\n";
    assert_eq!(
        parse(ok)
            .unwrap()
            .groups_of("198.18.0.4".parse().unwrap())
            .len(),
        2
    );
    let dup = "[[group]]\nname = \"a\"\ntargets = [\"198.18.0.0/28\"]\n[[group]]\nname = \"a\"\ntargets = [\"198.18.1.0/28\"]\n";
    assert!(err(dup).starts_with("p.toml:5:8: group 'a' is declared twice"));
}

#[test]
fn exception_states() {
    let p = parse(&format!(
        "{GROUP}[[exception]]\ntarget = \"web\"\nport = 5432\nreason = \"r\"\napprover = \"a\"\nexpires = 2026-12-31\nwindow = {{ every = \"quarter\", last_days = 14 }}\n"
    ))
    .unwrap();
    let e = &p.exceptions[0];
    assert_eq!(e.id, "exception-1");
    let d = |s: &str| s.parse::<NaiveDate>().unwrap();
    assert_eq!(e.state(d("2026-12-20")), ExceptionState::Active);
    assert_eq!(e.state(d("2026-12-31")), ExceptionState::Active);
    assert_eq!(e.state(d("2026-11-20")), ExceptionState::OutsideWindow);
    assert_eq!(ExceptionState::OutsideWindow.to_string(), "outside-window");
    assert_eq!(e.state(d("2027-01-01")), ExceptionState::Expired);
}

#[test]
fn locations_match_a_full_recount() {
    let text = "a = 1\n\nb = \"é😀\"\nlast";
    let src = Src::new("p.toml", text);
    for offset in 0..=text.len() + 3 {
        assert_eq!(
            src.line_col(offset),
            crate::rules::line_col(text, offset),
            "offset {offset}"
        );
    }
}

fn exception(id: &str) -> String {
    format!(
        "[[exception]]\nid = \"{id}\"\ntarget = \"198.18.0.1\"\nport = 23\nreason = \"r\"\napprover = \"a\"\nexpires = 2027-01-01\n"
    )
}

#[test]
fn duplicate_exception_ids_name_both_places() {
    let text = format!(
        "{GROUP}{}{}{}",
        exception("x1"),
        exception("x2"),
        exception("x1")
    );
    let e = parse(&text).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("exception id 'x1' is used twice: p.toml:4 and p.toml:18"),
        "{msg}"
    );
    assert_eq!(e.location().map(|l| l.line), Some(18));
}

/// 50,000 exceptions parse (in linear time: each location is a binary
/// search, not a recount from the start). The time is printed, never
/// asserted: run with `--nocapture` to see it.
#[test]
fn fifty_thousand_exceptions_parse() {
    let mut text = String::from(GROUP);
    for i in 0..50_000 {
        text.push_str(&exception(&format!("e{i}")));
    }
    let t = std::time::Instant::now();
    let p = parse(&text).unwrap();
    eprintln!(
        "50,000 exceptions parsed in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(p.exceptions.len(), 50_000);
    assert_eq!(p.exceptions[49_999].id, "e49999");
    assert_eq!(p.exceptions[49_999].line, 4 + 49_999 * 7);
}
