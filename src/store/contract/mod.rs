//! What every backend must pass: the [`Backend`](super::Backend) contract
//! as tests, written against the [`Store`] handle only. A backend runs them
//! all with [`store_contract!`](crate::store::contract::store_contract),
//! given a function that makes a [`Fixture`] (a fresh, empty store).
//!
//! - `credentials`: puts, linking by refresh token, moves, deletes.
//! - `listing`: listings, their filters and paging.
//! - `refresh`: commits with compare-and-set, group commit, leases and the
//!   writes they fence.
//! - `feed`: the change feed, the full load, key rotation.
//! - `usage`: the last hand-outs (the refresh budget's order).

mod credentials;
mod feed;
mod listing;
mod refresh;
mod usage;

pub(crate) use credentials::*;
pub(crate) use feed::*;
pub(crate) use listing::*;
pub(crate) use refresh::*;
pub(crate) use usage::*;

use std::sync::Arc;

use futures::future::BoxFuture;
use secrecy::SecretString;

use super::crypto::MasterKey;
use super::{NewCredential, PutOutcome, Store, StoreError};
use crate::clock::Clock;
use crate::model::{AccessToken, Extras};

/// The clock every fixture starts at.
pub(crate) const T0: i64 = 1_700_000_000_000;

/// Opens a fixture's database again with a key.
pub(crate) type Reopen =
    Box<dyn Fn(&MasterKey) -> BoxFuture<'static, Result<Store, StoreError>> + Send + Sync>;

/// A fresh, empty store on a manual clock, and the means to open it again.
pub(crate) struct Fixture {
    pub store: Store,
    pub clock: Clock,
    pub key: Arc<MasterKey>,
    /// Opens the same database again with a key: a second process (another
    /// lease owner) with the same key, or the store after a key rotation.
    pub reopen: Reopen,
    /// What must live as long as the store (a temporary directory).
    pub _keep: Box<dyn Send + Sync>,
}

/// Generates one `#[tokio::test]` per contract check for the backend whose
/// fixtures `$fixture` (an async fn returning a [`Fixture`]) makes.
/// `store_contract!(optional $fixture)`: the fixture returns an
/// `Option<Fixture>`, `None` when the backend's server is not there (the
/// fixture says why); the checks then pass without running.
macro_rules! store_contract {
    (optional $fixture:path) => {
        $crate::store::contract::store_contract!(@list (optional) $fixture);
    };
    ($fixture:path) => {
        $crate::store::contract::store_contract!(@list () $fixture);
    };
    (@list ($($optional:ident)?) $fixture:path) => {
        $crate::store::contract::store_contract!(@each ($($optional)?) $fixture;
            put_and_read_back,
            a_shared_refresh_token_links_credentials_to_one_grant,
            a_linked_credential_starts_with_the_grants_extras,
            another_providers_identical_token_is_another_grant,
            deleting_the_last_credential_deletes_the_grant,
            moving_a_credential_drops_the_orphaned_grant,
            a_linked_import_keeps_the_longer_lived_access_token,
            a_failed_first_refresh_is_stored_as_one_failure,
            listings_filter_and_page_in_id_order,
            a_commit_is_compare_and_set_and_keeps_the_previous_token,
            a_conflict_in_a_batch_does_not_stop_the_others,
            leases_are_exclusive_until_they_expire,
            failure_writes_release_the_lease,
            a_lease_whose_grant_moved_on_writes_nothing,
            the_change_feed_reports_writes_and_deletes,
            a_full_load_sees_what_reads_see,
            rotating_the_key_reseals_everything,
            last_hand_outs_are_kept_latest_first,
        );
    };
    (@each () $fixture:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::store::contract::$check($fixture().await).await;
            }
        )*
    };
    (@each (optional) $fixture:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                if let Some(fixture) = $fixture().await {
                    $crate::store::contract::$check(fixture).await;
                }
            }
        )*
    };
}
pub(crate) use store_contract;

pub(crate) fn s(v: &str) -> SecretString {
    SecretString::from(v.to_owned())
}

pub(crate) fn extras(v: serde_json::Value) -> Extras {
    v.as_object().cloned().unwrap_or_default()
}

pub(crate) fn access(token: &str, expires_at: i64) -> AccessToken {
    AccessToken {
        token: s(token),
        token_type: "bearer".into(),
        expires_at,
        lifetime_secs: 3600,
        lifetime_issued: true,
    }
}

/// A credential of provider `cronofy`, due at `T0 + 1000`.
pub(crate) fn new_credential<'a>(
    id: &'a str,
    refresh_token: &'a SecretString,
    access: Option<&'a AccessToken>,
    extras: &'a Extras,
) -> NewCredential<'a> {
    NewCredential {
        id,
        provider: "cronofy",
        refresh_token,
        access,
        scope: Some("read_write"),
        extras,
        application_calendar_id: None,
        next_refresh_at: Some(T0 + 1000),
        last_refresh_at: None,
        failure: None,
    }
}

pub(crate) async fn put(
    store: &Store,
    id: &str,
    rt: &str,
    at: Option<&AccessToken>,
    ex: &Extras,
) -> PutOutcome {
    store
        .put_credential(&new_credential(id, &s(rt), at, ex))
        .await
        .unwrap()
}
