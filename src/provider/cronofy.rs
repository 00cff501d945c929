//! Cronofy (`kind = "cronofy"`): its token endpoint with JSON bodies, token
//! revocation, application calendars, and authorization URLs, in any of its
//! data centres.
//!
//! API calls go to the data centre's `api` host, people to its `app` host;
//! `api_base_url`/`app_base_url` override them (tests, proxies).

use async_trait::async_trait;
use reqwest::header::ACCEPT;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;

use super::bucket::SharedStock;
use super::classify::{self, Endpoint};
use super::http::endpoint;
use super::pkce;
use super::shared::Core;
use super::{AuthorizationRequest, BuildError, Provider, ProviderError, TokenResponse};
use crate::clock::{Clock, UnixMillis};
use crate::config::{ProviderConfig, ProviderKind};

#[derive(Debug)]
pub(crate) struct Cronofy {
    core: Core,
    api: Url,
    app: Url,
}

/// `POST /oauth/token`. Field order is fixed (tests compare bytes); absent
/// fields are left out rather than sent as `null`.
#[derive(Serialize)]
struct TokenRequest<'a> {
    client_id: &'a str,
    client_secret: &'a str,
    grant_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    /// PKCE (RFC 7636 §4.5); only with `code`.
    #[serde(skip_serializing_if = "Option::is_none")]
    code_verifier: Option<&'a str>,
}

#[derive(Serialize)]
struct RevokeRequest<'a> {
    client_id: &'a str,
    client_secret: &'a str,
    token: &'a str,
}

#[derive(Serialize)]
struct ApplicationCalendarRequest<'a> {
    client_id: &'a str,
    client_secret: &'a str,
    application_calendar_id: &'a str,
}

impl Cronofy {
    pub(crate) fn new(
        name: &str,
        config: &ProviderConfig,
        http: reqwest::Client,
        clock: Clock,
        shared: Option<SharedStock>,
    ) -> Result<Self, BuildError> {
        let dc = config.data_center();
        Ok(Cronofy {
            core: Core::new(name, config, http, clock, shared)?,
            api: config
                .api_base_url
                .clone()
                .unwrap_or_else(|| dc.api_base_url()),
            app: config
                .app_base_url
                .clone()
                .unwrap_or_else(|| dc.app_base_url()),
        })
    }

    fn token_url(&self) -> Url {
        endpoint(&self.api, "/oauth/token")
    }

    fn revoke_url(&self) -> Url {
        endpoint(&self.api, "/oauth/token/revoke")
    }

    fn application_calendars_url(&self) -> Url {
        endpoint(&self.api, "/v1/application_calendars")
    }

    /// A JSON POST to `url`; `Accept` asks for JSON errors too.
    fn json_post(&self, url: &Url, body: &impl Serialize) -> reqwest::RequestBuilder {
        self.core
            .http
            .post(url.clone())
            .header(ACCEPT, "application/json")
            .json(body)
    }
}

#[async_trait]
impl Provider for Cronofy {
    fn name(&self) -> &str {
        &self.core.name
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Cronofy
    }

    async fn exchange_code(
        &self,
        code: &SecretString,
        redirect_uri: &str,
        code_verifier: Option<&SecretString>,
    ) -> Result<TokenResponse, ProviderError> {
        self.core.check_redirect_uri(redirect_uri)?;
        let client_id = self.core.client_id.as_str();
        let url = self.token_url();
        // The verifier is a secret of the request too: scrubbed from provider text.
        let mut secrets = vec![code];
        secrets.extend(code_verifier);
        let answer = self
            .core
            .call(Endpoint::Token, &secrets, |client_secret| {
                self.json_post(
                    &url,
                    &TokenRequest {
                        client_id,
                        client_secret,
                        grant_type: "authorization_code",
                        code: Some(code.expose_secret()),
                        redirect_uri: Some(redirect_uri),
                        refresh_token: None,
                        code_verifier: code_verifier.map(|v| v.expose_secret()),
                    },
                )
            })
            .await?;
        classify::token_response(&answer.body)
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenResponse, ProviderError> {
        let client_id = self.core.client_id.as_str();
        let url = self.token_url();
        let answer = self
            .core
            .call(Endpoint::Token, &[refresh_token], |client_secret| {
                self.json_post(
                    &url,
                    &TokenRequest {
                        client_id,
                        client_secret,
                        grant_type: "refresh_token",
                        code: None,
                        redirect_uri: None,
                        refresh_token: Some(refresh_token.expose_secret()),
                        code_verifier: None,
                    },
                )
            })
            .await?;
        classify::token_response(&answer.body)
    }

    async fn revoke(&self, refresh_token: &SecretString) -> Result<(), ProviderError> {
        let client_id = self.core.client_id.as_str();
        let url = self.revoke_url();
        let result = self
            .core
            .call(Endpoint::Revoke, &[refresh_token], |client_secret| {
                self.json_post(
                    &url,
                    &RevokeRequest {
                        client_id,
                        client_secret,
                        token: refresh_token.expose_secret(),
                    },
                )
            })
            .await;
        match result {
            // Cronofy answers 200 with an empty body, for unknown tokens too.
            Ok(_) => Ok(()),
            // Already dead is what revoking wanted.
            Err(ProviderError::InvalidGrant { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn authorization_url(&self, req: &AuthorizationRequest<'_>) -> Result<Url, ProviderError> {
        self.core.check_redirect_uri(req.redirect_uri)?;
        // Cronofy requires a scope; a URL without one only fails later, in a browser.
        let scope = req.scope.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            ProviderError::Refused(
                "a Cronofy authorization URL needs a scope (e.g. \"read_write\")".into(),
            )
        })?;
        let mut url = endpoint(&self.app, "/oauth/authorize");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.core.client_id)
                .append_pair("redirect_uri", req.redirect_uri)
                .append_pair("scope", scope)
                .append_pair("state", req.state);
            if let Some(challenge) = req.code_challenge {
                q.append_pair("code_challenge", challenge)
                    .append_pair("code_challenge_method", pkce::METHOD);
            }
            if let Some(avoid) = req.avoid_linking {
                q.append_pair("avoid_linking", if avoid { "true" } else { "false" });
            }
            if let Some(name) = req.provider_name {
                q.append_pair("provider_name", name);
            }
        }
        Ok(url)
    }

    async fn application_calendar(
        &self,
        application_calendar_id: &str,
    ) -> Result<TokenResponse, ProviderError> {
        if application_calendar_id.is_empty() {
            return Err(ProviderError::Refused(
                "application_calendar_id must not be empty".into(),
            ));
        }
        let client_id = self.core.client_id.as_str();
        let url = self.application_calendars_url();
        let answer = self
            .core
            .call(Endpoint::ApplicationCalendar, &[], |client_secret| {
                self.json_post(
                    &url,
                    &ApplicationCalendarRequest {
                        client_id,
                        client_secret,
                        application_calendar_id,
                    },
                )
            })
            .await?;
        classify::token_response(&answer.body)
    }

    fn paused_until(&self) -> Option<UnixMillis> {
        self.core.limiter.paused_until()
    }

    fn rate_limit_pauses(&self) -> u64 {
        self.core.limiter.pauses()
    }

    fn pause(&self, retry_after: std::time::Duration) {
        self.core.limiter.pause(retry_after);
    }
}

#[cfg(test)]
#[path = "cronofy_tests.rs"]
mod tests;
