//! A local Notion API holding a sales data source, for the tests and benchmarks of the API
//! backfill at sizes a hand-written mock cannot reach. It answers the calls the client makes
//! (`GET /v1/databases/{id}`, `GET /v1/data_sources/{id}`, `POST /v1/data_sources/{id}/query`,
//! `GET /v1/pages/{id}`) with Notion's documented JSON, and evaluates what the real service
//! evaluates: timestamp and title filters (`and`/`or`, nested), several sorts, `page_size` ≤ 100,
//! cursors, and the 10,000-result cap per query (`request_status` "incomplete"). It can play an
//! outage (every request answers 503 from the n-th query on) and related pages the integration
//! was not given (404 `object_not_found`). Counters say what the client cost.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// The database ID the stand-in answers to (any dashed or undashed form, or a URL with it).
pub const DATABASE_ID: &str = "a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90";
/// Its one data source.
pub const DATA_SOURCE_ID: &str = "11111111-2222-3333-4444-555555555555";
/// Notion's result cap per query.
pub const RESULT_CAP: usize = 10_000;

/// One sale page of the stand-in.
#[derive(Debug, Clone)]
pub struct SalePage {
    pub n: u32,
    pub order_number: String,
    pub created: OffsetDateTime,
    pub edited: OffsetDateTime,
    pub platform: Option<String>,
    /// The related supplier page.
    pub supplier: String,
}

impl SalePage {
    /// A StockX sale numbered `n`, created and edited at `at`, supplied by `supplier`.
    pub fn new(n: u32, at: OffsetDateTime, supplier: &str) -> Self {
        SalePage {
            n,
            order_number: format!("7{n:07}-8{n:07}"),
            created: at,
            edited: at,
            platform: Some("StockX".into()),
            supplier: supplier.to_string(),
        }
    }

    pub fn id(&self) -> String {
        page_id(self.n)
    }
}

/// The page ID of sale `n`.
pub fn page_id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn rich_text(text: &str) -> Value {
    json!([{ "type": "text", "text": { "content": text, "link": null },
             "annotations": { "bold": false, "italic": false, "strikethrough": false, "underline": false, "code": false, "color": "default" },
             "plain_text": text, "href": null }])
}

fn iso(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl SalePage {
    fn to_json(&self) -> Value {
        json!({
            "object": "page", "id": self.id(), "created_time": iso(self.created), "last_edited_time": iso(self.edited),
            "in_trash": false, "archived": false, "is_locked": false,
            "parent": { "type": "data_source_id", "data_source_id": DATA_SOURCE_ID, "database_id": DATABASE_ID },
            "url": format!("https://www.notion.so/{}", self.id().replace('-', "")),
            "properties": {
                "Sale ID": { "id": "title", "type": "title", "title": rich_text(&self.order_number) },
                "Name": { "id": "n%3Am", "type": "rich_text", "rich_text": rich_text("Nike Dunk Low Panda") },
                "SKU": { "id": "s%3Ak", "type": "rich_text", "rich_text": rich_text("DD1391-100") },
                "Size": { "id": "sz", "type": "select", "select": { "id": "x", "name": "US 10", "color": "blue" } },
                "Supplier": { "id": "sp", "type": "relation", "relation": [{ "id": self.supplier }], "has_more": false },
                "Net Buy": { "id": "nb", "type": "number", "number": 110.5 },
                "Net Sale": { "id": "ns", "type": "number", "number": 150 },
                "Sale Date": { "id": "sd", "type": "date", "date": { "start": "2025-02-03", "end": null, "time_zone": null } },
                "Sale Platform": { "id": "pl", "type": "select", "select": self.platform.as_ref().map(|p| json!({ "id": "p", "name": p, "color": "green" })) },
            }
        })
    }
}

/// What the stand-in holds and how it misbehaves.
#[derive(Debug)]
pub struct NotionState {
    /// The database's ID ([`DATABASE_ID`] unless a test needs another form).
    pub database_id: String,
    pub pages: Vec<SalePage>,
    /// Related pages by ID: `Some(title)` shared with the integration, `None` not shared.
    pub related: HashMap<String, Option<String>>,
    /// From this query on (counting from 1), every request answers 503.
    pub outage_from_query: Option<u64>,
    pub queries: u64,
    /// Page results returned by queries, repeats included.
    pub results_returned: u64,
    /// `GET /v1/pages/{id}` requests, and those answered 404.
    pub page_requests: u64,
    pub page_not_found: u64,
}

impl Default for NotionState {
    fn default() -> Self {
        NotionState {
            database_id: DATABASE_ID.to_string(),
            pages: Vec::new(),
            related: HashMap::new(),
            outage_from_query: None,
            queries: 0,
            results_returned: 0,
            page_requests: 0,
            page_not_found: 0,
        }
    }
}

/// A running stand-in.
#[derive(Clone)]
pub struct NotionStandIn {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<NotionState>>,
    stop: CancellationToken,
}

impl NotionStandIn {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut NotionState) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Starts the stand-in on 127.0.0.1 (a free port).
pub async fn spawn(state: NotionState) -> std::io::Result<NotionStandIn> {
    let state = Arc::new(Mutex::new(state));
    let app = Router::new()
        .route("/v1/databases/{id}", get(database))
        .route("/v1/data_sources/{id}", get(data_source))
        .route("/v1/data_sources/{id}/query", post(query))
        .route("/v1/pages/{id}", get(page))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await;
    });
    Ok(NotionStandIn { addr, state, stop })
}

type Shared = State<Arc<Mutex<NotionState>>>;

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "object": "error", "status": status.as_u16(), "code": code, "message": message })),
    )
        .into_response()
}

fn compact(id: &str) -> String {
    id.chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase()
}

fn lock(state: &Arc<Mutex<NotionState>>) -> std::sync::MutexGuard<'_, NotionState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The outage answer, when one is on.
fn outage(state: &NotionState) -> Option<Response> {
    match state.outage_from_query {
        Some(from) if state.queries >= from => Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "Notion is unavailable",
        )),
        _ => None,
    }
}

fn unknown_data_source(id: &str) -> Option<Response> {
    (compact(id) != compact(DATA_SOURCE_ID)).then(|| {
        error(
            StatusCode::NOT_FOUND,
            "object_not_found",
            "Could not find data source",
        )
    })
}

fn authorised(headers: &HeaderMap) -> Option<Response> {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "))
        && headers.contains_key("notion-version");
    (!ok).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "API token is invalid.",
        )
    })
}

async fn database(State(state): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = authorised(&headers) {
        return r;
    }
    let state = lock(&state);
    if let Some(r) = outage(&state) {
        return r;
    }
    if compact(&id) != compact(&state.database_id) {
        return error(
            StatusCode::NOT_FOUND,
            "object_not_found",
            "Could not find database",
        );
    }
    Json(
        json!({ "object": "database", "id": state.database_id, "title": rich_text("Sales"),
                 "data_sources": [{ "id": DATA_SOURCE_ID, "name": "Sales" }] }),
    )
    .into_response()
}

async fn data_source(State(state): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = authorised(&headers) {
        return r;
    }
    let state = lock(&state);
    if let Some(r) = outage(&state) {
        return r;
    }
    if let Some(r) = unknown_data_source(&id) {
        return r;
    }
    Json(json!({ "object": "data_source", "id": DATA_SOURCE_ID, "properties": {} })).into_response()
}

async fn page(State(state): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = authorised(&headers) {
        return r;
    }
    let mut state = lock(&state);
    if let Some(r) = outage(&state) {
        return r;
    }
    state.page_requests += 1;
    let wanted = compact(&id);
    if let Some((related, title)) = state
        .related
        .iter()
        .find(|(k, _)| compact(k) == wanted)
        .map(|(k, t)| (k.clone(), t.clone()))
    {
        return match title {
            Some(title) => Json(json!({
                "object": "page", "id": related, "last_edited_time": "2024-01-01T00:00:00.000Z", "created_time": "2024-01-01T00:00:00.000Z", "in_trash": false,
                "properties": { "Name": { "id": "title", "type": "title", "title": rich_text(&title) } }
            }))
            .into_response(),
            None => {
                state.page_not_found += 1;
                error(StatusCode::NOT_FOUND, "object_not_found", "Could not find page")
            }
        };
    }
    match state.pages.iter().find(|p| compact(&p.id()) == wanted) {
        Some(p) => Json(p.to_json()).into_response(),
        None => {
            state.page_not_found += 1;
            error(
                StatusCode::NOT_FOUND,
                "object_not_found",
                "Could not find page",
            )
        }
    }
}

/// A query filter, read once per request.
enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Time {
        created: bool,
        op: String,
        at: OffsetDateTime,
    },
    Title {
        op: String,
        text: String,
    },
}

fn condition(filter: &Value, key: &str) -> Result<(String, Value), String> {
    let condition = filter
        .get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{key} filter without a condition"))?;
    let (op, operand) = condition.iter().next().ok_or("empty condition")?;
    Ok((op.clone(), operand.clone()))
}

impl Filter {
    /// `Err` for a filter this stand-in (or Notion) does not take.
    fn parse(filter: &Value) -> Result<Filter, String> {
        let list = |key: &str| -> Option<Result<Vec<Filter>, String>> {
            filter
                .get(key)
                .and_then(Value::as_array)
                .map(|all| all.iter().map(Filter::parse).collect())
        };
        if let Some(all) = list("and") {
            return Ok(Filter::And(all?));
        }
        if let Some(any) = list("or") {
            return Ok(Filter::Or(any?));
        }
        if let Some(key) = filter.get("timestamp").and_then(Value::as_str) {
            let created = match key {
                "created_time" => true,
                "last_edited_time" => false,
                other => return Err(format!("unknown timestamp {other}")),
            };
            let (op, operand) = condition(filter, key)?;
            let at = operand
                .as_str()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .ok_or_else(|| format!("{operand} is not a date"))?;
            if !["on_or_after", "after", "before", "on_or_before", "equals"].contains(&op.as_str())
            {
                return Err(format!("unknown date condition {op}"));
            }
            return Ok(Filter::Time { created, op, at });
        }
        if filter.get("property").and_then(Value::as_str) == Some("Sale ID") {
            let (op, operand) = condition(filter, "title")?;
            let text = operand
                .as_str()
                .ok_or("the operand is not text")?
                .to_string();
            if !["equals", "contains", "does_not_contain", "starts_with"].contains(&op.as_str()) {
                return Err(format!("unknown text condition {op}"));
            }
            return Ok(Filter::Title { op, text });
        }
        Err(format!("unsupported filter {filter}"))
    }

    fn matches(&self, page: &SalePage) -> bool {
        match self {
            Filter::And(all) => all.iter().all(|f| f.matches(page)),
            Filter::Or(any) => any.iter().any(|f| f.matches(page)),
            Filter::Time { created, op, at } => {
                let value = if *created { page.created } else { page.edited };
                match op.as_str() {
                    "on_or_after" => value >= *at,
                    "after" => value > *at,
                    "before" => value < *at,
                    "on_or_before" => value <= *at,
                    _ => value == *at,
                }
            }
            Filter::Title { op, text } => {
                let title = page.order_number.as_str();
                match op.as_str() {
                    "equals" => title == text,
                    "contains" => title.contains(text.as_str()),
                    "does_not_contain" => !title.contains(text.as_str()),
                    _ => title.starts_with(text.as_str()),
                }
            }
        }
    }
}

async fn query(
    State(state): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = authorised(&headers) {
        return r;
    }
    let mut state = lock(&state);
    state.queries += 1;
    if let Some(r) = outage(&state) {
        return r;
    }
    if let Some(r) = unknown_data_source(&id) {
        return r;
    }
    let page_size = body
        .get("page_size")
        .and_then(Value::as_u64)
        .unwrap_or(100)
        .min(100) as usize;
    let filter = match body.get("filter").map(Filter::parse).transpose() {
        Ok(filter) => filter,
        Err(e) => return error(StatusCode::BAD_REQUEST, "validation_error", &e),
    };
    let found: Vec<&SalePage> = state
        .pages
        .iter()
        .filter(|page| filter.as_ref().is_none_or(|f| f.matches(page)))
        .collect();
    // Sort keys read once: comparing OffsetDateTime values costs far more than integers.
    let sorts: Vec<(u8, bool)> = body
        .get("sorts")
        .and_then(Value::as_array)
        .map(|sorts| {
            sorts
                .iter()
                .map(|s| {
                    let key = match s.get("timestamp").and_then(Value::as_str) {
                        Some("created_time") => 0,
                        Some(_) => 1,
                        None => 2,
                    };
                    let descending =
                        s.get("direction").and_then(Value::as_str) == Some("descending");
                    (key, descending)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut keyed: Vec<(i128, i128, u64, &SalePage)> = found
        .into_iter()
        .map(|p| {
            (
                p.created.unix_timestamp_nanos(),
                p.edited.unix_timestamp_nanos(),
                // Ties keep an order of Notion's own, not the one the pages were added in.
                u64::from(p.n).wrapping_mul(2_654_435_761) % 4_294_967_311,
                p,
            )
        })
        .collect();
    keyed.sort_unstable_by(|a, b| {
        for (key, descending) in &sorts {
            let order = match key {
                0 => a.0.cmp(&b.0),
                1 => a.1.cmp(&b.1),
                _ => a.3.order_number.cmp(&b.3.order_number),
            };
            let order = if *descending { order.reverse() } else { order };
            if order.is_ne() {
                return order;
            }
        }
        a.2.cmp(&b.2)
    });
    let found: Vec<&SalePage> = keyed.into_iter().map(|k| k.3).collect();
    let start: usize = match body.get("start_cursor").and_then(Value::as_str) {
        Some(cursor) => match cursor.strip_prefix("at-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "validation_error",
                    "bad start_cursor",
                )
            }
        },
        None => 0,
    };
    let visible = found.len().min(RESULT_CAP);
    let end = (start + page_size).min(visible);
    let results: Vec<Value> = found[start.min(end)..end]
        .iter()
        .map(|p| p.to_json())
        .collect();
    let has_more = end < visible;
    let capped = !has_more && found.len() > RESULT_CAP;
    state.results_returned += results.len() as u64;
    let mut answer = json!({
        "object": "list", "results": results,
        "next_cursor": has_more.then(|| format!("at-{end}")), "has_more": has_more,
        "type": "page_or_data_source", "page_or_data_source": {}
    });
    if capped {
        answer["request_status"] =
            json!({ "type": "incomplete", "incomplete_reason": "query_result_limit_reached" });
    }
    Json(answer).into_response()
}
