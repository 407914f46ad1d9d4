//! Local stand-ins for the outside world, so the demo, the benchmark and the tests exercise the
//! real clients and readers end to end without reaching StockX or Notion. Most of this file is
//! the StockX sandbox: the documented v2 formats over a small bundled catalog.
//! [`notion_export`] writes a realistic Notion export for the CSV import path.
//!
//! It speaks the OAuth refresh-token grant (`POST /oauth/token`), catalog search, product,
//! variants, market data (per variant and per product) and the seller's orders, checks
//! `x-api-key` and the bearer token like StockX, and can inject faults: 429 with `Retry-After`
//! (every n-th request, or above a real rate: N requests per sliding second), 5xx, slow
//! answers, malformed JSON. It counts requests per route (and single-order calls per order
//! number) and the 429s it sent (tests and the benchmarks use them). Sizes can be added to a
//! product while it runs. The seller's orders are listed too (`/selling/orders/history` by
//! creation day and status, `/selling/orders/active`), 100 at most per page, and it can hold
//! thousands of generated orders ([`generated_sales`]) for the bulk benchmark.

mod catalog;
pub mod notion_api;
pub mod notion_export;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub use catalog::{bundled_sales, generated_sales, BundledSale, GeneratedSale};

/// Credentials the sandbox accepts.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub api_key: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    /// Lifetime of issued tokens.
    pub token_lifetime: Duration,
    pub faults: Faults,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            api_key: "sandbox-api-key".into(),
            client_id: "sandbox-client".into(),
            client_secret: "sandbox-secret".into(),
            refresh_token: "sandbox-refresh-token".into(),
            token_lifetime: Duration::from_secs(43_200),
            faults: Faults::default(),
        }
    }
}

/// Faults injected into API (not token) answers; `every_nth` counts API requests from 1.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Every n-th request answers 429 with `Retry-After: retry_after_secs`.
    pub throttle_every_nth: Option<u64>,
    pub retry_after_secs: u64,
    /// At most this many API requests are accepted per sliding second; the rest answer 429
    /// with `Retry-After` in whole seconds until a slot frees (as rate-limiting servers do).
    pub max_requests_per_second: Option<u32>,
    /// Every n-th request answers 503.
    pub server_error_every_nth: Option<u64>,
    /// Every request is delayed this long.
    pub delay: Duration,
    /// Successful answers carry a body that is not JSON.
    pub malformed_json: bool,
    /// Market data leaves out `currencyCode` (the schema allows it).
    pub market_data_without_currency: bool,
}

struct Shared {
    options: SandboxOptions,
    faults: Mutex<Faults>,
    tokens: Mutex<HashSet<String>>,
    orders: Mutex<HashMap<String, Value>>,
    catalog: catalog::Catalog,
    requests: Mutex<Vec<(String, Instant)>>,
    /// `GET /selling/orders/{orderNumber}` calls per order number.
    order_lookups: Mutex<HashMap<String, usize>>,
    api_requests: Mutex<u64>,
    /// Arrival of the requests the rate fault accepted during the last second.
    accepted_recently: Mutex<VecDeque<Instant>>,
    throttled: Mutex<u64>,
    /// API requests answered 503 by the `server_error_every_nth` fault.
    server_errors: Mutex<u64>,
}

/// A running sandbox; stops when dropped.
pub struct SandboxHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl SandboxHandle {
    /// For `STOCKX_API_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// For `STOCKX_AUTH_URL`.
    pub fn auth_url(&self) -> String {
        format!("http://{}/oauth/token", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client configuration that talks to this sandbox with its credentials.
    pub fn client_config(&self, requests_per_second: f64) -> crate::stockx::ClientConfig {
        let o = &self.shared.options;
        crate::stockx::ClientConfig {
            api_url: self.base_url().parse().expect("sandbox URL"),
            auth_url: self.auth_url().parse().expect("sandbox URL"),
            api_key: SecretString::from(o.api_key.clone()),
            client_id: o.client_id.clone(),
            client_secret: SecretString::from(o.client_secret.clone()),
            refresh_token: SecretString::from(o.refresh_token.clone()),
            requests_per_second,
            daily_budget: 25_000,
            timeout: Duration::from_secs(10),
        }
    }

    /// Points `settings` at this sandbox: API and token URLs, its credentials, and the rate.
    pub fn configure(&self, settings: &mut crate::config::Settings, requests_per_second: f64) {
        let config = self.client_config(requests_per_second);
        let s = &mut settings.stockx;
        s.api_url = config.api_url;
        s.auth_url = config.auth_url;
        s.api_key = Some(config.api_key);
        s.client_id = Some(config.client_id);
        s.client_secret = Some(config.client_secret);
        s.refresh_token = Some(config.refresh_token);
        s.requests_per_second = requests_per_second;
    }

    /// Requests received for a route template (e.g. `/catalog/search`, `/oauth/token`).
    pub fn request_count(&self, route: &str) -> usize {
        self.shared
            .requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|(r, _)| r == route)
            .count()
    }

    /// `GET /selling/orders/{orderNumber}` calls for this order number.
    pub fn order_lookups(&self, order_number: &str) -> usize {
        self.shared
            .order_lookups
            .lock()
            .expect("lock")
            .get(order_number)
            .copied()
            .unwrap_or(0)
    }

    /// API requests of every route (token requests excluded).
    pub fn api_request_count(&self) -> usize {
        self.shared
            .requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|(r, _)| r != "/oauth/token")
            .count()
    }

    /// API requests per route template, most first (token requests excluded).
    pub fn request_counts(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (route, _) in self.shared.requests.lock().expect("lock").iter() {
            if route != "/oauth/token" {
                *counts.entry(route.clone()).or_default() += 1;
            }
        }
        let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts
    }

    /// When each API request (not token requests) arrived, in order.
    pub fn api_request_times(&self) -> Vec<Instant> {
        self.shared
            .requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|(r, _)| r != "/oauth/token")
            .map(|(_, t)| *t)
            .collect()
    }

    /// API requests answered 503 by the injected fault so far.
    pub fn server_error_count(&self) -> u64 {
        *self.shared.server_errors.lock().expect("lock")
    }

    /// API requests answered 429 so far.
    pub fn throttled_count(&self) -> u64 {
        *self.shared.throttled.lock().expect("lock")
    }

    /// Adds a size to a bundled product, as StockX does when a new size is released: its
    /// variants and market data include it from now on.
    pub fn add_size(&self, product_id: &str, us: &str, eu: &str) {
        self.shared.catalog.add_size(product_id, us, eu);
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().expect("lock") = faults;
    }

    /// Registers generated sales as seller orders (see [`generated_sales`]).
    pub fn add_generated(&self, sales: &[GeneratedSale]) {
        let mut orders = self.shared.orders.lock().expect("lock");
        for sale in sales {
            let sold_at = sale.sold_at.to_string();
            let facts = catalog::OrderFacts {
                order_number: &sale.order_number,
                sku: sale.sku,
                size: sale.size,
                sale_price: sale.sale_price,
                currency: sale.currency,
                sold_at: &sold_at,
                status: sale.status,
            };
            if let Some(order) = self.shared.catalog.order_json(&facts) {
                orders.insert(sale.order_number.clone(), order);
            }
        }
    }

    /// Forgets a seller order (it is then in no list and the single call answers 404).
    pub fn remove_order(&self, order_number: &str) {
        self.shared
            .orders
            .lock()
            .expect("lock")
            .remove(order_number);
    }

    /// Registers a seller order (DetailedOrder JSON, `orderNumber` required).
    pub fn add_order(&self, order: Value) {
        let number = order["orderNumber"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.shared
            .orders
            .lock()
            .expect("lock")
            .insert(number, order);
    }
}

/// Starts a sandbox on `addr` (port 0 picks one).
pub async fn spawn(addr: SocketAddr, options: SandboxOptions) -> std::io::Result<SandboxHandle> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let catalog = catalog::Catalog::bundled();
    let orders = catalog.orders();
    let shared = Arc::new(Shared {
        faults: Mutex::new(options.faults.clone()),
        options,
        tokens: Mutex::new(HashSet::new()),
        orders: Mutex::new(orders),
        catalog,
        requests: Mutex::new(Vec::new()),
        order_lookups: Mutex::new(HashMap::new()),
        api_requests: Mutex::new(0),
        accepted_recently: Mutex::new(VecDeque::new()),
        throttled: Mutex::new(0),
        server_errors: Mutex::new(0),
    });
    let stop = CancellationToken::new();
    let app = router(shared.clone());
    let stopped = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await;
    });
    Ok(SandboxHandle { addr, shared, stop })
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/v2/catalog/search", get(search))
        .route("/v2/catalog/products/{product_id}", get(product))
        .route("/v2/catalog/products/{product_id}/variants", get(variants))
        .route(
            "/v2/catalog/products/{product_id}/variants/{variant_id}",
            get(variant),
        )
        .route(
            "/v2/catalog/products/{product_id}/market-data",
            get(product_market_data),
        )
        .route(
            "/v2/catalog/products/{product_id}/variants/{variant_id}/market-data",
            get(variant_market_data),
        )
        .route("/v2/selling/orders/history", get(orders_history))
        .route("/v2/selling/orders/active", get(orders_active))
        .route("/v2/selling/orders/{order_number}", get(order))
        .with_state(shared)
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"statusCode": status.as_u16(), "message": message})),
    )
        .into_response()
}

/// Logs the request, checks auth, applies faults. `Err` is the answer to send instead.
async fn gate(shared: &Shared, route: &str, headers: &HeaderMap) -> Result<bool, Response> {
    shared
        .requests
        .lock()
        .expect("lock")
        .push((route.to_string(), Instant::now()));
    let faults = shared.faults.lock().expect("lock").clone();
    let n = {
        let mut count = shared.api_requests.lock().expect("lock");
        *count += 1;
        *count
    };
    if !faults.delay.is_zero() {
        tokio::time::sleep(faults.delay).await;
    }
    let key_ok = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|k| k == shared.options.api_key);
    let token_ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| shared.tokens.lock().expect("lock").contains(t));
    if !key_ok || !token_ok {
        return Err(error(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    if faults
        .throttle_every_nth
        .is_some_and(|k| k > 0 && n % k == 0)
    {
        return Err(too_many_requests(shared, faults.retry_after_secs));
    }
    if let Some(limit) = faults.max_requests_per_second {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        let mut recent = shared.accepted_recently.lock().expect("lock");
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= second)
        {
            recent.pop_front();
        }
        if recent.len() >= limit as usize {
            let frees_in = recent
                .front()
                .map_or(second, |t| second.saturating_sub(now.duration_since(*t)));
            let secs = frees_in.as_secs_f64().ceil().max(1.0) as u64;
            return Err(too_many_requests(shared, secs));
        }
        recent.push_back(now);
    }
    if faults
        .server_error_every_nth
        .is_some_and(|k| k > 0 && n % k == 0)
    {
        *shared.server_errors.lock().expect("lock") += 1;
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
        ));
    }
    Ok(faults.malformed_json)
}

fn too_many_requests(shared: &Shared, retry_after_secs: u64) -> Response {
    *shared.throttled.lock().expect("lock") += 1;
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    response.headers_mut().insert(
        "retry-after",
        retry_after_secs.to_string().parse().expect("number"),
    );
    response
}

fn answer(malformed: bool, body: Value) -> Response {
    if malformed {
        (StatusCode::OK, "{\"productId\": <html>oops").into_response()
    } else {
        Json(body).into_response()
    }
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    shared
        .requests
        .lock()
        .expect("lock")
        .push(("/oauth/token".into(), Instant::now()));
    let o = &shared.options;
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "refresh_token"
        || field("client_id") != o.client_id
        || field("client_secret") != o.client_secret
        || field("refresh_token") != o.refresh_token
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."})),
        )
            .into_response();
    }
    let token = format!("sbx.{}", uuid::Uuid::new_v4().simple());
    shared.tokens.lock().expect("lock").insert(token.clone());
    Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": o.token_lifetime.as_secs(),
        "scope": "offline_access openid",
        "id_token": "sandbox.id.token",
    }))
    .into_response()
}

async fn search(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let malformed = match gate(&shared, "/catalog/search", &headers).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let query = q.get("query").cloned().unwrap_or_default();
    if query.is_empty() || query.len() > 100 {
        return error(StatusCode::BAD_REQUEST, "query must be 1-100 characters");
    }
    let products = shared.catalog.search(&query);
    answer(
        malformed,
        json!({"count": products.len(), "pageSize": 20, "pageNumber": 1,
               "hasNextPage": false, "products": products}),
    )
}

async fn product(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(product_id): Path<String>,
) -> Response {
    let malformed = match gate(&shared, "/catalog/products/{productId}", &headers).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match shared.catalog.product_json(&product_id) {
        Some(p) => answer(malformed, p),
        None => error(StatusCode::NOT_FOUND, "Product not found"),
    }
}

async fn variants(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(product_id): Path<String>,
) -> Response {
    let malformed = match gate(&shared, "/catalog/products/{productId}/variants", &headers).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match shared.catalog.variants_json(&product_id) {
        Some(v) => answer(malformed, Value::Array(v)),
        None => error(StatusCode::NOT_FOUND, "Product not found"),
    }
}

async fn variant(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((product_id, variant_id)): Path<(String, String)>,
) -> Response {
    let route = "/catalog/products/{productId}/variants/{variantId}";
    let malformed = match gate(&shared, route, &headers).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(variants) = shared.catalog.variants_json(&product_id) else {
        return error(StatusCode::NOT_FOUND, "Product not found");
    };
    match variants
        .into_iter()
        .find(|v| v["variantId"] == variant_id.as_str())
    {
        Some(v) => answer(malformed, v),
        None => error(
            StatusCode::BAD_REQUEST,
            "variant does not belong to the product",
        ),
    }
}

async fn product_market_data(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(product_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let route = "/catalog/products/{productId}/market-data";
    let malformed = match gate(&shared, route, &headers).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let currency = q.get("currencyCode").map(String::as_str).unwrap_or("USD");
    let without_currency = shared
        .faults
        .lock()
        .expect("lock")
        .market_data_without_currency;
    match shared.catalog.market_data(&product_id, None, currency) {
        Ok(mut data) => {
            if without_currency {
                for md in &mut data {
                    if let Some(md) = md.as_object_mut() {
                        md.remove("currencyCode");
                    }
                }
            }
            answer(malformed, Value::Array(data))
        }
        Err((status, message)) => error(status, message),
    }
}

async fn variant_market_data(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((product_id, variant_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let route = "/catalog/products/{productId}/variants/{variantId}/market-data";
    let malformed = match gate(&shared, route, &headers).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let currency = q.get("currencyCode").map(String::as_str).unwrap_or("USD");
    match shared
        .catalog
        .market_data(&product_id, Some(&variant_id), currency)
    {
        Ok(mut data) if data.len() == 1 => answer(malformed, data.remove(0)),
        Ok(_) => error(
            StatusCode::BAD_REQUEST,
            "variant does not belong to the product",
        ),
        Err((status, message)) => error(status, message),
    }
}

async fn order(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(order_number): Path<String>,
) -> Response {
    let malformed = match gate(&shared, "/selling/orders/{orderNumber}", &headers).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    *shared
        .order_lookups
        .lock()
        .expect("lock")
        .entry(order_number.clone())
        .or_default() += 1;
    let found = shared
        .orders
        .lock()
        .expect("lock")
        .get(&order_number)
        .cloned();
    match found {
        Some(order) => answer(malformed, order),
        None => error(StatusCode::NOT_FOUND, "Order not found"),
    }
}

/// Statuses of orders that are over: these are listed in the history, every other status
/// among the active orders.
const HISTORY_STATUSES: &[&str] = &[
    "AUTHFAILED",
    "DIDNOTSHIP",
    "CANCELED",
    "COMPLETED",
    "RETURNED",
];

async fn orders_history(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let malformed = match gate(&shared, "/selling/orders/history", &headers).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = |key: &str| {
        q.get(key)
            .map(|v| time::Date::parse(v, &format).map_err(|_| key.to_string()))
            .transpose()
    };
    let (from, to) = match (date("fromDate"), date("toDate")) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(key), _) | (_, Err(key)) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("{key} must be YYYY-MM-DD"),
            )
        }
    };
    let status = q.get("orderStatus").cloned();
    list_orders(&shared, &q, malformed, |order| {
        let status_now = order["status"].as_str().unwrap_or_default();
        let created = order["createdAt"]
            .as_str()
            .and_then(|c| time::Date::parse(c.get(..10)?, &format).ok());
        HISTORY_STATUSES.contains(&status_now)
            && status.as_deref().is_none_or(|s| s == status_now)
            && created.is_some_and(|c| from.is_none_or(|f| c >= f) && to.is_none_or(|t| c <= t))
    })
}

async fn orders_active(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let malformed = match gate(&shared, "/selling/orders/active", &headers).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let status = q.get("orderStatus").cloned();
    list_orders(&shared, &q, malformed, |order| {
        let status_now = order["status"].as_str().unwrap_or_default();
        !HISTORY_STATUSES.contains(&status_now) && status.as_deref().is_none_or(|s| s == status_now)
    })
}

/// One page of the orders that `keep` accepts, oldest first, as ListOrders (no `shipment`,
/// plus the condition).
fn list_orders(
    shared: &Shared,
    q: &HashMap<String, String>,
    malformed: bool,
    keep: impl Fn(&Value) -> bool,
) -> Response {
    // The parameter that is not a number, if any.
    let number = |key: &'static str, default: usize| -> Result<usize, &'static str> {
        q.get(key)
            .map_or(Ok(default), |v| v.parse::<usize>().map_err(|_| key))
    };
    let (page, size) = match (number("pageNumber", 1), number("pageSize", 10)) {
        (Ok(page), Ok(size)) => (page, size),
        (Err(key), _) | (_, Err(key)) => {
            return error(StatusCode::BAD_REQUEST, &format!("{key} must be a number"))
        }
    };
    if page == 0 || size == 0 || size > 100 {
        return error(
            StatusCode::BAD_REQUEST,
            "pageNumber must be at least 1 and pageSize 1 to 100",
        );
    }
    // Sorted by reference and only the page cloned: 10,000 orders are listed in every call.
    let book = shared.orders.lock().expect("lock");
    let mut matching: Vec<&Value> = book.values().filter(|o| keep(o)).collect();
    fn key(o: &Value) -> (&str, &str) {
        (
            o["createdAt"].as_str().unwrap_or_default(),
            o["orderNumber"].as_str().unwrap_or_default(),
        )
    }
    matching.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
    let count = matching.len();
    let orders: Vec<Value> = matching
        .into_iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|order| {
            let mut order = order.clone();
            if let Some(o) = order.as_object_mut() {
                o.remove("shipment");
                o.insert("condition".into(), json!("NEW"));
                o.insert("conditionDescription".into(), Value::Null);
            }
            order
        })
        .collect();
    drop(book);
    answer(
        malformed,
        json!({"count": count, "pageSize": size, "pageNumber": page,
               "hasNextPage": page.saturating_mul(size) < count, "orders": orders}),
    )
}

/// `stockx-sync sandbox`: serves until `stop`.
pub async fn serve_until(
    addr: SocketAddr,
    options: SandboxOptions,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let handle = spawn(addr, options.clone()).await?;
    println!("StockX sandbox listening on {}", handle.base_url());
    println!("Point stockx-sync at it with:");
    println!("  export STOCKX_API_URL={}", handle.base_url());
    println!("  export STOCKX_AUTH_URL={}", handle.auth_url());
    println!("  export STOCKX_API_KEY={}", options.api_key);
    println!("  export STOCKX_CLIENT_ID={}", options.client_id);
    println!("  export STOCKX_CLIENT_SECRET={}", options.client_secret);
    println!("  export STOCKX_REFRESH_TOKEN={}", options.refresh_token);
    println!("Bundled orders:");
    for sale in bundled_sales() {
        println!(
            "  {}  {} size {}  sold {}  payout {} {}",
            sale.order_number, sale.sku, sale.size, sale.sale_price, sale.payout, sale.currency
        );
    }
    stop.cancelled().await;
    drop(handle);
    Ok(())
}
