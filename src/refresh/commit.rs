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

use tokio::sync::{mpsc, oneshot};

use crate::store::{CommitOutcome, Store, StoreError, TokenCommit};

/// Results written in one transaction at most.
const MAX_BATCH: usize = 256;

/// Why a result was not written: the batch's store error, shared by every
/// flight in the batch.
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum CommitError {
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The writing task is gone (it panicked); nothing will be written.
    #[error("the commit task has stopped")]
    Stopped,
}

pub(super) type Reply = Result<CommitOutcome, CommitError>;

type Job = (TokenCommit, oneshot::Sender<Reply>);

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

    /// Writes `commit` (with others queued meanwhile); returns once it is
    /// committed, or with the error that kept the whole batch out.
    pub(super) async fn write(&self, commit: TokenCommit) -> Reply {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((commit, reply)).is_err() {
            return Err(CommitError::Stopped);
        }
        answer.await.unwrap_or(Err(CommitError::Stopped))
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut batch: Vec<TokenCommit> = Vec::new();
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (commits, replies): (Vec<_>, Vec<_>) = jobs.drain(..).unzip();
        batch.extend(commits);
        let result = store.commit_refreshes(&batch).await;
        batch.clear();
        match result {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                let e = CommitError::Store(Arc::new(e));
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
