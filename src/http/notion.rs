//! The endpoints n8n calls while sales are still kept in Notion, on the worker's listener:
//!
//! - `POST /api/v1/integration/notion-sale/sync` `{"stockx_order_number", "notion_page_id"?,
//!   "trigger"?}`: reads that sale from Notion (by page ID, else by its title), imports it like
//!   the backfill does, and answers with its sync-log entry. Idempotent. A page ID whose page
//!   is another order is refused (422), not imported.
//! - `POST /api/v1/integration/notion-sale/batch-sync?hours=24`: imports what changed in the
//!   last N hours in the background; answers 202 with the run ID at once, 409 while a batch runs.
//!   The batch stops with the worker; a panic in it never leaves it "running".
//!
//! Both require `Authorization: Bearer STOCKX_SYNC_API_TOKEN` (scheme in any case; the tokens
//! are compared as SHA-256 digests in constant time, so neither their content nor their
//! length leaks through timing): 401 without it or with another, 503 while no token is
//! configured (unset or blank). Bodies are limited to [`BODY_LIMIT`] bytes, refused from their
//! `Content-Length` before anything is read. Field errors answer 400/422 naming the field;
//! database errors answer 500 without the database's text (it goes to the log).
//!
//! Every request shares one Notion client, and so one rate limiter and one cache of related
//! pages, for the life of the process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Settings;
use crate::notion::backfill::{self, BackfillError, ProgressLog, Since};
use crate::notion::client::NotionClient;
use crate::notion::import::{import_records, ImportOptions, Trigger};
use crate::notion::mapping::{Mapped, RecordSource};

/// The largest request body accepted (the sync body is a few hundred bytes).
pub const BODY_LIMIT: usize = 8 * 1024;
/// Longest order number accepted: the sync log's column holds 100 characters.
const ORDER_NUMBER_MAX: usize = 100;

/// What the endpoints need.
pub struct NotionBridge {
    pub pool: PgPool,
    pub settings: Settings,
    pub api_token: Option<SecretString>,
    token_digest: Option<[u8; 32]>,
    read_timeout: Duration,
    client: tokio::sync::OnceCell<Arc<NotionClient>>,
    batch_running: Arc<AtomicBool>,
    batch_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    stop: CancellationToken,
}

impl NotionBridge {
    pub fn new(pool: PgPool, settings: Settings) -> Arc<NotionBridge> {
        let api_token = settings.http.configured_api_token().cloned();
        Arc::new(NotionBridge {
            pool,
            token_digest: api_token.as_ref().map(|t| digest(t.expose_secret())),
            api_token,
            read_timeout: settings.http.read_timeout(),
            settings,
            client: tokio::sync::OnceCell::new(),
            batch_running: Arc::new(AtomicBool::new(false)),
            batch_task: Mutex::new(None),
            stop: CancellationToken::new(),
        })
    }

    /// Whether a batch sync is running.
    pub fn batch_running(&self) -> bool {
        self.batch_running.load(Ordering::SeqCst)
    }

    /// Stops a running batch sync (what it imported stays; the next run reads the rest) and
    /// waits up to `grace` for it to end. Later batch requests answer 503.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.cancel();
        let task = self.batch_task.lock().expect("lock").take();
        if let Some(mut task) = task {
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                tracing::warn!("batch sync did not stop in time; aborting it");
                task.abort();
            }
        }
    }

    /// The process's one Notion client (built on first use).
    async fn client(&self) -> Result<Arc<NotionClient>, BackfillError> {
        self.client
            .get_or_try_init(|| async { backfill::notion_client(&self.settings).map(Arc::new) })
            .await
            .cloned()
    }
}

pub fn routes(bridge: Arc<NotionBridge>) -> Router {
    Router::new()
        .route("/api/v1/integration/notion-sale/sync", post(sync_one))
        .route(
            "/api/v1/integration/notion-sale/batch-sync",
            post(batch_sync),
        )
        .with_state(bridge)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// The token of an `Authorization: Bearer <token>` header; the scheme in any case.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// The answer that refuses the request, or None when it may go on. Checks the declared body
/// size first: nothing of a request that is refused is read.
fn refuse(bridge: &NotionBridge, headers: &HeaderMap) -> Option<Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Some(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {BODY_LIMIT} bytes"),
        ));
    }
    let Some(expected) = &bridge.token_digest else {
        return Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "STOCKX_SYNC_API_TOKEN is not configured (unset or empty); the POST endpoints are disabled",
        ));
    };
    let given = digest(bearer_token(headers).unwrap_or_default());
    let ok: bool = given.ct_eq(expected).into();
    (!ok).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer STOCKX_SYNC_API_TOKEN)",
        )
    })
}

/// The body, at most [`BODY_LIMIT`] bytes, read within the read timeout.
async fn read_body(request: Request, timeout: Duration) -> Result<Bytes, Response> {
    match tokio::time::timeout(
        timeout,
        axum::body::to_bytes(request.into_body(), BODY_LIMIT),
    )
    .await
    {
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        )),
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.into_inner().is::<http_body_util::LengthLimitError>();
            Err(if too_large {
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body larger than {BODY_LIMIT} bytes"),
                )
            } else {
                error(StatusCode::BAD_REQUEST, "cannot read the request body")
            })
        }
    }
}

struct SyncRequest {
    order_number: String,
    page_id: Option<String>,
    trigger: Trigger,
}

/// A refused body: 400 when it is not the expected shape, 422 when a field's value is wrong.
struct BodyError(StatusCode, String);

impl BodyError {
    fn shape(message: impl Into<String>) -> BodyError {
        BodyError(StatusCode::BAD_REQUEST, message.into())
    }

    fn value(message: impl Into<String>) -> BodyError {
        BodyError(StatusCode::UNPROCESSABLE_ENTITY, message.into())
    }
}

fn parse_body(body: &[u8]) -> Result<SyncRequest, BodyError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BodyError::shape(format!("body is not JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| BodyError::shape("body must be a JSON object"))?;
    let order_number = match object.get("stockx_order_number") {
        Some(Value::String(s)) if !s.trim().is_empty() => check_order_number(s.trim())?,
        Some(_) => {
            return Err(BodyError::shape(
                "stockx_order_number must be a non-empty string",
            ))
        }
        None => return Err(BodyError::shape("stockx_order_number is required")),
    };
    let page_id = match object.get("notion_page_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(notion_page_id(s).ok_or_else(|| {
            BodyError::value(
                "notion_page_id must be a Notion page ID: 32 hexadecimal digits, with or without dashes",
            )
        })?),
        Some(_) => return Err(BodyError::shape("notion_page_id must be a string")),
    };
    let trigger = match object.get("trigger") {
        None | Some(Value::Null) => Trigger::Webhook,
        Some(Value::String(s)) => match s.as_str() {
            "webhook" => Trigger::Webhook,
            "scheduled" => Trigger::Scheduled,
            "manual" => Trigger::Manual,
            _ => {
                return Err(BodyError::shape(
                    "trigger must be one of webhook, scheduled, manual",
                ))
            }
        },
        Some(_) => return Err(BodyError::shape("trigger must be a string")),
    };
    Ok(SyncRequest {
        order_number,
        page_id,
        trigger,
    })
}

fn check_order_number(number: &str) -> Result<String, BodyError> {
    if number.chars().any(char::is_control) {
        return Err(BodyError::value(
            "stockx_order_number contains a control character (such as NUL)",
        ));
    }
    let length = number.chars().count();
    if length > ORDER_NUMBER_MAX {
        return Err(BodyError::value(format!(
            "stockx_order_number is {length} characters long; at most {ORDER_NUMBER_MAX}"
        )));
    }
    Ok(number.to_string())
}

/// A Notion page ID in its dashed form: 32 hex digits, bare or dashed 8-4-4-4-12. Nothing
/// else: the ID becomes part of a Notion API path.
fn notion_page_id(text: &str) -> Option<String> {
    let text = text.trim();
    let dashed_ok = match text.len() {
        32 => true,
        36 => text
            .char_indices()
            .all(|(i, c)| (c == '-') == matches!(i, 8 | 13 | 18 | 23)),
        _ => false,
    };
    let hex = text.chars().filter(|c| *c != '-');
    if !dashed_ok || hex.clone().count() != 32 || !hex.clone().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    // The strict shape is checked above; this only writes it in the dashed lower-case form.
    crate::notion::values::extract_notion_id(text)
}

async fn sync_one(State(bridge): State<Arc<NotionBridge>>, request: Request) -> Response {
    if let Some(denied) = refuse(&bridge, request.headers()) {
        return denied;
    }
    let body = match read_body(request, bridge.read_timeout).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let request = match parse_body(&body) {
        Ok(r) => r,
        Err(BodyError(status, message)) => return error(status, message),
    };
    let client = match bridge.client().await {
        Ok(c) => c,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let found = match &request.page_id {
        Some(page) => client.retrieve_page(page).await,
        None => client.find_by_order_number(&request.order_number).await,
    };
    let record = match found {
        Ok(Some(record)) => record,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no Notion page for order {}", request.order_number),
            )
        }
        Err(e) => return error(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    if let (Some(page_id), Ok(Mapped::Sale(sale))) = (&request.page_id, &record.result) {
        let on_page = sale.stockx_order_number.trim();
        if on_page != request.order_number {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "notion_page_id {page_id} is the page of order {on_page}, not of stockx_order_number {}; nothing imported",
                    request.order_number
                ),
            );
        }
    }
    let options = ImportOptions {
        trigger: request.trigger,
        synced_by: "api".into(),
        ..ImportOptions::default()
    };
    let origin = RecordSource::NotionPage {
        page_id: record.page_id.clone(),
        last_edited_time: record.last_edited_time,
    };
    let report = match import_records(
        &bridge.pool,
        "the Notion API",
        vec![(origin, record.result)],
        &options,
        &mut |_, _| {},
    )
    .await
    {
        Ok(report) => report,
        Err(e) => {
            tracing::error!(error = %e, order = %request.order_number, "sync of one Notion sale failed in the database");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the sale could not be stored (database error; details in the worker's log)",
            );
        }
    };
    let entry: Option<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(l) - 'run_id' FROM integration.notion_sale_sync_log l
         WHERE run_id = $1 ORDER BY synced_at DESC LIMIT 1",
    )
    .bind(report.run_id)
    .fetch_optional(&bridge.pool)
    .await
    .unwrap_or(None);
    let status = if report.failed > 0 {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut body = entry.unwrap_or_else(|| json!({}));
    body["outcome"] = json!(if report.created > 0 {
        "created"
    } else if report.updated > 0 {
        "updated"
    } else if report.skipped_other_platform > 0 {
        "skipped_other_platform"
    } else if report.failed > 0 {
        "failed"
    } else {
        "skipped"
    });
    (status, Json(body)).into_response()
}

/// Set while a batch runs; cleared when dropped, so also when the batch panics or is
/// cancelled.
struct RunningFlag(Arc<AtomicBool>);

impl RunningFlag {
    /// The flag, unless another batch holds it.
    fn acquire(flag: &Arc<AtomicBool>) -> Option<RunningFlag> {
        (!flag.swap(true, Ordering::SeqCst)).then(|| RunningFlag(flag.clone()))
    }
}

impl Drop for RunningFlag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

async fn batch_sync(
    State(bridge): State<Arc<NotionBridge>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(denied) = refuse(&bridge, &headers) {
        return denied;
    }
    let hours: i64 = match query.get("hours").map(|h| h.parse::<i64>()) {
        None => 24,
        Some(Ok(h)) if (1..=24 * 366).contains(&h) => h,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "hours must be a whole number from 1 to 8784",
            )
        }
    };
    if bridge.stop.is_cancelled() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the worker is stopping");
    }
    let Some(running) = RunningFlag::acquire(&bridge.batch_running) else {
        return error(StatusCode::CONFLICT, "a batch sync is already running");
    };
    let run_id = Uuid::new_v4();
    let since = time::OffsetDateTime::now_utc() - time::Duration::hours(hours);
    let task_bridge = bridge.clone();
    let stop = bridge.stop.clone();
    let task = tokio::spawn(async move {
        let _running = running;
        let options = ImportOptions {
            trigger: Trigger::Scheduled,
            synced_by: "api".into(),
            run_id,
            ..ImportOptions::default()
        };
        let mut progress = ProgressLog::default();
        let mut report_progress = |done, total| progress.update(done, total);
        let run = backfill::backfill_api(
            &task_bridge.settings,
            &task_bridge.pool,
            Since::From(since),
            &options,
            &mut report_progress,
        );
        tokio::select! {
            _ = stop.cancelled() => tracing::warn!(%run_id,
                "batch sync stopped by shutdown; what it imported stays, the next run reads the rest"),
            result = run => match result {
                Ok(report) => tracing::info!(%run_id, created = report.created, updated = report.updated,
                                             skipped = report.skipped, failed = report.failed, "batch sync done"),
                Err(e) => tracing::error!(%run_id, error = %e, "batch sync failed"),
            },
        }
    });
    *bridge.batch_task.lock().expect("lock") = Some(task);
    (
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run_id, "hours": hours, "status": "started"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_ids_are_32_hex_digits_with_or_without_dashes() {
        let dashed = "00000000-0000-4000-8000-000000000005";
        assert_eq!(notion_page_id(dashed).as_deref(), Some(dashed));
        assert_eq!(
            notion_page_id(" 000000000000400080000000000000AB ").as_deref(),
            Some("00000000-0000-4000-8000-0000000000ab")
        );
        for bad in [
            "../users/me?x=1",
            "00000000-0000-4000-8000-00000000000",
            "0000000000004000-8000-000000000005-",
            "https://www.notion.so/000000000000400080000000000000ab",
            "00000000/0000-4000-8000-000000000005",
            "g0000000000040008000000000000005",
        ] {
            assert_eq!(notion_page_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        for (value, token) in [
            ("Bearer s3cret", Some("s3cret")),
            ("bearer s3cret", Some("s3cret")),
            ("BEARER  s3cret ", Some("s3cret")),
            ("Basic s3cret", None),
            ("Bearer", None),
            ("Bearers3cret", None),
        ] {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer_token(&headers), token, "{value:?}");
        }
    }

    #[test]
    fn order_numbers_are_checked_before_they_reach_the_database() {
        assert!(check_order_number("75000005-76000005").is_ok());
        let BodyError(status, message) = check_order_number("12\u{0}34").err().unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message.contains("stockx_order_number"), "{message}");
        let BodyError(_, message) = check_order_number(&"1".repeat(101)).err().unwrap();
        assert!(
            message.contains("stockx_order_number is 101 characters"),
            "{message}"
        );
        assert!(
            check_order_number(&"é".repeat(100)).is_ok(),
            "characters, not bytes"
        );
    }

    #[tokio::test]
    async fn a_panicking_batch_leaves_the_flag_cleared() {
        let flag = Arc::new(AtomicBool::new(false));
        let running = RunningFlag::acquire(&flag).unwrap();
        assert!(RunningFlag::acquire(&flag).is_none(), "one batch at a time");
        let task = tokio::spawn(async move {
            let _running = running;
            panic!("a bug in the batch");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert!(!flag.load(Ordering::SeqCst));
        assert!(RunningFlag::acquire(&flag).is_some());
    }
}
