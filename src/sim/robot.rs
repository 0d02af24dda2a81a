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
    attempts: Vec<(String, Duration)>,
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

    pub fn set_latency(&self, latency: Duration) {
        lock(&self.state).latency = latency;
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

    /// Every request, accepted or not: (key, time since start).
    pub fn attempts(&self) -> Vec<(String, Duration)> {
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
    let mut s = lock(&state);
    let at = s.started.elapsed();
    s.attempts.push((key.clone(), at));
    if key.is_empty() || s.removed.contains(&key) {
        return errcode(93000, "invalid webhook url");
    }
    let roll = fastrand::f64();
    let faults = s.faults.clone();
    if roll < faults.unavailable {
        return (StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response();
    }
    if roll < faults.unavailable + faults.busy {
        return errcode(-1, "system busy");
    }
    if roll < faults.unavailable + faults.busy + faults.blocked {
        return errcode(45009, "api freq out of limit");
    }
    if let Some(limit) = s.per_minute {
        let now = Instant::now();
        let recent = s.recent.entry(key.clone()).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            recent.pop_front();
        }
        if recent.len() >= limit {
            return errcode(45009, "api freq out of limit");
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
        return errcode(40058, "content exceeds max length");
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
            "──── 企业微信群机器人收到消息 ({msgtype}, {} 字节) ────\n{content}\n",
            content.len()
        );
    }
    s.received.push(Received {
        key,
        msgtype,
        content,
        mentioned,
        at,
    });
    errcode(0, "ok")
}

fn errcode(code: i64, message: &str) -> Response {
    Json(json!({"errcode": code, "errmsg": message})).into_response()
}
