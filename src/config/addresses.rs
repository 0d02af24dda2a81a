//! Addresses in the config, checked where they are read: mailboxes, robot URLs, base URLs.
//! Errors name the key and never echo what may be a secret (a bare robot key).

use super::ConfigError;
use crate::secret::redact_url;

pub(super) fn check_mailbox(key: &str, address: &str) -> Result<(), ConfigError> {
    address
        .parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| ConfigError::invalid(key, format!("`{address}` is not an email address: {e}")))
}

/// A robot URL as pasted from WeCom: http(s), with a non-empty `key`.
pub(super) fn check_robot_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let paste = "paste the whole robot URL from the group's robot settings, like https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…";
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
    let Some(parsed) = parsed else {
        // Not a URL: most likely the bare key, which must not be echoed.
        return Err(ConfigError::invalid(
            key,
            format!("is not a robot URL: {paste}"),
        ));
    };
    let has_key = parsed
        .query_pairs()
        .any(|(name, value)| name == "key" && !value.trim().is_empty());
    if !has_key {
        return Err(ConfigError::invalid(
            key,
            format!(
                "`{}` has no `key=` or an empty one: {paste}",
                redact_url(url)
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        _ => Err(ConfigError::invalid(
            key,
            format!("`{}` is not an http(s) URL", redact_url(url)),
        )),
    }
}
