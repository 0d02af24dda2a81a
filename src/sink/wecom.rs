//! WeCom group robot client.
//!
//! A robot answers HTTP 200 even when it refuses, so the `errcode` in the body decides:
//! `0` is delivered; `45009` (blocked for sending too fast) is returned at once so the caller
//! leaves the robot alone for a while; `-1`, 5xx and network faults are retried here with
//! back-off; `93000` (bad or removed robot) and `40058` (too long) are permanent.
//!
//! Besides markdown and text, a robot takes a PNG as an `image` message (base64 and the md5 of
//! the raw bytes) and a file as a `file` message: the file is uploaded first (`upload_media`,
//! multipart), then sent by the `media_id` the upload answered. The upload is paced and
//! retried like a message, since WeCom counts it against the same 20 a minute, and a failed
//! send uploads again (a `media_id` belongs to one robot and expires after 3 days).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use md5::{Digest as _, Md5};

use serde::Deserialize;

use super::pacer::Pacer;
use super::{Format, SendError, Sink};
use crate::backoff::Backoff;
use crate::config::{WecomConfig, WecomMsgType};
use crate::destination::Channel;
use crate::secret::{redact_url, Secret};

/// WeCom markdown content limit, in UTF-8 bytes.
const MARKDOWN_LIMIT: usize = 4096;
/// WeCom text content limit, in UTF-8 bytes.
const TEXT_LIMIT: usize = 2048;

/// Largest image a robot takes, before base64.
pub(crate) const IMAGE_LIMIT: usize = 2 * 1024 * 1024;

/// A robot's webhook URL: as the config wrote it (a credential: its `key`, shown only
/// redacted) and parsed, once, where the destination is resolved, so that no send parses it
/// again.
#[derive(Clone)]
pub(crate) struct RobotUrl {
    text: Secret,
    url: reqwest::Url,
}

impl RobotUrl {
    /// `None` for text that is no URL (`check` refuses such a config).
    pub fn parse(text: &Secret) -> Option<Self> {
        let url = reqwest::Url::parse(text.expose()).ok()?;
        Some(Self {
            text: text.clone(),
            url,
        })
    }

    /// The URL as the config wrote it: for fingerprints, pacing and redacted descriptions.
    pub fn expose(&self) -> &str {
        self.text.expose()
    }

    /// The parsed URL, for the request.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }
}

impl std::fmt::Debug for RobotUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// One robot message.
#[derive(Debug, Clone)]
pub(crate) struct WecomMessage {
    /// The robot's full webhook URL.
    pub robot: RobotUrl,
    pub body: WecomBody,
}

/// What a robot message carries.
#[derive(Debug, Clone)]
pub(crate) enum WecomBody {
    Markdown(String),
    Text {
        content: String,
        /// Validated user ids to @-mention.
        mentioned: Vec<String>,
    },
    /// A PNG picture (at most [`IMAGE_LIMIT`] bytes).
    Image(Arc<[u8]>),
    /// A file, uploaded then sent by its media id.
    File {
        filename: String,
        bytes: Arc<[u8]>,
    },
}

impl WecomBody {
    /// A written message in the route's `wecom_msgtype`.
    pub fn written(msgtype: WecomMsgType, content: String, mentioned: Vec<String>) -> Self {
        match msgtype {
            WecomMsgType::Markdown => Self::Markdown(content),
            WecomMsgType::Text => Self::Text { content, mentioned },
        }
    }

    /// WeCom's name for this kind of message.
    pub fn msgtype(&self) -> &'static str {
        match self {
            Self::Markdown(_) => "markdown",
            Self::Text { .. } => "text",
            Self::Image(_) => "image",
            Self::File { .. } => "file",
        }
    }

    /// The text of a written message; empty for media.
    pub fn content(&self) -> &str {
        match self {
            Self::Markdown(content) | Self::Text { content, .. } => content,
            Self::Image(_) | Self::File { .. } => "",
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    errcode: Option<i64>,
    errmsg: Option<String>,
    media_id: Option<String>,
}

fn meaning(code: i64) -> &'static str {
    match code {
        93000 => "invalid webhook url: the key is wrong or the robot was removed",
        40058 => "content exceeds max length",
        45009 => "api freq out of limit",
        40007 => "invalid media_id",
        40009 => "invalid media size",
        301019 => "media md5 does not match",
        -1 => "system busy",
        _ => UNDOCUMENTED,
    }
}

const UNDOCUMENTED: &str = "undocumented error code";

/// Posts messages to robots, paced per robot URL.
pub(crate) struct WecomSink {
    http: reqwest::Client,
    pacer: Pacer,
    max_retries: u32,
    retry_base: Duration,
}

impl WecomSink {
    pub fn new(config: &WecomConfig, pacer: Pacer) -> Result<Self, SendError> {
        let http = crate::http::client(config.timeout).map_err(|e| SendError::Transient {
            reason: e.without_url().to_string(),
        })?;
        Ok(Self {
            http,
            pacer,
            max_retries: config.max_retries,
            retry_base: config.retry_base,
        })
    }

    /// Sends one message, retrying transient faults with back-off.
    async fn send_once_accepted(&self, message: &WecomMessage) -> Result<(), SendError> {
        let robot = &message.robot;
        let mut attempt = 0;
        loop {
            let err = match self.try_deliver(robot, &message.body).await {
                Ok(()) => return Ok(()),
                Err(
                    err @ (SendError::Blocked
                    | SendError::Permanent { .. }
                    | SendError::Rejected { .. }),
                ) => return Err(err),
                Err(err) => err,
            };
            if attempt >= self.max_retries {
                return Err(err);
            }
            let wait = Backoff {
                base: self.retry_base,
                cap: self.retry_base.saturating_mul(1 << 10),
            }
            .jittered(attempt);
            tracing::debug!(error = %err, ?wait, robot = %redact_url(robot.expose()), "retrying robot send");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One try: for a file, one upload and one send; each paced.
    async fn try_deliver(&self, robot: &RobotUrl, body: &WecomBody) -> Result<(), SendError> {
        let json = match body {
            WecomBody::Markdown(content) => {
                serde_json::json!({ "msgtype": "markdown", "markdown": { "content": content } })
            }
            WecomBody::Text { content, mentioned } => serde_json::json!({
                "msgtype": "text",
                "text": { "content": content, "mentioned_list": mentioned }
            }),
            WecomBody::Image(png) => serde_json::json!({
                "msgtype": "image",
                "image": {
                    "base64": base64::engine::general_purpose::STANDARD.encode(png),
                    "md5": md5_hex(png),
                }
            }),
            WecomBody::File { filename, bytes } => {
                let media_id = self.upload(robot, filename, bytes).await?;
                serde_json::json!({ "msgtype": "file", "file": { "media_id": media_id } })
            }
        };
        self.pacer.acquire(robot.expose()).await;
        self.try_send(self.http.post(robot.url().clone()).json(&json))
            .await
            .map(drop)
    }

    /// Uploads a file for `robot` to send; answers its media id.
    async fn upload(
        &self,
        robot: &RobotUrl,
        filename: &str,
        bytes: &Arc<[u8]>,
    ) -> Result<String, SendError> {
        let url = upload_url(robot)?;
        let part = reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name(filename.to_owned())
            .mime_str("application/octet-stream")
            .map_err(|e| SendError::Permanent {
                reason: format!("file {filename} cannot be attached: {e}"),
            })?;
        let form = reqwest::multipart::Form::new().part("media", part);
        self.pacer.acquire(robot.expose()).await;
        let answer = self.try_send(self.http.post(url).multipart(form)).await?;
        answer.media_id.ok_or_else(|| SendError::Transient {
            reason: "robot answered an upload without a media_id".into(),
        })
    }

    async fn try_send(&self, request: reqwest::RequestBuilder) -> Result<Answer, SendError> {
        let transient = |reason: String| SendError::Transient { reason };
        let response = request.send().await.map_err(|e| transient(describe(e)))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| transient(describe(e)))?;
        if !status.is_success() {
            return Err(transient(format!(
                "robot answered HTTP {}",
                status.as_u16()
            )));
        }
        let answer: Answer = serde_json::from_slice(&bytes)
            .map_err(|e| transient(format!("robot answer is not JSON: {e}")))?;
        if let Some(code) = answer.errcode.filter(|c| *c != 0) {
            // The documented codes by name; any other under one label, so that a robot
            // answering nonsense cannot grow the metric without bound.
            let label = if meaning(code) == UNDOCUMENTED {
                "other".to_owned()
            } else {
                code.to_string()
            };
            metrics::counter!("churn_alert_robot_refusals_total", "errcode" => label).increment(1);
        }
        match answer.errcode {
            Some(0) => Ok(answer),
            Some(45009) => Err(SendError::Blocked),
            Some(code @ 93000) => Err(SendError::Permanent {
                reason: format!(
                    "robot refused the message permanently (errcode {code}: {})",
                    meaning(code)
                ),
            }),
            Some(code @ (40058 | 40009 | 301019)) => Err(SendError::Rejected {
                reason: format!(
                    "robot refused this message permanently (errcode {code}: {})",
                    meaning(code)
                ),
            }),
            Some(code) => Err(transient(format!(
                "robot did not accept the message: errcode {code} ({}): {}",
                meaning(code),
                answer.errmsg.unwrap_or_default()
            ))),
            None => Err(transient("robot answer has no errcode".into())),
        }
    }
}

impl Sink for WecomSink {
    type Message = WecomMessage;

    fn channel(&self) -> Channel {
        Channel::Wecom
    }

    fn limit(&self, format: Format) -> Option<usize> {
        Some(match format {
            Format::Text => TEXT_LIMIT,
            Format::Markdown | Format::Email => MARKDOWN_LIMIT,
        })
    }

    async fn send(&self, message: &WecomMessage) -> Result<(), SendError> {
        self.send_once_accepted(message).await
    }
}

/// The robot's upload address: its webhook URL with `upload_media` for `send`, same key.
fn upload_url(robot: &RobotUrl) -> Result<reqwest::Url, SendError> {
    let bad = || SendError::Permanent {
        reason: format!(
            "robot URL {} does not end in /send, so its upload address is unknown",
            redact_url(robot.expose())
        ),
    };
    let mut url = robot.url().clone();
    let path = url.path().strip_suffix("/send").ok_or_else(bad)?.to_owned();
    url.set_path(&format!("{path}/upload_media"));
    url.query_pairs_mut().append_pair("type", "file");
    Ok(url)
}

/// Lowercase hex md5 of `bytes`, as WeCom checks images.
pub(crate) fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A transport error without its URL, which carries the robot key.
fn describe(err: reqwest::Error) -> String {
    format!("robot {}", crate::http::describe(err))
}
