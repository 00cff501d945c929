//! Group commit of refresh results.
//!
//! Every refresh result must be durable (`synchronous=FULL`: an fsync)
//! before its token is handed out, and an fsync costs far more than the
//! rest of a refresh. So flights do not write one by one: they queue their
//! result here and wait; one task writes whatever has queued meanwhile in
//! one transaction (each grant still compare-and-set on its own) and tells
//! each flight its outcome after the commit. Under load the batch grows by
//! itself; alone, a result is written at once.

use std::sync::Arc;

use secrecy::SecretString;
use tokio::sync::{mpsc, oneshot};

use crate::store::{AccessToken, CasOutcome, Extras, GrantId, RefreshWrite, Store, StoreError};

/// Results written in one transaction at most.
const MAX_BATCH: usize = 256;

/// A refresh result to write: [`RefreshWrite`] owned, to cross to the task.
#[derive(Debug)]
pub(super) struct Pending {
    pub grant_id: GrantId,
    pub expected_generation: i64,
    pub refresh_token: Option<SecretString>,
    pub access: AccessToken,
    pub scope: Option<String>,
    pub extras: Extras,
    pub next_refresh_at: i64,
}

impl Pending {
    fn write(&self) -> RefreshWrite<'_> {
        RefreshWrite {
            refresh_token: self.refresh_token.as_ref(),
            access: &self.access,
            scope: self.scope.as_deref(),
            extras: &self.extras,
            next_refresh_at: self.next_refresh_at,
        }
    }
}

pub(super) type Reply = Result<CasOutcome, Arc<StoreError>>;

type Job = (Pending, oneshot::Sender<Reply>);

/// The queue in front of the writing task.
#[derive(Debug)]
pub(super) struct Committer {
    tx: mpsc::UnboundedSender<Job>,
}

impl Committer {
    /// Starts the writing task (on the current runtime); it ends when the
    /// committer is dropped and the queue is empty.
    pub(super) fn start(store: Store) -> Committer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx));
        Committer { tx }
    }

    /// Writes `pending` (with others queued meanwhile); returns once it is
    /// committed, or with the error that kept the whole batch out.
    pub(super) async fn write(&self, pending: Pending) -> Reply {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((pending, reply)).is_err() {
            return Err(Arc::new(StoreError::Corrupt(
                "the writer has stopped".into(),
            )));
        }
        answer.await.unwrap_or_else(|_| {
            Err(Arc::new(StoreError::Corrupt(
                "the writer has stopped".into(),
            )))
        })
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut jobs: Vec<Job> = Vec::new();
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let writes: Vec<_> = jobs.iter().map(|(p, _)| p.write()).collect();
        let batch: Vec<_> = jobs
            .iter()
            .zip(&writes)
            .map(|((p, _), w)| (p.grant_id, p.expected_generation, w))
            .collect();
        let result = store.write_refreshes(&batch).await;
        drop(batch);
        drop(writes);
        match result {
            Ok(outcomes) => {
                for ((_, reply), outcome) in jobs.drain(..).zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for (_, reply) in jobs.drain(..) {
                    let _ = reply.send(Err(Arc::clone(&e)));
                }
            }
        }
    }
}
