//! The StockX API v2 client: auth, rate limit, daily budget, retries on 429, metrics.
//!
//! One `StockxClient` per process (it is a cheap `Clone`): every task shares its token and its
//! pace ([`super::pace`]), so the process as a whole never sends more than
//! `requests_per_second`, a 429 pauses every task, not only the one that got it, and a StockX
//! that allows less than the setting is answered by sending less (down to what it accepts).
//!
//! Auth: each request carries `x-api-key` and a bearer token from the OAuth refresh-token grant.
//! The token is cached until a minute before it expires; concurrent callers wait for one
//! refresh. A 401 from the API refreshes once and retries once.
//!
//! Refusals: a 401/403 with StockX's JSON error is a credentials refusal (ours to fix). A
//! 403 with an HTML page (Cloudflare or PerimeterX in front of StockX) is a bot-protection
//! block: nothing is wrong with the credentials, so it is transient, and the whole client
//! stops sending for a growing cool-down (30 s, 60 s, ... up to 30 min) instead of having
//! every task hit the block again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use time::{Date, OffsetDateTime};
use url::Url;

use super::pace::Pace;
use super::types::{
    DetailedOrder, MarketData, OrderPage, Product, SearchResults, TokenResponse, Variant,
};
use super::variants::pick_product_by_style_id;
use crate::http_retry::{self, Backoff};
use crate::metrics as m;

/// How to reach StockX.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API base without `/v2` (`https://api.stockx.com`).
    pub api_url: Url,
    /// OAuth token endpoint.
    pub auth_url: Url,
    pub api_key: SecretString,
    pub client_id: String,
    pub client_secret: SecretString,
    pub refresh_token: SecretString,
    pub requests_per_second: f64,
    pub daily_budget: u32,
    pub timeout: Duration,
}

/// Why a call failed, and whether trying again later may help.
#[derive(Debug, thiserror::Error)]
pub enum StockxError {
    #[error("StockX refused the credentials ({0}): check STOCKX_API_KEY, STOCKX_CLIENT_ID, STOCKX_CLIENT_SECRET and STOCKX_REFRESH_TOKEN")]
    CredentialsRefused(String),
    /// An HTML block page from the bot protection in front of StockX, not StockX's own answer.
    #[error("StockX's bot protection blocked the request ({status}, {vendor}) on {endpoint}; backing off, next try in {} s", .retry_after.as_secs())]
    Blocked {
        status: u16,
        /// "Cloudflare", "PerimeterX", or "HTML page" when the page names neither.
        vendor: &'static str,
        endpoint: &'static str,
        retry_after: Duration,
    },
    #[error("StockX rate limit: still answering 429 after retries; next try in {} s", .retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    #[error("StockX daily request budget used up; next request possible in {} s", .retry_after.as_secs())]
    BudgetExhausted { retry_after: Duration },
    #[error("StockX answered {status} on {endpoint}: {message}")]
    Server {
        status: u16,
        endpoint: &'static str,
        message: String,
    },
    #[error("StockX rejected the request on {endpoint} (400): {message}")]
    BadRequest {
        endpoint: &'static str,
        message: String,
    },
    #[error("StockX answered {status} on {endpoint}: {message}")]
    Unexpected {
        status: u16,
        endpoint: &'static str,
        message: String,
    },
    #[error("cannot reach StockX ({endpoint}): {message}")]
    Transport {
        endpoint: &'static str,
        message: String,
    },
    #[error("StockX sent a response that is not the documented JSON ({endpoint}): {detail}")]
    Decode {
        endpoint: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Internal(String),
}

impl StockxError {
    /// Trying again later may help (timeouts, 5xx, 429, budget, lost connections).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StockxError::RateLimited { .. }
                | StockxError::BudgetExhausted { .. }
                | StockxError::Blocked { .. }
                | StockxError::Server { .. }
                | StockxError::Transport { .. }
                | StockxError::Internal(_)
        )
    }

    /// How long StockX asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            StockxError::RateLimited { retry_after }
            | StockxError::BudgetExhausted { retry_after }
            | StockxError::Blocked { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub fn is_credentials_refused(&self) -> bool {
        matches!(self, StockxError::CredentialsRefused(_))
    }

    /// StockX's bot protection answered instead of StockX (transient; see `retry_after`).
    pub fn is_blocked(&self) -> bool {
        matches!(self, StockxError::Blocked { .. })
    }

    /// Not the job's fault: every call fails the same way until it clears (credentials
    /// refused, or a bot-protection block). Its text is the reason to show in `/readyz`.
    pub fn is_account_wide(&self) -> bool {
        self.is_credentials_refused() || self.is_blocked()
    }
}

/// Retries of one request after a 429, inside the client. The pace slows down after each
/// one, so several in a row for the same request mean StockX is refusing everything.
const MAX_THROTTLE_RETRIES: u32 = 5;

/// 1 s, 2 s, 4 s ... up to 64 s, jittered, when StockX sends no Retry-After.
const THROTTLE_BACKOFF: Backoff = Backoff {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(64),
};

const DAY: Duration = Duration::from_secs(86_400);
/// The first cool-down after a bot-protection block; each further block in a row doubles it.
const BLOCK_BACKOFF_FIRST: Duration = Duration::from_secs(30);
const BLOCK_BACKOFF_MAX: Duration = Duration::from_secs(1800);

#[derive(Clone)]
pub struct StockxClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    pace: Pace,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    sent_today: Mutex<VecDeque<Instant>>,
    block: Mutex<BlockState>,
}

/// The bot-protection cool-down shared by every task.
#[derive(Debug)]
struct BlockState {
    first_backoff: Duration,
    /// Blocks in a row, reset by any answer from StockX itself.
    in_a_row: u32,
    until: Option<Instant>,
    status: u16,
    vendor: &'static str,
    endpoint: &'static str,
}

impl std::fmt::Debug for StockxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StockxClient")
            .field("api_url", &self.inner.config.api_url.as_str())
            .finish_non_exhaustive()
    }
}

impl StockxClient {
    pub fn new(config: ClientConfig) -> Result<StockxClient, StockxError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("stockx-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StockxError::Internal(format!("HTTP client: {e}")))?;
        Ok(StockxClient {
            inner: Arc::new(Inner {
                http,
                pace: Pace::new(config.requests_per_second),
                config,
                token: tokio::sync::Mutex::new(None),
                sent_today: Mutex::new(VecDeque::new()),
                block: Mutex::new(BlockState {
                    first_backoff: BLOCK_BACKOFF_FIRST,
                    in_a_row: 0,
                    until: None,
                    status: 0,
                    vendor: "",
                    endpoint: "",
                }),
            }),
        })
    }

    /// The configured rate (the pace may be slower after 429s).
    pub fn requests_per_second(&self) -> f64 {
        self.inner.config.requests_per_second
    }

    /// Sets the first cool-down after a bot-protection block (30 s unless set; each further
    /// block in a row doubles it, up to 30 min).
    pub fn set_block_backoff(&self, first: Duration) {
        self.inner.block.lock().expect("lock").first_backoff = first;
    }

    /// The product whose style ID is `sku` (case, spaces and dashes ignored; any one of a
    /// product's several style IDs counts), or None.
    pub async fn search_product_by_sku(&self, sku: &str) -> Result<Option<Product>, StockxError> {
        let results: Option<SearchResults> = self
            .get(
                "/catalog/search",
                "/v2/catalog/search",
                &[("query", sku), ("pageNumber", "1"), ("pageSize", "20")],
            )
            .await?;
        Ok(results.and_then(|r| pick_product_by_style_id(r.products, sku)))
    }

    /// A product by its StockX ID, or None when StockX does not know it.
    pub async fn product(&self, product_id: &str) -> Result<Option<Product>, StockxError> {
        let path = format!("/v2/catalog/products/{}", segment(product_id));
        self.get("/catalog/products/{productId}", &path, &[]).await
    }

    pub async fn product_variants(&self, product_id: &str) -> Result<Vec<Variant>, StockxError> {
        let path = format!("/v2/catalog/products/{}/variants", segment(product_id));
        Ok(self
            .get("/catalog/products/{productId}/variants", &path, &[])
            .await?
            .unwrap_or_default())
    }

    /// Market data of every variant of a product: one call for all sizes.
    pub async fn product_market_data(
        &self,
        product_id: &str,
        currency: &str,
    ) -> Result<Vec<MarketData>, StockxError> {
        let path = format!("/v2/catalog/products/{}/market-data", segment(product_id));
        Ok(self
            .get(
                "/catalog/products/{productId}/market-data",
                &path,
                &[("currencyCode", currency)],
            )
            .await?
            .unwrap_or_default())
    }

    /// One of our own orders by number, or None when StockX does not know it.
    pub async fn order(&self, order_number: &str) -> Result<Option<DetailedOrder>, StockxError> {
        let path = format!("/v2/selling/orders/{}", segment(order_number));
        match self.get("/selling/orders/{orderNumber}", &path, &[]).await {
            Err(StockxError::BadRequest { message, .. }) if message.contains(order_number) => {
                Ok(None)
            }
            other => other,
        }
    }

    /// A page (from 1, 100 orders) of the seller's past orders created between `from` and `to`
    /// (inclusive), of `status` when given. One call.
    pub async fn orders_history(
        &self,
        from: Date,
        to: Date,
        page: u32,
        status: Option<&str>,
    ) -> Result<OrderPage, StockxError> {
        let (from, to, page) = (iso_date(from), iso_date(to), page.to_string());
        let mut query = vec![
            ("fromDate", from.as_str()),
            ("toDate", to.as_str()),
            ("pageNumber", page.as_str()),
            ("pageSize", ORDER_PAGE_SIZE),
        ];
        if let Some(status) = status {
            query.push(("orderStatus", status));
        }
        Ok(self
            .get(
                "/selling/orders/history",
                "/v2/selling/orders/history",
                &query,
            )
            .await?
            .unwrap_or_else(OrderPage::empty))
    }

    /// A page (from 1, 100 orders) of the seller's orders still in progress. One call.
    pub async fn orders_active(&self, page: u32) -> Result<OrderPage, StockxError> {
        let page = page.to_string();
        Ok(self
            .get(
                "/selling/orders/active",
                "/v2/selling/orders/active",
                &[("pageNumber", page.as_str()), ("pageSize", ORDER_PAGE_SIZE)],
            )
            .await?
            .unwrap_or_else(OrderPage::empty))
    }

    /// GET with auth, rate limit and 429 handling. `route` is the metric label.
    async fn get<T: DeserializeOwned>(
        &self,
        route: &'static str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<T>, StockxError> {
        let mut url = self.inner.config.api_url.clone();
        url.set_path(&format!("{}{}", url.path().trim_end_matches('/'), path));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut refreshed = false;
        let mut throttled = 0u32;
        loop {
            self.check_block()?;
            // The token first: a refresh after taking the slot would delay this send and
            // squeeze the gap to the next one.
            let token = self.access_token(false).await?;
            self.wait_turn().await?;
            let started = Instant::now();
            let sent = self
                .inner
                .http
                .get(url.clone())
                .header("x-api-key", self.inner.config.api_key.expose_secret())
                .bearer_auth(&token)
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(e) => {
                    record("stockx", route, "error", started);
                    return Err(StockxError::Transport {
                        endpoint: route,
                        message: describe_reqwest(&e),
                    });
                }
            };
            let status = response.status();
            record("stockx", route, status.as_str(), started);
            tracing::debug!(endpoint = route, status = status.as_u16(), "StockX request");
            if status.is_success()
                || status == StatusCode::NOT_FOUND
                || status == StatusCode::BAD_REQUEST
            {
                self.inner.pace.accepted(started, Instant::now());
            }
            match status {
                s if s.is_success() => {
                    self.clear_block();
                    let body = response.bytes().await.map_err(|e| StockxError::Transport {
                        endpoint: route,
                        message: describe_reqwest(&e),
                    })?;
                    return serde_json::from_slice(&body).map(Some).map_err(|e| {
                        StockxError::Decode {
                            endpoint: route,
                            detail: e.to_string(),
                        }
                    });
                }
                StatusCode::NOT_FOUND => {
                    self.clear_block();
                    return Ok(None);
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let (headers, body) = read_body(response).await;
                    if let Some(vendor) = block_page(&headers, &body) {
                        return Err(self.blocked(route, status, vendor, &headers));
                    }
                    if status == StatusCode::UNAUTHORIZED && !refreshed {
                        refreshed = true;
                        self.access_token(true).await?;
                        continue;
                    }
                    return Err(StockxError::CredentialsRefused(format!(
                        "{} on {route}: {}",
                        status.as_u16(),
                        body_message(&body)
                    )));
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    metrics::counter!(m::API_THROTTLED_TOTAL, "api" => "stockx").increment(1);
                    throttled += 1;
                    let wait =
                        http_retry::retry_after(response.headers(), OffsetDateTime::now_utc())
                            .unwrap_or_else(|| THROTTLE_BACKOFF.delay(throttled - 1));
                    self.inner.pace.throttled(started, wait, Instant::now());
                    tracing::warn!(
                        endpoint = route,
                        wait_s = wait.as_secs_f64(),
                        rate = self.inner.pace.rate(),
                        "StockX answered 429; slowing down"
                    );
                    if throttled > MAX_THROTTLE_RETRIES {
                        return Err(StockxError::RateLimited { retry_after: wait });
                    }
                }
                StatusCode::BAD_REQUEST => {
                    return Err(StockxError::BadRequest {
                        endpoint: route,
                        message: error_message(response).await,
                    })
                }
                s if s.is_server_error() => {
                    let (headers, body) = read_body(response).await;
                    if let Some(vendor) = challenge_page(&headers, &body) {
                        return Err(self.blocked(route, status, vendor, &headers));
                    }
                    return Err(StockxError::Server {
                        status: s.as_u16(),
                        endpoint: route,
                        message: body_message(&body),
                    });
                }
                s => {
                    return Err(StockxError::Unexpected {
                        status: s.as_u16(),
                        endpoint: route,
                        message: error_message(response).await,
                    })
                }
            }
        }
    }

    /// Requests the daily budget still allows (over the last 24 h). Work that can wait (the
    /// market refresh) stops while this is below its reserve, leaving the rest to new sales.
    pub fn budget_left(&self) -> u32 {
        let mut sent = self.inner.sent_today.lock().expect("lock");
        let now = Instant::now();
        while sent.front().is_some_and(|t| now.duration_since(*t) >= DAY) {
            sent.pop_front();
        }
        (self.inner.config.daily_budget as usize).saturating_sub(sent.len()) as u32
    }

    /// Waits for the shared pace (rate and any 429 pause); refuses past the daily budget.
    async fn wait_turn(&self) -> Result<(), StockxError> {
        self.inner.pace.wait_turn().await;
        let mut sent = self.inner.sent_today.lock().expect("lock");
        let now = Instant::now();
        while sent.front().is_some_and(|t| now.duration_since(*t) >= DAY) {
            sent.pop_front();
        }
        if sent.len() >= self.inner.config.daily_budget as usize {
            let oldest = *sent.front().expect("non-empty at budget");
            return Err(StockxError::BudgetExhausted {
                retry_after: DAY.saturating_sub(now.duration_since(oldest)),
            });
        }
        sent.push_back(now);
        Ok(())
    }

    /// Refuses to send while a bot-protection cool-down lasts.
    fn check_block(&self) -> Result<(), StockxError> {
        let block = self.inner.block.lock().expect("lock");
        match block
            .until
            .and_then(|t| t.checked_duration_since(Instant::now()))
        {
            Some(left) if !left.is_zero() => Err(StockxError::Blocked {
                status: block.status,
                vendor: block.vendor,
                endpoint: block.endpoint,
                retry_after: left,
            }),
            _ => Ok(()),
        }
    }

    /// Starts (or lengthens) the cool-down after a block page; the error to return.
    fn blocked(
        &self,
        endpoint: &'static str,
        status: StatusCode,
        vendor: &'static str,
        headers: &reqwest::header::HeaderMap,
    ) -> StockxError {
        let mut block = self.inner.block.lock().expect("lock");
        block.in_a_row = block.in_a_row.saturating_add(1);
        let wait = block_backoff(block.first_backoff, block.in_a_row);
        block.until = Some(Instant::now() + wait);
        block.status = status.as_u16();
        block.vendor = vendor;
        block.endpoint = endpoint;
        metrics::counter!(m::API_THROTTLED_TOTAL, "api" => "stockx").increment(1);
        let ray = headers
            .get("cf-ray")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::warn!(
            endpoint,
            status = status.as_u16(),
            vendor,
            cf_ray = ray,
            blocks_in_a_row = block.in_a_row,
            wait_s = wait.as_secs_f64(),
            "StockX's bot protection blocked the request; backing off"
        );
        StockxError::Blocked {
            status: status.as_u16(),
            vendor,
            endpoint,
            retry_after: wait,
        }
    }

    /// StockX itself answered: the block, if any, is over.
    fn clear_block(&self) {
        let mut block = self.inner.block.lock().expect("lock");
        if block.in_a_row > 0 {
            tracing::info!("StockX answers again after a bot-protection block");
            block.in_a_row = 0;
            block.until = None;
        }
    }

    /// A valid access token; `force` refreshes even a cached one (after a 401).
    async fn access_token(&self, force: bool) -> Result<String, StockxError> {
        let mut cached = self.inner.token.lock().await;
        if !force {
            if let Some((token, valid_until)) = cached.as_ref() {
                if Instant::now() < *valid_until {
                    return Ok(token.clone());
                }
            }
        }
        let config = &self.inner.config;
        let started = Instant::now();
        let sent = self
            .inner
            .http
            .post(config.auth_url.clone())
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", config.client_id.as_str()),
                ("client_secret", config.client_secret.expose_secret()),
                ("refresh_token", config.refresh_token.expose_secret()),
                ("audience", "gateway.stockx.com"),
            ])
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                record("stockx", "/oauth/token", "error", started);
                return Err(StockxError::Transport {
                    endpoint: "/oauth/token",
                    message: describe_reqwest(&e),
                });
            }
        };
        let status = response.status();
        record("stockx", "/oauth/token", status.as_str(), started);
        if status == StatusCode::UNAUTHORIZED
            || status == StatusCode::FORBIDDEN
            || status == StatusCode::BAD_REQUEST
        {
            let (headers, body) = read_body(response).await;
            if let Some(vendor) = block_page(&headers, &body) {
                return Err(self.blocked("/oauth/token", status, vendor, &headers));
            }
            return Err(StockxError::CredentialsRefused(format!(
                "token endpoint answered {}: {}",
                status.as_u16(),
                body_message(&body)
            )));
        }
        if !status.is_success() {
            return Err(StockxError::Server {
                status: status.as_u16(),
                endpoint: "/oauth/token",
                message: error_message(response).await,
            });
        }
        let token: TokenResponse = response.json().await.map_err(|e| StockxError::Decode {
            endpoint: "/oauth/token",
            detail: e.to_string(),
        })?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600));
        let valid_until = Instant::now() + lifetime.saturating_sub(Duration::from_secs(60));
        tracing::debug!(
            expires_in_s = lifetime.as_secs(),
            "StockX access token refreshed"
        );
        *cached = Some((token.access_token.clone(), valid_until));
        Ok(token.access_token)
    }
}

/// The largest page the order lists allow.
const ORDER_PAGE_SIZE: &str = "100";

/// `YYYY-MM-DD`, as the order lists take dates.
fn iso_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Percent-encodes one path segment (order numbers and IDs are plain, but never trust input).
fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn record(api: &'static str, endpoint: &'static str, status: &str, started: Instant) {
    metrics::counter!(m::API_REQUESTS_TOTAL, "api" => api, "endpoint" => endpoint, "status" => status.to_string())
        .increment(1);
    metrics::histogram!(m::API_REQUEST_DURATION_SECONDS, "api" => api, "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
}

/// The cool-down after `in_a_row` blocks in a row: `first`, doubled each time, at most 30 min.
fn block_backoff(first: Duration, in_a_row: u32) -> Duration {
    let factor = 2u32.saturating_pow(in_a_row.saturating_sub(1).min(16));
    first
        .saturating_mul(factor)
        .min(BLOCK_BACKOFF_MAX.max(first))
}

/// Marks in a page that only bot protection serves: the vendor it names.
fn vendor_markers(headers: &reqwest::header::HeaderMap, body: &str) -> Option<&'static str> {
    let body = body.to_ascii_lowercase();
    let perimeterx = [
        "_pxcaptcha",
        "px-captcha",
        "perimeterx",
        "_pxappid",
        "px-cdn.net",
    ];
    let cloudflare_body = [
        "cloudflare",
        "cf-ray",
        "cf-chl",
        "cf_chl",
        "challenge-platform",
        "cf-error-details",
    ];
    if perimeterx.iter().any(|m| body.contains(m))
        || headers.keys().any(|k| k.as_str().starts_with("x-px"))
    {
        return Some("PerimeterX");
    }
    let cloudflare_header = headers.contains_key("cf-ray")
        || headers.contains_key("cf-mitigated")
        || headers
            .get(reqwest::header::SERVER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("cloudflare"));
    if cloudflare_header || cloudflare_body.iter().any(|m| body.contains(m)) {
        return Some("Cloudflare");
    }
    None
}

/// A 401/403 that the bot protection sent, not StockX: an HTML page or a page with a
/// vendor's marks. StockX's own refusals are JSON; Cloudflare's headers come on every answer,
/// so a header alone never makes a JSON refusal a block.
fn block_page(headers: &reqwest::header::HeaderMap, body: &str) -> Option<&'static str> {
    let trimmed = body.trim_start();
    if trimmed.starts_with('{') && serde_json::from_str::<serde_json::Value>(trimmed).is_ok() {
        return None;
    }
    let html = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("html"))
        || trimmed.starts_with('<');
    match vendor_markers(headers, body) {
        Some(vendor) if html || !trimmed.is_empty() => Some(vendor),
        None if html => Some("HTML page"),
        _ => None,
    }
}

/// A 5xx that is a bot-protection challenge ("Just a moment...", a captcha), not an outage:
/// only the challenge's own marks count, since Cloudflare also serves its 502/504 pages.
fn challenge_page(headers: &reqwest::header::HeaderMap, body: &str) -> Option<&'static str> {
    let lower = body.to_ascii_lowercase();
    let challenge = [
        "cf-chl",
        "cf_chl",
        "challenge-platform",
        "just a moment...",
        "_pxcaptcha",
        "px-captcha",
    ];
    if headers.contains_key("cf-mitigated") || challenge.iter().any(|m| lower.contains(m)) {
        return vendor_markers(headers, body).or(Some("HTML page"));
    }
    None
}

/// The headers and body text of an error answer.
async fn read_body(response: reqwest::Response) -> (reqwest::header::HeaderMap, String) {
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap_or_default())
}

/// StockX's `{"statusCode", "message"}` (or OAuth's `error_description`), else the raw body.
async fn error_message(response: reqwest::Response) -> String {
    body_message(&response.text().await.unwrap_or_default())
}

/// The message of an error body: the JSON message, an HTML page's title, else its start.
fn body_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        v.get("message")
            .or_else(|| v.get("error_description"))
            .or_else(|| v.get("error"))
            .and_then(|m| m.as_str())
            .map(str::to_string)
    });
    from_json.or_else(|| html_title(body)).unwrap_or_else(|| {
        let text: String = body.chars().take(200).collect();
        if text.trim().is_empty() {
            "(empty body)".into()
        } else {
            text
        }
    })
}

/// `HTML page "Access denied"` for an HTML body with a title.
fn html_title(body: &str) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let title: String = body[open_end..close]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(120)
        .collect();
    Some(format!("HTML page {title:?}"))
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("connection failed: {e}")
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, SERVER};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    const CLOUDFLARE_PAGE: &str = "<!DOCTYPE html>\n<!--[if lt IE 7]> <html class=\"no-js ie6 oldie\" lang=\"en-US\"> <![endif]-->\n<head>\n<title>Attention Required! | Cloudflare</title>\n</head><body><div id=\"cf-wrapper\"><div id=\"cf-error-details\" class=\"cf-error-details-wrapper\"><h1>Sorry, you have been blocked</h1><span>Cloudflare Ray ID: <strong>8a1b2c3d4e5f6789</strong></span></div></div></body></html>";
    const PERIMETERX_PAGE: &str = "<html lang=\"en\"><head><title>Access to this page has been denied.</title></head><body><div id=\"px-captcha\"></div><script>window._pxAppId = 'PX1A2B3C4D';</script><script src=\"https://captcha.px-cdn.net/PX1A2B3C4D/captcha.js\"></script></body></html>";

    #[test]
    fn html_block_pages_are_blocks_and_json_refusals_are_not() {
        let cf = headers(&[
            ("cf-ray", "8a1b2c3d4e5f6789-FRA"),
            ("server", "cloudflare"),
            ("content-type", "text/html; charset=UTF-8"),
        ]);
        assert_eq!(block_page(&cf, CLOUDFLARE_PAGE), Some("Cloudflare"));
        let px = headers(&[("content-type", "text/html")]);
        assert_eq!(block_page(&px, PERIMETERX_PAGE), Some("PerimeterX"));
        // Cloudflare's headers come with StockX's own JSON refusals too.
        let json = r#"{"statusCode":403,"message":"Forbidden"}"#;
        assert_eq!(block_page(&cf, json), None);
        assert_eq!(block_page(&HeaderMap::new(), json), None);
        let plain_denied =
            "<html><head><title>Access denied</title></head><body>denied</body></html>";
        assert_eq!(
            block_page(&HeaderMap::new(), plain_denied),
            Some("HTML page")
        );
        assert_eq!(
            block_page(&headers(&[("cf-ray", "x")]), "error code: 1020"),
            Some("Cloudflare")
        );
        assert_eq!(block_page(&HeaderMap::new(), ""), None);
        let mut server_only = HeaderMap::new();
        server_only.insert(SERVER, HeaderValue::from_static("cloudflare"));
        server_only.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        assert_eq!(
            block_page(&server_only, "<p>blocked</p>"),
            Some("Cloudflare")
        );
    }

    #[test]
    fn only_challenges_make_a_5xx_a_block() {
        let cf = headers(&[("cf-ray", "1-FRA"), ("content-type", "text/html")]);
        let challenge = "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body><script src=\"/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1\"></script></body></html>";
        assert_eq!(challenge_page(&cf, challenge), Some("Cloudflare"));
        let bad_gateway = "<html><head><title>stockx.com | 502: Bad gateway</title></head><body><div id=\"cf-error-details\">Cloudflare</div></body></html>";
        assert_eq!(challenge_page(&cf, bad_gateway), None);
        assert_eq!(
            challenge_page(&HeaderMap::new(), r#"{"message":"boom"}"#),
            None
        );
    }

    #[test]
    fn block_cool_down_doubles_up_to_half_an_hour() {
        let first = Duration::from_secs(30);
        let waits: Vec<u64> = (1..=8).map(|n| block_backoff(first, n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1800, 1800]);
        assert_eq!(block_backoff(first, u32::MAX), BLOCK_BACKOFF_MAX);
        assert_eq!(
            block_backoff(Duration::from_millis(200), 2),
            Duration::from_millis(400)
        );
    }

    #[test]
    fn error_bodies_read_as_their_message_or_title() {
        assert_eq!(
            body_message(r#"{"statusCode":401,"message":"Unauthorized"}"#),
            "Unauthorized"
        );
        assert_eq!(
            body_message(
                r#"{"error":"invalid_grant","error_description":"Unknown or invalid refresh token."}"#
            ),
            "Unknown or invalid refresh token."
        );
        assert_eq!(
            body_message(CLOUDFLARE_PAGE),
            r#"HTML page "Attention Required! | Cloudflare""#
        );
        assert_eq!(body_message("  "), "(empty body)");
        assert_eq!(
            body_message("upstream connect error"),
            "upstream connect error"
        );
    }

    #[test]
    fn a_block_is_transient_with_its_wait_and_its_own_reason() {
        let e = StockxError::Blocked {
            status: 403,
            vendor: "Cloudflare",
            endpoint: "/catalog/search",
            retry_after: Duration::from_secs(30),
        };
        assert!(e.is_transient() && e.is_blocked() && e.is_account_wide());
        assert!(!e.is_credentials_refused());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(
            e.to_string(),
            "StockX's bot protection blocked the request (403, Cloudflare) on /catalog/search; backing off, next try in 30 s"
        );
        let refused = StockxError::CredentialsRefused("403 on /catalog/search: Forbidden".into());
        assert!(refused.is_account_wide() && !refused.is_transient());
    }
}
