//! Status transitions of grants (needs_reauth, failing, recovered): one
//! log line each where they happen, and an event other parts (webhooks)
//! subscribe to.

use serde::Serialize;
use tokio::sync::broadcast;

use super::Refresher;
use crate::clock::UnixMillis;
use crate::model::GrantState;

/// A status transition of a grant (SPEC §7: webhooks and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    NeedsReauth,
    Failing,
    Recovered,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusEvent {
    pub event: EventKind,
    pub provider: String,
    pub credential_ids: Vec<String>,
    pub consecutive_failures: i64,
    pub error: Option<String>,
    pub at: UnixMillis,
}

impl Refresher {
    /// Status transitions as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<StatusEvent> {
        self.inner.events.subscribe()
    }

    pub(super) fn emit(&self, event: EventKind, grant: &GrantState, error: Option<&str>) {
        let e = StatusEvent {
            event,
            provider: grant.provider.clone(),
            credential_ids: grant.credentials.iter().map(|c| c.id.clone()).collect(),
            consecutive_failures: grant.consecutive_failures,
            error: error.map(str::to_owned),
            at: self.inner.clock.now(),
        };
        // No subscriber is fine: the log line is the record.
        let _ = self.inner.events.send(e);
    }
}
