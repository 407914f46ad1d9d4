//! The connection to Notion: configuration, the errors a person has to act on, and one place
//! where every request is sent. The reading of sales (pagination, the result cap) lives in
//! [`super::query`] and the reading of property values in [`super::properties`]; both go
//! through [`NotionClient`], so every call Notion sees is rate limited, retried and counted the
//! same way.
//!
//! It finds where the sales rows live (a data source under API version 2025-09-03, or a
//! single-source database through the legacy `2022-06-28` query endpoint). It is polite and
//! persistent: a client-side limit of 3 requests/s, shared by every client of the process
//! that uses the same integration token (Notion's limit is per integration, and the HTTP
//! endpoints, a batch sync and a backfill may run at once), `Retry-After` honoured on 429/529
//! with jitter on top (so requests refused together do not return together), exponential
//! backoff on 5xx and timeouts (both from [`crate::http_retry`]). Failures that need
//! a person (401, 403, 404) say which setting to check. Every request is counted in the
//! `api="notion"` metrics with a route-template endpoint label. The token is a [`SecretString`]
//! and never appears in logs or `Debug` output.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{Mutex, OnceCell};

use super::mapping::Mapping;
use super::properties::PropertyValue;
use super::values;
use crate::http_retry::{self, Backoff};
use crate::metrics::{API_REQUESTS_TOTAL, API_REQUEST_DURATION_SECONDS, API_THROTTLED_TOTAL};

/// `NOTION_API_URL`'s default.
pub const DEFAULT_API_URL: &str = "https://api.notion.com";
/// The version pinned on every request (the first with data sources).
pub const NOTION_VERSION: &str = "2025-09-03";
/// The version the legacy `POST /v1/databases/{id}/query` endpoint is used with.
pub const LEGACY_NOTION_VERSION: &str = "2022-06-28";
/// Notion's documented average limit per integration.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 3;

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
    #[error("more than 10,000 pages share the edited and created time {at} and the same title; Notion's result cap leaves the rest unreadable")]
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

/// The Notion client. Cheap to share by reference; one per import run.
pub struct NotionClient {
    http: reqwest::Client,
    config: NotionConfig,
    database_id: String,
    mapping: Mapping,
    limiter: Arc<DefaultDirectRateLimiter>,
    target: OnceCell<QueryTarget>,
    relations: Mutex<RelationCache>,
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

/// The limiter of every client with this API URL, token and rate: one per integration and
/// process, alive while a client uses it.
fn shared_limiter(config: &NotionConfig) -> Arc<DefaultDirectRateLimiter> {
    type Key = (String, [u8; 32], u32);
    static LIMITERS: OnceLock<std::sync::Mutex<HashMap<Key, Weak<DefaultDirectRateLimiter>>>> =
        OnceLock::new();
    use sha2::Digest;
    let token: [u8; 32] = sha2::Sha256::digest(config.token.expose_secret().as_bytes()).into();
    let key = (
        config.api_url.trim_end_matches('/').to_string(),
        token,
        config.requests_per_second.get(),
    );
    let mut limiters = LIMITERS.get_or_init(Default::default).lock().expect("lock");
    if let Some(limiter) = limiters.get(&key).and_then(Weak::upgrade) {
        return limiter;
    }
    limiters.retain(|_, weak| weak.strong_count() > 0);
    let limiter = Arc::new(RateLimiter::direct(Quota::per_second(
        config.requests_per_second,
    )));
    limiters.insert(key, Arc::downgrade(&limiter));
    limiter
}

impl NotionClient {
    pub fn new(config: NotionConfig, mapping: Mapping) -> Result<Self, NotionError> {
        let database_id = parse_database_id(&config.database)?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("stockx-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(NotionError::Client)?;
        let limiter = shared_limiter(&config);
        Ok(Self {
            http,
            config,
            database_id,
            mapping,
            limiter,
            target: OnceCell::new(),
            relations: Mutex::new(RelationCache::default()),
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

    /// The title of a related page (a supplier) in relation property `column`, asked once per
    /// page and then remembered; `None` when the integration may not read it (the related
    /// database is not shared with it), which is remembered too. After
    /// [`UNREADABLE_RELATION_LIMIT`] refusals and no success in a column, its other related
    /// pages are taken as unreadable without asking: one unshared database would otherwise
    /// cost a failed request per page.
    pub(super) async fn relation_title(
        &self,
        column: &str,
        page_id: &str,
    ) -> Result<Option<String>, NotionError> {
        {
            let cache = self.relations.lock().await;
            if let Some(known) = cache.titles.get(page_id) {
                return Ok(known.clone());
            }
            if cache.column_unreadable(column) {
                return Ok(None);
            }
        }
        let path = format!("/v1/pages/{page_id}");
        let answer = self
            .request(Method::GET, "/v1/pages/{id}", &path, NOTION_VERSION, None)
            .await;
        let mut cache = self.relations.lock().await;
        let counts = cache.columns.entry(column.to_string()).or_default();
        let title = match answer {
            Ok(page) => {
                counts.0 += 1;
                Some(page_title(&page))
            }
            Err(NotionError::NotFound { .. } | NotionError::Forbidden { .. }) => {
                counts.1 += 1;
                tracing::warn!(
                    column,
                    related_page = page_id,
                    "the related page cannot be read (share its database with the integration); its ID stands in for its title"
                );
                if cache.column_unreadable(column) {
                    tracing::warn!(
                        column,
                        "the related pages of this column cannot be read; their IDs stand in for their titles without asking Notion again"
                    );
                }
                None
            }
            Err(e) => return Err(e),
        };
        cache.titles.insert(page_id.to_string(), title.clone());
        Ok(title)
    }

    pub(super) async fn request(
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
                // The throttle metric counts 429s; 529 (service_overload) is waited out the same way.
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
                let wait = http_retry::retry_after(response.headers(), OffsetDateTime::now_utc())
                    .unwrap_or(Duration::from_secs(1))
                    .min(self.config.max_retry_after);
                tracing::warn!(
                    endpoint = template,
                    status = status.as_u16(),
                    ?wait,
                    "Notion rate limit reached; waiting"
                );
                throttled += 1;
                tokio::time::sleep(http_retry::spread(wait)).await;
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
        Backoff {
            initial: self.config.initial_backoff,
            max: self.config.max_backoff,
        }
        .delay(attempt)
    }
}

/// Refusals (and no success) after which a relation column is taken as unreadable.
pub const UNREADABLE_RELATION_LIMIT: u32 = 3;

/// What is known of related pages: their titles (`None`: not readable), and per relation
/// column how many related pages were read and refused.
#[derive(Debug, Default)]
struct RelationCache {
    titles: HashMap<String, Option<String>>,
    columns: HashMap<String, (u32, u32)>,
}

impl RelationCache {
    fn column_unreadable(&self, column: &str) -> bool {
        self.columns
            .get(column)
            .is_some_and(|&(read, refused)| read == 0 && refused >= UNREADABLE_RELATION_LIMIT)
    }
}

/// The plain text of a page's title property, `Untitled` as Notion shows an empty one.
fn page_title(page: &Value) -> String {
    page.get("properties")
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
        .unwrap_or_else(|| "Untitled".to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

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
