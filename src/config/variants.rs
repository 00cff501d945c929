//! The names the enum-valued keys accept (`kind`, `data_center`,
//! `auth_method`, `log.format`). A wrong value is answered with the list of
//! valid ones, e.g. `providers.c.data_center: unknown value; use one of: us, de, uk, ca, au, sg`
//! (serde's own message names a Rust type instead).

use super::{AuthMethod, DataCenter, LogFormat, ProviderKind, RefreshMode};

macro_rules! named_values {
    ($ty:ty, { $($variant:path => $name:literal),+ $(,)? }) => {
        impl TryFrom<String> for $ty {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                match value.as_str() {
                    $($name => Ok($variant),)+
                    // The value itself is not repeated: it may be a
                    // secret typed into the wrong key.
                    _ => Err(format!(
                        "unknown value; use one of: {}",
                        [$($name),+].join(", ")
                    )),
                }
            }
        }
    };
}

named_values!(ProviderKind, {
    ProviderKind::Cronofy => "cronofy",
    ProviderKind::Oauth2 => "oauth2",
});

named_values!(DataCenter, {
    DataCenter::Us => "us",
    DataCenter::De => "de",
    DataCenter::Uk => "uk",
    DataCenter::Ca => "ca",
    DataCenter::Au => "au",
    DataCenter::Sg => "sg",
});

named_values!(AuthMethod, {
    AuthMethod::ClientSecretPost => "client_secret_post",
    AuthMethod::ClientSecretBasic => "client_secret_basic",
});

named_values!(RefreshMode, {
    RefreshMode::Auto => "auto",
    RefreshMode::Eager => "eager",
    RefreshMode::OnDemand => "on_demand",
});

named_values!(LogFormat, {
    LogFormat::Auto => "auto",
    LogFormat::Json => "json",
    LogFormat::Text => "text",
});

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn error_for(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text).unwrap();
        crate::config::load_from(Some(&path), Path::new("/nonexistent"), Vec::new())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_wrong_enum_value_lists_the_valid_ones() {
        const P: &str = "[providers.c]\nclient_id = \"x\"\nclient_secret = \"y\"\n";
        for (text, expected) in [
            (
                format!("{P}kind = \"cronfy\"\n"),
                "providers.c.kind: unknown value; use one of: cronofy, oauth2",
            ),
            (
                format!("{P}kind = \"cronofy\"\ndata_center = \"eu\"\n"),
                "providers.c.data_center: unknown value; use one of: us, de, uk, ca, au, sg",
            ),
            (
                format!(
                    "{P}kind = \"oauth2\"\ntoken_url = \"https://o.example/t\"\nauth_method = \"basic\"\n"
                ),
                "use one of: client_secret_post, client_secret_basic",
            ),
            (
                "[log]\nformat = \"xml\"\n".to_owned(),
                "log.format: unknown value; use one of: auto, json, text",
            ),
        ] {
            let err = error_for(&text);
            assert!(err.contains(expected), "for {text:?}: {err}");
            assert!(!err.contains("cronfy") && !err.contains("\"eu\"") && !err.contains("xml"));
        }
    }
}
