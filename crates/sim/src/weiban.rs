//! A Weiban OpenAPI stand-in: the token endpoint and the outflow list.
//!
//! It keeps losses newest first, pages them with Weiban's 100-item cap, checks the token,
//! answers 10052 when 5 or more requests are in flight and 10053 past 600 requests in a
//! minute, like the real service. [`WeibanFaults`] adds 5xx, timeouts, connection resets,
//! malformed JSON, 10052, 10053 and token invalidation (10001) at a given rate.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

// tokio's clock: under paused time (the in-process tests) the simulators count minutes on the
// same clock as the daemon.
use tokio::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::directory::{Directory, ListQuery, SimDepartment, SimStaff};

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct WeibanSimOptions {
    pub corp_id: String,
    pub secret: String,
    /// `expires_in` of issued tokens, seconds.
    pub token_ttl: u64,
    /// Items per page at most (Weiban: 100). Lower it to test servers that cap pages.
    pub page_cap: usize,
    /// Added to every request.
    pub latency: Duration,
    pub faults: WeibanFaults,
    /// Enforce Weiban's limits (fewer than 5 in flight, 600 a minute).
    pub enforce_limits: bool,
    /// Leave `total_count` out of outflow answers (a server that does not send it).
    pub omit_total_count: bool,
    /// Answer this `total_count` instead of the real one (a hostile or broken server).
    pub total_count: Option<u64>,
    /// Answer items of one second in a new random order on every request (Weiban's order
    /// within a second is not specified).
    pub shuffle_same_second: bool,
}

impl Default for WeibanSimOptions {
    fn default() -> Self {
        Self {
            corp_id: "sim-corp".into(),
            secret: "sim-secret".into(),
            token_ttl: 7200,
            page_cap: 100,
            latency: Duration::ZERO,
            faults: WeibanFaults::default(),
            enforce_limits: true,
            omit_total_count: false,
            total_count: None,
            shuffle_same_second: false,
        }
    }
}

/// Fault injection: each data request fails with probability `rate`; the kinds enabled take
/// turns, so that every kind shows up once a handful of faults were injected.
#[derive(Debug, Clone, Default)]
pub struct WeibanFaults {
    pub rate: f64,
    pub server_error: bool,
    pub timeout: bool,
    /// How long a "timeout" request hangs before answering.
    pub timeout_delay: Duration,
    pub reset: bool,
    pub malformed: bool,
    pub concurrency: bool,
    pub rate_limit: bool,
    pub bad_token: bool,
}

impl WeibanFaults {
    /// Every kind of fault at `rate`, timeouts hanging for `timeout_delay`.
    pub fn all(rate: f64, timeout_delay: Duration) -> Self {
        Self {
            rate,
            server_error: true,
            timeout: true,
            timeout_delay,
            reset: true,
            malformed: true,
            concurrency: true,
            rate_limit: true,
            bad_token: true,
        }
    }

    fn kinds(&self) -> Vec<&'static str> {
        [
            (self.server_error, "http_500"),
            (self.timeout, "timeout"),
            (self.reset, "reset"),
            (self.malformed, "malformed"),
            (self.concurrency, "10052"),
            (self.rate_limit, "10053"),
            (self.bad_token, "10001"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// A loss to serve.
#[derive(Debug, Clone)]
pub struct SimLoss {
    pub customer_id: String,
    pub customer_name: String,
    pub remark: Option<String>,
    pub staff_id: String,
    pub staff_name: String,
    pub staff_email: String,
    pub outflow_at: i64,
    pub deleted_by_customer: bool,
    pub tags: Vec<String>,
}

impl SimLoss {
    /// `n` losses over `staff` staff members, one every `spacing` seconds back from `newest`.
    /// Customer names are `客户00001号`-style, unique per `prefix`.
    pub fn generate(prefix: &str, n: usize, staff: usize, newest: i64, spacing: i64) -> Vec<Self> {
        (0..n)
            .map(|i| {
                let s = i % staff.max(1);
                Self {
                    customer_id: format!("wm_{prefix}_{i:06}"),
                    customer_name: format!("{prefix}客户{i:05}号"),
                    remark: (i % 3 == 0).then(|| format!("老客户{i}")),
                    staff_id: format!("staff{s:02}"),
                    staff_name: format!("销售{s:02}"),
                    staff_email: format!("staff{s:02}@example.com"),
                    outflow_at: newest - i as i64 * spacing,
                    deleted_by_customer: i % 2 == 0,
                    tags: if i % 4 == 0 {
                        vec!["意向客户".into()]
                    } else {
                        vec![]
                    },
                }
            })
            .collect()
    }

    fn to_item(&self, template: &Value) -> Value {
        let mut item = template.clone();
        item["id"] = json!(self.customer_id);
        item["name"] = json!(self.customer_name);
        item["outflow_at"] = json!(self.outflow_at);
        item["staff"]["id"] = json!(self.staff_id);
        item["staff"]["name"] = json!(self.staff_name);
        item["staff"]["email"] = json!(self.staff_email);
        let relation = &mut item["staff_relation"];
        relation["delete_by"] = json!(if self.deleted_by_customer {
            "external_user"
        } else {
            "staff"
        });
        relation["remark"] = json!(self
            .remark
            .clone()
            .unwrap_or_else(|| self.customer_name.clone()));
        relation["external_user_ext_id"] = json!(self.customer_id);
        relation["staff_ext_id"] = json!(self.staff_id);
        relation["deleted_at"] = json!(self.outflow_at);
        relation["created_at"] = json!(self.outflow_at - 86_400 * 37);
        relation["createtime"] = json!(self.outflow_at - 86_400 * 37 - 60);
        item["tags"] = Value::Array(
            self.tags
                .iter()
                .map(|t| {
                    let mut tag = template["tags"][0].clone();
                    tag["name"] = json!(t);
                    tag
                })
                .collect(),
        );
        item
    }
}

/// What the stand-in saw, for assertions and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct WeibanSimStats {
    pub token_requests: u64,
    pub outflow_requests: u64,
    /// Items of the outflow list answered, over all pages.
    pub items_served: u64,
    /// Injected faults by kind.
    pub faults: BTreeMap<String, u64>,
    /// Real limit answers (not injected): 10052 and 10053.
    pub limit_errors: BTreeMap<String, u64>,
    pub max_in_flight: usize,
    /// Most outflow requests seen in any rolling 60 s.
    pub max_per_minute: usize,
}

/// A record that lands while a window is being paged: the request for the page at `offset`
/// is held for `hold`; halfway through, `losses` are inserted; then it is answered.
#[derive(Debug, Clone)]
struct LateInsert {
    offset: usize,
    hold: Duration,
    losses: Vec<SimLoss>,
}

pub(crate) struct SimState {
    pub(crate) directory: Directory,
    options: WeibanSimOptions,
    late_insert: Option<LateInsert>,
    /// Outflow requests for this offset answer HTTP 500, every time.
    failing_offset: Option<usize>,
    /// Newest first.
    items: Vec<(i64, Value)>,
    pub(crate) tokens: HashSet<String>,
    token_seq: u64,
    in_flight: usize,
    recent: VecDeque<Instant>,
    stats: WeibanSimStats,
}

pub(crate) type Shared = Arc<Mutex<SimState>>;

pub(crate) fn lock(state: &Shared) -> MutexGuard<'_, SimState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running stand-in. Dropping it stops the server.
pub struct WeibanSim {
    addr: SocketAddr,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WeibanSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WeibanSim {
    pub async fn start(options: WeibanSimOptions) -> std::io::Result<Self> {
        let listener = super::bind().await?;
        let addr = listener.local_addr()?;
        let state: Shared = Arc::new(Mutex::new(SimState {
            directory: Default::default(),
            options,
            late_insert: None,
            failing_offset: None,
            items: Vec::new(),
            tokens: HashSet::new(),
            token_seq: 0,
            in_flight: 0,
            recent: VecDeque::new(),
            stats: WeibanSimStats::default(),
        }));
        let app = Router::new()
            .route("/open-api/access_token/get", post(token))
            .route("/open-api/external_user/list/outflow", get(outflow))
            .route("/open-api/staff/list", get(staff_list))
            .route("/open-api/department/list", get(department_list))
            .route("/open-api/external_user/get", get(customer_get))
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`, for `weiban.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_losses(&self, losses: &[SimLoss]) {
        let template = example_item();
        let mut state = lock(&self.state);
        for loss in losses {
            state.items.push((loss.outflow_at, loss.to_item(&template)));
        }
        state.items.sort_by_key(|item| std::cmp::Reverse(item.0));
    }

    /// Adds raw items (for example the documented example itself).
    pub fn add_raw(&self, items: Vec<Value>) {
        let mut state = lock(&self.state);
        for item in items {
            let at = item["outflow_at"].as_i64().unwrap_or(0);
            state.items.push((at, item));
        }
        state.items.sort_by_key(|item| std::cmp::Reverse(item.0));
    }

    /// Once: holds the next outflow request for the page at `offset` for `hold`, inserting
    /// `losses` halfway through, so that pages answered meanwhile see the list before them
    /// and that page sees it after.
    pub fn insert_while_paging(&self, offset: usize, hold: Duration, losses: Vec<SimLoss>) {
        lock(&self.state).late_insert = Some(LateInsert {
            offset,
            hold,
            losses,
        });
    }

    /// Makes every outflow request for the page at `offset` answer HTTP 500 (`None`: none).
    pub fn fail_at_offset(&self, offset: Option<usize>) {
        lock(&self.state).failing_offset = offset;
    }

    /// Serves this org chart from `staff/list` and `department/list`.
    pub fn set_directory(&self, departments: Vec<SimDepartment>, staff: Vec<SimStaff>) {
        let mut s = lock(&self.state);
        s.directory.departments = departments;
        s.directory.staff = staff;
    }

    /// Who still follows `customer_id` (answered by `external_user/get`).
    pub fn set_followers(&self, customer_id: &str, followers: &[(&str, &str)]) {
        lock(&self.state).directory.followers.insert(
            customer_id.to_owned(),
            followers
                .iter()
                .map(|(id, name)| ((*id).to_owned(), (*name).to_owned()))
                .collect(),
        );
    }

    /// Answers `follow_staffs` in the flat shape (`id` = userid, numeric `staff_id`).
    pub fn set_flat_followers(&self, flat: bool) {
        lock(&self.state).directory.flat_followers = flat;
    }

    /// Makes `endpoint` (`staff/list`, `department/list`, `external_user/get`) answer HTTP 500.
    pub fn set_down(&self, endpoint: &str, down: bool) {
        let mut s = lock(&self.state);
        if down {
            s.directory.down.insert(endpoint.to_owned());
        } else {
            s.directory.down.remove(endpoint);
        }
    }

    /// Requests per directory endpoint so far.
    pub fn directory_requests(&self) -> BTreeMap<String, u64> {
        lock(&self.state).directory.requests.clone()
    }

    pub fn set_faults(&self, faults: WeibanFaults) {
        lock(&self.state).options.faults = faults;
    }

    pub fn set_latency(&self, latency: Duration) {
        lock(&self.state).options.latency = latency;
    }

    pub fn stats(&self) -> WeibanSimStats {
        lock(&self.state).stats.clone()
    }
}

/// The item of the documented example, as a template for generated ones.
fn example_item() -> Value {
    serde_json::from_str::<Value>(super::OUTFLOW_EXAMPLE)
        .ok()
        .and_then(|v| v["external_user_list"].get(0).cloned())
        .unwrap_or_else(|| json!({"staff": {}, "staff_relation": {}, "tags": [{}]}))
}

#[derive(Deserialize)]
struct TokenRequest {
    corp_id: Option<String>,
    secret: Option<String>,
}

async fn token(State(state): State<Shared>, Json(body): Json<TokenRequest>) -> Json<Value> {
    let mut s = lock(&state);
    s.stats.token_requests += 1;
    if body.corp_id.as_deref() != Some(s.options.corp_id.as_str())
        || body.secret.as_deref() != Some(s.options.secret.as_str())
    {
        return Json(json!({"errcode": 10001, "errmsg": "认证错误"}));
    }
    s.token_seq += 1;
    let token = format!("simtoken-{}-{:016x}", s.token_seq, fastrand::u64(..));
    s.tokens.insert(token.clone());
    Json(
        json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": s.options.token_ttl}),
    )
}

#[derive(Deserialize)]
struct OutflowQuery {
    start_time: Option<String>,
    end_time: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
    access_token: Option<String>,
}

/// Decrements the in-flight count when the request ends, however it ends.
struct InFlight(Shared);

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.0).in_flight -= 1;
    }
}

enum Decision {
    Answer(Value),
    Fault(&'static str, Duration),
}

async fn outflow(State(state): State<Shared>, Query(q): Query<OutflowQuery>) -> Response {
    let late = {
        let mut s = lock(&state);
        let offset = q.offset.as_deref().and_then(|o| o.parse::<usize>().ok());
        match &s.late_insert {
            Some(late) if Some(late.offset) == offset => s.late_insert.take(),
            _ => None,
        }
    };
    if let Some(late) = late {
        tokio::time::sleep(late.hold / 2).await;
        let template = example_item();
        {
            let mut s = lock(&state);
            for loss in &late.losses {
                s.items.push((loss.outflow_at, loss.to_item(&template)));
            }
            s.items.sort_by_key(|item| std::cmp::Reverse(item.0));
        }
        tokio::time::sleep(late.hold / 2).await;
    }
    let (decision, latency, _guard) = {
        let mut s = lock(&state);
        s.stats.outflow_requests += 1;
        s.in_flight += 1;
        s.stats.max_in_flight = s.stats.max_in_flight.max(s.in_flight);
        let now = Instant::now();
        s.recent.push_back(now);
        while s
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            s.recent.pop_front();
        }
        s.stats.max_per_minute = s.stats.max_per_minute.max(s.recent.len());
        let guard = InFlight(Arc::clone(&state));
        let decision = decide(&mut s, &q);
        (decision, s.options.latency, guard)
    };
    tokio::time::sleep(latency).await;
    match decision {
        Decision::Answer(body) => Json(body).into_response(),
        Decision::Fault(kind, delay) => fault_response(kind, delay).await,
    }
}

fn decide(s: &mut SimState, q: &OutflowQuery) -> Decision {
    if s.options.enforce_limits {
        if s.in_flight >= 5 {
            *s.stats.limit_errors.entry("10052".into()).or_default() += 1;
            return Decision::Answer(json!({"errcode": 10052, "errmsg": "并发超限"}));
        }
        if s.recent.len() > 600 {
            *s.stats.limit_errors.entry("10053".into()).or_default() += 1;
            return Decision::Answer(json!({"errcode": 10053, "errmsg": "频率超限"}));
        }
    }
    let token_ok = q
        .access_token
        .as_ref()
        .is_some_and(|t| s.tokens.contains(t));
    if !token_ok {
        return Decision::Answer(json!({"errcode": 10001, "errmsg": "认证错误"}));
    }
    let offset = q.offset.as_deref().and_then(|o| o.parse::<usize>().ok());
    if offset.is_some() && offset == s.failing_offset {
        return Decision::Fault("http_500", Duration::ZERO);
    }
    let kinds = s.options.faults.kinds();
    if !kinds.is_empty() && fastrand::f64() < s.options.faults.rate {
        let injected: u64 = s.stats.faults.values().sum();
        let kind = kinds[injected as usize % kinds.len()];
        *s.stats.faults.entry(kind.into()).or_default() += 1;
        if kind == "10001" {
            s.tokens.clear();
        }
        return Decision::Fault(kind, s.options.faults.timeout_delay);
    }
    let parse = |v: &Option<String>| v.as_deref().and_then(|v| v.parse::<i64>().ok());
    let (a, b) = (
        parse(&q.start_time).unwrap_or(i64::MIN),
        parse(&q.end_time).unwrap_or(i64::MAX),
    );
    let (lo, hi) = (a.min(b), a.max(b));
    let limit = parse(&q.limit).unwrap_or(30).clamp(1, 100) as usize;
    let limit = limit.min(s.options.page_cap);
    let offset = parse(&q.offset).unwrap_or(0).max(0) as usize;
    let mut matching: Vec<&(i64, Value)> = s
        .items
        .iter()
        .filter(|(at, _)| (lo..=hi).contains(at))
        .collect();
    if s.options.shuffle_same_second {
        for run in matching.chunk_by_mut(|a, b| a.0 == b.0) {
            fastrand::shuffle(run);
        }
    }
    let matching: Vec<&Value> = matching.into_iter().map(|(_, item)| item).collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|v| (*v).clone())
        .collect();
    s.stats.items_served += page.len() as u64;
    let mut answer = json!({
        "errcode": 0,
        "errmsg": "ok",
        "external_user_list": page,
        "total_count": s.options.total_count.unwrap_or(matching.len() as u64),
    });
    if s.options.omit_total_count {
        if let Some(map) = answer.as_object_mut() {
            map.remove("total_count");
        }
    }
    Decision::Answer(answer)
}

async fn fault_response(kind: &'static str, delay: Duration) -> Response {
    match kind {
        "http_500" => (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
        "timeout" => {
            tokio::time::sleep(delay).await;
            (StatusCode::GATEWAY_TIMEOUT, "too late").into_response()
        }
        "reset" => {
            // Half a body, then the connection breaks.
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(
                    b"{\"errcode\":0,\"external_user_list\":[",
                )),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "reset",
                )),
            ];
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(futures::stream::iter(chunks)))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        "malformed" => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"errcode\":0,\"external_user_list\":[{\"id\":",
        )
            .into_response(),
        "10052" => Json(json!({"errcode": 10052, "errmsg": "并发超限"})).into_response(),
        "10053" => Json(json!({"errcode": 10053, "errmsg": "频率超限"})).into_response(),
        "10001" => Json(json!({"errcode": 10001, "errmsg": "认证错误"})).into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A directory endpoint: the outage switch and token check, then `answer`.
fn directory_answer(
    state: &Shared,
    endpoint: &str,
    q: &ListQuery,
    answer: impl FnOnce(&Directory) -> Value,
) -> Response {
    let mut s = lock(state);
    let token_ok = q
        .access_token
        .as_deref()
        .is_some_and(|t| s.tokens.contains(t));
    if let Some(refused) = s.directory.admit(endpoint, token_ok) {
        return refused;
    }
    Json(answer(&s.directory)).into_response()
}

async fn staff_list(State(state): State<Shared>, Query(q): Query<ListQuery>) -> Response {
    directory_answer(&state, "staff/list", &q, |d| d.staff_page(&q))
}

async fn department_list(State(state): State<Shared>, Query(q): Query<ListQuery>) -> Response {
    directory_answer(&state, "department/list", &q, Directory::department_answer)
}

async fn customer_get(State(state): State<Shared>, Query(q): Query<ListQuery>) -> Response {
    let id = q.id.clone().unwrap_or_default();
    directory_answer(&state, "external_user/get", &q, |d| d.customer_answer(&id))
}
