//! The client examples in `examples/` (Python, Node, Ruby) against the real
//! daemon and the fake provider's API: each lists the calendars through the
//! API proxy, holding no token; the API refuses the token tokend holds, and
//! tokend refreshes once and resends, so the example sees only the list.
//!
//! An interpreter that is missing skips its example with a note, unless
//! `TOKEND_REQUIRE_EXAMPLES=1` (set by `.ci/run`, which installs them).

use std::path::Path;

use crate::helpers::spawn_app;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

async fn run_example(interpreter: &str, script: &str) {
    let available = tokio::process::Command::new(interpreter)
        .arg("--version")
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var_os("TOKEND_REQUIRE_EXAMPLES").is_none(),
            "TOKEND_REQUIRE_EXAMPLES is set but {interpreter} is not installed"
        );
        eprintln!("skipped: {interpreter} is not installed, {script} not run");
        return;
    }
    let app = spawn_app().await;
    app.import("user:42@example", "rt-example").await;
    let (_, first) = app.token("user:42@example").await;
    let first = first["access_token"].as_str().unwrap().to_owned();
    // The API now refuses the token tokend holds, as a provider does when a
    // person revoked access or the token was cut short.
    app.fake.api_reject_issued_tokens();
    let refreshes_before = app.fake.refresh_calls();

    let key_file = app.dir.path().join("client.key");
    let out = tokio::process::Command::new(interpreter)
        .arg(Path::new(EXAMPLES).join(script))
        .arg("user:42@example")
        .env("TOKEND_URL", &app.url)
        .env("TOKEND_KEY_FILE", &key_file)
        .env_remove("TOKEND_KEY")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}: {stdout}\n{stderr}");
    assert_eq!(
        stdout, "calendar: Team meetings (cal_fake_1)\ncalendar: On call (cal_fake_2)\n",
        "{script} stderr: {stderr}"
    );

    // The API saw the refused token, then a new one; tokend refreshed once.
    let calls = app.fake.api_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0], first);
    assert_ne!(calls[1], first);
    assert_eq!(app.fake.refresh_calls(), refreshes_before + 1);
    let (_, now) = app.token("user:42@example").await;
    assert_eq!(now["access_token"], calls[1].as_str());
    let forced = app
        .fake
        .requests()
        .iter()
        .filter(|r| r.field("grant_type").as_deref() == Some("refresh_token"))
        .count();
    assert_eq!(forced, refreshes_before + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_example_refreshes_on_401() {
    run_example("python3", "python/calendars.py").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_example_refreshes_on_401() {
    run_example("node", "node/calendars.mjs").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ruby_example_refreshes_on_401() {
    run_example("ruby", "ruby/calendars.rb").await;
}
