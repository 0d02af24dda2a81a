//! Sink stage: where messages go.
//!
//! [`wecom`] posts to WeCom group robots, checking the errcode in the answer body (HTTP 200 is
//! not success) and pacing each robot on our side with [`pacer`]; [`email`] sends multipart
//! mail over SMTP. Both report failures as [`SendError`], whose variant decides what the
//! pipeline does next.

pub(crate) mod email;
pub(crate) mod pacer;
pub(crate) mod wecom;

pub(crate) use email::{EmailFile, EmailMessage, EmailSink};
pub(crate) use wecom::{RobotUrl, WecomBody, WecomMessage, WecomSink};

use crate::destination::Channel;

/// A channel messages leave by: a WeCom robot, an SMTP server.
///
/// Like a notifier in Alertmanager, a sink knows its channel's limits and answers each send
/// with accepted, retry later ([`SendError::Blocked`], [`SendError::Transient`]) or a
/// permanent failure; the delivery stages own the schedule of retries across cycles.
/// Rendering asks the sink for its byte limit instead of knowing the channel's.
pub(crate) trait Sink {
    /// One message as this sink takes it, addressed.
    type Message;

    /// The channel, for logs and the `sink` label of metrics.
    fn channel(&self) -> Channel;

    /// The most bytes one message's content may have in `format`; `None`: no limit.
    fn limit(&self, format: Format) -> Option<usize>;

    /// Sends one message; `Ok` only when the other side accepted it.
    async fn send(&self, message: &Self::Message) -> Result<(), SendError>;
}

/// The sinks a config asks for, built once.
pub(crate) struct Sinks {
    pub wecom: WecomSink,
    /// Present when the config has `[smtp]`.
    pub email: Option<EmailSink>,
}

impl Sinks {
    pub fn new(config: &crate::config::Config) -> Result<Self, SendError> {
        Self::sharing(config, pacer::Pacer::new(config.wecom.messages_per_minute))
    }

    /// Sinks whose robots are paced by `pacer`, which other corps' sinks share: a robot two
    /// corps post to still gets at most its messages a minute.
    pub fn sharing(config: &crate::config::Config, pacer: pacer::Pacer) -> Result<Self, SendError> {
        Ok(Self {
            wecom: WecomSink::new(&config.wecom, pacer)?,
            email: config.smtp.as_ref().map(EmailSink::new).transpose()?,
        })
    }

    /// The email sink for `route`'s mailboxes; the one place that says what a missing
    /// `[smtp]` section means (`check` refuses such a config, so this is for a store that
    /// outlived one).
    pub fn email_for(&self, route: &str) -> Result<&EmailSink, NoSmtp> {
        self.email.as_ref().ok_or_else(|| NoSmtp {
            route: route.to_owned(),
        })
    }
}

/// A route sends email, and the config has no `[smtp]` section.
#[derive(Debug, Clone, thiserror::Error)]
#[error("route `{route}` sends email, but there is no [smtp] section in the config")]
pub(crate) struct NoSmtp {
    pub route: String,
}

impl From<NoSmtp> for SendError {
    fn from(e: NoSmtp) -> Self {
        SendError::Permanent {
            reason: e.to_string(),
        }
    }
}

/// What a message's content is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// WeCom markdown.
    Markdown,
    /// Plain text.
    Text,
    /// An email: a text part and an HTML part.
    Email,
}

/// Why a destination did not take a message. Never contains a key or a password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Blocked for sending too fast: leave it alone for a while.
    #[error("robot is blocked for sending too fast (errcode 45009: api freq out of limit)")]
    Blocked,
    /// Retrying cannot help until a person changes something: the destination is wrong (a
    /// removed robot, a bad address, no `[smtp]`).
    #[error("{reason}")]
    Permanent { reason: String },
    /// This message, not the destination, is refused for good (too long, a file or picture
    /// the robot will not take): the destination's other messages can still go.
    #[error("{reason}")]
    Rejected { reason: String },
    /// Worth retrying later.
    #[error("{reason}")]
    Transient { reason: String },
}
