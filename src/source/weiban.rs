//! The Weiban OpenAPI client: tokens, paging, limits and fault recovery.
//!
//! Limits are kept on our side, never discovered by hitting them: a semaphore keeps requests
//! in flight below Weiban's 5 (and gives up a permit for the rest of the client's life after
//! a 10052), and a GCRA rate limiter spaces requests so that no minute holds more than
//! `requests_per_minute`. Faults are retried within the cycle with exponential back-off and
//! jitter; 10053 waits out the block; 10001 fetches one fresh token.

mod org;
mod paging;
mod spacing;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{Mutex, Semaphore};

use super::errors::{meaning, Recovery, WeibanError};
use super::model::{Envelope, Item, TokenAnswer};
use crate::backoff::Backoff;
use crate::config::WeibanConfig;
use crate::loss::Loss;
use crate::secret::Secret;

const TOKEN_PATH: &str = "/open-api/access_token/get";
const OUTFLOW_PATH: &str = "/open-api/external_user/list/outflow";
const TOKEN_ENDPOINT: &str = "access_token/get";
const OUTFLOW_ENDPOINT: &str = "external_user/list/outflow";
/// Tokens are refreshed this long before Weiban says they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(200);

/// A time window of outflow times, unix seconds, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub start: i64,
    pub end: i64,
}

/// Why fetching a window stopped: the API, or whoever consumed the pages.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError<E> {
    #[error(transparent)]
    Weiban(#[from] WeibanError),
    #[error(transparent)]
    Sink(E),
}

/// A cached access token and when to stop using it.
struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

/// One page as fetched.
struct Page {
    items: Vec<Item>,
    /// `None` when Weiban left it out: unknown, never zero.
    total_count: Option<u64>,
}

/// Talks to Weiban within its limits. Cheap to share behind an `Arc`.
pub(crate) struct WeibanClient {
    http: reqwest::Client,
    base_url: String,
    corp_id: String,
    secret: Secret,
    page_size: u32,
    max_retries: u32,
    retry_base: Duration,
    rate_limit_wait: Duration,
    token: Mutex<Option<CachedToken>>,
    in_flight: Arc<Semaphore>,
    in_flight_limit: AtomicUsize,
    max_in_flight: usize,
    /// Set once a fetch gave up a slot after 10052, so that a burst costs one slot, not all.
    reduced_this_fetch: std::sync::atomic::AtomicBool,
    rate: spacing::Spacing,
    /// Until when Weiban blocks us after a 10053: every request waits it out, not just one.
    blocked_until: std::sync::Mutex<Option<Instant>>,
}

impl WeibanClient {
    pub fn new(config: &WeibanConfig) -> Result<Self, WeibanError> {
        let http =
            crate::http::client(config.request_timeout).map_err(|e| WeibanError::Transport {
                endpoint: TOKEN_ENDPOINT,
                reason: e.without_url().to_string(),
            })?;
        let per_minute = NonZeroU32::new(config.requests_per_minute).unwrap_or(NonZeroU32::MIN);
        // Burst of one: evenly spaced requests never put more than the quota in any minute.
        // One percent slack absorbs network jitter between our clock and Weiban's.
        let period = (Duration::from_secs(60) / per_minute.get()).mul_f64(1.01);
        Ok(Self {
            http,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            corp_id: config.corp_id.clone(),
            secret: config.secret.clone(),
            page_size: config.page_size,
            max_retries: config.max_retries,
            retry_base: config.retry_base,
            rate_limit_wait: config.rate_limit_wait,
            token: Mutex::new(None),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            in_flight_limit: AtomicUsize::new(config.max_in_flight),
            max_in_flight: config.max_in_flight,
            reduced_this_fetch: std::sync::atomic::AtomicBool::new(false),
            rate: spacing::Spacing::new(period),
            blocked_until: std::sync::Mutex::new(None),
        })
    }

    /// One outflow request (limit 1) over `window`: the count Weiban reports and the newest
    /// loss, for `check --online`.
    pub async fn probe(&self, window: Window) -> Result<(Option<u64>, Option<Loss>), WeibanError> {
        let page = self.outflow_page(window, 0, 1).await?;
        Ok((
            page.total_count,
            paging::into_losses(page.items).into_iter().next(),
        ))
    }

    /// One page of the outflow list.
    async fn outflow_page(
        &self,
        window: Window,
        offset: u64,
        limit: u32,
    ) -> Result<Page, WeibanError> {
        let query = [
            ("start_time", window.start.to_string()),
            ("end_time", window.end.to_string()),
            ("limit", limit.to_string()),
            ("offset", offset.to_string()),
        ];
        let (items, total_count) = self
            .get_read(OUTFLOW_ENDPOINT, OUTFLOW_PATH, &query, |body| {
                super::model::read_page(body)
            })
            .await?;
        Ok(Page {
            items,
            total_count: total_count.and_then(|n| u64::try_from(n).ok()),
        })
    }

    /// A GET of `path` with `query` and the token, with every recovery the errcode calls for.
    async fn get(
        &self,
        endpoint: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<bytes::Bytes, WeibanError> {
        self.get_read(endpoint, path, query, with_envelope).await
    }

    /// [`WeibanClient::get`], with the answer read by `read`, which also gives its envelope:
    /// an outflow page's errcode comes out of the same pass over its bytes as its items.
    async fn get_read<T>(
        &self,
        endpoint: &'static str,
        path: &str,
        query: &[(&str, String)],
        read: impl Fn(&bytes::Bytes) -> Result<(Envelope, T), serde_json::Error>,
    ) -> Result<T, WeibanError> {
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let url = format!("{}{path}", self.base_url);
            let request = self
                .http
                .get(url)
                .query(query)
                .query(&[("access_token", token.expose())]);
            let err = match self.send_read(endpoint, request, &read).await {
                Ok(body) => return Ok(body),
                Err(err) => err,
            };
            metrics::counter!("churn_alert_weiban_errors_total", "errcode" => super::errors::errcode_label(err.code())).increment(1);
            match err.recovery() {
                Recovery::RefreshToken if !refreshed => {
                    refreshed = true;
                    tracing::info!(
                        "Weiban said the access token is bad (10001); fetching a new one"
                    );
                    self.forget_token(&token).await;
                    continue;
                }
                Recovery::GiveUp | Recovery::RefreshToken => return Err(err),
                _ if attempt >= self.max_retries => return Err(err),
                Recovery::FewerInFlight => {
                    self.fewer_in_flight();
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Recovery::WaitOutBlock => {
                    tracing::warn!(wait = ?self.rate_limit_wait, "Weiban rate limit block (10053); waiting it out");
                    self.block_for(self.rate_limit_wait);
                }
                Recovery::Retry => {
                    let wait = self.backoff(attempt);
                    tracing::debug!(error = %err, ?wait, "retrying Weiban request");
                    tokio::time::sleep(wait).await;
                }
            }
            attempt += 1;
        }
    }

    /// Sends under both limits and checks HTTP status and errcode.
    async fn send(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<bytes::Bytes, WeibanError> {
        self.send_read(endpoint, request, &with_envelope).await
    }

    /// [`WeibanClient::send`], with the answer read by `read` (see [`WeibanClient::get_read`]).
    async fn send_read<T>(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
        read: &impl Fn(&bytes::Bytes) -> Result<(Envelope, T), serde_json::Error>,
    ) -> Result<T, WeibanError> {
        let blocked = *self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = blocked {
            tokio::time::sleep_until(until).await;
        }
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| WeibanError::Transport {
                endpoint,
                reason: "client is shutting down".into(),
            })?;
        self.rate.wait().await;
        metrics::counter!("churn_alert_weiban_requests_total", "endpoint" => endpoint).increment(1);
        let transport = |e: reqwest::Error| WeibanError::Transport {
            endpoint,
            reason: crate::http::describe(e),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(WeibanError::Http {
                endpoint,
                status: status.as_u16(),
            });
        }
        let (envelope, value) = match read(&body) {
            Ok((envelope, value)) => (envelope, Ok(value)),
            // An answer that `read` cannot take may still be a plain refusal: its errcode says.
            Err(e) => (decode::<Envelope>(endpoint, &body)?, Err(e)),
        };
        if envelope.errcode != 0 {
            return Err(WeibanError::Api {
                endpoint,
                code: envelope.errcode,
                meaning: meaning(envelope.errcode),
                errmsg: envelope.errmsg.unwrap_or_default(),
            });
        }
        value.map_err(|e| WeibanError::Malformed {
            endpoint,
            reason: e.to_string(),
        })
    }

    /// The cached token, or a fresh one when it is missing or about to expire.
    async fn token(&self) -> Result<Secret, WeibanError> {
        let mut cached = self.token.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.fetch_token().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Drops `stale` from the cache unless another request already replaced it.
    async fn forget_token(&self, stale: &Secret) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|c| &c.token == stale) {
            *cached = None;
        }
    }

    async fn fetch_token(&self) -> Result<CachedToken, WeibanError> {
        let mut attempt = 0;
        loop {
            match self.try_fetch_token().await {
                Ok(token) => return Ok(token),
                Err(WeibanError::Api { code: 10001, .. }) => {
                    return Err(WeibanError::Credentials {
                        code: 10001,
                        meaning: meaning(10001),
                    })
                }
                Err(err) if attempt < self.max_retries && err.recovery() != Recovery::GiveUp => {
                    if err.recovery() == Recovery::WaitOutBlock {
                        self.block_for(self.rate_limit_wait);
                    } else {
                        let wait = self.backoff(attempt);
                        tracing::debug!(error = %err, ?wait, "retrying token request");
                        tokio::time::sleep(wait).await;
                    }
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn try_fetch_token(&self) -> Result<CachedToken, WeibanError> {
        let url = format!("{}{TOKEN_PATH}", self.base_url);
        let body = serde_json::json!({ "corp_id": self.corp_id, "secret": self.secret.expose() });
        let answer = self
            .send(TOKEN_ENDPOINT, self.http.post(url).json(&body))
            .await?;
        let token: TokenAnswer = decode(TOKEN_ENDPOINT, &answer)?;
        let access_token =
            token
                .access_token
                .filter(|t| !t.is_empty())
                .ok_or(WeibanError::Malformed {
                    endpoint: TOKEN_ENDPOINT,
                    reason: "no access_token in the answer".into(),
                })?;
        // Clamped: a day is more than Weiban ever grants, and keeps `Instant` arithmetic sane.
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(7200).min(86_400));
        let usable = lifetime.checked_sub(TOKEN_MARGIN).unwrap_or(lifetime / 2);
        crate::logging::register_secret(&access_token);
        tracing::debug!(expires_in = ?lifetime, "fetched a Weiban access token");
        Ok(CachedToken {
            token: Secret::new(access_token),
            refresh_at: Instant::now() + usable,
        })
    }

    /// Makes every request wait until `wait` from now has passed.
    fn block_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut blocked = self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
        if blocked.is_none_or(|b| b < until) {
            *blocked = Some(until);
        }
    }

    /// Gives back the slots a previous fetch gave up: a fresh window starts at full width.
    fn restore_in_flight(&self) {
        self.reduced_this_fetch.store(false, Ordering::Relaxed);
        let current = self
            .in_flight_limit
            .swap(self.max_in_flight, Ordering::Relaxed);
        if current < self.max_in_flight {
            self.in_flight.add_permits(self.max_in_flight - current);
        }
    }

    /// Gives up one in-flight slot (down to one) for the rest of this fetch, after 10052; a
    /// burst of 10052 answers from the pages in flight together costs one slot.
    fn fewer_in_flight(&self) {
        if self.reduced_this_fetch.swap(true, Ordering::Relaxed) {
            return;
        }
        let current = self.in_flight_limit.load(Ordering::Relaxed);
        if current > 1
            && self
                .in_flight_limit
                .compare_exchange(current, current - 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let semaphore = Arc::clone(&self.in_flight);
            tokio::spawn(async move {
                if let Ok(permit) = semaphore.acquire_owned().await {
                    permit.forget();
                }
            });
            tracing::warn!(
                in_flight = current - 1,
                "Weiban concurrency limit (10052); fewer requests in flight"
            );
        }
    }

    /// The shared back-off from `weiban.retry_base`, jittered, at most about 8.5 minutes.
    fn backoff(&self, attempt: u32) -> Duration {
        Backoff {
            base: self.retry_base,
            cap: self.retry_base.saturating_mul(1 << 10),
        }
        .jittered(attempt)
    }
}

/// Reads only the envelope; the body is kept for its reader (the endpoints read it themselves).
fn with_envelope(body: &bytes::Bytes) -> Result<(Envelope, bytes::Bytes), serde_json::Error> {
    Ok((serde_json::from_slice(body)?, body.clone()))
}

fn decode<'a, T: serde::Deserialize<'a>>(
    endpoint: &'static str,
    body: &'a [u8],
) -> Result<T, WeibanError> {
    serde_json::from_slice(body).map_err(|e| WeibanError::Malformed {
        endpoint,
        reason: e.to_string(),
    })
}
