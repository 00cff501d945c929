//! A provider table's defaults and checks: PKCE, issuer, refresh mode and share, the proxy's base URL, data centre hosts.

use super::*;

/// Loads a file holding one Cronofy provider table plus `extra` keys.
fn load(extra: &str) -> Result<crate::config::Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    let text = format!(
        "[providers.c]\nkind = \"cronofy\"\nclient_id = \"x\"\nclient_secret = \"y\"\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    let nowhere = std::path::Path::new("/nonexistent/tokend.toml");
    crate::config::load_from(Some(&path), nowhere, vec![]).map_err(|e| e.to_string())
}

#[test]
fn pkce_is_on_unless_turned_off() {
    assert!(load("").unwrap().providers["c"].pkce);
    assert!(!load("pkce = false").unwrap().providers["c"].pkce);
    let err = load("pkce = \"maybe\"").unwrap_err();
    assert!(err.contains("pkce"), "{err}");
}

#[test]
fn issuer_is_kept_verbatim_and_checked() {
    let c = load("issuer = \"https://id.example\"").unwrap();
    assert_eq!(
        c.providers["c"].issuer.as_deref(),
        Some("https://id.example"),
        "no trailing slash added: iss is compared as a string"
    );
    assert_eq!(load("issuer = \"\"").unwrap().providers["c"].issuer, None);
    assert!(load("issuer = \"http://127.0.0.1:9/op\"").is_ok());
    for (bad, says) in [
        ("issuer = \"id.example\"", "not an absolute URL"),
        ("issuer = \"http://id.example\"", "must use https"),
        (
            "issuer = \"https://id.example/?x=1\"",
            "no query or fragment",
        ),
        ("issuer = \"https://id.example/#f\"", "no query or fragment"),
    ] {
        let err = load(bad).unwrap_err();
        assert!(
            err.contains("providers.c.issuer") && err.contains(says),
            "{bad}: {err}"
        );
    }
}

#[test]
fn refresh_mode_and_share_default_and_are_checked() {
    let c = load("").unwrap();
    assert_eq!(c.providers["c"].refresh_mode, RefreshMode::Auto);
    assert_eq!(c.providers["c"].refresh_share, 0.5);
    let c = load("refresh_mode = \"on_demand\"\nrefresh_share = 1").unwrap();
    assert_eq!(c.providers["c"].refresh_mode, RefreshMode::OnDemand);
    assert_eq!(c.providers["c"].refresh_share, 1.0);
    assert_eq!(
        load("refresh_mode = \"eager\"").unwrap().providers["c"].refresh_mode,
        RefreshMode::Eager
    );
    let err = load("refresh_mode = \"lazy\"").unwrap_err();
    assert!(
        err.contains("providers.c.refresh_mode: unknown value; use one of: auto, eager, on_demand"),
        "{err}"
    );
    for bad in ["0", "0.0", "1.5", "-0.2", "nan"] {
        let err = load(&format!("refresh_share = {bad}")).unwrap_err();
        assert!(
            err.contains("providers.c.refresh_share must be in (0, 1]"),
            "{bad}: {err}"
        );
    }
    let err = load("refresh_share = \"0.5\"").unwrap_err();
    assert!(
        err.contains("providers.c.refresh_share must be a number"),
        "{err}"
    );
}

#[test]
fn proxy_base_url_by_kind() {
    let c = load("data_center = \"de\"").unwrap();
    assert_eq!(
        c.providers["c"].proxy_base_url().unwrap().as_str(),
        "https://api-de.cronofy.com/"
    );
    let c = load("api_base_url = \"http://127.0.0.1:9/x\"").unwrap();
    assert_eq!(
        c.providers["c"].proxy_base_url().unwrap().as_str(),
        "http://127.0.0.1:9/x"
    );
    let oauth2 = |extra: &str| {
        let mut p = c.providers["c"].clone();
        p.kind = ProviderKind::Oauth2;
        p.api_base_url = (!extra.is_empty()).then(|| Url::parse(extra).unwrap());
        p.proxy_base_url()
    };
    assert_eq!(oauth2(""), None);
    assert_eq!(
        oauth2("https://www.googleapis.com").unwrap().as_str(),
        "https://www.googleapis.com/"
    );
}

#[test]
fn data_centre_hosts() {
    assert_eq!(
        DataCenter::Us.api_base_url().as_str(),
        "https://api.cronofy.com/"
    );
    assert_eq!(
        DataCenter::De.app_base_url().as_str(),
        "https://app-de.cronofy.com/"
    );
    assert_eq!(
        DataCenter::Sg.api_base_url().as_str(),
        "https://api-sg.cronofy.com/"
    );
}
