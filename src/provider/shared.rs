//! What every provider kind shares: its name, the HTTP client and timeout,
//! the rate limiter, the client secrets with their fallback order, and the
//! registered redirect URIs. [`Core::call`] is the only way a request leaves.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Client, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};

use super::bucket::SharedStock;
use super::classify::{self, Endpoint};
use super::http::{self, Answer};
use super::limit::Limiter;
use super::{BuildError, ProviderError};
use crate::clock::Clock;
use crate::config::ProviderConfig;

pub(crate) struct Core {
    pub name: String,
    pub client_id: String,
    pub http: Client,
    pub timeout: Duration,
    pub limiter: Limiter,
    pub clock: Clock,
    /// The current secret first, then `previous_client_secrets` in order.
    secrets: Vec<SecretString>,
    /// Index into `secrets` of the one that last worked: later calls start
    /// there, so a rotation in progress costs one extra request, not one per call.
    preferred: AtomicUsize,
    redirect_uris: Vec<String>,
}

impl Core {
    /// Checks what every kind needs from `config` and sets up the limiter.
    pub(crate) fn new(
        name: &str,
        config: &ProviderConfig,
        http: Client,
        clock: Clock,
        shared: Option<SharedStock>,
    ) -> Result<Self, BuildError> {
        let invalid = |problem: &str| BuildError::Invalid {
            name: name.to_owned(),
            problem: problem.to_owned(),
        };
        let current = config
            .client_secret
            .clone()
            .ok_or_else(|| invalid("client_secret (or client_secret_file) is required"))?;
        let per_minute = NonZeroU32::new(config.max_requests_per_minute)
            .ok_or_else(|| invalid("max_requests_per_minute must be at least 1"))?;
        let burst =
            NonZeroU32::new(config.burst).ok_or_else(|| invalid("burst must be at least 1"))?;
        if config.request_timeout_secs == 0 {
            return Err(invalid("request_timeout_secs must be at least 1"));
        }
        let mut secrets = vec![current];
        secrets.extend(config.previous_client_secrets.iter().cloned());
        Ok(Core {
            name: name.to_owned(),
            client_id: config.client_id.clone(),
            http,
            timeout: Duration::from_secs(config.request_timeout_secs),
            limiter: Limiter::new(per_minute, burst, clock.clone(), shared),
            clock,
            secrets,
            preferred: AtomicUsize::new(0),
            redirect_uris: config.redirect_uris.clone(),
        })
    }

    /// Exact string match, as providers compare it: a near miss would fail
    /// at the provider anyway, after costing a call and burning the code.
    pub(crate) fn check_redirect_uri(&self, redirect_uri: &str) -> Result<(), ProviderError> {
        if self.redirect_uris.iter().any(|r| r == redirect_uri) {
            return Ok(());
        }
        Err(ProviderError::Refused(format!(
            "redirect_uri {redirect_uri:?} is not in providers.{}.redirect_uris",
            self.name
        )))
    }

    /// Sends the request `build` makes for a client secret, trying the
    /// secrets in order while the provider answers `invalid_client`.
    ///
    /// Returns the 2xx answer; every other answer comes back classified.
    /// `request_secrets` (code, refresh token) are scrubbed from provider text.
    pub(crate) async fn call(
        &self,
        endpoint: Endpoint,
        request_secrets: &[&SecretString],
        build: impl Fn(&str) -> RequestBuilder,
    ) -> Result<Answer, ProviderError> {
        let mut refused = None;
        for index in self.secret_order() {
            let secret = self.secrets[index].expose_secret();
            self.limiter.acquire().await?;
            let started = Instant::now();
            let result = http::send(build(secret), self.timeout).await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let answer = match result {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::debug!(provider = %self.name, endpoint = endpoint.as_str(), elapsed_ms, error = %e, "provider call failed");
                    return Err(e);
                }
            };
            tracing::debug!(provider = %self.name, endpoint = endpoint.as_str(), status = answer.status.as_u16(), elapsed_ms, "provider call");
            if answer.status.is_success() {
                self.prefer(index);
                return Ok(answer);
            }
            let mut scrub: Vec<&str> = request_secrets.iter().map(|s| s.expose_secret()).collect();
            scrub.extend(self.secrets.iter().map(|s| s.expose_secret()));
            let retry_after = http::retry_after(&answer.headers, self.clock.now());
            let error = classify::failure(
                endpoint,
                answer.status.as_u16(),
                &answer.body,
                retry_after,
                &scrub,
            );
            match error {
                ProviderError::InvalidClient { .. } => refused = Some(error),
                ProviderError::RateLimited { retry_after } => {
                    tracing::warn!(provider = %self.name, retry_after_secs = retry_after.as_secs(), "provider rate limit hit; pausing all calls to it");
                    self.limiter.pause(retry_after);
                    return Err(error);
                }
                ProviderError::Transient { .. } => return Err(error),
                // A definite answer about the request itself: the client
                // credentials got past authentication.
                _ => {
                    self.prefer(index);
                    return Err(error);
                }
            }
        }
        Err(refused.expect("there is always at least one client secret"))
    }

    /// The secret that worked last, then all the others in configured order.
    fn secret_order(&self) -> impl Iterator<Item = usize> {
        let first = self.preferred.load(Ordering::Relaxed);
        std::iter::once(first).chain((0..self.secrets.len()).filter(move |&i| i != first))
    }

    fn prefer(&self, index: usize) {
        let before = self.preferred.swap(index, Ordering::Relaxed);
        if before != index && index > 0 {
            // Names the position, never the secret.
            tracing::warn!(
                provider = %self.name,
                "client_secret refused; previous_client_secrets[{}] accepted: finish the rotation in the config",
                index - 1
            );
        } else if before != index {
            tracing::info!(provider = %self.name, "current client_secret accepted again");
        }
    }
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field(
                "client_secrets",
                &format_args!("[REDACTED; {}]", self.secrets.len()),
            )
            .field("preferred_secret", &self.preferred.load(Ordering::Relaxed))
            .field("redirect_uris", &self.redirect_uris)
            .field("timeout", &self.timeout)
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}
