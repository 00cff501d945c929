//! The bearer keys local clients present: made by `tokend client-key` and
//! for the generated `default` client; tokend itself keeps only their hash.

use base64::Engine;

/// A new random client key: `tkd_` and 43 base64url characters (256 bits).
pub fn new_client_key() -> zeroize::Zeroizing<String> {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, raw.as_mut_slice());
    zeroize::Zeroizing::new(format!(
        "tkd_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_slice())
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_prefixed_random_and_url_safe() {
        let (a, b) = (super::new_client_key(), super::new_client_key());
        assert_ne!(*a, *b);
        assert_eq!(a.len(), 4 + 43);
        assert!(a.starts_with("tkd_"));
        assert!(
            a[4..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}
