//! Clients: who may call the API, and for which credentials (SPEC §3 `[clients]`).
//!
//! A client is recognised by the SHA-256 of its bearer key (compared in
//! constant time; tokend never stores the key itself) or, on the unix
//! socket, by the peer's uid. With no `[clients]` configured, a `default`
//! client with full rights is created on first start and its key written
//! to `client.key` beside the database.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::guard::Peer;
use crate::config::Config;
use crate::model::new_client_key;

pub const DEFAULT_CLIENT_KEY_FILE: &str = "client.key";

#[derive(Debug, Clone)]
pub struct Client {
    pub name: String,
    key_sha256: Option<[u8; 32]>,
    unix_uids: Vec<u32>,
    patterns: Vec<String>,
    pub manage: bool,
    /// May it receive tokens (`GET /v1/tokens/{id}`, forced refresh)? A
    /// client without this right can still use the proxy.
    pub read_tokens: bool,
}

impl Client {
    /// May this client see credential `id` (its tokens and its view)?
    pub fn may_read(&self, id: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, id))
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[derive(Debug, Clone, Default)]
pub struct Clients {
    clients: Vec<Arc<Client>>,
}

impl Clients {
    /// The configured clients, or the generated `default` one when none are.
    pub fn from_config(config: &Config, database: &Path) -> std::io::Result<Clients> {
        if config.clients.is_empty() {
            let path = default_key_path(database);
            let hash = default_client_key_hash(&path)?;
            return Ok(Clients {
                clients: vec![Arc::new(Client {
                    name: "default".into(),
                    key_sha256: Some(hash),
                    unix_uids: Vec::new(),
                    patterns: vec!["*".into()],
                    manage: true,
                    read_tokens: true,
                })],
            });
        }
        let clients = config
            .clients
            .iter()
            .map(|(name, c)| {
                Arc::new(Client {
                    name: name.clone(),
                    key_sha256: c.key_sha256.as_deref().and_then(|h| {
                        let mut out = [0u8; 32];
                        hex::decode_to_slice(h, &mut out).ok().map(|()| out)
                    }),
                    unix_uids: c.unix_uids.clone(),
                    patterns: c.credentials.clone(),
                    manage: c.manage,
                    read_tokens: c.read_tokens,
                })
            })
            .collect();
        Ok(Clients { clients })
    }

    /// The client making this request, if any: by bearer key, else (unix
    /// socket only) by peer uid.
    pub fn identify(&self, headers: &HeaderMap, peer: Peer) -> Option<Arc<Client>> {
        if let Some(key) = bearer(headers) {
            let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
            // Compare against every client so timing says nothing about which matched.
            let mut found = None;
            for c in &self.clients {
                if let Some(h) = &c.key_sha256
                    && bool::from(h.ct_eq(&hash))
                {
                    found = Some(Arc::clone(c));
                }
            }
            return found;
        }
        match peer {
            Peer::Unix { uid: Some(uid) } => self
                .clients
                .iter()
                .find(|c| c.unix_uids.contains(&uid))
                .cloned(),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

pub fn default_key_path(database: &Path) -> PathBuf {
    database
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(DEFAULT_CLIENT_KEY_FILE)
}

/// Reads the default client's key file, creating it (0600) with a new random
/// key on first start. Logs the file's path, never the key.
fn default_client_key_hash(path: &Path) -> std::io::Result<[u8; 32]> {
    let key = match std::fs::read_to_string(path) {
        Ok(text) => zeroize::Zeroizing::new(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = new_client_key();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            f.write_all(key.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            tracing::warn!(key_file = %path.display(),
                "no [clients] configured: created client \"default\" with full rights; its bearer key is in this file");
            key
        }
        Err(e) => return Err(e),
    };
    tracing::info!(key_file = %path.display(), "client \"default\" (no [clients] configured) uses the key in this file");
    Ok(Sha256::digest(key.as_bytes()).into())
}

/// Shell-style patterns over credential ids: `*` any run, `?` one character.
/// The same semantics as SQLite's GLOB for the characters ids may contain,
/// which is what listings filter with.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("user-*", "user-42"));
        assert!(!glob_match("user-*", "svc-1"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "abbc"));
        assert!(glob_match("*@example.com", "x@example.com"));
        assert!(glob_match("a*b*c", "a-b-x-c"));
        assert!(!glob_match("a*b*c", "a-b-x"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer tkd_abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("tkd_abc"));
        h.insert(header::AUTHORIZATION, "bearer  tkd_abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("tkd_abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
