//! A generic OAuth 2.0 authorization server (`kind = "oauth2"`): RFC 6749
//! §4.1.3 code exchange and §6 refresh with form bodies, client
//! authentication by `client_secret_basic` or `client_secret_post` (§2.3.1),
//! and RFC 7009 revocation when `revocation_url` is set.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::RequestBuilder;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use url::Url;
use url::form_urlencoded::byte_serialize;

use super::bucket::SharedStock;
use super::classify::{self, Endpoint};
use super::pkce;
use super::shared::Core;
use super::{AuthorizationRequest, BuildError, Provider, ProviderError, TokenResponse};
use crate::clock::{Clock, UnixMillis};
use crate::config::{AuthMethod, ProviderConfig, ProviderKind};

#[derive(Debug)]
pub(crate) struct OAuth2 {
    core: Core,
    token_url: Url,
    revocation_url: Option<Url>,
    authorization_url: Option<Url>,
    auth_method: AuthMethod,
}

impl OAuth2 {
    pub(crate) fn new(
        name: &str,
        config: &ProviderConfig,
        http: reqwest::Client,
        clock: Clock,
        shared: Option<SharedStock>,
    ) -> Result<Self, BuildError> {
        let token_url = config
            .token_url
            .clone()
            .ok_or_else(|| BuildError::Invalid {
                name: name.to_owned(),
                problem: "token_url is required for kind = \"oauth2\"".into(),
            })?;
        Ok(OAuth2 {
            core: Core::new(name, config, http, clock, shared)?,
            token_url,
            revocation_url: config.revocation_url.clone(),
            authorization_url: config.authorization_url.clone(),
            auth_method: config.auth_method,
        })
    }

    /// A form POST carrying `fields` plus the client's credentials, in the
    /// body or in an `Authorization: Basic` header.
    fn form_post(&self, url: &Url, fields: &[(&str, &str)], client_secret: &str) -> RequestBuilder {
        let client_id = self.core.client_id.as_str();
        let mut fields = fields.to_vec();
        let request = self
            .core
            .http
            .post(url.clone())
            .header(ACCEPT, "application/json");
        let request = match self.auth_method {
            AuthMethod::ClientSecretPost => {
                fields.push(("client_id", client_id));
                fields.push(("client_secret", client_secret));
                request
            }
            AuthMethod::ClientSecretBasic => {
                request.header(AUTHORIZATION, basic_auth(client_id, client_secret))
            }
        };
        request.form(&fields)
    }

    /// `request_secrets` (code, verifier, refresh token) are scrubbed from provider text.
    async fn token(
        &self,
        fields: &[(&str, &str)],
        request_secrets: &[&SecretString],
    ) -> Result<TokenResponse, ProviderError> {
        let answer = self
            .core
            .call(Endpoint::Token, request_secrets, |secret| {
                self.form_post(&self.token_url, fields, secret)
            })
            .await?;
        classify::token_response(&answer.body)
    }
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded *before* they are
/// joined and base64-encoded, so a `:` or `%` in either survives.
fn basic_auth(client_id: &str, client_secret: &str) -> HeaderValue {
    let id: String = byte_serialize(client_id.as_bytes()).collect();
    let secret: String = byte_serialize(client_secret.as_bytes()).collect();
    let encoded = STANDARD.encode(format!("{id}:{secret}"));
    let mut value =
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header value");
    // Keeps it out of reqwest's and hyper's Debug output.
    value.set_sensitive(true);
    value
}

#[async_trait]
impl Provider for OAuth2 {
    fn name(&self) -> &str {
        &self.core.name
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Oauth2
    }

    async fn exchange_code(
        &self,
        code: &SecretString,
        redirect_uri: &str,
        code_verifier: Option<&SecretString>,
    ) -> Result<TokenResponse, ProviderError> {
        self.core.check_redirect_uri(redirect_uri)?;
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code.expose_secret()),
            ("redirect_uri", redirect_uri),
        ];
        let mut secrets = vec![code];
        if let Some(verifier) = code_verifier {
            fields.push(("code_verifier", verifier.expose_secret()));
            secrets.push(verifier);
        }
        self.token(&fields, &secrets).await
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenResponse, ProviderError> {
        // No `scope`: RFC 6749 §6 then grants the scope the grant already has.
        let fields = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        self.token(&fields, &[refresh_token]).await
    }

    async fn revoke(&self, refresh_token: &SecretString) -> Result<(), ProviderError> {
        let Some(url) = &self.revocation_url else {
            return Err(ProviderError::Refused(format!(
                "provider {} has no revocation endpoint (providers.{}.revocation_url)",
                self.core.name, self.core.name
            )));
        };
        let fields = [
            ("token", refresh_token.expose_secret()),
            ("token_type_hint", "refresh_token"),
        ];
        let result = self
            .core
            .call(Endpoint::Revoke, &[refresh_token], |secret| {
                self.form_post(url, &fields, secret)
            })
            .await;
        match result {
            // RFC 7009 §2.2: 200 whatever the body, for unknown tokens too.
            Ok(_) => Ok(()),
            // A server that says the token is already dead agrees with us.
            Err(ProviderError::InvalidGrant { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `avoid_linking` and `provider_name` are Cronofy's and left out here.
    fn authorization_url(&self, req: &AuthorizationRequest<'_>) -> Result<Url, ProviderError> {
        self.core.check_redirect_uri(req.redirect_uri)?;
        let Some(base) = &self.authorization_url else {
            return Err(ProviderError::Refused(format!(
                "providers.{}.authorization_url is not set, so no authorization URL can be built",
                self.core.name
            )));
        };
        // Keeps any query the operator configured (e.g. Google's `access_type=offline`).
        let mut url = base.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.core.client_id)
                .append_pair("redirect_uri", req.redirect_uri);
            if let Some(scope) = req.scope.filter(|s| !s.is_empty()) {
                q.append_pair("scope", scope);
            }
            q.append_pair("state", req.state);
            if let Some(challenge) = req.code_challenge {
                q.append_pair("code_challenge", challenge)
                    .append_pair("code_challenge_method", pkce::METHOD);
            }
        }
        Ok(url)
    }

    async fn application_calendar(
        &self,
        _application_calendar_id: &str,
    ) -> Result<TokenResponse, ProviderError> {
        Err(ProviderError::Refused(format!(
            "application calendars are a Cronofy feature; provider {} is kind oauth2",
            self.core.name
        )))
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
mod tests {
    use super::*;

    #[test]
    fn basic_auth_form_encodes_before_base64() {
        let value = basic_auth("my client", "p:ss%w/rd");
        let encoded = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "my+client:p%3Ass%25w%2Frd");
        assert!(value.is_sensitive());
    }
}
