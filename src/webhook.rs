//! Webhooks (`[notify]`): a signed POST for each grant status transition
//! (needs_reauth, failing, recovered), so an operator hears when a person
//! must re-authorize.
//!
//! Events are sent one at a time, in order. Each is retried with backoff
//! (1, 2, 4, 8 s) until the receiver answers 2xx, at most five attempts, and
//! never sent again once it has been accepted. The body is signed with
//! HMAC-SHA256: `X-Tokend-Signature: sha256=<hex>`; `X-Tokend-Event-Id` lets
//! a receiver drop a duplicate when its 2xx got lost on the way back.

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::{broadcast, watch};
use url::Url;

use crate::clock::{Clock, rfc3339};
use crate::refresh::StatusEvent;
use crate::telemetry::metrics::Metrics;

const ATTEMPTS: u32 = 5;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Webhook {
    url: Url,
    secret: Option<SecretString>,
    http: reqwest::Client,
    clock: Clock,
    metrics: Metrics,
}

impl Webhook {
    pub fn new(
        url: Url,
        secret: Option<SecretString>,
        clock: Clock,
        metrics: Metrics,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("tokend/", env!("CARGO_PKG_VERSION")))
            // A redirect would take the signed body somewhere not configured.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()?;
        Ok(Webhook {
            url,
            secret,
            http,
            clock,
            metrics,
        })
    }

    /// Sends every event from `events` until `stop`.
    pub async fn run(
        self,
        mut events: broadcast::Receiver<StatusEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let event = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                e = events.recv() => e,
            };
            match event {
                Ok(event) => self.deliver(&event).await,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "webhook sender fell behind; some status events were not sent"
                    );
                    self.metrics.webhook("dropped");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// The JSON body of an event.
    pub fn body(event: &StatusEvent, id: &str) -> String {
        json!({
            "id": id,
            "event": event.event,
            "provider": event.provider,
            "credential_ids": event.credential_ids,
            "consecutive_failures": event.consecutive_failures,
            "error": event.error,
            "at": rfc3339(event.at),
        })
        .to_string()
    }

    async fn deliver(&self, event: &StatusEvent) {
        let id = hex::encode(rand::random::<[u8; 12]>());
        let body = Self::body(event, &id);
        let signature = self.secret.as_ref().map(|s| sign(s, body.as_bytes()));
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            let mut request = self
                .http
                .post(self.url.clone())
                .header("content-type", "application/json")
                .header("x-tokend-event-id", &id)
                .body(body.clone());
            if let Some(sig) = &signature {
                request = request.header("x-tokend-signature", sig);
            }
            match request.send().await {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(event_id = %id, attempt, "webhook delivered");
                    self.metrics.webhook("delivered");
                    return;
                }
                Ok(r) => {
                    tracing::warn!(event_id = %id, attempt, status = r.status().as_u16(), "webhook refused")
                }
                // reqwest's error text names the URL, never the body.
                Err(e) => {
                    tracing::warn!(event_id = %id, attempt, error = %e.without_url(), "webhook failed")
                }
            }
            if attempt < ATTEMPTS {
                self.clock.sleep(wait).await;
                wait *= 2;
            }
        }
        tracing::error!(event_id = %id, "webhook given up after {ATTEMPTS} attempts");
        self.metrics.webhook("failed");
    }
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn sign(secret: &SecretString, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let s = sign(
            &SecretString::from("Jefe".to_owned()),
            b"what do ya want for nothing?",
        );
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
