//! Each provider's API as the proxy uses it (its base, prepared as a
//! [`Base`], and its `request_timeout_secs`), worked out when the
//! configuration is set (at start and at each SIGHUP reload) rather than
//! per request.
//!
//! Working it out per request meant cloning the base URL (or, for a
//! Cronofy provider without `api_base_url`, formatting and parsing its data
//! centre's URL), then parsing the whole target URI and its origin again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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

/// Every configured provider's API, by provider name.
#[derive(Debug, Default)]
pub(crate) struct Apis(HashMap<String, Result<Arc<Api>, Missing>, foldhash::fast::RandomState>);

impl Apis {
    pub(crate) fn new(config: &Config) -> Apis {
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
        Apis(apis)
    }

    /// `provider`'s API.
    pub(super) fn get(&self, provider: &str) -> Result<Arc<Api>, Missing> {
        self.0
            .get(provider)
            .cloned()
            .unwrap_or(Err(Missing::Provider))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokend.toml");
        std::fs::write(&path, text).unwrap();
        let missing = dir.path().join("none.toml");
        crate::config::load_from(Some(&path), &missing, Vec::new()).unwrap()
    }

    const PROVIDERS: &str = r#"
[providers.calendar]
kind = "oauth2"
token_url = "https://auth.example/token"
client_id = "cid"
client_secret = "s"
api_base_url = "https://api.example/v2/"
request_timeout_secs = 7
[providers.bare]
kind = "oauth2"
token_url = "https://auth.example/token"
client_id = "cid"
client_secret = "s"
"#;

    #[test]
    fn each_provider_s_api_is_prepared_from_its_configuration() {
        let apis = Apis::new(&config(PROVIDERS));
        let api = apis.get("calendar").unwrap();
        assert_eq!(&*api.base.origin, "https://api.example");
        assert_eq!(api.base.target("x", None).unwrap(), "/v2/x");
        assert_eq!(api.timeout, Duration::from_secs(7));
        assert_eq!(apis.get("bare").unwrap_err(), Missing::BaseUrl);
        assert_eq!(apis.get("gone").unwrap_err(), Missing::Provider);
        // Another configuration (a reload) makes another table.
        let moved = PROVIDERS.replace("api.example/v2/", "other.example/");
        let api = Apis::new(&config(&moved)).get("calendar").unwrap();
        assert_eq!(&*api.base.origin, "https://other.example");
    }
}
