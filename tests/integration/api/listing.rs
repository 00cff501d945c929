//! `GET /v1/credentials/{id}` (the view: every SPEC field, never a token)
//! and `GET /v1/credentials`: id order, `limit` and `after` paging with
//! `next_after`, the `status` and `provider` filters, and bad parameters.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{assert_error, import_with_token};
use crate::helpers::{TestApp, send, spawn_app};

async fn ids(app: &TestApp, query: &str) -> (Vec<String>, Value) {
    let (status, body) = send(app.get(&format!("/v1/credentials{query}"))).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    let ids = body["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    (ids, body["next_after"].clone())
}

#[tokio::test]
async fn a_view_has_every_field_and_no_token() {
    let app = spawn_app().await;
    app.fake
        .add_refresh_token("rt-a", json!({"account_id": "acc_1"}));
    let (status, _) = send(app.put("/v1/credentials/alice").json(&json!({
        "provider": "cronofy", "refresh_token": "rt-a",
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, view) = send(app.get("/v1/credentials/alice")).await;
    assert_eq!(status, StatusCode::OK);
    for field in [
        "id",
        "provider",
        "status",
        "scope",
        "expires_at",
        "last_refresh_at",
        "next_refresh_at",
        "consecutive_failures",
        "last_error",
    ] {
        assert!(view.get(field).is_some(), "{field} in {view}");
    }
    assert_eq!(view["account_id"], "acc_1");
    assert_eq!(view["scope"], "read_write");
    let text = view.to_string();
    assert!(
        !text.contains("at-1") && !text.contains("rt-a"),
        "never a token: {text}"
    );
    let (_, list) = send(app.get("/v1/credentials")).await;
    assert_eq!(list["credentials"][0], view, "the list shows the same view");
}

#[tokio::test]
async fn paging_in_id_order() {
    let app = spawn_app().await;
    for id in ["e", "c", "a", "d", "b"] {
        assert_eq!(
            import_with_token(&app, id, "cronofy", &format!("rt-{id}"))
                .await
                .0,
            201
        );
    }
    let (all, next) = ids(&app, "").await;
    assert_eq!(
        (all, next),
        (
            vec!["a", "b", "c", "d", "e"]
                .into_iter()
                .map(String::from)
                .collect(),
            Value::Null
        )
    );
    let (page, next) = ids(&app, "?limit=2").await;
    assert_eq!(
        (page, &next),
        (vec!["a".to_owned(), "b".into()], &json!("b"))
    );
    let (page, next) = ids(&app, "?limit=2&after=b").await;
    assert_eq!(
        (page, &next),
        (vec!["c".to_owned(), "d".into()], &json!("d"))
    );
    let (page, next) = ids(&app, "?limit=2&after=d").await;
    assert_eq!((page, next), (vec!["e".to_owned()], Value::Null));
    let (page, _) = ids(&app, "?after=e").await;
    assert!(page.is_empty());
    // `after` need not be an existing id.
    let (page, _) = ids(&app, "?after=bb&limit=1").await;
    assert_eq!(page, vec!["c".to_owned()]);
    let (page, _) = ids(&app, "?limit=1000").await;
    assert_eq!(page.len(), 5);
}

#[tokio::test]
async fn filters_by_status_and_provider() {
    let app = spawn_app().await;
    assert_eq!(
        import_with_token(&app, "c1", "cronofy", "rt-c1").await.0,
        201
    );
    assert_eq!(
        import_with_token(&app, "c2", "cronofy", "rt-c2").await.0,
        201
    );
    assert_eq!(
        import_with_token(&app, "g1", "google", "rt-g1").await.0,
        201
    );
    // c2's grant dies at the provider.
    app.fake.revoke_refresh_token("rt-c2");
    let (status, _) = send(app.post("/v1/tokens/c2/refresh")).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&app, "?provider=cronofy").await.0, strs(&["c1", "c2"]));
    assert_eq!(ids(&app, "?provider=google").await.0, strs(&["g1"]));
    assert_eq!(ids(&app, "?status=active").await.0, strs(&["c1", "g1"]));
    assert_eq!(ids(&app, "?status=needs_reauth").await.0, strs(&["c2"]));
    assert!(
        ids(&app, "?status=needs_reauth&provider=google")
            .await
            .0
            .is_empty()
    );
    let (page, next) = ids(&app, "?status=active&limit=1").await;
    assert_eq!((page, &next), (strs(&["c1"]), &json!("c1")));
    let (page, _) = ids(&app, "?status=active&limit=1&after=c1").await;
    assert_eq!(page, strs(&["g1"]));
}

#[tokio::test]
async fn bad_list_parameters_are_400() {
    let app = spawn_app().await;
    for query in [
        "?limit=0",
        "?limit=1001",
        "?limit=-1",
        "?limit=ten",
        "?status=dead",
        "?provider=nope",
        "?after=bad!id",
        "?sort=id",
    ] {
        let got = send(app.get(&format!("/v1/credentials{query}"))).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
    }
}
