//! The validation messages: each broken rule names the key and the rule.

use super::{env, file, nowhere};
use crate::config::load_from;

#[test]
fn invalid_values_name_the_key_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        (
            "[refresh]\nlead_fraction = 0.7\n",
            "refresh.lead_fraction must be in (0, 0.5], got 0.7",
        ),
        (
            "[refresh]\nmax_lifetime_secs = 31622401\n",
            "refresh.max_lifetime_secs must be 60 to 31622400",
        ),
        (
            "[refresh]\nmin_lead_secs = 2\nhandout_margin_ms = 2001\n",
            "refresh.handout_margin_ms must be at most refresh.min_lead_secs (2 s)",
        ),
        (
            "[refresh]\nhandout_wait_ms = 60001\n",
            "refresh.handout_wait_ms must be at most 60000",
        ),
        (
            "[refresh]\nmax_concurrency = 0\n",
            "refresh.max_concurrency must be at least 1",
        ),
        (
            "[refresh]\nretry_max_secs = 0.5\n",
            "refresh.retry_max_secs must be at least refresh.retry_initial_secs",
        ),
        (
            "[server]\nlisten = [\"0.0.0.0:7780\"]\n",
            "not loopback; set server.allow_remote = true",
        ),
        (
            "[server]\nlisten = [\"localhost:80\"]\n",
            "server.listen: an entry is not an IP address and port: host names are not resolved here (one could resolve to a public address); write \"127.0.0.1:80\"",
        ),
        (
            "[server]\nlisten = [\"127.0.0.1\"]\n",
            "server.listen: an entry has no port; write e.g. \"127.0.0.1:7780\"",
        ),
        (
            "[clients.app]\nkey_sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n",
            "clients.app.key_sha256 is all zeros, a placeholder: run `tokend client-key app`",
        ),
        (
            "[server]\nunix_socket_mode = \"0999\"\n",
            "server.unix_socket_mode",
        ),
        ("[log]\nformat = \"xml\"\n", "log.format"),
        ("[refresh]\nmin_lead_secs = -1\n", "refresh.min_lead_secs"),
        (
            "[providers.g]\nkind = \"oauth2\"\nclient_id = \"x\"\nclient_secret = \"y\"\n",
            "providers.g.token_url is required",
        ),
        (
            "[providers.g]\nkind = \"oauth2\"\nclient_id = \"x\"\nclient_secret = \"y\"\ntoken_url = \"http://auth.example/token\"\n",
            "providers.g.token_url must use https",
        ),
        (
            "[providers.c]\nkind = \"cronofy\"\nclient_secret = \"y\"\n",
            "providers.c.client_id must not be empty",
        ),
        (
            "[providers.c]\nkind = \"cronofy\"\nclient_id = \"x\"\n",
            "providers.c.client_secret (or providers.c.client_secret_file) is required",
        ),
        (
            "[providers.c]\nkind = \"cronofy\"\nclient_id = \"x\"\nclient_secret = \"y\"\ndata_center = \"mars\"\n",
            "providers.c.data_center",
        ),
        (
            "[providers.Bad]\nkind = \"cronofy\"\nclient_id = \"x\"\nclient_secret = \"y\"\n",
            "providers.Bad: a provider name must match",
        ),
        (
            "[clients.app]\nkey_sha256 = \"abc\"\n",
            "clients.app.key_sha256 must be 64 hex digits",
        ),
        (
            "[clients.app]\nmanage = true\n",
            "clients.app needs key_sha256 or unix_uids",
        ),
        (
            "[notify]\nwebhook_url = \"ftp://x\"\n",
            "notify.webhook_url must be an http(s) URL",
        ),
    ] {
        let path = file(dir.path(), "t.toml", text);
        let err = load_from(Some(&path), &nowhere(), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "for {text:?}: {err}");
    }
}
