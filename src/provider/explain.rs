//! What to do about an `invalid_grant`. Providers say little ("Bad
//! Request", "invalid_grant"), and the same code covers a used or expired
//! authorization code, a `redirect_uri` that differs from the authorization
//! URL's, a PKCE verifier that does not match, and a refresh token the
//! person revoked. The hint is picked from the provider's own words where
//! they say which, and names every cause where they do not.

/// A short sentence saying what to do, for a provider `description`.
pub fn invalid_grant_hint(description: &str) -> &'static str {
    let d = description.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| d.contains(w));
    if has(&["verifier", "code_challenge", "pkce"]) {
        "the PKCE code_verifier does not match the authorization URL's challenge: start the sign-in \
         again with a fresh URL (or set pkce = false for a server that mishandles PKCE)"
    } else if has(&["redirect"]) {
        "the redirect_uri must be exactly the one the authorization URL carried: start the sign-in again"
    } else if has(&["unknown_or_used", "used", "redeemed", "already"]) {
        "an authorization code works once and only for minutes: start the sign-in again and exchange the new code at once"
    } else if has(&["client"]) {
        "the code or token was issued to another client: check the provider's client_id"
    } else if has(&["expired", "revoked", "revoke"]) {
        "the person revoked access or the grant expired: they must sign in again"
    } else {
        "the code or refresh token is unknown, used, expired or revoked, or the redirect_uri \
         differs from the authorization URL's: a person must sign in again"
    }
}

/// The provider's description followed by the hint.
pub fn explain_invalid_grant(description: String) -> String {
    let hint = invalid_grant_hint(&description);
    format!("{description} ({hint})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_follows_what_the_provider_said() {
        for (description, expected) in [
            // Cronofy
            (
                "code: errors.unknown_or_used: unknown or already used",
                "works once",
            ),
            // Google
            ("Bad Request", "a person must sign in again"),
            (
                "Token has been expired or revoked.",
                "revoked access or the grant expired",
            ),
            ("Malformed auth code.", "unknown, used, expired or revoked"),
            // Microsoft
            (
                "AADSTS54005: OAuth2 Authorization code was already redeemed",
                "works once",
            ),
            (
                "AADSTS50148: The code_verifier does not match the code_challenge",
                "PKCE code_verifier does not match",
            ),
            (
                "redirect_uri mismatch",
                "exactly the one the authorization URL carried",
            ),
            (
                "Invalid redirect URI",
                "exactly the one the authorization URL carried",
            ),
            ("code was issued to another client", "another client"),
        ] {
            let hint = invalid_grant_hint(description);
            assert!(hint.contains(expected), "{description:?}: {hint}");
        }
        assert_eq!(
            explain_invalid_grant("Token has been expired or revoked.".into()),
            "Token has been expired or revoked. (the person revoked access or the grant expired: they must sign in again)"
        );
    }
}
