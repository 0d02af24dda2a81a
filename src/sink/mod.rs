//! Sink stage: where messages go.
//!
//! [`wecom`] posts markdown to WeCom group robots, checking the errcode in the answer body
//! (HTTP 200 is not success) and pacing each robot on our side with [`pacer`].

pub(crate) mod pacer;
pub(crate) mod wecom;

pub(crate) use wecom::{RobotError, WecomSink};
