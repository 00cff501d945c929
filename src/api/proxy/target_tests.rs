//! Tests of the proxy's path rules and targets.

use super::*;

#[test]
fn splits_id_and_path() {
    assert_eq!(split("/v1/proxy/alice/v1/x"), Some(("alice", "v1/x")));
    assert_eq!(split("/v1/proxy/alice/"), Some(("alice", "")));
    assert_eq!(split("/v1/proxy/alice"), None);
    assert_eq!(split("/v1/tokens/alice/x"), None);
}

#[test]
fn ids_are_percent_decoded() {
    assert_eq!(decode_id("user%3A42%40x").as_deref(), Some("user:42@x"));
    assert_eq!(decode_id("plain").as_deref(), Some("plain"));
    assert_eq!(decode_id("%FF"), None);
}

#[test]
fn paths_that_stay_under_the_base_pass() {
    for ok in [
        "v1/calendars",
        "v1/events/abc:def",
        "v1/files/report.2026.pdf",
        "v1/a%20b/c%3Fd",
        "v1/..x/x..",
        "v1/%2e%2ex",
        "v1//double",
        "",
    ] {
        assert_eq!(check_path(ok), Ok(()), "{ok}");
    }
}

#[test]
fn paths_that_could_leave_the_base_are_refused() {
    for bad in [
        "..",
        "v1/../admin",
        "v1/./x",
        "v1/%2e%2e/admin",
        "v1/%2E%2e/admin",
        "v1/.%2E/admin",
        "v1/%2e/x",
        "v1%2fadmin",
        "v1%2Fadmin",
        "v1/%5c..%5cadmin",
        "v1\\..\\admin",
        "/evil.example/x",
        "https://evil.example/x",
        "HTTP:evil",
        "javascript:alert(1)",
        "v1/%252e%252e/admin",
        "v1/%252F",
    ] {
        assert!(check_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn refusals_never_repeat_the_path() {
    let path = "v1/../secret-name@example.com";
    let message = check_path(path).unwrap_err();
    assert!(!message.contains("secret-name"));
}

/// `base` + `path` (+ `?query`) as the absolute URI the API is sent.
fn join(base: &str, path: &str, query: Option<&str>) -> Option<Uri> {
    let base = Base::new(&Url::parse(base).unwrap())?;
    base.absolute(&base.target(path, query)?)
}

#[test]
fn joins_with_one_slash_and_keeps_the_query() {
    assert_eq!(
        join("https://h.example/api", "v1/x", Some("a=1&b=%20")).unwrap(),
        "https://h.example/api/v1/x?a=1&b=%20"
    );
    assert_eq!(
        join("https://h.example/api/", "v1/x", None).unwrap(),
        "https://h.example/api/v1/x"
    );
    assert_eq!(
        join("http://127.0.0.1:9000", "v1/x", None).unwrap(),
        "http://127.0.0.1:9000/v1/x"
    );
    assert_eq!(
        join("http://[::1]:9000/", "v1/x", None).unwrap(),
        "http://[::1]:9000/v1/x"
    );
    assert_eq!(
        join("https://h.example:443/", "v1", None).unwrap(),
        "https://h.example/v1"
    );
}

#[test]
fn a_base_knows_its_origin_host_and_path() {
    let base = Base::new(&Url::parse("http://u:p@127.0.0.1:9/a/").unwrap()).unwrap();
    assert_eq!(&*base.origin, "http://127.0.0.1:9");
    assert_eq!(base.host, "127.0.0.1:9", "no user info in Host");
    assert_eq!(base.target("b", Some("c=%20")).unwrap(), "/a/b?c=%20");
    let root = Base::new(&Url::parse("https://H.Example").unwrap()).unwrap();
    assert_eq!(&*root.origin, "https://h.example");
    assert_eq!(root.target("v1", None).unwrap(), "/v1");
    assert!(Base::new(&Url::parse("ftp://h.example/").unwrap()).is_none());
    assert!(Base::new(&Url::parse("mailto:a@h.example").unwrap()).is_none());
    assert!(Base::new(&Url::parse("https://h.example/a?k=1").unwrap()).is_none());
    assert!(Base::new(&Url::parse("https://h.example/a#f").unwrap()).is_none());
}

#[test]
fn join_refuses_what_would_leave_the_base() {
    let base = "https://h.example/api";
    assert_eq!(join(base, "../other", None), None);
    assert_eq!(join(base, "%2e%2e/other", None), None);
    assert_eq!(join(base, "x#fragment", None), None);
    assert_eq!(join(base, "x", Some("a#b")), None);
    assert_eq!(join(base, "v1/%2E%2E/x", None), None);
    assert_eq!(join(base, "v1/./x", None), None);
    assert_eq!(join(base, "x y", None), None, "not a URI");
}

#[test]
fn decoding_finds_what_the_checks_look_for() {
    assert_eq!(decoded("a%2Fb%zz%4").collect::<Vec<u8>>(), b"a/b%zz%4");
    assert!(doubly_encoded("%252e"));
    assert!(doubly_encoded("x%25%32F"));
    assert!(!doubly_encoded("%2e"));
    assert!(is_dot_segment("%2E.") && is_dot_segment(".") && is_dot_segment("%2e%2e"));
    assert!(!is_dot_segment("...") && !is_dot_segment("") && !is_dot_segment("%2e%2e%2e"));
    assert!(matches!(decode_id("plain"), Some(Cow::Borrowed("plain"))));
}
