//! Sealing and opening: round trips, binding to row and field, other keys,
//! tampering, key file formats, lookup hashes.

use super::*;

fn cipher() -> Cipher {
    Cipher::new(&MasterKey::generate())
}

#[test]
fn round_trip() {
    let c = cipher();
    let sealed = c.seal(7, Field::RefreshToken, b"rt-secret");
    assert!(!sealed.windows(9).any(|w| w == b"rt-secret"));
    assert_eq!(
        c.open(7, Field::RefreshToken, &sealed).unwrap().as_slice(),
        b"rt-secret"
    );
}

#[test]
fn ciphertext_bound_to_row_and_field() {
    let c = cipher();
    let sealed = c.seal(7, Field::RefreshToken, b"rt");
    assert!(matches!(
        c.open(8, Field::RefreshToken, &sealed),
        Err(CryptoError::Tampered)
    ));
    assert!(matches!(
        c.open(7, Field::AccessToken, &sealed),
        Err(CryptoError::Tampered)
    ));
}

#[test]
fn other_key_is_named_not_garbage() {
    let a = cipher();
    let b = cipher();
    let sealed = a.seal(1, Field::AccessToken, b"at");
    match b.open(1, Field::AccessToken, &sealed) {
        Err(CryptoError::OtherKey { found, expected }) => {
            assert_eq!(found, a.key_id());
            assert_eq!(expected, b.key_id());
        }
        other => panic!("expected OtherKey, got {other:?}"),
    }
    assert!(b.verify_key_check(&a.key_check()).is_err());
    a.verify_key_check(&a.key_check()).unwrap();
}

#[test]
fn flipped_bit_is_refused() {
    let c = cipher();
    let mut sealed = c.seal(1, Field::AccessToken, b"at");
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    assert!(matches!(
        c.open(1, Field::AccessToken, &sealed),
        Err(CryptoError::Tampered)
    ));
}

#[test]
fn key_file_formats() {
    let raw = [7u8; 32];
    let k1 = MasterKey::from_file_contents(&raw).unwrap();
    let b64 = format!("{}\n", BASE64.encode(raw));
    let k2 = MasterKey::from_file_contents(b64.as_bytes()).unwrap();
    assert_eq!(Cipher::new(&k1).key_id(), Cipher::new(&k2).key_id());
    assert!(MasterKey::from_file_contents(b"short").is_err());
    assert!(MasterKey::from_file_contents(BASE64.encode([1u8; 16]).as_bytes()).is_err());
    assert_eq!(format!("{k1:?}"), "MasterKey([REDACTED])");
}

#[test]
fn lookup_hash_depends_on_provider_and_key() {
    let c = cipher();
    let rt = SecretString::from("same".to_owned());
    assert_eq!(c.lookup_hash("cronofy", &rt), c.lookup_hash("cronofy", &rt));
    assert_ne!(c.lookup_hash("cronofy", &rt), c.lookup_hash("google", &rt));
    assert_ne!(
        c.lookup_hash("cronofy", &rt),
        cipher().lookup_hash("cronofy", &rt)
    );
}
