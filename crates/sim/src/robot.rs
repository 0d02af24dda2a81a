//! A WeCom group robot stand-in: `POST /cgi-bin/webhook/send?key=KEY`.
//!
//! It records every accepted message per key, answers like WeCom (HTTP 200 with an errcode),
//! blocks a key that gets more than 20 messages a minute (45009), and can inject 45009 storms,
//! `-1`, HTTP 503, latency and "removed robot" (93000) per key.
//!
//! Media is checked as WeCom checks it: `image` messages carry base64 PNG or JPG of at most
//! 2 MB with the md5 of the raw bytes; `file` messages name a `media_id` that the same key
//! uploaded through `POST /cgi-bin/webhook/upload_media?key=KEY&type=file` (multipart, one
//! part named `media`, 5 bytes to 20 MB). Uploads count against the 20 a minute too.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

// tokio's clock: under paused time (the in-process tests) the simulators count minutes on the
// same clock as the daemon.
use tokio::time::Instant;

use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use md5::{Digest as _, Md5};
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
    /// An `image` message's picture, decoded.
    pub image: Option<Vec<u8>>,
    /// A `file` message's file, as uploaded.
    pub file: Option<Media>,
    /// When it was accepted, relative to the robot's start.
    pub at: Duration,
}

/// One uploaded file.
#[derive(Debug, Clone)]
pub struct Media {
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// Largest image WeCom takes, before base64.
const IMAGE_LIMIT: usize = 2 * 1024 * 1024;
/// Largest file WeCom takes.
const FILE_LIMIT: usize = 20 * 1024 * 1024;

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
    /// Uploaded files by media id, with the key that uploaded them.
    media: HashMap<String, (String, Media)>,
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
            media: HashMap::new(),
        }));
        let app = Router::new()
            .route("/cgi-bin/webhook/send", post(send))
            .route("/cgi-bin/webhook/upload_media", post(upload_media))
            // WeCom takes 2 MB images (base64: 2.7 MB) and 20 MB files.
            .layer(axum::extract::DefaultBodyLimit::max(
                FILE_LIMIT + 1024 * 1024,
            ))
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
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `upload_media`: one multipart part named `media`, 5 bytes to 20 MB; answers a `media_id`
/// that only this key may send.
async fn upload_media(
    State(state): State<Shared>,
    Query(q): Query<KeyQuery>,
    mut form: Multipart,
) -> Response {
    let key = q.key.unwrap_or_default();
    let mut upload = None;
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() != Some("media") {
            continue;
        }
        let filename = field.file_name().unwrap_or_default().to_owned();
        match field.bytes().await {
            Ok(bytes) => {
                upload = Some(Media {
                    filename,
                    bytes: bytes.to_vec(),
                })
            }
            Err(_) => return errcode(40009, "invalid media size"),
        }
    }
    let mut s = lock(&state);
    let at = s.started.elapsed();
    let answer = if key.is_empty() || s.removed.contains(&key) {
        Err(93000)
    } else if q.kind.as_deref() != Some("file") && q.kind.as_deref() != Some("voice") {
        Err(40004)
    } else if !within_minute_limit(&mut s, &key) {
        Err(45009)
    } else {
        match upload {
            Some(media) if (5..=FILE_LIMIT).contains(&media.bytes.len()) => Ok(media),
            Some(_) => Err(40009),
            None => Err(41001),
        }
    };
    s.attempts.push(Attempt {
        key: key.clone(),
        at,
        errcode: Some(*answer.as_ref().err().unwrap_or(&0)),
    });
    match answer {
        Ok(media) => {
            let media_id = format!("media-{}-{}", s.media.len() + 1, fastrand::u32(..));
            s.media.insert(media_id.clone(), (key, media));
            Json(json!({
                "errcode": 0, "errmsg": "ok", "type": "file",
                "media_id": media_id, "created_at": "1380000000"
            }))
            .into_response()
        }
        Err(code) => errcode(code, meaning(code)),
    }
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
        Some(code) => errcode(code, meaning(code)),
    }
}

fn meaning(code: i64) -> &'static str {
    match code {
        0 => "ok",
        45009 => "api freq out of limit",
        93000 => "invalid webhook url",
        40058 => "content exceeds max length",
        40004 => "invalid media type",
        40007 => "invalid media_id",
        40009 => "invalid media size",
        41001 => "missing media",
        301019 => "media md5 not match",
        _ => "system busy",
    }
}

/// Counts one request against `key`'s 20 a minute; false when it is over.
fn within_minute_limit(s: &mut RobotState, key: &str) -> bool {
    let Some(limit) = s.per_minute else {
        return true;
    };
    let now = Instant::now();
    let recent = s.recent.entry(key.to_owned()).or_default();
    while recent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
    {
        recent.pop_front();
    }
    if recent.len() >= limit {
        return false;
    }
    recent.push_back(now);
    true
}

/// An `image` message's picture, checked as WeCom checks it: base64, PNG or JPG, at most
/// 2 MB, with the md5 of the raw bytes.
fn image_of(body: &Value) -> Result<Vec<u8>, i64> {
    let base64 = body["image"]["base64"].as_str().ok_or(41001_i64)?;
    let md5 = body["image"]["md5"].as_str().ok_or(301019_i64)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .map_err(|_| 40009_i64)?;
    if bytes.len() > IMAGE_LIMIT
        || !(bytes.starts_with(b"\x89PNG") || bytes.starts_with(&[0xFF, 0xD8]))
    {
        return Err(40009);
    }
    let digest: String = Md5::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest != md5 {
        return Err(301019);
    }
    Ok(bytes)
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
    if !within_minute_limit(s, key) {
        return Some(45009);
    }
    let msgtype = body["msgtype"].as_str().unwrap_or_default().to_owned();
    let (mut image, mut file) = (None, None);
    match msgtype.as_str() {
        "image" => match image_of(body) {
            Ok(bytes) => image = Some(bytes),
            Err(code) => return Some(code),
        },
        "file" => {
            let id = body["file"]["media_id"].as_str().unwrap_or_default();
            match s.media.get(id) {
                Some((owner, media)) if owner == key => file = Some(media.clone()),
                _ => return Some(40007),
            }
        }
        "markdown" | "text" => {}
        _ => return Some(40008),
    }
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
        let size = content.len()
            + image.as_ref().map_or(0, Vec::len)
            + file.as_ref().map_or(0, |f: &Media| f.bytes.len());
        let shown = match (&image, &file) {
            (Some(_), _) => "[图片]".to_owned(),
            (_, Some(f)) => format!("[文件] {}", f.filename),
            _ => content.clone(),
        };
        println!("──── 群机器人 `{key}` 收到消息 ({msgtype}, {size} 字节) ────\n{shown}\n");
    }
    s.received.push(Received {
        key: key.to_owned(),
        msgtype,
        content,
        mentioned,
        image,
        file,
        at,
    });
    Some(0)
}

fn errcode(code: i64, message: &str) -> Response {
    Json(json!({"errcode": code, "errmsg": message})).into_response()
}
