//! The fake's authorization endpoint (`GET /oauth/authorize`,
//! `/oauth2/auth`), which stands in for the browser step of a sign-in: it
//! binds each code to its PKCE challenge and redirects back with `code`,
//! `state` and, when asked, RFC 9207 `iss`.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::super::{FakeProvider, Inner, Recorded, next_token, oauth_error};

/// Where the authorization endpoint sent the browser back to.
#[derive(Debug, Clone)]
pub struct AuthorizationRedirect {
    /// The whole `Location`.
    pub location: String,
    pub params: HashMap<String, String>,
}

impl AuthorizationRedirect {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The body of `POST /v1/callback` an app would send: `code`, `state`
    /// and, when the server sent one, `iss`.
    pub fn callback_body(&self) -> Value {
        let mut body = json!({
            "code": self.param("code").expect("the redirect carries a code"),
            "state": self.param("state").expect("the redirect carries the state"),
        });
        if let Some(iss) = self.param("iss") {
            body["iss"] = json!(iss);
        }
        body
    }
}

impl FakeProvider {
    /// Plays the browser: opens `url` (an authorization URL on this fake)
    /// and returns where the server redirects it, without following it.
    pub async fn authorize(&self, url: &str) -> AuthorizationRedirect {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        let response = client.get(url).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FOUND,
            "the authorization endpoint redirects: {:?}",
            response.text().await
        );
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let params = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        AuthorizationRedirect { location, params }
    }
}

pub(super) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 6749 §4.1.1–4.1.2: checks the request, makes a code (bound to its
/// PKCE challenge) and redirects back with `code`, `state` and maybe `iss`.
pub(super) fn authorization_endpoint(g: &mut Inner, req: &Recorded) -> Response {
    let q: HashMap<String, String> = url::form_urlencoded::parse(req.query.as_bytes())
        .into_owned()
        .collect();
    let Some(redirect_uri) = q.get("redirect_uri") else {
        return oauth_error(400, "invalid_request", "redirect_uri missing");
    };
    // An unknown client is never redirected (§4.1.2.1): the URI is unverified.
    if q.get("client_id") != Some(&g.client_id) {
        return oauth_error(400, "invalid_client", "unknown client_id");
    }
    let mut back = url::Url::parse(redirect_uri).expect("an absolute redirect_uri");
    {
        let mut pairs = back.query_pairs_mut();
        let refusal = if q.get("response_type").map(String::as_str) != Some("code") {
            Some(("unsupported_response_type", "response_type must be code"))
        } else if q.contains_key("code_challenge")
            && q.get("code_challenge_method").map(String::as_str) != Some("S256")
        {
            Some(("invalid_request", "transform algorithm not supported"))
        } else if g.interop.require_pkce && !q.contains_key("code_challenge") {
            Some(("invalid_request", "Code challenge required."))
        } else {
            None
        };
        match refusal {
            Some((error, description)) => {
                pairs
                    .append_pair("error", error)
                    .append_pair("error_description", description);
            }
            None => {
                let code = next_token(g, "code");
                let rt = next_token(g, "rt-authorized");
                let extras = g.interop.authorize_extras.clone().unwrap_or(json!({}));
                g.codes.insert(code.clone(), (rt, extras));
                if let Some(challenge) = q.get("code_challenge") {
                    g.interop.challenges.insert(code.clone(), challenge.clone());
                }
                pairs.append_pair("code", &code);
            }
        }
        if let Some(state) = q.get("state") {
            pairs.append_pair("state", state);
        }
        if let Some(iss) = &g.interop.issuer {
            pairs.append_pair("iss", iss);
        }
    }
    (StatusCode::FOUND, [("location", back.to_string())]).into_response()
}
