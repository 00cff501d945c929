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
use std::sync::{Arc, Mutex};

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
            return self.by_key(key);
        }
        self.by_uid(peer)
    }

    /// [`Clients::identify`] for a request on a connection whose last
    /// verified key is in `memo`: the same `Authorization` value (byte for
    /// byte, so the same key) against the same clients (a SIGHUP replaces
    /// them, and with them any memo's worth) is the same client, found
    /// without parsing and hashing the key again. Any other value is
    /// checked in full and, when it identifies a client, remembered.
    pub fn identify_remembered(
        self: &Arc<Self>,
        headers: &HeaderMap,
        peer: Peer,
        memo: &KeyMemo,
    ) -> Option<Arc<Client>> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return self.identify(headers, peer);
        };
        let mut last = memo.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = last.as_ref()
            && Arc::ptr_eq(&m.clients, self)
            && same_secret(&m.authorization, value.as_bytes())
        {
            return Some(Arc::clone(&m.client));
        }
        let found = self.identify(headers, peer)?;
        *last = Some(Memo {
            clients: Arc::clone(self),
            authorization: zeroize::Zeroizing::new(value.as_bytes().into()),
            client: Arc::clone(&found),
        });
        Some(found)
    }

    fn by_key(&self, key: &str) -> Option<Arc<Client>> {
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
        found
    }

    fn by_uid(&self, peer: Peer) -> Option<Arc<Client>> {
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

/// One connection's last bearer key that identified a client (see
/// [`Clients::identify_remembered`]). The key is wiped from memory when
/// replaced or when the connection closes, and never printed.
#[derive(Default)]
pub struct KeyMemo(Mutex<Option<Memo>>);

struct Memo {
    /// The clients the key was checked against.
    clients: Arc<Clients>,
    /// The `Authorization` header's value: `Bearer KEY`.
    authorization: zeroize::Zeroizing<Box<[u8]>>,
    client: Arc<Client>,
}

/// Are `a` and `b` the same bytes? In a time that depends on their lengths
/// only: eight bytes at a time, every difference folded in, no early exit.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a8, a1) = a.as_chunks::<8>();
    let (b8, b1) = b.as_chunks::<8>();
    let mut diff = 0u64;
    for (x, y) in a8.iter().zip(b8) {
        // black_box: the compiler may not turn the fold into an early exit.
        diff = std::hint::black_box(diff | (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y)));
    }
    for (x, y) in a1.iter().zip(b1) {
        diff = std::hint::black_box(diff | u64::from(x ^ y));
    }
    bool::from(diff.ct_eq(&0))
}

impl std::fmt::Debug for KeyMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMemo(..)")
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
            // A star that ends the pattern matches whatever is left (`*`,
            // `user-*`): no need to walk the rest of the id.
            if pi + 1 == p.len() {
                return true;
            }
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
#[path = "auth_tests.rs"]
mod tests;
