//! Finding a secret in provider text whatever encoding it was echoed in.
//!
//! A server that echoes the request in its error text shows a secret the way
//! it received or stores it: as sent in a form (`%2F`, `+` for a space),
//! JSON-escaped (`\/`, `\u002f`), in either hex case, or inside base64 (the
//! `Authorization: Basic` header, a logged blob). Scrubbing only the raw
//! form leaves all of those in `last_error`, answers and logs.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

const REDACTED: &str = "[REDACTED]";
/// Shorter base64 runs would blank ordinary words by chance.
const MIN_BASE64_RUN: usize = 6;

/// `text` with every occurrence of every secret, in any encoding below,
/// replaced by `[REDACTED]`.
pub(super) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        for run in base64_runs(secret) {
            text = text.replace(&run, REDACTED);
        }
        text = replace_encoded(&text, secret);
    }
    text
}

/// What base64 of `secret` looks like inside any larger base64 text: for
/// each of the three byte offsets it can start at, and both alphabets, the
/// characters that only the secret's bytes determine. Basic authentication
/// form-encodes the secret before base64 (RFC 6749 §2.3.1): that form too.
fn base64_runs(secret: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let mut runs = Vec::new();
    for bytes in [secret.as_bytes(), form.as_bytes()] {
        for offset in 0..3 {
            let mut input = vec![0u8; offset];
            input.extend_from_slice(bytes);
            // Characters 6 bits wide: skip those that share bits with the
            // offset bytes, stop before the one that shares bits with what follows.
            let from = (offset * 8).div_ceil(6);
            let to = (input.len() * 8) / 6;
            for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                let encoded = engine.encode(&input);
                if to >= from + MIN_BASE64_RUN {
                    runs.push(encoded[from..to].to_owned());
                }
            }
        }
    }
    runs.sort();
    runs.dedup();
    runs
}

/// Replaces each stretch of `text` that spells `secret` character by
/// character, every character raw or escaped in one of the ways
/// [`encodings`] lists.
fn replace_encoded(text: &str, secret: &str) -> String {
    let secret: Vec<Vec<Form>> = secret.chars().map(encodings).collect();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match spells(&secret, text, i) {
            Some(end) if end > i => {
                out.push_str(&text[start..i]);
                out.push_str(REDACTED);
                i = end;
                start = end;
            }
            _ => i += 1,
        }
        // Only stop on character boundaries.
        while i < bytes.len() && !text.is_char_boundary(i) {
            i += 1;
        }
    }
    out.push_str(&text[start..]);
    out
}

/// Where a spelling of `secret` that starts at `at` ends, if one does.
/// Encodings of one character can share a prefix (`%` raw and `%25`), so
/// each is tried in turn (the depth is the secret's length).
fn spells(secret: &[Vec<Form>], text: &str, at: usize) -> Option<usize> {
    let Some((forms, rest)) = secret.split_first() else {
        return Some(at);
    };
    let here = &text[at..];
    forms
        .iter()
        .filter_map(|form| matched_len(here, form).map(|len| at + len))
        .find_map(|next| spells(rest, text, next))
}

/// One character's forms: itself, `+` for a space (forms), percent-encoded
/// UTF-8, `\uXXXX` (surrogate pairs beyond the BMP) and JSON's short escapes.
/// A `#` stands for a hex digit of either case, see [`matched_len`].
fn encodings(c: char) -> Vec<Form> {
    let mut forms = vec![Form::Exact(c.to_string())];
    if c == ' ' {
        forms.push(Form::Exact("+".into()));
    }
    let mut utf8 = [0u8; 4];
    let percent: String = c
        .encode_utf8(&mut utf8)
        .bytes()
        .map(|b| format!("%{b:02x}"))
        .collect();
    forms.push(Form::AnyHexCase(percent));
    let mut utf16 = [0u16; 2];
    let unicode: String = c
        .encode_utf16(&mut utf16)
        .iter()
        .map(|u| format!("\\u{u:04x}"))
        .collect();
    forms.push(Form::AnyHexCase(unicode));
    let short = match c {
        '"' => Some("\\\""),
        '\\' => Some("\\\\"),
        '/' => Some("\\/"),
        '\u{8}' => Some("\\b"),
        '\u{c}' => Some("\\f"),
        '\n' => Some("\\n"),
        '\r' => Some("\\r"),
        '\t' => Some("\\t"),
        _ => None,
    };
    forms.extend(short.map(|s| Form::Exact(s.into())));
    forms
}

#[derive(Debug)]
enum Form {
    Exact(String),
    /// Hex digits (written in lower case) match in either case.
    AnyHexCase(String),
}

/// The length of `form` if `text` starts with it.
fn matched_len(text: &str, form: &Form) -> Option<usize> {
    match form {
        Form::Exact(s) => text.starts_with(s.as_str()).then_some(s.len()),
        Form::AnyHexCase(s) => {
            let head = text.as_bytes().get(..s.len())?;
            head.eq_ignore_ascii_case(s.as_bytes()).then_some(s.len())
        }
    }
}
