//! A WeCom group robot stand-in: `POST /cgi-bin/webhook/send?key=KEY`.
//!
//! It records every accepted message per key, answers like WeCom (HTTP 200 with an errcode),
//! blocks a key that gets more than 20 messages a minute (45009), and can inject 45009 storms,
//! `-1`, HTTP 503, latency and "removed robot" (93000) per key.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: String,
    pub msgtype: String,
    pub content: String,
    /// Mentions of a `text` message's `mentioned_list`.
    pub mentioned: Vec<String>,
    /// When it was accepted, relative to the robot's start.
    pub at: Duration,
}

/// One request as the robot answered it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub key: String,
    /// When it arrived, relative to the robot's start.
    pub at: Duration,
    /// The errcode answered, or `None` for an HTTP error status.
    pub errcode: Option<i64>,
}

/// Fault injection, each a probability per request.
#[derive(Debug, Clone, Default)]
pub struct RobotFaults {
    pub blocked: f64,
    pub busy: f64,
    pub unavailable: f64,
}

struct RobotState {
    started: Instant,
    received: Vec<Received>,
    attempts: Vec<Attempt>,
    answer_delay: Duration,
    /// Answers forced before any random fault: `Some(errcode)`, or `None` for HTTP 503.
    script: std::collections::VecDeque<Option<i64>>,
    removed: HashSet<String>,
    faults: RobotFaults,
    latency: Duration,
    per_minute: Option<usize>,
    recent: HashMap<String, VecDeque<Instant>>,
    print: bool,
}

type Shared = Arc<Mutex<RobotState>>;

fn lock(state: &Shared) -> MutexGuard<'_, RobotState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running robot stand-in. Dropping it stops the server.
pub struct RobotSim {
    addr: SocketAddr,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RobotSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RobotSim {
    /// Starts a robot that enforces WeCom's 20 messages a minute per key.
    pub async fn start() -> std::io::Result<Self> {
        let listener = super::bind().await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(RobotState {
            started: Instant::now(),
            received: Vec::new(),
            attempts: Vec::new(),
            answer_delay: Duration::ZERO,
            script: std::collections::VecDeque::new(),
            removed: HashSet::new(),
            faults: RobotFaults::default(),
            latency: Duration::ZERO,
            per_minute: Some(20),
            recent: HashMap::new(),
            print: false,
        }));
        let app = Router::new()
            .route("/cgi-bin/webhook/send", post(send))
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// The full webhook URL for `key`, as a user would paste it.
    pub fn url(&self, key: &str) -> String {
        format!("http://{}/cgi-bin/webhook/send?key={key}", self.addr)
    }

    /// Makes `key` answer 93000 (removed robot), or work again.
    pub fn set_removed(&self, key: &str, removed: bool) {
        let mut s = lock(&self.state);
        if removed {
            s.removed.insert(key.to_owned());
        } else {
            s.removed.remove(key);
        }
    }

    pub fn set_faults(&self, faults: RobotFaults) {
        lock(&self.state).faults = faults;
    }

    /// Answers the next requests with these, in order (`None` = HTTP 503), then as usual.
    pub fn script(&self, answers: &[Option<i64>]) {
        lock(&self.state).script.extend(answers.iter().copied());
    }

    /// Delay before a request is looked at.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.state).latency = latency;
    }

    /// Delay between accepting a message and answering: a sender killed meanwhile never learns
    /// that its message arrived, as when an answer is lost on the way back.
    pub fn set_answer_delay(&self, delay: Duration) {
        lock(&self.state).answer_delay = delay;
    }

    /// `None` lifts the 20-a-minute limit (benchmarks with pacing off).
    pub fn set_per_minute(&self, limit: Option<usize>) {
        lock(&self.state).per_minute = limit;
    }

    /// Print each accepted message to stdout, as WeCom would show it.
    pub fn set_print(&self, print: bool) {
        lock(&self.state).print = print;
    }

    /// Every accepted message, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    /// Every request, accepted or not.
    pub fn attempts(&self) -> Vec<Attempt> {
        lock(&self.state).attempts.clone()
    }
}

#[derive(Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

async fn send(
    State(state): State<Shared>,
    Query(q): Query<KeyQuery>,
    Json(body): Json<Value>,
) -> Response {
    let latency = lock(&state).latency;
    tokio::time::sleep(latency).await;
    let key = q.key.unwrap_or_default();
    let (answer, delay) = {
        let mut s = lock(&state);
        let at = s.started.elapsed();
        let answer = judge(&mut s, &key, &body, at);
        s.attempts.push(Attempt {
            key,
            at,
            errcode: answer,
        });
        (answer, s.answer_delay)
    };
    tokio::time::sleep(delay).await;
    match answer {
        None => (StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response(),
        Some(0) => errcode(0, "ok"),
        Some(45009) => errcode(45009, "api freq out of limit"),
        Some(93000) => errcode(93000, "invalid webhook url"),
        Some(40058) => errcode(40058, "content exceeds max length"),
        Some(code) => errcode(code, "system busy"),
    }
}

/// Decides the answer (`None` = HTTP 503) and records an accepted message.
fn judge(s: &mut RobotState, key: &str, body: &Value, at: Duration) -> Option<i64> {
    if key.is_empty() || s.removed.contains(key) {
        return Some(93000);
    }
    if let Some(answer) = s.script.pop_front() {
        return answer;
    }
    let roll = fastrand::f64();
    let faults = s.faults.clone();
    if roll < faults.unavailable {
        return None;
    }
    if roll < faults.unavailable + faults.busy {
        return Some(-1);
    }
    if roll < faults.unavailable + faults.busy + faults.blocked {
        return Some(45009);
    }
    if let Some(limit) = s.per_minute {
        let now = Instant::now();
        let recent = s.recent.entry(key.to_owned()).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            recent.pop_front();
        }
        if recent.len() >= limit {
            return Some(45009);
        }
        recent.push_back(now);
    }
    let msgtype = body["msgtype"].as_str().unwrap_or_default().to_owned();
    let content = body[msgtype.as_str()]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let limit = if msgtype == "text" { 2048 } else { 4096 };
    if content.len() > limit {
        return Some(40058);
    }
    let mentioned = body[msgtype.as_str()]["mentioned_list"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if s.print {
        println!(
            "──── 群机器人 `{key}` 收到消息 ({msgtype}, {} 字节) ────\n{content}\n",
            content.len()
        );
    }
    s.received.push(Received {
        key: key.to_owned(),
        msgtype,
        content,
        mentioned,
        at,
    });
    Some(0)
}

fn errcode(code: i64, message: &str) -> Response {
    Json(json!({"errcode": code, "errmsg": message})).into_response()
}
