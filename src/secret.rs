//! Credentials that must never reach a log line or an error message.
//!
//! [`Secret`] wraps a value whose `Debug` and `Display` print `***`, so a config dump, a
//! `tracing` field or a `{:?}` in an error cannot leak it by accident; code that really needs
//! the value calls [`Secret::expose`]. [`redact_url`] does the same for URLs that carry a
//! credential in their query string (the robot `key`, Weiban's `access_token`).

use std::fmt;

use serde::Deserialize;

/// A string credential: the Weiban secret, an access token, a robot URL, the SMTP password.
///
/// The only way to read it is [`Secret::expose`], which makes every use greppable.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that must send it over the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Query parameters whose values are credentials wherever they appear.
/// Query parameters that carry credentials: their values are never shown.
pub(crate) const SECRET_PARAMS: &[&str] = &["key", "access_token", "secret", "token", "password"];

/// Returns `url` with the value of every credential query parameter replaced by `***`.
///
/// Works on text, not on a parsed URL, so that even a malformed URL from a config file is
/// redacted before it is shown.
pub fn redact_url(url: &str) -> String {
    let url = &redact_userinfo(url);
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET_PARAMS.contains(&name.to_ascii_lowercase().as_str()) => {
                format!("{name}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    let mut out = format!("{base}?{}", redacted.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// `scheme://user:password@host` → `scheme://***@host`.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn robot_key_and_token_are_redacted() {
        assert_eq!(
            redact_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc-123"),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
        );
        assert_eq!(
            redact_url("http://h/x?start_time=1&access_token=tok&limit=100"),
            "http://h/x?start_time=1&access_token=***&limit=100"
        );
        assert_eq!(redact_url("http://h/x"), "http://h/x");
        assert_eq!(redact_url("https://u:pw@h/x?a=1"), "https://***@h/x?a=1");
    }
}
