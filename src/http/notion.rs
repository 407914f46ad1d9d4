//! The endpoints n8n calls while sales are still kept in Notion, on the worker's listener:
//!
//! - `POST /api/v1/integration/notion-sale/sync` `{"stockx_order_number", "notion_page_id"?,
//!   "trigger"?}`: reads that sale from Notion (by page ID, else by its title), imports it like
//!   the backfill does, and answers with its sync-log entry. Idempotent.
//! - `POST /api/v1/integration/notion-sale/batch-sync?hours=24`: imports what changed in the
//!   last N hours in the background; answers 202 with the run ID at once, 409 while a batch runs.
//!
//! Both require `Authorization: Bearer STOCKX_SYNC_API_TOKEN` (compared in constant time); 401
//! without it or with another, 503 while no token is configured.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::config::Settings;
use crate::notion::backfill::{self, ProgressLog, Since};
use crate::notion::import::{import_records, ImportOptions, Trigger};
use crate::notion::mapping::RecordSource;

/// What the endpoints need.
pub struct NotionBridge {
    pub pool: PgPool,
    pub settings: Settings,
    pub api_token: Option<SecretString>,
    batch_running: AtomicBool,
}

impl NotionBridge {
    pub fn new(pool: PgPool, settings: Settings) -> Arc<NotionBridge> {
        Arc::new(NotionBridge {
            pool,
            api_token: settings.http.api_token.clone(),
            settings,
            batch_running: AtomicBool::new(false),
        })
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

/// The answer that refuses the request, or None when it may go on.
fn refuse(bridge: &NotionBridge, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = &bridge.api_token else {
        return Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "STOCKX_SYNC_API_TOKEN is not configured; the POST endpoints are disabled",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let ok: bool = given
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into();
    (!ok).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer STOCKX_SYNC_API_TOKEN)",
        )
    })
}

struct SyncRequest {
    order_number: String,
    page_id: Option<String>,
    trigger: Trigger,
}

fn parse_body(body: &[u8]) -> Result<SyncRequest, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let object = value.as_object().ok_or("body must be a JSON object")?;
    let order_number = match object.get("stockx_order_number") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(_) => return Err("stockx_order_number must be a non-empty string".into()),
        None => return Err("stockx_order_number is required".into()),
    };
    let page_id = match object.get("notion_page_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(_) => return Err("notion_page_id must be a non-empty string".into()),
    };
    let trigger = match object.get("trigger") {
        None | Some(Value::Null) => Trigger::Webhook,
        Some(Value::String(s)) => match s.as_str() {
            "webhook" => Trigger::Webhook,
            "scheduled" => Trigger::Scheduled,
            "manual" => Trigger::Manual,
            _ => return Err("trigger must be one of webhook, scheduled, manual".into()),
        },
        Some(_) => return Err("trigger must be a string".into()),
    };
    Ok(SyncRequest {
        order_number,
        page_id,
        trigger,
    })
}

async fn sync_one(
    State(bridge): State<Arc<NotionBridge>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = refuse(&bridge, &headers) {
        return denied;
    }
    let request = match parse_body(&body) {
        Ok(r) => r,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let client = match backfill::notion_client(&bridge.settings) {
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
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("database: {e}")),
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
    if bridge.batch_running.swap(true, Ordering::SeqCst) {
        return error(StatusCode::CONFLICT, "a batch sync is already running");
    }
    let run_id = Uuid::new_v4();
    let since = time::OffsetDateTime::now_utc() - time::Duration::hours(hours);
    let task_bridge = bridge.clone();
    tokio::spawn(async move {
        let options = ImportOptions {
            trigger: Trigger::Scheduled,
            synced_by: "api".into(),
            run_id,
            ..ImportOptions::default()
        };
        let mut progress = ProgressLog::default();
        match backfill::backfill_api(
            &task_bridge.settings,
            &task_bridge.pool,
            Since::From(since),
            &options,
            &mut |done, total| progress.update(done, total),
        )
        .await
        {
            Ok(report) => {
                tracing::info!(%run_id, created = report.created, updated = report.updated,
                                         skipped = report.skipped, failed = report.failed, "batch sync done")
            }
            Err(e) => tracing::error!(%run_id, error = %e, "batch sync failed"),
        }
        task_bridge.batch_running.store(false, Ordering::SeqCst);
    });
    (
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run_id, "hours": hours, "status": "started"})),
    )
        .into_response()
}
