//! PKCE (RFC 7636) with the `S256` method: the code challenge an
//! authorization URL carries, and the rules a code verifier must follow.
//!
//! tokend never sends `plain`: §4.2 allows it only to a client that cannot
//! compute SHA-256, and a server that requires PKCE accepts `S256` (it is
//! mandatory to implement, §4.4.1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The `code_challenge_method` tokend uses.
pub const METHOD: &str = "S256";

/// `BASE64URL(SHA256(verifier))` (§4.2). The challenge travels through the
/// browser; it reveals nothing about the verifier.
pub fn challenge(verifier: &SecretString) -> String {
    B64.encode(Sha256::digest(verifier.expose_secret().as_bytes()))
}

/// A verifier built from 32 bytes of key material: base64url without
/// padding, 43 characters of the unreserved alphabet, as §4.1 recommends.
pub fn verifier_from(bytes: &[u8; 32]) -> SecretString {
    SecretString::from(B64.encode(bytes))
}

/// §4.1: 43 to 128 characters of `[A-Z] [a-z] [0-9] - . _ ~`. A caller's
/// verifier that breaks the rule is refused before any call; the message
/// never repeats the value.
pub fn check_verifier(verifier: &SecretString) -> Result<(), String> {
    let v = verifier.expose_secret();
    let alphabet_ok = v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if (43..=128).contains(&v.len()) && alphabet_ok {
        Ok(())
    } else {
        Err(format!(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1); got {} characters{}",
            v.len(),
            if alphabet_ok {
                ""
            } else {
                " with others among them"
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        let verifier = SecretString::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            challenge(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn derived_verifiers_follow_the_rules() {
        let v = verifier_from(&[0xfb; 32]);
        assert_eq!(v.expose_secret().len(), 43);
        assert!(check_verifier(&v).is_ok());
        assert_ne!(challenge(&v), *v.expose_secret());
    }

    #[test]
    fn bad_verifiers_are_refused_without_echoing_them() {
        let ok = "a".repeat(43);
        assert!(check_verifier(&SecretString::from(ok.clone())).is_ok());
        assert!(check_verifier(&SecretString::from("a~.-_".repeat(25) + "abc")).is_ok());
        for bad in [
            "a".repeat(42),
            "a".repeat(129),
            format!("{}+", "a".repeat(43)),
            format!("{} ", "s3cr3t".repeat(8)),
        ] {
            let err = check_verifier(&SecretString::from(bad.clone())).unwrap_err();
            assert!(err.contains("43 to 128"), "{err}");
            assert!(!err.contains(&bad), "{err}");
        }
    }
}
