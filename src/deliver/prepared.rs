//! Prepared stage: a destination's prepared messages (report parts, staff-deletion alerts)
//! made ready for its sink, addressed from the config as it is now.
//!
//! The store keeps their content only; the robot URL or the mailbox comes from the
//! destination, so a fixed robot key or address takes effect for what already waits. They go
//! through [`super::attempt`] like alerts on losses; quiet hours do not hold them.

use std::sync::Arc;

use crate::render::compose::{Composed, Outgoing};
use crate::sink::{EmailFile, EmailMessage, SendError, Sinks, WecomBody, WecomMessage};
use crate::store::{Prepared, PreparedBody, PreparedFile};
use crate::transform::route::{Destination, Target};

/// `waiting`, addressed to `destination` for its sink.
pub(crate) fn compose<'s>(
    sinks: &'s Sinks,
    destination: &Destination<'_>,
    waiting: Vec<(Vec<u8>, Prepared)>,
) -> Result<Composed<'s>, SendError> {
    let mismatch = |label: &str| {
        SendError::Permanent {
        reason: format!(
            "a prepared message ({label}) does not fit {}; drop it with `churn-alert state drop --destination {}`",
            destination.describe(),
            destination.id
        ),
    }
    };
    match &destination.target {
        Target::Wecom { robot, .. } => {
            let mut messages = Vec::with_capacity(waiting.len());
            for (key, prepared) in waiting {
                let body = match prepared.body {
                    PreparedBody::Markdown { content } => WecomBody::Markdown(content),
                    PreparedBody::Text { content } => WecomBody::Text {
                        content,
                        mentioned: Vec::new(),
                    },
                    PreparedBody::Image { png } => WecomBody::Image(png.0),
                    PreparedBody::File { filename, bytes } => WecomBody::File {
                        filename,
                        bytes: bytes.0,
                    },
                    PreparedBody::Email { .. } => return Err(mismatch(&prepared.label)),
                };
                messages.push(outgoing(
                    WecomMessage {
                        robot: robot.clone(),
                        body,
                    },
                    key,
                ));
            }
            Ok(Composed::Wecom(&sinks.wecom, messages))
        }
        Target::Email { to, .. } => {
            let email = sinks.email_for(&destination.route.name)?;
            let Some(to) = to.clone() else {
                return Err(SendError::Permanent {
                    reason: "no email address".into(),
                });
            };
            let mut messages = Vec::with_capacity(waiting.len());
            for (key, prepared) in waiting {
                let PreparedBody::Email {
                    subject,
                    text,
                    html,
                    files,
                } = prepared.body
                else {
                    return Err(mismatch(&prepared.label));
                };
                let files = files.into_iter().map(email_file).collect();
                let message = EmailMessage {
                    to: to.clone(),
                    subject,
                    text,
                    html,
                    files,
                };
                messages.push(outgoing(message, key));
            }
            Ok(Composed::Email(email, messages))
        }
    }
}

fn outgoing<M>(message: M, key: Vec<u8>) -> Outgoing<M> {
    Outgoing {
        message,
        losses: Vec::new(),
        best_effort: false,
        prepared: Some(key),
    }
}

fn email_file(file: PreparedFile) -> EmailFile {
    EmailFile {
        filename: file.filename,
        content_type: content_type(&file.content_type),
        bytes: Arc::clone(&file.bytes.0),
        inline_id: file.inline_id,
    }
}

/// The MIME types reports attach, as the sink takes them.
fn content_type(stored: &str) -> &'static str {
    const KNOWN: [&str; 3] = [
        "image/png",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "text/plain",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == stored)
        .unwrap_or("application/octet-stream")
}

/// A robot message's content, to be prepared.
pub(crate) fn wecom_body(body: WecomBody) -> PreparedBody {
    match body {
        WecomBody::Markdown(content) => PreparedBody::Markdown { content },
        // Reports and alerts mention nobody.
        WecomBody::Text { content, .. } => PreparedBody::Text { content },
        WecomBody::Image(png) => PreparedBody::Image {
            png: crate::store::Bytes(png),
        },
        WecomBody::File { filename, bytes } => PreparedBody::File {
            filename,
            bytes: crate::store::Bytes(bytes),
        },
    }
}

/// An email's content, to be prepared; the address comes from the destination at send time.
pub(crate) fn email_body(message: EmailMessage) -> PreparedBody {
    PreparedBody::Email {
        subject: message.subject,
        text: message.text,
        html: message.html,
        files: message
            .files
            .into_iter()
            .map(|f| PreparedFile {
                filename: f.filename,
                content_type: f.content_type.to_owned(),
                bytes: crate::store::Bytes(f.bytes),
                inline_id: f.inline_id,
            })
            .collect(),
    }
}
