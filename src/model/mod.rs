//! The domain: what tokend keeps and hands out, independent of where it is
//! stored or which provider issued it. Store, provider, refresher, cache,
//! API and CLI all speak these types; persistence is one user of them.
//!
//! - `grant`: grants and their tokens ([`GrantState`], [`Grant`],
//!   [`AccessToken`]), [`GrantId`], [`Status`].
//! - `credential`: credential ids, provider extras, and the view of a
//!   credential the API and the CLI show ([`CredentialView`]).
//! - `client_key`: the bearer keys local clients present.

mod client_key;
mod credential;
mod grant;

pub use client_key::new_client_key;
pub use credential::{
    CredentialExtras, CredentialView, Extras, extras_change, merge_extras, valid_credential_id,
};
pub use grant::{AccessToken, Grant, GrantId, GrantState, Status};
