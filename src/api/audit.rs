//! The audit trail: one INFO line per change a client makes to a credential
//! (import, sign-in, re-authorization, delete, revoke), naming the
//! credential, the client and the provider; never a token. Lines go to the
//! `tokend::audit` target, so an operator can route or filter them.

use super::auth::Client;
use crate::cache::Cache;
use crate::model::Status;

/// What happened to the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Import,
    SignIn,
    /// An import or sign-in onto a credential whose grant needed
    /// re-authorization.
    Reauthorize,
    Delete,
    /// Deleted after its grant was revoked at the provider.
    Revoke,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Import => "import",
            Action::SignIn => "sign-in",
            Action::Reauthorize => "re-authorization",
            Action::Delete => "delete",
            Action::Revoke => "revoke",
        }
    }

    /// `action`, or [`Action::Reauthorize`] when credential `id` is there
    /// now and its grant needs re-authorization. Ask before the change.
    pub(super) fn or_reauthorize(self, cache: &Cache, id: &str) -> Action {
        match cache.get(id) {
            Some(entry) if entry.status == Status::NeedsReauth => Action::Reauthorize,
            _ => self,
        }
    }
}

/// Writes the audit line for a change that has been committed.
pub(super) fn record(action: Action, id: &str, client: &Client, provider: &str) {
    tracing::info!(
        target: "tokend::audit",
        action = action.as_str(),
        credential_id = id,
        client = %client.name,
        provider,
        "credential {}",
        action.as_str()
    );
}
