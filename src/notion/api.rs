//! The Notion API client for the backfill: it finds where the sales rows live (a data source
//! under API version 2025-09-03, or a single-source database through the legacy
//! `2022-06-28` query endpoint), pages through them in `last_edited_time` order, and turns
//! every page into the same generic [`Row`] the export reader produces, mapped to a sale.
//!
//! It is polite and persistent: a client-side limit of 3 requests/s, `Retry-After` honoured on
//! 429/529, exponential backoff on 5xx and timeouts, and the 10,000-results-per-query cap
//! detected and worked around by starting a new query at the last `last_edited_time` seen.
//! Failures that need a person (401, 403, 404) say which setting to check. Every request is
//! counted in the `api="notion"` metrics with a route-template endpoint label. The token is a
//! [`SecretString`] and never appears in logs or `Debug` output.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::OffsetDateTime;
use tokio::sync::{Mutex, OnceCell};

use super::mapping::{map_row, Cell, Mapped, Mapping, RecordError, RecordSource, Row};
use super::values::{self, DateOrder};
use crate::metrics::{API_REQUESTS_TOTAL, API_REQUEST_DURATION_SECONDS, API_THROTTLED_TOTAL};

/// `NOTION_API_URL`'s default.
pub const DEFAULT_API_URL: &str = "https://api.notion.com";
/// The version pinned on every request (data sources; NOTION.md §1).
pub const NOTION_VERSION: &str = "2025-09-03";
/// The version the legacy `POST /v1/databases/{id}/query` endpoint is used with.
pub const LEGACY_NOTION_VERSION: &str = "2022-06-28";
/// Notion's documented average limit per integration.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 3;
/// Notion's maximum page size.
const PAGE_SIZE: u32 = 100;

/// Which query endpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryEndpoint {
    /// Ask Notion: `GET /v1/databases/{id}` lists the data sources; if the ID is not a
    /// database, try it as a data source; a database answer without `data_sources` means a
    /// server without data sources, queried through the legacy endpoint.
    #[default]
    Auto,
    /// The ID is a data source ID: `POST /v1/data_sources/{id}/query`.
    DataSource,
    /// `POST /v1/databases/{id}/query` with `Notion-Version: 2022-06-28` (single-source
    /// databases only).
    LegacyDatabase,
}

/// How to reach Notion. Built by the configuration layer from `NOTION_API_URL`,
/// `NOTION_TOKEN`, `NOTION_DATABASE_ID` and the `[notion]` table.
#[derive(Debug, Clone)]
pub struct NotionConfig {
    pub api_url: String,
    pub token: SecretString,
    /// A database ID, a data source ID or the database's URL (dashes optional).
    pub database: String,
    /// Which data source to read when the database has several.
    pub data_source_name: Option<String>,
    pub endpoint: QueryEndpoint,
    pub requests_per_second: NonZeroU32,
    /// Attempts after the first for 5xx answers and timeouts.
    pub max_retries: u32,
    /// Attempts after the first for 429/529 answers.
    pub max_throttle_retries: u32,
    /// First backoff delay for 5xx/timeouts; doubles each attempt, with jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; longer waits are shortened to this.
    pub max_retry_after: Duration,
    /// Per-request timeout (Notion's own server timeout is 60 s).
    pub timeout: Duration,
}

impl NotionConfig {
    /// Defaults for everything but the token and the database.
    pub fn new(token: SecretString, database: impl Into<String>) -> Self {
        Self {
            api_url: DEFAULT_API_URL.to_string(),
            token,
            database: database.into(),
            data_source_name: None,
            endpoint: QueryEndpoint::Auto,
            requests_per_second: NonZeroU32::new(DEFAULT_REQUESTS_PER_SECOND)
                .unwrap_or(NonZeroU32::MIN),
            max_retries: 4,
            max_throttle_retries: 10,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(120),
            timeout: Duration::from_secs(90),
        }
    }
}

/// What went wrong talking to Notion, phrased for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum NotionError {
    #[error("NOTION_DATABASE_ID {0:?} is neither a Notion ID (32 hex digits, dashes optional) nor a Notion URL ending in one")]
    InvalidDatabaseId(String),
    #[error("Notion refused the token (401 unauthorized): check NOTION_TOKEN ({message})")]
    Unauthorized { message: String },
    #[error(
        "Notion denied access to {endpoint} (403 {code}): share the database with the integration (••• → Connections) \
         and check NOTION_DATABASE_ID ({message})"
    )]
    Forbidden {
        endpoint: String,
        code: String,
        message: String,
    },
    #[error(
        "Notion found nothing the integration may see at {endpoint} (404): check NOTION_DATABASE_ID and that the \
         database is shared with the integration (••• → Connections) ({message})"
    )]
    NotFound { endpoint: String, message: String },
    #[error("Notion rejected the request to {endpoint} (400 {code}): {message}; check that [notion.mapping] names properties the database has")]
    BadRequest {
        endpoint: String,
        code: String,
        message: String,
    },
    #[error("Notion kept answering {status} (rate limited) on {endpoint}; gave up after {attempts} attempts")]
    RateLimited {
        endpoint: String,
        status: u16,
        attempts: u32,
    },
    #[error("Notion failed on {endpoint} with {status} after {attempts} attempts: {message}")]
    Server {
        endpoint: String,
        status: u16,
        attempts: u32,
        message: String,
    },
    #[error("cannot reach Notion at {endpoint} after {attempts} attempts (check NOTION_API_URL): {source}")]
    Transport {
        endpoint: String,
        attempts: u32,
        source: reqwest::Error,
    },
    #[error("unexpected answer {status} from Notion on {endpoint}: {message}")]
    Unexpected {
        endpoint: String,
        status: u16,
        message: String,
    },
    #[error("Notion's answer on {endpoint} cannot be read: {message}")]
    Decode { endpoint: String, message: String },
    #[error("the Notion database has several data sources ({}); set NOTION_DATABASE_ID to the data source ID or configure its name", .names.join(", "))]
    SeveralDataSources { names: Vec<String> },
    #[error("the Notion database has no data source the integration can read")]
    NoDataSource,
    #[error("more than 10,000 pages share the last edited time {at}; the query cannot be split further by time")]
    ResultLimitStuck { at: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
}

/// Where the rows are queried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryTarget {
    /// `POST /v1/data_sources/{id}/query`.
    DataSource { id: String },
    /// `POST /v1/databases/{id}/query` under [`LEGACY_NOTION_VERSION`].
    LegacyDatabase { id: String },
}

/// One page read from Notion and what it maps to.
#[derive(Debug, Clone, PartialEq)]
pub struct NotionRecord {
    pub page_id: String,
    pub last_edited_time: OffsetDateTime,
    pub result: Result<Mapped, RecordError>,
}

/// The Notion client. Cheap to share by reference; one per import run.
pub struct NotionClient {
    http: reqwest::Client,
    config: NotionConfig,
    database_id: String,
    mapping: Mapping,
    limiter: DefaultDirectRateLimiter,
    target: OnceCell<QueryTarget>,
    relation_titles: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for NotionClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotionClient")
            .field("api_url", &self.config.api_url)
            .field("database_id", &self.database_id)
            .field("target", &self.target.get())
            .finish_non_exhaustive()
    }
}

/// Normalises `NOTION_DATABASE_ID`: an ID with or without dashes, or a URL ending in one.
pub fn parse_database_id(input: &str) -> Result<String, NotionError> {
    values::extract_notion_id(input)
        .ok_or_else(|| NotionError::InvalidDatabaseId(input.to_string()))
}

impl NotionClient {
    pub fn new(config: NotionConfig, mapping: Mapping) -> Result<Self, NotionError> {
        let database_id = parse_database_id(&config.database)?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("stockx-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(NotionError::Client)?;
        let limiter = RateLimiter::direct(Quota::per_second(config.requests_per_second));
        Ok(Self {
            http,
            config,
            database_id,
            mapping,
            limiter,
            target: OnceCell::new(),
            relation_titles: Mutex::new(HashMap::new()),
        })
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// Finds (once) the data source or legacy database to query; see [`QueryEndpoint`].
    pub async fn resolve_target(&self) -> Result<QueryTarget, NotionError> {
        self.target
            .get_or_try_init(|| self.detect_target())
            .await
            .cloned()
    }

    async fn detect_target(&self) -> Result<QueryTarget, NotionError> {
        let id = self.database_id.clone();
        match self.config.endpoint {
            QueryEndpoint::DataSource => return Ok(QueryTarget::DataSource { id }),
            QueryEndpoint::LegacyDatabase => return Ok(QueryTarget::LegacyDatabase { id }),
            QueryEndpoint::Auto => {}
        }
        let path = format!("/v1/databases/{id}");
        match self
            .request(
                Method::GET,
                "/v1/databases/{id}",
                &path,
                NOTION_VERSION,
                None,
            )
            .await
        {
            Ok(database) => self.choose_data_source(&database, id),
            Err(NotionError::NotFound { .. } | NotionError::BadRequest { .. }) => {
                // Not a database ID: perhaps the user gave a data source ID.
                let path = format!("/v1/data_sources/{id}");
                self.request(
                    Method::GET,
                    "/v1/data_sources/{id}",
                    &path,
                    NOTION_VERSION,
                    None,
                )
                .await?;
                tracing::info!(data_source_id = %id, "NOTION_DATABASE_ID is a data source ID");
                Ok(QueryTarget::DataSource { id })
            }
            Err(e) => Err(e),
        }
    }

    fn choose_data_source(
        &self,
        database: &Value,
        database_id: String,
    ) -> Result<QueryTarget, NotionError> {
        let Some(sources) = database.get("data_sources").and_then(Value::as_array) else {
            tracing::info!(%database_id, "Notion answered without data sources; using the legacy database query");
            return Ok(QueryTarget::LegacyDatabase { id: database_id });
        };
        let listed: Vec<(String, String)> = sources
            .iter()
            .filter_map(|s| {
                let id = s.get("id")?.as_str()?.to_string();
                let name = s
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                Some((id, name))
            })
            .collect();
        let chosen = match (&listed[..], &self.config.data_source_name) {
            ([], _) => return Err(NotionError::NoDataSource),
            (_, Some(wanted)) => listed
                .iter()
                .find(|(_, name)| name.eq_ignore_ascii_case(wanted)),
            ([only], None) => Some(only),
            (_, None) => None,
        };
        match chosen {
            Some((id, name)) => {
                tracing::info!(data_source_id = %id, data_source = %name, "reading the Notion data source");
                Ok(QueryTarget::DataSource { id: id.clone() })
            }
            None => Err(NotionError::SeveralDataSources {
                names: listed
                    .iter()
                    .map(|(id, name)| format!("{name} ({id})"))
                    .collect(),
            }),
        }
    }

    /// Every sale edited on or after `since` (all when `None`), in ascending
    /// `last_edited_time`, in batches of up to 100. Pages in the trash are left out. For
    /// incremental runs pass the last watermark minus a few minutes: Notion rounds
    /// `last_edited_time` to the minute; the importer upserts, so overlap is harmless.
    pub fn query_sales(&self, since: Option<OffsetDateTime>) -> SalesQuery<'_> {
        SalesQuery::new(self, since)
    }

    /// One page by ID (or URL); `None` when it is in the trash.
    pub async fn retrieve_page(&self, page_id: &str) -> Result<Option<NotionRecord>, NotionError> {
        let id = values::extract_notion_id(page_id).unwrap_or_else(|| page_id.trim().to_string());
        let path = format!("/v1/pages/{id}");
        let page = self
            .request(Method::GET, "/v1/pages/{id}", &path, NOTION_VERSION, None)
            .await?;
        match self.page_to_record(&page).await? {
            PageOutcome::Record(record) => Ok(Some(record)),
            PageOutcome::Trashed | PageOutcome::Partial => Ok(None),
        }
    }

    /// The page whose title (the order-number property) equals `order_number`; the most
    /// recently edited one if several do. `None` when there is none outside the trash.
    pub async fn find_by_order_number(
        &self,
        order_number: &str,
    ) -> Result<Option<NotionRecord>, NotionError> {
        let filter = json!({ "property": self.mapping.order_number, "title": { "equals": order_number.trim() } });
        let response = self
            .query_page(Some(filter), "last_edited_time", None)
            .await?;
        let mut found = None;
        for page in response.results {
            if let PageOutcome::Record(record) = self.page_to_record(&page).await? {
                found = Some(record);
            }
        }
        Ok(found)
    }

    async fn query_page(
        &self,
        filter: Option<Value>,
        sort_by: &str,
        cursor: Option<&str>,
    ) -> Result<QueryResponse, NotionError> {
        let target = self.resolve_target().await?;
        let (template, path, version) = match &target {
            QueryTarget::DataSource { id } => (
                "/v1/data_sources/{id}/query",
                format!("/v1/data_sources/{id}/query"),
                NOTION_VERSION,
            ),
            QueryTarget::LegacyDatabase { id } => (
                "/v1/databases/{id}/query",
                format!("/v1/databases/{id}/query"),
                LEGACY_NOTION_VERSION,
            ),
        };
        let mut body = json!({
            "page_size": PAGE_SIZE,
            "sorts": [{ "timestamp": sort_by, "direction": "ascending" }],
        });
        if let Some(filter) = filter {
            body["filter"] = filter;
        }
        if let Some(cursor) = cursor {
            body["start_cursor"] = json!(cursor);
        }
        let answer = self
            .request(Method::POST, template, &path, version, Some(&body))
            .await?;
        QueryResponse::from_json(answer, template)
    }

    async fn page_to_record(&self, page: &Value) -> Result<PageOutcome, NotionError> {
        let flag = |key: &str| page.get(key).and_then(Value::as_bool).unwrap_or(false);
        if flag("in_trash") || flag("archived") {
            return Ok(PageOutcome::Trashed);
        }
        let (Some(page_id), Some(properties), Some(edited)) = (
            page.get("id").and_then(Value::as_str),
            page.get("properties").and_then(Value::as_object),
            page.get("last_edited_time").and_then(Value::as_str),
        ) else {
            let id = page.get("id").and_then(Value::as_str).unwrap_or("?");
            tracing::warn!(
                page = id,
                "a Notion page came back without properties (limited access); skipped"
            );
            return Ok(PageOutcome::Partial);
        };
        let last_edited_time =
            OffsetDateTime::parse(edited, &Rfc3339).map_err(|e| NotionError::Decode {
                endpoint: "page".into(),
                message: format!("last_edited_time {edited:?}: {e}"),
            })?;
        let origin = RecordSource::NotionPage {
            page_id: page_id.to_string(),
            last_edited_time,
        };
        let result = match self.page_row(properties, &origin).await? {
            Ok(row) => map_row(&self.mapping, &origin, &row),
            Err(e) => Err(e),
        };
        Ok(PageOutcome::Record(NotionRecord {
            page_id: page_id.to_string(),
            last_edited_time,
            result,
        }))
    }

    /// The page's properties as a generic row, relation IDs of mapped columns replaced by
    /// the related pages' titles (the supplier is a relation in the sales database).
    async fn page_row(
        &self,
        properties: &serde_json::Map<String, Value>,
        origin: &RecordSource,
    ) -> Result<Result<Row, RecordError>, NotionError> {
        let mapped: HashSet<&str> = self.mapping.columns().into_iter().collect();
        let mut row = Row::new();
        for (name, raw) in properties {
            let property = PropertyValue::from_json(raw);
            let cell = match &property {
                PropertyValue::Relation { ids, has_more } if mapped.contains(name.as_str()) => {
                    if *has_more {
                        tracing::warn!(property = %name, "Notion truncated a relation at 25 entries; only those are read");
                    }
                    let mut titles = Vec::with_capacity(ids.len());
                    for id in ids {
                        match self.relation_title(id).await {
                            Ok(title) => titles.push(title),
                            Err(NotionError::NotFound { .. } | NotionError::Forbidden { .. }) => {
                                return Ok(Err(RecordError {
                                    origin: origin.clone(),
                                    column: Some(name.clone()),
                                    raw: Some(id.clone()),
                                    message: "the related page cannot be read: share the related database with the integration too".into(),
                                }));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    Cell::Names(titles)
                }
                _ => property.to_cell(),
            };
            row.insert(name.clone(), cell);
        }
        Ok(Ok(row))
    }

    async fn relation_title(&self, page_id: &str) -> Result<String, NotionError> {
        if let Some(title) = self.relation_titles.lock().await.get(page_id) {
            return Ok(title.clone());
        }
        let path = format!("/v1/pages/{page_id}");
        let page = self
            .request(Method::GET, "/v1/pages/{id}", &path, NOTION_VERSION, None)
            .await?;
        let title = page
            .get("properties")
            .and_then(Value::as_object)
            .and_then(|props| {
                props
                    .values()
                    .find(|p| p.get("type").and_then(Value::as_str) == Some("title"))
            })
            .map(|p| match PropertyValue::from_json(p) {
                PropertyValue::Title(text) => text,
                _ => String::new(),
            })
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "Untitled".to_string());
        self.relation_titles
            .lock()
            .await
            .insert(page_id.to_string(), title.clone());
        Ok(title)
    }

    /// One API call with rate limiting, retries and metrics; the JSON answer on success.
    async fn request(
        &self,
        method: Method,
        template: &'static str,
        path: &str,
        version: &str,
        body: Option<&Value>,
    ) -> Result<Value, NotionError> {
        let url = format!("{}{path}", self.config.api_url.trim_end_matches('/'));
        let mut attempt: u32 = 0;
        let mut throttled: u32 = 0;
        loop {
            self.limiter.until_ready().await;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.config.token.expose_secret())
                .header("Notion-Version", version);
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            let sent = request.send().await;
            metrics::histogram!(API_REQUEST_DURATION_SECONDS, "api" => "notion", "endpoint" => template).record(started.elapsed().as_secs_f64());
            let response = match sent {
                Ok(response) => response,
                Err(source) => {
                    metrics::counter!(API_REQUESTS_TOTAL, "api" => "notion", "endpoint" => template, "status" => "error").increment(1);
                    if attempt < self.config.max_retries
                        && (source.is_timeout() || source.is_connect() || source.is_request())
                    {
                        let delay = self.backoff(attempt);
                        tracing::warn!(endpoint = template, error = %source, ?delay, "Notion request failed; retrying");
                        attempt += 1;
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(NotionError::Transport {
                        endpoint: template.into(),
                        attempts: attempt + 1,
                        source,
                    });
                }
            };
            let status = response.status();
            metrics::counter!(API_REQUESTS_TOTAL, "api" => "notion", "endpoint" => template, "status" => status.as_u16().to_string()).increment(1);
            if status.is_success() {
                return response
                    .json::<Value>()
                    .await
                    .map_err(|e| NotionError::Decode {
                        endpoint: template.into(),
                        message: e.to_string(),
                    });
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.as_u16() == 529 {
                // The contract counts 429s; 529 (service_overload) is waited out the same way.
                if status == StatusCode::TOO_MANY_REQUESTS {
                    metrics::counter!(API_THROTTLED_TOTAL, "api" => "notion").increment(1);
                }
                if throttled >= self.config.max_throttle_retries {
                    return Err(NotionError::RateLimited {
                        endpoint: template.into(),
                        status: status.as_u16(),
                        attempts: throttled + 1,
                    });
                }
                let wait = retry_after(response.headers(), OffsetDateTime::now_utc())
                    .unwrap_or(Duration::from_secs(1))
                    .min(self.config.max_retry_after);
                tracing::warn!(
                    endpoint = template,
                    status = status.as_u16(),
                    ?wait,
                    "Notion rate limit reached; waiting"
                );
                throttled += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            let error = ErrorBody::read(response).await;
            if status.is_server_error() {
                if attempt < self.config.max_retries {
                    let delay = self.backoff(attempt);
                    tracing::warn!(endpoint = template, status = status.as_u16(), code = %error.code, ?delay, "Notion server error; retrying");
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    continue;
                }
                return Err(NotionError::Server {
                    endpoint: template.into(),
                    status: status.as_u16(),
                    attempts: attempt + 1,
                    message: error.describe(),
                });
            }
            return Err(match status {
                StatusCode::UNAUTHORIZED => NotionError::Unauthorized {
                    message: error.describe(),
                },
                StatusCode::FORBIDDEN => NotionError::Forbidden {
                    endpoint: template.into(),
                    code: error.code.clone(),
                    message: error.describe(),
                },
                StatusCode::NOT_FOUND => NotionError::NotFound {
                    endpoint: template.into(),
                    message: error.describe(),
                },
                StatusCode::BAD_REQUEST => NotionError::BadRequest {
                    endpoint: template.into(),
                    code: error.code.clone(),
                    message: error.message.clone(),
                },
                _ => NotionError::Unexpected {
                    endpoint: template.into(),
                    status: status.as_u16(),
                    message: error.describe(),
                },
            });
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .config
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.config.max_backoff);
        let jitter = rand::rng().random_range(0.0..0.25);
        base.mul_f64(1.0 + jitter)
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// Notion's error body, or what could be read of a non-JSON answer (edge 502s).
struct ErrorBody {
    code: String,
    message: String,
    request_id: Option<String>,
}

impl ErrorBody {
    async fn read(response: reqwest::Response) -> Self {
        let header_id = response
            .headers()
            .get("x-notion-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let field = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_string);
        let mut snippet: String = text.chars().take(200).collect();
        if snippet.is_empty() {
            snippet = "no body".into();
        }
        Self {
            code: field("code").unwrap_or_default(),
            message: field("message").unwrap_or(snippet),
            request_id: field("request_id").or(header_id),
        }
    }

    fn describe(&self) -> String {
        let mut text = if self.code.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.code, self.message)
        };
        if let Some(id) = &self.request_id {
            text.push_str(&format!("; request id {id}"));
        }
        text
    }
}

enum PageOutcome {
    Record(NotionRecord),
    Trashed,
    Partial,
}

/// The parts of a query answer the reader needs.
struct QueryResponse {
    results: Vec<Value>,
    next_cursor: Option<String>,
    has_more: bool,
    /// `request_status.incomplete_reason == "query_result_limit_reached"`.
    capped: bool,
}

impl QueryResponse {
    fn from_json(mut answer: Value, template: &str) -> Result<Self, NotionError> {
        let Some(results) = answer
            .get_mut("results")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
        else {
            return Err(NotionError::Decode {
                endpoint: template.into(),
                message: "no results array".into(),
            });
        };
        let status = answer.get("request_status");
        let capped = status.and_then(|s| s.get("type")).and_then(Value::as_str)
            == Some("incomplete")
            && status
                .and_then(|s| s.get("incomplete_reason"))
                .and_then(Value::as_str)
                == Some("query_result_limit_reached");
        Ok(Self {
            results,
            next_cursor: answer
                .get("next_cursor")
                .and_then(Value::as_str)
                .map(str::to_string),
            has_more: answer
                .get("has_more")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            capped,
        })
    }
}

/// Counts of what a query run saw besides the records it returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Requests made to the query endpoint.
    pub requests: u32,
    /// Queries started (1 + the number of times the 10,000-result cap was met).
    pub windows: u32,
    pub trashed_skipped: u32,
    /// Pages returned without properties (limited access).
    pub partial_skipped: u32,
    /// Pages seen twice at a window boundary.
    pub duplicates_skipped: u32,
}

/// A running read of the sales, batch by batch: `while let Some(batch) = q.next_batch().await?`.
///
/// The read is a sequence of queries ("windows"). The first filters on `last_edited_time` ≥
/// `since`; when Notion's 10,000-result cap ends one, the next starts at the last edited time
/// seen. Should more than 10,000 pages share one edited minute (a bulk edit), that minute is
/// read on its own, by `created_time` windows, before going on after it.
pub struct SalesQuery<'a> {
    client: &'a NotionClient,
    since: Option<OffsetDateTime>,
    window: Window,
    cursor: Option<String>,
    capped: bool,
    done: bool,
    min_edited_in_window: Option<OffsetDateTime>,
    max_edited_in_window: Option<OffsetDateTime>,
    max_created_in_window: Option<OffsetDateTime>,
    seen: HashSet<String>,
    stats: QueryStats,
}

/// The part of the data source one query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// `last_edited_time` on or after.
    edited_from: Option<OffsetDateTime>,
    /// Set while reading one crowded edited minute by creation time.
    minute: Option<MinuteWindow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MinuteWindow {
    /// `last_edited_time` before (the minute's end).
    edited_before: OffsetDateTime,
    /// `created_time` on or after.
    created_from: Option<OffsetDateTime>,
}

fn rfc3339(t: OffsetDateTime) -> Result<String, NotionError> {
    t.format(&Rfc3339).map_err(|e| NotionError::Decode {
        endpoint: "filter".into(),
        message: e.to_string(),
    })
}

impl Window {
    /// The filter and sort key of this window's query.
    fn filter(&self) -> Result<(Option<Value>, &'static str), NotionError> {
        let edited_from = match self.edited_from {
            Some(t) => Some(
                json!({ "timestamp": "last_edited_time", "last_edited_time": { "on_or_after": rfc3339(t)? } }),
            ),
            None => None,
        };
        let Some(minute) = self.minute else {
            return Ok((edited_from, "last_edited_time"));
        };
        let mut conditions: Vec<Value> = edited_from.into_iter().collect();
        conditions.push(json!({ "timestamp": "last_edited_time", "last_edited_time": { "before": rfc3339(minute.edited_before)? } }));
        if let Some(created) = minute.created_from {
            conditions.push(json!({ "timestamp": "created_time", "created_time": { "on_or_after": rfc3339(created)? } }));
        }
        Ok((Some(json!({ "and": conditions })), "created_time"))
    }
}

fn timestamp(page: &Value, key: &str) -> Option<OffsetDateTime> {
    page.get(key)
        .and_then(Value::as_str)
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

impl SalesQuery<'_> {
    fn new(client: &NotionClient, since: Option<OffsetDateTime>) -> SalesQuery<'_> {
        SalesQuery {
            client,
            since,
            window: Window {
                edited_from: since,
                minute: None,
            },
            cursor: None,
            capped: false,
            done: false,
            min_edited_in_window: None,
            max_edited_in_window: None,
            max_created_in_window: None,
            seen: HashSet::new(),
            stats: QueryStats::default(),
        }
    }

    pub fn stats(&self) -> QueryStats {
        self.stats
    }

    /// The `since` the query was started with.
    pub fn since(&self) -> Option<OffsetDateTime> {
        self.since
    }

    /// The next batch of records (possibly empty when a whole page was in the trash), or
    /// `None` when every page has been read.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<NotionRecord>>, NotionError> {
        if self.done {
            return Ok(None);
        }
        if self.cursor.is_none() {
            self.stats.windows += 1;
        }
        let (filter, sort_by) = self.window.filter()?;
        let response = self
            .client
            .query_page(filter, sort_by, self.cursor.as_deref())
            .await?;
        self.stats.requests += 1;
        self.capped |= response.capped;

        let mut batch = Vec::with_capacity(response.results.len());
        for page in &response.results {
            // Trashed pages move the window forward too.
            let edited = timestamp(page, "last_edited_time");
            if self.min_edited_in_window.is_none() || edited < self.min_edited_in_window {
                self.min_edited_in_window = edited;
            }
            self.max_edited_in_window = self.max_edited_in_window.max(edited);
            self.max_created_in_window = self
                .max_created_in_window
                .max(timestamp(page, "created_time"));
            match self.client.page_to_record(page).await? {
                PageOutcome::Trashed => self.stats.trashed_skipped += 1,
                PageOutcome::Partial => self.stats.partial_skipped += 1,
                PageOutcome::Record(record) => {
                    if self.seen.insert(record.page_id.clone()) {
                        batch.push(record);
                    } else {
                        self.stats.duplicates_skipped += 1;
                    }
                }
            }
        }

        if response.has_more {
            self.cursor = response.next_cursor;
            if self.cursor.is_none() {
                return Err(NotionError::Decode {
                    endpoint: "query".into(),
                    message: "has_more is true but next_cursor is missing".into(),
                });
            }
            return Ok(Some(batch));
        }
        let next = if self.capped {
            self.window_after_cap()?
        } else {
            self.window_after_end()
        };
        match next {
            Some(window) => {
                self.window = window;
                self.cursor = None;
                self.capped = false;
                self.min_edited_in_window = None;
                self.max_edited_in_window = None;
                self.max_created_in_window = None;
            }
            None => self.done = true,
        }
        Ok(Some(batch))
    }

    /// The cap ended pagination silently: continue from the last time seen (pages at that
    /// time come again and are dropped as already seen).
    fn window_after_cap(&self) -> Result<Option<Window>, NotionError> {
        let stuck = |at: Option<OffsetDateTime>| NotionError::ResultLimitStuck {
            at: at.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default(),
        };
        match self.window.minute {
            None => {
                let Some(edited) = self.max_edited_in_window else {
                    return Err(stuck(None));
                };
                // A window that spans more than one minute can move on; one whose pages all
                // share a minute would only return the same pages again.
                let spans_minutes = self.min_edited_in_window < Some(edited);
                if Some(edited) > self.window.edited_from && spans_minutes {
                    tracing::info!(from = %edited, "Notion's 10,000-result cap reached; continuing in a new query");
                    return Ok(Some(Window {
                        edited_from: Some(edited),
                        minute: None,
                    }));
                }
                // 10,000 pages edited in one minute: read that minute by creation time.
                tracing::info!(minute = %edited, "Notion's result cap reached within one edited minute; reading it by created time");
                Ok(Some(Window {
                    edited_from: Some(edited),
                    minute: Some(MinuteWindow {
                        edited_before: edited + time::Duration::minutes(1),
                        created_from: None,
                    }),
                }))
            }
            Some(minute) => match self.max_created_in_window {
                Some(created) if Some(created) > minute.created_from => Ok(Some(Window {
                    minute: Some(MinuteWindow {
                        created_from: Some(created),
                        ..minute
                    }),
                    ..self.window
                })),
                other => Err(stuck(other)),
            },
        }
    }

    /// A window ended normally: done, or back to the main read after a crowded minute.
    fn window_after_end(&self) -> Option<Window> {
        self.window.minute.map(|minute| Window {
            edited_from: Some(minute.edited_before),
            minute: None,
        })
    }

    /// Reads everything (for small databases and tests).
    pub async fn collect_all(mut self) -> Result<(Vec<NotionRecord>, QueryStats), NotionError> {
        let mut all = Vec::new();
        while let Some(batch) = self.next_batch().await? {
            all.extend(batch);
        }
        Ok((all, self.stats))
    }
}

/// A property value as the API sends it, typed for the types a sales table uses; anything
/// else is kept as raw JSON. Built leniently: a shape that does not match becomes `Unknown`.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    Title(String),
    RichText(String),
    Number(Option<Decimal>),
    Select(Option<String>),
    Status(Option<String>),
    MultiSelect(Vec<String>),
    /// The start of the date (ranges give their start), as written in its offset.
    Date(Option<time::Date>),
    Formula(Box<PropertyValue>),
    Rollup(Box<PropertyValue>),
    /// Related page IDs; `has_more` when Notion truncated the list at 25.
    Relation {
        ids: Vec<String>,
        has_more: bool,
    },
    Checkbox(bool),
    /// url, email, phone_number, unique_id (`PREFIX-123`), created/last edited time.
    Text(Option<String>),
    /// A rollup array or people list, each item as text.
    List(Vec<String>),
    Unknown(Value),
}

impl PropertyValue {
    pub fn from_json(raw: &Value) -> Self {
        let kind = raw.get("type").and_then(Value::as_str).unwrap_or_default();
        match Self::typed(kind, raw.get(kind).unwrap_or(&Value::Null)) {
            Some(Self::Relation { ids, .. }) => Self::Relation {
                ids,
                has_more: raw
                    .get("has_more")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            },
            Some(typed) => typed,
            None => Self::Unknown(raw.clone()),
        }
    }

    fn typed(kind: &str, value: &Value) -> Option<Self> {
        let name_of = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_string);
        Some(match kind {
            "title" => Self::Title(plain_text(value)?),
            "rich_text" => Self::RichText(plain_text(value)?),
            "number" => Self::Number(json_decimal(value)?),
            "select" => Self::Select(if value.is_null() {
                None
            } else {
                Some(name_of(value)?)
            }),
            "status" => Self::Status(if value.is_null() {
                None
            } else {
                Some(name_of(value)?)
            }),
            "multi_select" => {
                Self::MultiSelect(value.as_array()?.iter().filter_map(name_of).collect())
            }
            "date" => Self::Date(json_date(value)?),
            "checkbox" => Self::Checkbox(value.as_bool()?),
            "relation" => Self::Relation {
                ids: value
                    .as_array()?
                    .iter()
                    .filter_map(|r| r.get("id")?.as_str().map(str::to_string))
                    .collect(),
                // Set by `from_json`: the flag sits beside the list, not inside it.
                has_more: false,
            },
            "formula" | "rollup" => {
                let inner_kind = value.get("type").and_then(Value::as_str)?;
                let inner = value.get(inner_kind).unwrap_or(&Value::Null);
                let typed = match inner_kind {
                    "string" => Self::Text(inner.as_str().map(str::to_string)),
                    "boolean" => Self::Checkbox(inner.as_bool().unwrap_or(false)),
                    "array" => Self::List(
                        inner
                            .as_array()?
                            .iter()
                            .filter_map(|item| Self::from_json(item).display())
                            .collect(),
                    ),
                    other => Self::typed(other, inner)?,
                };
                if kind == "formula" {
                    Self::Formula(Box::new(typed))
                } else {
                    Self::Rollup(Box::new(typed))
                }
            }
            "url" | "email" | "phone_number" | "created_time" | "last_edited_time" => {
                Self::Text(value.as_str().map(str::to_string))
            }
            "unique_id" => {
                let number = value.get("number")?.as_i64()?;
                Self::Text(Some(match value.get("prefix").and_then(Value::as_str) {
                    Some(prefix) => format!("{prefix}-{number}"),
                    None => number.to_string(),
                }))
            }
            "people" => Self::List(value.as_array()?.iter().filter_map(name_of).collect()),
            _ => return None,
        })
    }

    /// The value as display text, for list items.
    fn display(&self) -> Option<String> {
        match self.to_cell() {
            Cell::Text(t) => Some(t),
            Cell::Number(n) => Some(n.normalize().to_string()),
            Cell::Date(d) => Some(d.to_string()),
            Cell::Names(n) if !n.is_empty() => Some(n.join(", ")),
            Cell::Checkbox(b) => Some(if b { "Yes" } else { "No" }.into()),
            _ => None,
        }
    }

    /// The generic cell the mapping reads. Relations become their IDs here; the client
    /// replaces mapped relations by titles.
    pub fn to_cell(&self) -> Cell {
        let text = |t: &Option<String>| {
            t.as_ref()
                .filter(|t| !t.trim().is_empty())
                .map_or(Cell::Empty, |t| Cell::Text(t.clone()))
        };
        match self {
            Self::Title(t) | Self::RichText(t) => text(&Some(t.clone())),
            Self::Text(t) => text(t),
            Self::Number(n) => n.map_or(Cell::Empty, Cell::Number),
            Self::Select(s) | Self::Status(s) => s
                .as_ref()
                .map_or(Cell::Empty, |s| Cell::Names(vec![s.clone()])),
            Self::MultiSelect(names) | Self::List(names) => Cell::Names(names.clone()),
            Self::Date(d) => d.map_or(Cell::Empty, Cell::Date),
            Self::Formula(inner) | Self::Rollup(inner) => inner.to_cell(),
            Self::Relation { ids, .. } => Cell::Names(ids.clone()),
            Self::Checkbox(b) => Cell::Checkbox(*b),
            Self::Unknown(raw) => Cell::Raw(raw.clone()),
        }
    }
}

fn plain_text(value: &Value) -> Option<String> {
    Some(
        value
            .as_array()?
            .iter()
            .filter_map(|item| item.get("plain_text").and_then(Value::as_str))
            .collect(),
    )
}

/// A JSON number as a decimal, without going through `f64` (serde_json keeps the literal).
fn json_decimal(value: &Value) -> Option<Option<Decimal>> {
    match value {
        Value::Null => Some(None),
        Value::Number(n) => {
            let text = n.to_string();
            Decimal::from_str(&text)
                .or_else(|_| Decimal::from_scientific(&text))
                .ok()
                .map(Some)
        }
        _ => None,
    }
}

fn json_date(value: &Value) -> Option<Option<time::Date>> {
    if value.is_null() {
        return Some(None);
    }
    let start = value.get("start")?.as_str()?;
    values::parse_date(start, DateOrder::MonthFirst).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn property_values_are_typed_leniently() {
        let p = |v: Value| PropertyValue::from_json(&v);
        assert_eq!(
            p(json!({"type": "title", "title": [{"plain_text": "7512"}, {"plain_text": "-3456"}]})),
            PropertyValue::Title("7512-3456".into())
        );
        assert_eq!(
            p(json!({"type": "number", "number": 1234.56})),
            PropertyValue::Number(Some("1234.56".parse().unwrap()))
        );
        assert_eq!(
            p(json!({"type": "number", "number": null})),
            PropertyValue::Number(None)
        );
        assert_eq!(
            p(
                json!({"type": "date", "date": {"start": "2025-11-05T23:30:00.000+01:00", "end": null}})
            ),
            PropertyValue::Date(Some(date!(2025 - 11 - 05)))
        );
        assert_eq!(
            p(json!({"type": "formula", "formula": {"type": "number", "number": 0.25}})).to_cell(),
            Cell::Number("0.25".parse().unwrap())
        );
        assert_eq!(
            p(json!({"type": "rollup", "rollup": {"type": "array", "function": "show_original", "array": [{"type": "rich_text", "rich_text": [{"plain_text": "Nike"}]}]}})).to_cell(),
            Cell::Names(vec!["Nike".into()])
        );
        assert_eq!(
            p(json!({"type": "select", "select": {"name": "StockX"}})).to_cell(),
            Cell::Names(vec!["StockX".into()])
        );
        assert_eq!(
            p(json!({"type": "unique_id", "unique_id": {"prefix": "SALE", "number": 7}})).to_cell(),
            Cell::Text("SALE-7".into())
        );
        assert_eq!(
            p(json!({"type": "relation", "relation": [{"id": "r1"}], "has_more": true})),
            PropertyValue::Relation {
                ids: vec!["r1".into()],
                has_more: true
            }
        );
        let odd = json!({"type": "verification", "verification": {"state": "verified"}});
        assert_eq!(p(odd.clone()), PropertyValue::Unknown(odd));
        let wrong_shape = json!({"type": "number", "number": "12"});
        assert_eq!(p(wrong_shape.clone()), PropertyValue::Unknown(wrong_shape));
    }

    #[test]
    fn retry_after_in_seconds_or_date() {
        let mut headers = reqwest::header::HeaderMap::new();
        let now = datetime!(2025-11-05 12:00:00 UTC);
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(2)));
        headers.insert(
            "retry-after",
            "Wed, 05 Nov 2025 12:00:30 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn database_ids_from_urls() {
        assert_eq!(
            parse_database_id("https://www.notion.so/acme/a1b2c3d4e5f60718293a4b5c6d7e8f90?v=0")
                .unwrap(),
            "a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90"
        );
        let e = parse_database_id("sales").unwrap_err();
        assert!(e.to_string().contains("NOTION_DATABASE_ID"));
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let config = NotionConfig::new(
            SecretString::from("ntn_very_secret"),
            "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        );
        assert!(!format!("{config:?}").contains("ntn_very_secret"));
        let client = NotionClient::new(config, Mapping::default()).unwrap();
        assert!(!format!("{client:?}").contains("ntn_very_secret"));
    }
}
