//! Group claims: the leases this member's refreshes ask for at the same
//! moment, taken in one statement (one round trip, one durable commit)
//! instead of one each. Under load the batch grows by itself; alone, a
//! claim is sent at once.
//!
//! The statement locks the rows it takes with `FOR UPDATE SKIP LOCKED`, so
//! it never waits for a row another writer holds: several rows locked in one
//! statement could otherwise deadlock with another member's batch or a
//! commit. A claim the batch did not take (held by someone else, locked at
//! that moment, gone) is tried again alone by the caller, one row, which
//! waits and tells held from gone.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::rows::{GrantWithCredentials, credential_arrays, grant_columns};
use crate::clock::UnixMillis;

/// Claims sent in one statement at most.
const MAX_BATCH: usize = 256;

/// One claim: the grant, the time it is asked at, the lease's end, and
/// where its row goes (`None`: try alone).
type Job = (
    i64,
    UnixMillis,
    UnixMillis,
    oneshot::Sender<Option<GrantWithCredentials>>,
);

/// The queue in front of the task that sends the batches.
#[derive(Debug)]
pub(super) struct Claims {
    tx: mpsc::UnboundedSender<Job>,
}

impl Claims {
    /// Starts the sending task on the current runtime; it ends when this is
    /// dropped.
    pub(super) fn start(pool: sqlx::PgPool, owner: Arc<str>) -> Claims {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, owner, rx));
        Claims { tx }
    }

    /// Takes the lease on `grant` until `until` with the others queued
    /// meanwhile; its row, or `None` when the caller must try alone.
    pub(super) async fn take(
        &self,
        grant: i64,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Option<GrantWithCredentials> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((grant, now, until, reply)).ok()?;
        answer.await.ok().flatten()
    }
}

async fn run(pool: sqlx::PgPool, owner: Arc<str>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut jobs: Vec<Job> = Vec::new();
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // A grant asked for twice goes alone (the second ask is rare: the
        // refresher runs one refresh per grant).
        jobs.sort_by_key(|j| j.0);
        let mut batch: Vec<Job> = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            if batch.last().is_some_and(|last| last.0 == job.0) {
                let _ = job.3.send(None);
            } else {
                batch.push(job);
            }
        }
        let (ids, nows, untils) = batch.iter().fold(
            (Vec::new(), Vec::new(), Vec::new()),
            |(mut i, mut n, mut u), j| {
                i.push(j.0);
                n.push(j.1);
                u.push(j.2);
                (i, n, u)
            },
        );
        let taken: Result<Vec<GrantWithCredentials>, sqlx::Error> = sqlx::query_as(concat!(
            "WITH locked AS (SELECT id AS locked_id FROM grants WHERE id = ANY($2)
                             ORDER BY id FOR UPDATE SKIP LOCKED)
             UPDATE grants g SET lease_owner = $1, lease_until = v.until_ms
             FROM locked, unnest($2::bigint[], $3::bigint[], $4::bigint[])
                  AS v(grant_id, now_ms, until_ms)
             WHERE g.id = locked.locked_id AND g.id = v.grant_id
               AND (g.lease_owner IS NULL OR g.lease_until <= v.now_ms OR g.lease_owner = $1)
             RETURNING ",
            grant_columns!(),
            ", ",
            credential_arrays!()
        ))
        .bind(&*owner)
        .bind(&ids)
        .bind(&nows)
        .bind(&untils)
        .fetch_all(&pool)
        .await;
        let mut taken = match taken {
            Ok(rows) => rows,
            Err(e) => {
                // Each caller tries alone and meets the error as its own.
                tracing::debug!(error = %e, "a group claim failed; claiming one by one");
                Vec::new()
            }
        };
        taken.sort_by_key(|r| r.grant.id);
        let mut taken = taken.into_iter().peekable();
        for (id, _, _, reply) in batch {
            let _ = reply.send(taken.next_if(|r| r.grant.id == id));
        }
    }
}
