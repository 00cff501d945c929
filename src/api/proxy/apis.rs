//! Each provider's API as the proxy uses it (its base, prepared as a
//! [`Base`], and its `request_timeout_secs`), worked out once per
//! configuration rather than per request.
//!
//! Working it out per request meant cloning the base URL (or, for a
//! Cronofy provider without `api_base_url`, formatting and parsing its data
//! centre's URL), then parsing the whole target URI and its origin again.
//! The table is rebuilt when the configuration is (a SIGHUP reload): it
//! remembers which configuration it was built from.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::target::Base;
use crate::config::Config;

/// One provider's API, as a proxied request uses it.
#[derive(Debug)]
pub(super) struct Api {
    pub base: Base,
    /// The deadline on the answer's head (`providers.*.request_timeout_secs`).
    pub timeout: Duration,
}

/// Why a provider's API cannot be proxied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Missing {
    /// The provider is no longer configured.
    Provider,
    /// An oauth2 provider without `api_base_url`.
    BaseUrl,
    /// The base cannot be a request's origin (not http(s), no host).
    Usable,
}

type Table = HashMap<String, Result<Arc<Api>, Missing>, foldhash::fast::RandomState>;

/// The table and the configuration it was built from (held weakly: the
/// pointer stays unique while the table lives, and an old configuration's
/// providers are not kept alive by it).
struct Prepared {
    config: Weak<Config>,
    apis: Table,
}

static PREPARED: ArcSwapOption<Prepared> = ArcSwapOption::const_empty();

/// `provider`'s API under `config`.
pub(super) fn api(config: &Arc<Config>, provider: &str) -> Result<Arc<Api>, Missing> {
    let current = PREPARED.load();
    if let Some(prepared) = current.as_deref()
        && std::ptr::eq(prepared.config.as_ptr(), Arc::as_ptr(config))
    {
        return prepared
            .apis
            .get(provider)
            .cloned()
            .unwrap_or(Err(Missing::Provider));
    }
    drop(current);
    let prepared = prepare(config);
    let found = prepared
        .apis
        .get(provider)
        .cloned()
        .unwrap_or(Err(Missing::Provider));
    // Racing builders of the same configuration store equal tables.
    PREPARED.store(Some(Arc::new(prepared)));
    found
}

fn prepare(config: &Arc<Config>) -> Prepared {
    let apis = config
        .providers
        .iter()
        .map(|(name, p)| {
            let api = match p.proxy_base_url() {
                None => Err(Missing::BaseUrl),
                Some(url) => Base::new(&url).map_or(Err(Missing::Usable), |base| {
                    Ok(Arc::new(Api {
                        base,
                        timeout: Duration::from_secs(p.request_timeout_secs),
                    }))
                }),
            };
            (name.clone(), api)
        })
        .collect();
    Prepared {
        config: Arc::downgrade(config),
        apis,
    }
}
