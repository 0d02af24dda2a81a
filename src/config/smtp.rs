//! `[smtp]`: the mail server email destinations are sent through.

use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

/// `[smtp]`: the mail server for email destinations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    /// Defaults by `security`: 465 for `tls`, 587 for `starttls`, 25 for `none`.
    pub port: Option<u16>,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            // Required: empty values are reported by validation, naming the key.
            host: String::new(),
            port: None,
            security: SmtpSecurity::default(),
            username: None,
            password: None,
            from: String::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::None => 25,
        })
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// TLS from the first byte (port 465).
    #[default]
    Tls,
    /// Plain connection upgraded with STARTTLS, required (port 587).
    Starttls,
    /// No encryption: only for a relay on localhost or a test server.
    None,
}
