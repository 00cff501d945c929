//! What can go wrong when the refresher is asked for something, with the
//! cause kept. Callers (the API, the CLI) decide from these alone: whether
//! waiting helps ([`ProviderFailure::is_transient`], the one definition of
//! it) and until when ([`ProviderFailure::retry_at`]); they never see a
//! provider's own error type.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::UnixMillis;
use crate::provider::ProviderError;
use crate::store::StoreError;

/// A provider call that failed, classified for the refresher's callers. The
/// provider's error is kept inside; its text is the message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct ProviderFailure {
    error: ProviderError,
    /// When to try again, as the time it is and as the wait from when the
    /// failure happened (for callers without the clock at hand).
    retry: Option<(UnixMillis, Duration)>,
}

impl ProviderFailure {
    /// A failure first seen at `now`: a 429 says when to come back.
    pub(super) fn new(error: ProviderError, now: UnixMillis) -> Self {
        let retry = match &error {
            ProviderError::RateLimited { retry_after } => Some((
                now.saturating_add(crate::clock::millis(*retry_after)),
                *retry_after,
            )),
            _ => None,
        };
        ProviderFailure { error, retry }
    }

    /// A failed refresh at `now`, which the refresher tries again at `retry_at`.
    pub(super) fn scheduled(error: ProviderError, now: UnixMillis, retry_at: UnixMillis) -> Self {
        let wait = Duration::from_millis(retry_at.saturating_sub(now).max(0) as u64);
        ProviderFailure {
            error,
            retry: Some((retry_at, wait)),
        }
    }

    /// The provider is down, slow or rate limiting: the same request later
    /// may well work, and nothing is wrong with the grant or with tokend's
    /// client credentials. An answer tokend cannot read (`Protocol`) or a
    /// refusal of the client credentials is not transient: a person has to
    /// look.
    pub fn is_transient(&self) -> bool {
        is_transient(&self.error)
    }

    /// When trying again makes sense, when known: the refresher's next
    /// attempt, or the end of a 429's pause.
    pub fn retry_at(&self) -> Option<UnixMillis> {
        self.retry.map(|(at, _)| at)
    }

    /// [`ProviderFailure::retry_at`] as the wait from when the failure happened.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry.map(|(_, wait)| wait)
    }
}

/// The one definition of "transient" (see [`ProviderFailure::is_transient`]).
pub(super) fn is_transient(error: &ProviderError) -> bool {
    matches!(
        error,
        ProviderError::Transient { .. } | ProviderError::RateLimited { .. }
    )
}

/// Why [`super::Refresher::refresh_grant`] produced no new token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    #[error("the credential or grant no longer exists")]
    Gone,
    #[error("the grant needs re-authorization: {0}")]
    NeedsReauth(String),
    #[error(transparent)]
    Provider(ProviderFailure),
    #[error("provider {0} is not configured")]
    UnknownProvider(String),
    /// Shared: every caller of a coalesced refresh gets the same error.
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The refresh task ended without an answer (the runtime is shutting
    /// down, or the task panicked).
    #[error("the refresh did not finish: {0}")]
    Interrupted(Arc<tokio::task::JoinError>),
    /// The store refuses writes (see [`crate::store::StoreHealth`]): no
    /// provider call was made, since its result could not be kept.
    #[error("{STORE_UNAVAILABLE}")]
    StoreUnavailable,
}

/// Why nothing that needs the store was done while it is down.
pub(super) const STORE_UNAVAILABLE: &str = "the database refuses writes or cannot be reached; nothing that needs it is done until it is back";

impl RefreshError {
    /// See [`ProviderFailure::is_transient`]; only provider failures are.
    pub fn is_transient(&self) -> bool {
        matches!(self, RefreshError::Provider(f) if f.is_transient())
    }

    /// The store cannot take writes now: said before any provider call, or
    /// an outage error of the store itself ([`StoreError::is_outage`]).
    pub fn is_store_outage(&self) -> bool {
        match self {
            RefreshError::StoreUnavailable => true,
            RefreshError::Store(e) => e.is_outage(),
            _ => false,
        }
    }

    /// When the refresher tries this grant again, if it failed at the provider.
    pub fn retry_at(&self) -> Option<UnixMillis> {
        match self {
            RefreshError::Provider(f) => f.retry_at(),
            _ => None,
        }
    }
}

impl From<StoreError> for RefreshError {
    fn from(e: StoreError) -> Self {
        RefreshError::Store(Arc::new(e))
    }
}

/// Why an import, a code exchange or an application calendar stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    /// The provider refused the code or refresh token; nothing was stored.
    #[error("{0}")]
    InvalidGrant(String),
    /// Refused locally (e.g. a `redirect_uri` not registered); nothing was sent.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Provider(ProviderFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store refuses writes: the provider was not called (a code
    /// exchanged or a refresh token spent now could not be kept).
    #[error("{STORE_UNAVAILABLE}")]
    StoreUnavailable,
}

impl IntakeError {
    pub(super) fn from_provider(e: ProviderError, now: UnixMillis) -> Self {
        match e {
            ProviderError::InvalidGrant { description } => IntakeError::InvalidGrant(description),
            ProviderError::Refused(m) => IntakeError::Refused(m),
            other => IntakeError::Provider(ProviderFailure::new(other, now)),
        }
    }
}

/// Why a credential was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("no such credential")]
    NotFound,
    #[error("other credentials share this grant; delete them first or delete without revoke=true")]
    GrantShared {
        /// The other credentials' ids (ids are names, never secrets).
        others: Vec<String>,
    },
    /// Revoking at the provider failed; the credential is kept.
    #[error(transparent)]
    Provider(ProviderFailure),
    /// Refused locally (no revocation endpoint, provider not configured).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store refuses writes: nothing was revoked or deleted.
    #[error("{STORE_UNAVAILABLE}")]
    StoreUnavailable,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreachable_or_busy_provider_is_transient() {
        let transient = [
            ProviderError::Transient {
                reason: "503".into(),
            },
            ProviderError::RateLimited {
                retry_after: Duration::from_secs(30),
            },
        ];
        let not = [
            ProviderError::Protocol {
                reason: "garbage".into(),
            },
            ProviderError::InvalidClient {
                description: "bad secret".into(),
            },
            ProviderError::InvalidGrant {
                description: "revoked".into(),
            },
            ProviderError::Refused("no".into()),
        ];
        assert!(transient.iter().all(is_transient));
        assert!(!not.iter().any(is_transient));
    }

    #[test]
    fn a_429_says_when_to_come_back() {
        let limited = ProviderError::RateLimited {
            retry_after: Duration::from_secs(30),
        };
        let f = ProviderFailure::new(limited, 1_000);
        assert_eq!(f.retry_at(), Some(31_000));
        assert_eq!(f.retry_after(), Some(Duration::from_secs(30)));
        let e = RefreshError::Provider(f);
        assert!(e.is_transient());
        assert_eq!(e.retry_at(), Some(31_000));
        let down = ProviderFailure::new(ProviderError::Transient { reason: "x".into() }, 1_000);
        assert_eq!(
            down.retry_at(),
            None,
            "unknown until the refresher schedules it"
        );
        assert!(!RefreshError::Gone.is_transient());
    }
}
