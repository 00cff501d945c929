//! A refresh token arriving (import, code exchange, application calendar):
//! stored with the access token and whatever else came with it, and the
//! grant published as the store wrote it.

use secrecy::SecretString;

use super::Refresher;
use super::error::IntakeError;
use super::intake::IntakeOutcome;
use super::issue::{access_token, next_due};
use crate::clock::UnixMillis;
use crate::model::{AccessToken, Extras};
use crate::provider::TokenResponse;
use crate::store::NewCredential;

/// A refresh token arriving, with what came with it.
pub(super) struct Arrival<'a> {
    pub(super) id: &'a str,
    pub(super) provider: &'a str,
    pub(super) refresh_token: &'a SecretString,
    /// The provider's answer (or the caller's access token) to store.
    pub(super) response: Option<&'a TokenResponse>,
    pub(super) application_calendar_id: Option<&'a str>,
    /// The provider issued the access token just now (the view's
    /// `last_refresh_at`); not for a caller-supplied token.
    pub(super) issued: bool,
    /// When the request that got `response` was sent: its expiry counts
    /// from then. `None`: from now (a caller-supplied token).
    pub(super) sent: Option<UnixMillis>,
    /// The first refresh failed (no access token then): when to try again,
    /// and why it failed.
    pub(super) failed: Option<(UnixMillis, String)>,
}

impl Refresher {
    /// Stores a credential whose refresh token just arrived, with the access
    /// token of its response if there is one, and publishes the grant as
    /// the store wrote it.
    pub(super) async fn store_new(&self, a: Arrival<'_>) -> Result<IntakeOutcome, IntakeError> {
        let now = self.inner.clock.now();
        let cfg = &self.inner.config;
        let access = a.response.map(|r| AccessToken {
            // A caller's token: what is left of it is no issued lifetime.
            lifetime_issued: a.issued && r.expires_in.is_some(),
            ..access_token(r, a.sent.unwrap_or(now), cfg)
        });
        let next = match (&access, &a.failed) {
            (Some(t), _) => next_due(t, cfg),
            (None, Some((retry_at, _))) => *retry_at,
            (None, None) => now,
        };
        let no_extras = Extras::new();
        let out = self
            .inner
            .store
            .put_credential(&NewCredential {
                id: a.id,
                provider: a.provider,
                refresh_token: a.refresh_token,
                access: access.as_ref(),
                scope: a.response.and_then(|r| r.scope.as_deref()),
                extras: a.response.map_or(&no_extras, |r| &r.extras),
                application_calendar_id: a.application_calendar_id,
                next_refresh_at: Some(next),
                last_refresh_at: a.issued.then_some(now),
                failure: a.failed.as_ref().map(|(_, why)| why.as_str()),
            })
            .await
            .map_err(|e| self.report_store(e))?;
        self.inner.store.health().up();
        if let Some(orphan) = out.orphaned_grant {
            self.forget(orphan);
        }
        self.publish(&out.state);
        Ok(IntakeOutcome {
            created: out.created,
            grant_id: out.grant_id(),
        })
    }
}
