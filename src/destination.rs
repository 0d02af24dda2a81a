//! Destination ids: one place messages are delivered to, as a typed value.
//!
//! The outbox and the destination states are keyed by an id's text form,
//! `<route>/<kind>/<argument>`:
//! - `managers/wecom/5f0c2a9e41d7b3c8`: one of the route's robots, by a fingerprint of its key
//!   ([`robot_fingerprint`]; never the key itself), so that reordering, inserting or removing
//!   robots never hands one robot's backlog to another;
//! - `sales/staff-wecom/zhangsan`: a staff member's own robot (`staff_webhooks`);
//! - `managers/email/boss@example.com`: a fixed email recipient (`email_to`), by its
//!   normalised address ([`normalise_mailbox`]);
//! - `sales/staff-email/zhangsan`: a staff member's own mailbox (`email_staff`).
//!
//! Ids are built and parsed here only. The route name and the argument are percent-encoded
//! where they hold `%`, `/` (route only) or a control character, so that the text form never
//! holds a NUL (the outbox's separator) and always parses back to the same id: a staff id with
//! a NUL in it cannot make two ids look alike, or a delivered message look undelivered.

use std::fmt;
use std::str::FromStr;

/// What kind of place a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DestinationKind {
    /// One of a route's `wecom_webhooks`, by the fingerprint of its key.
    Wecom,
    /// A staff member's own robot (`staff_webhooks`), by staff id.
    StaffWecom,
    /// A fixed recipient (`email_to`), by address.
    Email,
    /// A staff member's mailbox (`email_staff`), by staff id.
    StaffEmail,
    /// A department's own robot (`department_webhooks`), by department id.
    DepartmentWecom,
    /// A department's own mailbox (`department_emails`), by department id.
    DepartmentEmail,
}

impl DestinationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wecom => "wecom",
            Self::StaffWecom => "staff-wecom",
            Self::Email => "email",
            Self::StaffEmail => "staff-email",
            Self::DepartmentWecom => "department-wecom",
            Self::DepartmentEmail => "department-email",
        }
    }

    /// The channel, for metrics and for choosing a sink.
    pub fn channel(self) -> Channel {
        match self {
            Self::Wecom | Self::StaffWecom | Self::DepartmentWecom => Channel::Wecom,
            Self::Email | Self::StaffEmail | Self::DepartmentEmail => Channel::Email,
        }
    }
}

/// The two channels messages travel on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    Wecom,
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wecom => "wecom",
            Self::Email => "email",
        }
    }
}

/// One place messages are delivered to: (route, kind, argument).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DestinationId {
    pub route: String,
    pub kind: DestinationKind,
    /// Robot fingerprint, staff id, email address or department id, by kind.
    pub arg: String,
}

/// The fingerprint a robot is known by: 16 hex digits of xxh3 over its key (the `key=` of the
/// webhook URL; the whole URL when it has none). Stable across releases, and a key cannot be
/// read back from it.
pub(crate) fn robot_fingerprint(url: &str) -> String {
    let key = url
        .split_once('?')
        .and_then(|(_, query)| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("key=").filter(|k| !k.is_empty()))
        })
        .unwrap_or(url);
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
}

/// A mailbox as destinations know it: trimmed, lower-case (`Boss@Example.COM` and
/// `boss@example.com` are one mailbox).
pub(crate) fn normalise_mailbox(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Why a text is not a destination id.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a destination id (like `managers/email/boss@example.com`; see `churn-alert state stats`)")]
pub struct BadDestinationId(String);

impl DestinationId {
    pub fn new(route: &str, kind: DestinationKind, arg: impl Into<String>) -> Self {
        Self {
            route: route.to_owned(),
            kind,
            arg: arg.into(),
        }
    }

    /// A route's robot, by its webhook URL.
    pub fn robot(route: &str, url: &str) -> Self {
        Self::new(route, DestinationKind::Wecom, robot_fingerprint(url))
    }

    /// A fixed recipient of a route, by its address as written.
    pub fn mailbox(route: &str, address: &str) -> Self {
        Self::new(route, DestinationKind::Email, normalise_mailbox(address))
    }
}

impl fmt::Display for DestinationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            encode(&self.route, true),
            self.kind.as_str(),
            encode(&self.arg, false)
        )
    }
}

impl serde::Serialize for DestinationId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DestinationId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for DestinationId {
    type Err = BadDestinationId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadDestinationId(text.escape_default().to_string());
        let mut parts = text.splitn(3, '/');
        let (route, kind, arg) = match (parts.next(), parts.next(), parts.next()) {
            (Some(route), Some(kind), Some(arg)) if !route.is_empty() => (route, kind, arg),
            _ => return Err(bad()),
        };
        let kind = match kind {
            "wecom" => DestinationKind::Wecom,
            "staff-wecom" => DestinationKind::StaffWecom,
            "email" => DestinationKind::Email,
            "staff-email" => DestinationKind::StaffEmail,
            "department-wecom" => DestinationKind::DepartmentWecom,
            "department-email" => DestinationKind::DepartmentEmail,
            _ => return Err(bad()),
        };
        Ok(Self {
            route: decode(route).ok_or_else(bad)?,
            kind,
            arg: decode(arg).ok_or_else(bad)?,
        })
    }
}

/// Percent-encodes `%`, control characters and, in a route name, `/`.
fn encode(text: &str, slash: bool) -> std::borrow::Cow<'_, str> {
    let special = |c: char| c == '%' || c.is_control() || (slash && c == '/');
    if !text.chars().any(special) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if special(c) {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out.into()
}

fn decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return (!text.contains('\0')).then(|| text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_keep_the_plain_form_for_plain_names() {
        let id = DestinationId::new("managers", DestinationKind::Wecom, "0");
        assert_eq!(id.to_string(), "managers/wecom/0");
        let email = DestinationId::new("m", DestinationKind::Email, "a/b@example.com");
        assert_eq!(email.to_string(), "m/email/a/b@example.com");
        for id in [id, email] {
            assert_eq!(id.to_string().parse::<DestinationId>().unwrap(), id);
        }
    }

    #[test]
    fn robots_are_known_by_their_key_and_mailboxes_by_their_address() {
        let a = DestinationId::robot("m", "https://h/send?key=AAA");
        assert_eq!(
            a,
            DestinationId::robot("m", "https://other/send?debug=1&key=AAA")
        );
        assert_ne!(a, DestinationId::robot("m", "https://h/send?key=BBB"));
        assert!(!a.to_string().contains("AAA"), "{a}");
        assert_eq!(a.arg.len(), 16);
        assert_eq!(
            DestinationId::mailbox("m", " Boss@Example.COM"),
            DestinationId::mailbox("m", "boss@example.com")
        );
    }

    #[test]
    fn hostile_bytes_are_encoded_so_that_ids_stay_distinct_and_nul_free() {
        let nul = DestinationId::new("sales", DestinationKind::StaffEmail, "a\0b");
        let plain = DestinationId::new("sales", DestinationKind::StaffEmail, "a");
        let percent = DestinationId::new("sales", DestinationKind::StaffEmail, "a%00b");
        let texts: Vec<String> = [&nul, &plain, &percent]
            .iter()
            .map(|id| id.to_string())
            .collect();
        assert!(texts.iter().all(|t| !t.contains('\0')), "{texts:?}");
        assert_ne!(texts[0], texts[1]);
        assert_ne!(texts[0], texts[2]);
        for (text, id) in texts.iter().zip([nul, plain, percent]) {
            assert_eq!(text.parse::<DestinationId>().unwrap(), id);
        }
        assert!("sales/nope/x".parse::<DestinationId>().is_err());
        assert!("sales/wecom".parse::<DestinationId>().is_err());
        assert!("sales/wecom/%zz".parse::<DestinationId>().is_err());
    }
}
