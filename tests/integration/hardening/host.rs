//! The Host rule exactly (SPEC §5): a name tokend serves and, when a port is
//! given, the listening port; nothing else, in any disguise. The hand-out
//! fast path (`GET /v1/tokens/{id}`) and the router apply the same rule.

use crate::api::{import_with_token, raw, raw_body};
use crate::helpers::spawn_app;

#[tokio::test]
async fn every_disguise_of_a_foreign_host_is_403_on_every_route() {
    let app = spawn_app().await;
    let (status, view) = import_with_token(&app, "alice", "cronofy", "rt-a").await;
    assert_eq!(status, 201, "{view}");
    let port = app.addr.port();
    let other = port.wrapping_add(1);
    let auth = format!("Authorization: Bearer {}", app.key);

    for target in ["/v1/tokens/alice", "/v1/credentials/alice"] {
        // The honest request is served: the refusals below are the Host's doing.
        let (status, text) = raw(
            &app,
            &format!("GET {target} HTTP/1.1\r\nHost: [::1]:{port}\r\n{auth}"),
            b"",
        )
        .await;
        assert_eq!(status, 200, "{target}: {text}");

        let heads = [
            format!("GET {target} HTTP/1.1\r\nHost: [::1]evil.example\r\n{auth}"),
            format!("GET {target} HTTP/1.1\r\nHost: [::1]evil.example:{port}\r\n{auth}"),
            format!("GET {target} HTTP/1.1\r\nHost: [::1]x:{other}\r\n{auth}"),
            format!("GET {target} HTTP/1.1\r\nHost: [::1]x:{port}\r\n{auth}"),
            format!("GET {target} HTTP/1.1\r\nHost: localhost:+{port}\r\n{auth}"),
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n{auth}"),
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n{auth}"),
            format!("GET http://evil.example{target} HTTP/1.1\r\nHost: localhost\r\n{auth}"),
            format!("GET http://localhost:{other}{target} HTTP/1.1\r\nHost: localhost\r\n{auth}"),
            format!("GET http://user@localhost{target} HTTP/1.1\r\nHost: localhost\r\n{auth}"),
        ];
        for head in &heads {
            let (status, text) = raw(&app, head, b"").await;
            assert_eq!(status, 403, "{head:?} was served: {text}");
            assert_eq!(raw_body(&text)["error"], "forbidden", "{text}");
            assert!(!text.contains("at-imported"), "no token for {head:?}");
        }
        // An absolute-form target naming this very server is fine (RFC 9112 §3.2.2).
        let head = format!(
            "GET http://127.0.0.1:{port}{target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
        );
        let (status, text) = raw(&app, &head, b"").await;
        assert_eq!(status, 200, "{head:?}: {text}");
    }
}
