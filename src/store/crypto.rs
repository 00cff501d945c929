//! Encryption at rest: XChaCha20-Poly1305 over every token column.
//!
//! A sealed value is `version (1) | key id (8) | nonce (24) | ciphertext+tag`.
//! The associated data binds the grant id, the column name and the key id,
//! so a ciphertext copied to another row or column fails to open, and a value
//! sealed under another key is recognised by its key id before any attempt.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// Which column a sealed value lives in; part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    AccessToken,
    RefreshToken,
    PreviousRefreshToken,
    /// The known plaintext stored in `meta` to recognise the right key at start.
    KeyCheck,
}

impl Field {
    fn name(self) -> &'static [u8] {
        match self {
            Field::AccessToken => b"access_token",
            Field::RefreshToken => b"refresh_token",
            Field::PreviousRefreshToken => b"previous_refresh_token",
            Field::KeyCheck => b"key_check",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("a stored value was sealed with key {found}, but the configured key is {expected}")]
    OtherKey { found: String, expected: String },
    #[error(
        "a stored value does not open with the configured key (tampered or moved between rows)"
    )]
    Tampered,
    #[error("a stored value is malformed (unknown format version or too short)")]
    Malformed,
    #[error("an encryption key must be 32 bytes, raw or base64; {0}")]
    BadKey(String),
}

/// The 32-byte master key, wiped from memory on drop.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut OsRng, bytes.as_mut_slice());
        MasterKey(bytes)
    }

    /// Accepts exactly 32 raw bytes, or their standard base64 (surrounding
    /// whitespace ignored), as `storage.encryption_key_file` may hold either.
    pub fn from_file_contents(contents: &[u8]) -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        if contents.len() == 32 {
            bytes.copy_from_slice(contents);
            return Ok(MasterKey(bytes));
        }
        let text = std::str::from_utf8(contents)
            .map_err(|_| CryptoError::BadKey(format!("got {} bytes", contents.len())))?;
        let decoded = Zeroizing::new(BASE64.decode(text.trim()).map_err(|_| {
            CryptoError::BadKey(format!("got {} bytes that are not base64", contents.len()))
        })?);
        if decoded.len() != 32 {
            return Err(CryptoError::BadKey(format!(
                "base64 decodes to {} bytes",
                decoded.len()
            )));
        }
        bytes.copy_from_slice(&decoded);
        Ok(MasterKey(bytes))
    }

    /// The base64 text written to a generated key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.0.as_slice()))
    }

    fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_slice())
            .expect("HMAC takes any key length");
        mac.update(label);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }
}

/// Seals and opens token columns, and computes the keyed lookup hash that
/// finds a grant by its refresh token without storing the token in clear.
pub struct Cipher {
    aead: XChaCha20Poly1305,
    key_id: [u8; KEY_ID_LEN],
    lookup_key: Zeroizing<[u8; 32]>,
    state_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cipher")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl Cipher {
    pub fn new(key: &MasterKey) -> Self {
        let enc = key.derive(b"tokend encryption v1");
        let id = key.derive(b"tokend key id v1");
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&id[..KEY_ID_LEN]);
        Cipher {
            aead: XChaCha20Poly1305::new(enc.as_slice().into()),
            key_id,
            lookup_key: key.derive(b"tokend lookup v1"),
            state_key: key.derive(b"tokend state v1"),
        }
    }

    /// A public fingerprint of the key (a hash, never the key), shown in errors.
    pub fn key_id(&self) -> String {
        hex::encode(self.key_id)
    }

    /// The associated data, on the stack (the load at start opens a
    /// million tokens): at most 10 + 8 + 22 + 1 + 8 bytes.
    fn aad(&self, grant_id: i64, field: Field) -> Aad {
        let mut aad = Aad([0; 56], 0);
        for part in [
            &b"tokend/v1\0"[..],
            &grant_id.to_be_bytes(),
            field.name(),
            &[0],
            &self.key_id,
        ] {
            aad.0[aad.1..aad.1 + part.len()].copy_from_slice(part);
            aad.1 += part.len();
        }
        aad
    }

    pub fn seal(&self, grant_id: i64, field: Field, plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = self.aad(grant_id, field);
        let ciphertext = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message that fits in memory");
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    pub fn seal_secret(&self, grant_id: i64, field: Field, secret: &SecretString) -> Vec<u8> {
        self.seal(grant_id, field, secret.expose_secret().as_bytes())
    }

    pub fn open(
        &self,
        grant_id: i64,
        field: Field,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < HEADER_LEN || sealed[0] != VERSION {
            return Err(CryptoError::Malformed);
        }
        let key_id = &sealed[1..1 + KEY_ID_LEN];
        if key_id != self.key_id {
            return Err(CryptoError::OtherKey {
                found: hex::encode(key_id),
                expected: self.key_id(),
            });
        }
        let nonce = XNonce::from_slice(&sealed[1 + KEY_ID_LEN..HEADER_LEN]);
        let aad = self.aad(grant_id, field);
        self.aead
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Tampered)
    }

    pub fn open_secret(
        &self,
        grant_id: i64,
        field: Field,
        sealed: &[u8],
    ) -> Result<SecretString, CryptoError> {
        // The opened bytes become the string without a copy (zeroed if not UTF-8).
        let mut bytes = self.open(grant_id, field, sealed)?;
        match String::from_utf8(std::mem::take(&mut *bytes)) {
            Ok(text) => Ok(SecretString::from(text)),
            Err(e) => {
                drop(Zeroizing::new(e.into_bytes()));
                Err(CryptoError::Malformed)
            }
        }
    }

    /// Keyed hash of a refresh token, unique per provider: how an incoming
    /// refresh token finds the grant that already holds it (linked accounts).
    pub fn lookup_hash(&self, provider: &str, refresh_token: &SecretString) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.lookup_key.as_slice())
            .expect("HMAC takes any key length");
        mac.update(provider.as_bytes());
        mac.update(&[0]);
        mac.update(refresh_token.expose_secret().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// HMAC-SHA256 under a key of its own: signs the `state` of authorization
    /// URLs, so it survives restarts and cannot be forged without the key.
    pub fn state_mac(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.state_key.as_slice())
            .expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// The value stored in `meta` so a wrong key is refused at start.
    pub fn key_check(&self) -> Vec<u8> {
        self.seal(0, Field::KeyCheck, KEY_CHECK_PLAINTEXT)
    }

    pub fn verify_key_check(&self, sealed: &[u8]) -> Result<(), CryptoError> {
        let plain = self.open(0, Field::KeyCheck, sealed)?;
        if plain.as_slice() == KEY_CHECK_PLAINTEXT {
            Ok(())
        } else {
            Err(CryptoError::Tampered)
        }
    }
}

const KEY_CHECK_PLAINTEXT: &[u8] = b"tokend key check v1";

/// [`Cipher::aad`]'s bytes and their length.
struct Aad([u8; 56], usize);

impl std::ops::Deref for Aad {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0[..self.1]
    }
}

#[cfg(test)]
#[path = "crypto_tests.rs"]
mod tests;
