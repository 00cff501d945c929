//! A provider faked in-process: refresh answers scripted per refresh token,
//! every call logged, and a gate that holds calls open until a test lets
//! them through.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use url::Url;

use crate::clock::UnixMillis;
use crate::config::ProviderKind;
use crate::model::Extras;
use crate::provider::{AuthorizationRequest, Provider, ProviderError, TokenResponse};

type Answer = Result<TokenResponse, ProviderError>;

#[derive(Debug, Default)]
pub(super) struct FakeProvider {
    /// Refresh answers by refresh token, in order; the last one repeats. A
    /// token without answers is refused (`invalid_grant`).
    answers: Mutex<HashMap<String, VecDeque<Answer>>>,
    /// Answers to application-calendar calls, by calendar id.
    calendars: Mutex<HashMap<String, Answer>>,
    /// The refresh token of every refresh call, in order.
    calls: Mutex<Vec<String>>,
    /// When set, each call waits for a permit first.
    gate: Mutex<Option<Arc<Semaphore>>>,
    paused_until: Mutex<Option<UnixMillis>>,
}

/// What a token endpoint answers: `at`, valid an hour, and `rt` if the
/// provider rotates.
pub(super) fn tokens(at: &str, rt: Option<&str>) -> TokenResponse {
    TokenResponse {
        access_token: SecretString::from(at.to_owned()),
        token_type: "bearer".into(),
        expires_in: Some(3600),
        refresh_token: rt.map(|t| SecretString::from(t.to_owned())),
        scope: None,
        extras: Extras::new(),
    }
}

impl FakeProvider {
    /// `rt` is answered with `answer` (after any answers queued before it).
    pub(super) fn answer(&self, rt: &str, answer: Answer) {
        lock(&self.answers)
            .entry(rt.to_owned())
            .or_default()
            .push_back(answer);
    }

    /// `rt` is exchanged for access token `at` and refresh token `next`.
    pub(super) fn rotates(&self, rt: &str, at: &str, next: &str) {
        self.answer(rt, Ok(tokens(at, Some(next))));
    }

    /// `rt` is refused from now on (`invalid_grant`), its answers dropped.
    pub(super) fn forget(&self, rt: &str) {
        lock(&self.answers).remove(rt);
    }

    pub(super) fn calendar(&self, id: &str, answer: Answer) {
        lock(&self.calendars).insert(id.to_owned(), answer);
    }

    /// The refresh tokens refresh calls were made with, in order.
    pub(super) fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    /// Holds every later call until [`FakeProvider::open`] lets it through.
    pub(super) fn close(&self) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        *lock(&self.gate) = Some(Arc::clone(&gate));
        gate
    }

    pub(super) fn pause_until(&self, at: UnixMillis) {
        *lock(&self.paused_until) = Some(at);
    }

    async fn pass_gate(&self) {
        let gate = lock(&self.gate).clone();
        if let Some(gate) = gate {
            gate.acquire().await.expect("the gate stays open").forget();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl Provider for FakeProvider {
    fn name(&self) -> &str {
        "fake"
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Cronofy
    }

    async fn exchange_code(
        &self,
        code: &SecretString,
        _: &str,
        _: Option<&SecretString>,
    ) -> Answer {
        self.refresh(code).await
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Answer {
        let rt = refresh_token.expose_secret().to_owned();
        lock(&self.calls).push(rt.clone());
        self.pass_gate().await;
        let mut answers = lock(&self.answers);
        let Some(queue) = answers.get_mut(&rt) else {
            return Err(ProviderError::InvalidGrant {
                description: "unknown refresh token".into(),
            });
        };
        match queue.len() {
            0 => Err(ProviderError::InvalidGrant {
                description: "unknown refresh token".into(),
            }),
            1 => queue[0].clone(),
            _ => queue.pop_front().expect("not empty"),
        }
    }

    async fn revoke(&self, _: &SecretString) -> Result<(), ProviderError> {
        Ok(())
    }

    fn authorization_url(&self, req: &AuthorizationRequest<'_>) -> Result<Url, ProviderError> {
        Url::parse(&format!(
            "https://fake.example/authorize?state={}",
            req.state
        ))
        .map_err(|e| ProviderError::Refused(e.to_string()))
    }

    async fn application_calendar(&self, id: &str) -> Answer {
        lock(&self.calls).push(format!("calendar:{id}"));
        lock(&self.calendars)
            .get(id)
            .cloned()
            .unwrap_or_else(|| Err(ProviderError::Refused("no such calendar".into())))
    }

    fn paused_until(&self) -> Option<UnixMillis> {
        *lock(&self.paused_until)
    }

    fn rate_limit_pauses(&self) -> u64 {
        u64::from(lock(&self.paused_until).is_some())
    }

    fn pause(&self, _: std::time::Duration) {}
}
