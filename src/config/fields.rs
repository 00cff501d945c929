//! How single fields read and print: `""` as "not set", octal file modes,
//! and secrets (and credentials in URLs) printed as `[REDACTED]` by
//! `tokend check-config`.

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const REDACTED: &str = "[REDACTED]";

pub(super) fn redact_option<S: Serializer>(
    value: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str(REDACTED),
        None => s.serialize_str(""),
    }
}

pub(super) fn redact_list<S: Serializer>(value: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(value.iter().map(|_| REDACTED))
}

/// Every string in `value` that is a URL, shown without its credentials.
pub(super) fn redact_urls(value: &mut toml::Value) {
    match value {
        toml::Value::String(s) => {
            if let Some(shown) = crate::redact::url_in(s) {
                *s = shown;
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(redact_urls),
        toml::Value::Table(table) => table.iter_mut().for_each(|(_, v)| redact_urls(v)),
        _ => {}
    }
}

/// `""` in a file means "not set" (SPEC §3 writes unset keys that way).
pub(super) fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let raw = String::deserialize(d)?;
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(serde::de::Error::custom)
}

pub(super) fn none_as_empty<S: Serializer, T: Serialize>(
    value: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => v.serialize(s),
        None => s.serialize_str(""),
    }
}

pub(super) fn octal_mode<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let raw = String::deserialize(d)?;
    let digits = raw.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 && !digits.is_empty() => Ok(mode),
        _ => Err(serde::de::Error::custom(
            "expected an octal file mode such as \"0660\" (0 to 0777)",
        )),
    }
}

pub(super) fn octal_mode_out<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

/// `server.listen`: IP addresses with ports. A host name gets an error that
/// says why and what to write instead: resolving one could bind a public
/// address, or a different one after a DNS change.
pub(super) fn socket_addrs<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<std::net::SocketAddr>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|s| parse_listen(s.trim()).map_err(serde::de::Error::custom))
        .collect()
}

fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    // The entry itself is not repeated (a value may be a secret in the wrong
    // key); an IP address or a port number found in it is safe to show.
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        let host = match ip {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        return Err(format!("an entry has no port; write e.g. \"{host}:7780\""));
    }
    let port = s
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .unwrap_or(7780);
    Err(format!(
        "an entry is not an IP address and port: host names are not resolved here \
         (one could resolve to a public address); write \"127.0.0.1:{port}\" or \"[::1]:{port}\""
    ))
}
