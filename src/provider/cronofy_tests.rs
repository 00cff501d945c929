//! The data centres' hosts, and the overrides.

use super::*;

fn cronofy(extra: &str) -> Cronofy {
    let toml = format!(
        "kind = \"cronofy\"\nclient_id = \"cid\"\nclient_secret = \"sec\"\nredirect_uris = [\"https://app.example/cb\"]\n{extra}"
    );
    let config: ProviderConfig = toml::from_str(&toml).unwrap();
    Cronofy::new(
        "cronofy",
        &config,
        reqwest::Client::new(),
        Clock::manual(0),
        None,
    )
    .unwrap()
}

#[test]
fn every_data_centre_has_its_hosts() {
    for (dc, suffix) in [
        ("us", ""),
        ("de", "-de"),
        ("uk", "-uk"),
        ("ca", "-ca"),
        ("au", "-au"),
        ("sg", "-sg"),
    ] {
        let c = cronofy(&format!("data_center = \"{dc}\""));
        let api = format!("https://api{suffix}.cronofy.com");
        assert_eq!(c.token_url().as_str(), format!("{api}/oauth/token"));
        assert_eq!(c.revoke_url().as_str(), format!("{api}/oauth/token/revoke"));
        assert_eq!(
            c.application_calendars_url().as_str(),
            format!("{api}/v1/application_calendars")
        );
        let req = AuthorizationRequest {
            redirect_uri: "https://app.example/cb",
            scope: Some("read_write"),
            state: "st",
            ..Default::default()
        };
        let url = c.authorization_url(&req).unwrap();
        assert_eq!(
            url.as_str(),
            format!(
                "https://app{suffix}.cronofy.com/oauth/authorize?response_type=code&client_id=cid\
                 &redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=read_write&state=st"
            )
        );
    }
}

#[test]
fn no_data_centre_means_us_and_overrides_win() {
    let c = cronofy("");
    assert_eq!(
        c.token_url().as_str(),
        "https://api.cronofy.com/oauth/token"
    );
    let c = cronofy(
        "data_center = \"de\"\napi_base_url = \"http://127.0.0.1:9000\"\napp_base_url = \"http://localhost:9001/app\"",
    );
    assert_eq!(c.token_url().as_str(), "http://127.0.0.1:9000/oauth/token");
    assert_eq!(
        endpoint(&c.app, "/oauth/authorize").as_str(),
        "http://localhost:9001/app/oauth/authorize"
    );
}
