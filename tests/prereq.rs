//! Missing test prerequisites (a server binary, Chromium, a busybox
//! applet): run locally, a test may skip with a message naming what to
//! install; under `CI=true` it fails instead, so CI never goes green having
//! tested nothing.

/// True when this run must not skip (`CI` set to `true` or `1`).
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Reports a missing prerequisite: panics under `CI=true`, else prints
/// `SKIPPED: …` for the caller to return.
#[track_caller]
pub fn missing(what: &str) {
    if strict() {
        panic!("missing test prerequisite (CI=true forbids skipping): {what}");
    }
    eprintln!("SKIPPED: {what}");
}

#[test]
fn ci_turns_a_skip_into_a_failure() {
    // The decision, without touching this process's environment.
    let strict_for =
        |v: Option<&str>| v.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    assert!(strict_for(Some("true")));
    assert!(strict_for(Some("1")));
    assert!(!strict_for(Some("false")));
    assert!(!strict_for(None));
    if strict() {
        let r = std::panic::catch_unwind(|| missing("nothing, on purpose"));
        assert!(r.is_err(), "CI=true: a missing prerequisite must panic");
    } else {
        missing("nothing, on purpose (a skip is allowed outside CI)");
    }
}
