//! WeCom group robot client.
//!
//! A robot answers HTTP 200 even when it refuses, so the `errcode` in the body decides:
//! `0` is delivered; `45009` (blocked for sending too fast) is returned at once so the caller
//! leaves the robot alone for a while; `-1`, 5xx and network faults are retried here with
//! back-off; `93000` (bad or removed robot) and `40058` (too long) are permanent.

use std::time::Duration;

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

/// One robot message.
#[derive(Debug, Clone)]
pub(crate) struct WecomMessage {
    /// The robot's full webhook URL.
    pub robot: Secret,
    pub msgtype: WecomMsgType,
    pub content: String,
    /// For `text` messages: validated user ids to @-mention.
    pub mentioned: Vec<String>,
}

#[derive(Deserialize)]
struct Answer {
    errcode: Option<i64>,
    errmsg: Option<String>,
}

fn meaning(code: i64) -> &'static str {
    match code {
        93000 => "invalid webhook url: the key is wrong or the robot was removed",
        40058 => "content exceeds max length",
        45009 => "api freq out of limit",
        -1 => "system busy",
        _ => "undocumented error code",
    }
}

/// Posts messages to robots, paced per robot URL.
pub(crate) struct WecomSink {
    http: reqwest::Client,
    pacer: Pacer,
    max_retries: u32,
    retry_base: Duration,
}

impl WecomSink {
    pub fn new(config: &WecomConfig) -> Result<Self, SendError> {
        let http = crate::http::client(config.timeout).map_err(|e| SendError::Transient {
            reason: e.without_url().to_string(),
        })?;
        Ok(Self {
            http,
            pacer: Pacer::new(config.messages_per_minute),
            max_retries: config.max_retries,
            retry_base: config.retry_base,
        })
    }

    /// Sends one message, retrying transient faults with back-off.
    async fn send_once_accepted(&self, message: &WecomMessage) -> Result<(), SendError> {
        let WecomMessage {
            robot,
            msgtype,
            content,
            mentioned,
        } = message;
        let body = match msgtype {
            WecomMsgType::Markdown => {
                serde_json::json!({ "msgtype": "markdown", "markdown": { "content": content } })
            }
            WecomMsgType::Text => serde_json::json!({
                "msgtype": "text",
                "text": { "content": content, "mentioned_list": mentioned }
            }),
        };
        let mut attempt = 0;
        loop {
            self.pacer.acquire(robot.expose()).await;
            let err = match self.try_send(robot, &body).await {
                Ok(()) => return Ok(()),
                Err(err @ (SendError::Blocked | SendError::Permanent { .. })) => return Err(err),
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

    async fn try_send(&self, robot: &Secret, body: &serde_json::Value) -> Result<(), SendError> {
        let transient = |reason: String| SendError::Transient { reason };
        let response = self
            .http
            .post(robot.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| transient(describe(e)))?;
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
        match answer.errcode {
            Some(0) => Ok(()),
            Some(45009) => Err(SendError::Blocked),
            Some(code @ (93000 | 40058)) => Err(SendError::Permanent {
                reason: format!(
                    "robot refused the message permanently (errcode {code}: {})",
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

/// A transport error without its URL, which carries the robot key.
fn describe(err: reqwest::Error) -> String {
    format!("robot {}", crate::http::describe(err))
}
