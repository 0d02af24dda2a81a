//! Sink stage: where messages go.
//!
//! [`wecom`] posts to WeCom group robots, checking the errcode in the answer body (HTTP 200 is
//! not success) and pacing each robot on our side with [`pacer`]; [`email`] sends multipart
//! mail over SMTP. Both report failures as [`SendError`], whose variant decides what the
//! pipeline does next.

pub(crate) mod email;
pub(crate) mod pacer;
pub(crate) mod wecom;

pub(crate) use email::EmailSink;
pub(crate) use wecom::WecomSink;

/// Why a destination did not take a message. Never contains a key or a password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Blocked for sending too fast: leave it alone for a while.
    #[error("robot is blocked for sending too fast (errcode 45009: api freq out of limit)")]
    Blocked,
    /// Retrying cannot help until a person changes something.
    #[error("{reason}")]
    Permanent { reason: String },
    /// Worth retrying later.
    #[error("{reason}")]
    Transient { reason: String },
}
