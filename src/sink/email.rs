//! Email over SMTP (lettre, rustls): multipart text + HTML with a UTF-8 subject, and files:
//! pictures the HTML shows inline (`cid:`) and attachments.
//!
//! SMTP 5xx answers (a rejected recipient, a refused login) are permanent; 4xx answers and
//! network faults are transient. The password lives in [`crate::secret::Secret`] and never
//! reaches an error message.

use std::sync::Arc;

use lettre::message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Format, SendError, Sink};
use crate::config::{SmtpConfig, SmtpSecurity};
use crate::destination::Channel;

/// One email: multipart text + HTML.
#[derive(Debug, Clone)]
pub(crate) struct EmailMessage {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub files: Vec<EmailFile>,
}

/// A file that goes with an email.
#[derive(Debug, Clone)]
pub(crate) struct EmailFile {
    pub filename: String,
    /// A MIME type, e.g. `image/png`.
    pub content_type: &'static str,
    pub bytes: Arc<[u8]>,
    /// Shown inside the HTML as `<img src="cid:ID">` rather than attached.
    pub inline_id: Option<String>,
}

/// Sends mail through one SMTP server.
pub(crate) struct EmailSink {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl EmailSink {
    pub fn new(config: &SmtpConfig) -> Result<Self, SendError> {
        crate::http::use_ring();
        let setup = |e: lettre::transport::smtp::Error| SendError::Permanent {
            reason: format!("SMTP server {} cannot be used: {e}", config.host),
        };
        let builder = match config.security {
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(setup)?
            }
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host).map_err(setup)?
            }
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
        };
        let mut builder = builder.port(config.port()).timeout(Some(config.timeout));
        if let Some(user) = &config.username {
            let password = config
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let from = config.from.parse().map_err(|e| SendError::Permanent {
            reason: format!("smtp.from `{}` is not an address: {e}", config.from),
        })?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    async fn submit(&self, message: &EmailMessage) -> Result<(), SendError> {
        let EmailMessage {
            to,
            subject,
            text,
            html,
            files,
        } = message;
        let to: Mailbox = to.parse().map_err(|e| SendError::Permanent {
            reason: format!("`{to}` is not an email address: {e}"),
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject.as_str())
            .multipart(with_files(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html.clone()),
                    ),
                files,
            )?)
            .map_err(|e| SendError::Permanent {
                reason: format!("email could not be built: {e}"),
            })?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent {
                reason: format!("SMTP server refused the email: {e}"),
            }),
            Err(e) => Err(SendError::Transient {
                reason: format!("email not sent: {e}"),
            }),
        }
    }
}

/// `mixed[related[body, inline pictures], attachments]`, leaving out the layers not needed.
fn with_files(body: MultiPart, files: &[EmailFile]) -> Result<MultiPart, SendError> {
    let part = |file: &EmailFile| -> Result<SinglePart, SendError> {
        let content_type =
            ContentType::parse(file.content_type).map_err(|e| SendError::Permanent {
                reason: format!("file {} has a bad content type: {e}", file.filename),
            })?;
        let attachment = match &file.inline_id {
            Some(id) => Attachment::new_inline(id.clone()),
            None => Attachment::new(file.filename.clone()),
        };
        Ok(attachment.body(file.bytes.to_vec(), content_type))
    };
    let (inline, attached): (Vec<&EmailFile>, Vec<&EmailFile>) =
        files.iter().partition(|f| f.inline_id.is_some());
    let mut body = body;
    if !inline.is_empty() {
        let mut related = MultiPart::related().multipart(body);
        for file in inline {
            related = related.singlepart(part(file)?);
        }
        body = related;
    }
    if attached.is_empty() {
        return Ok(body);
    }
    let mut mixed = MultiPart::mixed().multipart(body);
    for file in attached {
        mixed = mixed.singlepart(part(file)?);
    }
    Ok(mixed)
}

impl Sink for EmailSink {
    type Message = EmailMessage;

    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn limit(&self, _: Format) -> Option<usize> {
        None
    }

    async fn send(&self, message: &EmailMessage) -> Result<(), SendError> {
        self.submit(message).await
    }
}
