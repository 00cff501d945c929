//! `docs/openapi.yaml` against the router: the same (method, path) pairs
//! both ways, every path parameter declared, every error response in the
//! SPEC's error schema, and `Retry-After` on every 429 and 503.

use std::collections::BTreeSet;

use serde_norway::Value;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "options", "head", "trace",
];

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("docs/openapi.yaml exists");
    serde_norway::from_str(&text).expect("docs/openapi.yaml is YAML")
}

/// Every operation: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_mapping().expect("a paths map");
    let mut out = Vec::new();
    for (path, item) in paths {
        let path = path.as_str().unwrap().to_owned();
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                out.push((method.to_string(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// Follows a local `$ref` (`#/components/...`) if `v` is one.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let mut at = doc;
            for part in r.trim_start_matches("#/").split('/') {
                at = &at[part];
            }
            resolve(doc, at)
        }
        None => v,
    }
}

#[test]
fn the_document_and_the_router_have_the_same_routes() {
    let doc = document();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "OpenAPI 3.1"
    );
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let served: BTreeSet<(String, String)> = tokend::api::routes()
        .into_iter()
        .map(|(m, p)| (m.as_str().to_ascii_lowercase(), p.to_owned()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented routes the router lacks: {unserved:?}"
    );
}

#[test]
fn every_operation_is_fully_described() {
    let doc = document();
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let what = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: operationId"));
        assert!(
            ids.insert(id.to_owned()),
            "{what}: operationId {id} is unique"
        );
        // Every {param} in the path is a declared path parameter.
        let declared: BTreeSet<String> = op["parameters"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"].as_str() == Some("path"))
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        assert_eq!(declared, in_path, "{what}: path parameters");

        let responses = op["responses"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{what}: responses"));
        assert!(!responses.is_empty(), "{what}: responses");
        for (status, response) in responses {
            let status = status
                .as_str()
                .unwrap_or_else(|| panic!("{what}: quote status {status:?}"));
            let response = resolve(&doc, response);
            assert!(
                response["description"].is_string(),
                "{what} {status}: description"
            );
            // `/readyz` answers its 503 with no body, as probes expect.
            let bare = path == "/readyz" && status == "503";
            if (status.starts_with('4') || status.starts_with('5')) && !bare {
                let schema = &response["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["$ref"].as_str(),
                    Some("#/components/schemas/Error"),
                    "{what} {status}: the SPEC error body"
                );
            }
            if status == "429" || (status == "503" && !bare) {
                assert!(
                    response["headers"].get("Retry-After").is_some(),
                    "{what} {status}: Retry-After"
                );
            }
        }
    }
}

#[test]
fn the_error_schema_is_the_specs() {
    let doc = document();
    let error = &doc["components"]["schemas"]["Error"];
    let required: BTreeSet<&str> = error["required"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, BTreeSet::from(["error", "message"]));
    let codes: BTreeSet<&str> = error["properties"]["error"]["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for code in [
        "invalid_request",
        "invalid_grant",
        "unauthorized",
        "forbidden",
        "not_found",
        "needs_reauth",
        "grant_shared",
        "payload_too_large",
        "rate_limited",
        "provider_error",
        "provider_unavailable",
    ] {
        assert!(codes.contains(code), "the Error schema lists {code}");
    }
}
