//! The StockX API v2 client: auth, rate limit, daily budget, retries on 429, metrics.
//!
//! One `StockxClient` per process (it is a cheap `Clone`): every task shares its token, its
//! rate limiter and its "not before" instant, so the process as a whole never sends more than
//! `requests_per_second`, and a 429 pauses every task, not only the one that got it.
//!
//! Auth: each request carries `x-api-key` and a bearer token from the OAuth refresh-token grant.
//! The token is cached until a minute before it expires; concurrent callers wait for one
//! refresh. A 401 from the API refreshes once and retries once.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use url::Url;

use super::types::{DetailedOrder, MarketData, Product, SearchResults, TokenResponse, Variant};
use super::variants::normalize_style_id;
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
                | StockxError::Server { .. }
                | StockxError::Transport { .. }
                | StockxError::Internal(_)
        )
    }

    /// How long StockX asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            StockxError::RateLimited { retry_after }
            | StockxError::BudgetExhausted { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    pub fn is_credentials_refused(&self) -> bool {
        matches!(self, StockxError::CredentialsRefused(_))
    }
}

/// Retries of one request after a 429, inside the client.
const MAX_THROTTLE_RETRIES: u32 = 3;

/// 1 s, 2 s, 4 s ... up to 64 s, jittered, when StockX sends no Retry-After.
const THROTTLE_BACKOFF: Backoff = Backoff {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(64),
};

const DAY: Duration = Duration::from_secs(86_400);

#[derive(Clone)]
pub struct StockxClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    limiter: DefaultDirectRateLimiter,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    not_before: Mutex<Option<Instant>>,
    sent_today: Mutex<VecDeque<Instant>>,
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
        let period = Duration::from_secs_f64(1.0 / config.requests_per_second.max(0.001));
        let quota = Quota::with_period(period)
            .ok_or_else(|| StockxError::Internal("rate limit period is zero".into()))?
            .allow_burst(NonZeroU32::MIN);
        Ok(StockxClient {
            inner: Arc::new(Inner {
                http,
                limiter: RateLimiter::direct(quota),
                config,
                token: tokio::sync::Mutex::new(None),
                not_before: Mutex::new(None),
                sent_today: Mutex::new(VecDeque::new()),
            }),
        })
    }

    /// The product whose style ID is `sku` (case, spaces and dashes ignored), or None.
    pub async fn search_product_by_sku(&self, sku: &str) -> Result<Option<Product>, StockxError> {
        let results: Option<SearchResults> = self
            .get(
                "/catalog/search",
                "/v2/catalog/search",
                &[("query", sku), ("pageNumber", "1"), ("pageSize", "20")],
            )
            .await?;
        let wanted = normalize_style_id(sku);
        Ok(results.and_then(|r| {
            r.products.into_iter().find(|p| {
                p.style_id
                    .as_deref()
                    .is_some_and(|s| normalize_style_id(s) == wanted)
            })
        }))
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
            self.wait_turn().await?;
            let token = self.access_token(false).await?;
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
            match status {
                s if s.is_success() => {
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
                StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::UNAUTHORIZED if !refreshed => {
                    refreshed = true;
                    self.access_token(true).await?;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(StockxError::CredentialsRefused(format!(
                        "{} on {route}: {}",
                        status.as_u16(),
                        error_message(response).await
                    )));
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    metrics::counter!(m::API_THROTTLED_TOTAL, "api" => "stockx").increment(1);
                    throttled += 1;
                    let wait =
                        http_retry::retry_after(response.headers(), OffsetDateTime::now_utc())
                            .unwrap_or_else(|| THROTTLE_BACKOFF.delay(throttled - 1));
                    self.pause_until(Instant::now() + wait);
                    tracing::warn!(
                        endpoint = route,
                        wait_s = wait.as_secs_f64(),
                        "StockX answered 429"
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
                    return Err(StockxError::Server {
                        status: s.as_u16(),
                        endpoint: route,
                        message: error_message(response).await,
                    })
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

    /// Waits for the shared rate limiter and any 429 pause; refuses past the daily budget.
    async fn wait_turn(&self) -> Result<(), StockxError> {
        loop {
            let pause = self
                .inner
                .not_before
                .lock()
                .expect("lock")
                .and_then(|t| t.checked_duration_since(Instant::now()));
            match pause {
                Some(wait) => tokio::time::sleep(wait).await,
                None => break,
            }
        }
        self.inner.limiter.until_ready().await;
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

    fn pause_until(&self, until: Instant) {
        let mut not_before = self.inner.not_before.lock().expect("lock");
        if not_before.is_none_or(|t| t < until) {
            *not_before = Some(until);
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
            return Err(StockxError::CredentialsRefused(format!(
                "token endpoint answered {}: {}",
                status.as_u16(),
                error_message(response).await
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

/// StockX's `{"statusCode", "message"}` (or OAuth's `error_description`), else the raw body.
async fn error_message(response: reqwest::Response) -> String {
    let body = response.text().await.unwrap_or_default();
    let parsed: Option<serde_json::Value> = serde_json::from_str(&body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        v.get("message")
            .or_else(|| v.get("error_description"))
            .or_else(|| v.get("error"))
            .and_then(|m| m.as_str())
            .map(str::to_string)
    });
    from_json.unwrap_or_else(|| {
        let text: String = body.chars().take(200).collect();
        if text.trim().is_empty() {
            "(empty body)".into()
        } else {
            text
        }
    })
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
