//! The audit trail: one INFO line per import, sign-in, re-authorization,
//! delete and revoke, naming credential, client and provider, never a token.

use reqwest::StatusCode;
use serde_json::json;

use super::import_with_token;
use crate::helpers::{REDIRECT_URI, send, spawn_app};
use crate::logs::Logs;

/// The audit lines logged so far, one per entry.
fn audit_lines(logs: &Logs) -> Vec<String> {
    let text = logs.text();
    text.lines()
        .filter(|l| l.contains("tokend::audit") && l.contains("INFO"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_change_to_a_credential_leaves_one_audit_line() {
    let (logs, _guard) = Logs::capture();
    let app = spawn_app().await;
    let expect = |n: usize, action: &str, id: &str| {
        let lines = audit_lines(&logs);
        assert_eq!(lines.len(), n, "{lines:#?}");
        let last = &lines[n - 1];
        for want in [
            format!("credential {action}"),
            format!("credential_id=\"{id}\""),
            "client=default".to_owned(),
            "provider=\"cronofy\"".to_owned(),
        ] {
            assert!(last.contains(&want), "{want} in {last}");
        }
    };

    assert_eq!(
        import_with_token(&app, "alice", "cronofy", "rt-alice-secret")
            .await
            .0,
        StatusCode::CREATED
    );
    expect(1, "import", "alice");

    app.fake.add_code("code-1", "rt-bob-secret", json!({}));
    let body = json!({"provider": "cronofy", "code": "code-1", "redirect_uri": REDIRECT_URI});
    let (status, _) = send(
        app.post("/v1/credentials/bob/authorization-code")
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    expect(2, "sign-in", "bob");

    // The grant dies at the provider; the next import of alice re-authorizes it.
    app.fake.revoke_refresh_token("rt-alice-secret");
    let (status, _) = send(app.post("/v1/tokens/alice/refresh")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        audit_lines(&logs).len(),
        2,
        "a refresh is not a change by a client"
    );
    assert_eq!(
        import_with_token(&app, "alice", "cronofy", "rt-alice-2")
            .await
            .0,
        StatusCode::OK
    );
    expect(3, "re-authorization", "alice");

    let (status, _) = send(app.delete("/v1/credentials/alice")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    expect(4, "delete", "alice");
    let (status, _) = send(app.delete("/v1/credentials/bob?revoke=true")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    expect(5, "revoke", "bob");

    // A refused change leaves no line.
    let (status, _) = send(app.delete("/v1/credentials/nobody")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(audit_lines(&logs).len(), 5);
    let all = audit_lines(&logs).join("\n");
    for secret in ["rt-alice", "rt-bob", "at-imported", "code-1"] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
}
