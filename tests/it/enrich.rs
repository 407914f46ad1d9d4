//! Enrichment end to end: the real StockX client against the local sandbox (or wiremock for
//! scripted answers), the real worker, a real database.

use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use stockx_sync::app::{App, AppError};
use stockx_sync::config::Settings;
use stockx_sync::sandbox::{self, Faults, SandboxOptions};
use stockx_sync::stockx::{StockxClient, StockxError};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Sale, TestDb};

pub struct Setup {
    pub sandbox: sandbox::SandboxHandle,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), AppError>>,
}

/// Settings of a test worker: its StockX client pointed at `sandbox`, a free HTTP port, and a
/// quick safety-net poll.
pub fn settings_for(sandbox: &sandbox::SandboxHandle, rps: f64, concurrency: usize) -> Settings {
    let mut settings = Settings::default();
    sandbox.configure(&mut settings, rps);
    settings.http.addr = "127.0.0.1:0".parse().unwrap();
    settings.worker.concurrency = concurrency;
    settings.worker.poll_interval_ms = 200;
    settings.worker.shutdown_grace_secs = 5;
    settings
}

pub async fn start(db: &TestDb, rps: f64, faults: Faults, max_concurrency: usize) -> Setup {
    start_with(db, rps, faults, max_concurrency, |_| {}).await
}

pub async fn start_with(
    db: &TestDb,
    rps: f64,
    faults: Faults,
    max_concurrency: usize,
    adjust: impl FnOnce(&mut Settings),
) -> Setup {
    let sandbox = sandbox::spawn(
        "127.0.0.1:0".parse().unwrap(),
        SandboxOptions {
            faults,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut settings = settings_for(&sandbox, rps, max_concurrency);
    adjust(&mut settings);
    let app = App::build(&settings, db.pool.clone()).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    Setup {
        sandbox,
        stop,
        task,
    }
}

impl Setup {
    pub async fn stop(self) -> sandbox::SandboxHandle {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
        self.sandbox
    }
}

pub async fn wait_for_idle_queue(db: &TestDb, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM integration.enrichment_jobs
             WHERE state IN ('available', 'running', 'retryable')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if open == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{open} jobs still open");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until `condition` (a query returning one boolean) holds, failing after `timeout`.
async fn wait_until(db: &TestDb, condition: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let holds: bool = sqlx::query_scalar(condition)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if holds {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still false after {timeout:?}: {condition}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test]
#[allow(clippy::type_complexity)]
async fn a_sale_entered_like_budibase_is_enriched_and_checked() {
    let db = TestDb::new().await;
    let setup = start(&db, 50.0, Faults::default(), 4).await;
    // Sandbox order 323314425-323214184: DD1391-100 size 10, sold 140, payout 140 − 11.20 − 4.20 − 5 = 119.60.
    let mut good = Sale::new("323314425-323214184");
    good.net_proceeds = "119.60";
    good.insert(&db.pool).await.unwrap();
    let mut wrong = Sale::new("55476797-55376556");
    wrong.sku = "HQ4276";
    wrong.size = "9.5";
    wrong.net_proceeds = "120.00"; // StockX paid 128.50
    wrong.profit = Some("1.00");
    wrong.insert(&db.pool).await.unwrap();
    let mut unknown = Sale::new("399000001-398900002");
    unknown.sku = "ZZ9999-999";
    unknown.insert(&db.pool).await.unwrap();
    // What the assertions read is written by both jobs of each sale: wait until the order jobs
    // have enriched the orders and the inventory jobs have stored variant and market data.
    wait_until(
        &db,
        "SELECT (SELECT count(*) FROM platforms.stockx_orders WHERE enrichment_status = 'pending') = 0
            AND EXISTS (SELECT 1 FROM products.inventory WHERE stockx_variant_id = '5e6a1e57-10')
            AND EXISTS (SELECT 1 FROM platforms.marketplace_data WHERE stockx_variant_id = '5e6a1e57-10')
            AND EXISTS (SELECT 1 FROM products.products WHERE sku = 'ZZ9999-999'
                        AND stockx_lookup_status = 'not_found')",
        Duration::from_secs(30),
    )
    .await;
    wait_for_idle_queue(&db, Duration::from_secs(30)).await;
    setup.stop().await;

    let (status, stockx_status, payout, adjustments, product_id, variant_id): (
        String,
        Option<String>,
        Option<Decimal>,
        Option<Decimal>,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT enrichment_status, stockx_status, stockx_total_payout, stockx_total_adjustments,
                stockx_product_id, stockx_variant_id
         FROM platforms.stockx_orders WHERE stockx_order_number = '323314425-323214184'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(status, "enriched");
    assert_eq!(stockx_status.as_deref(), Some("PAYOUTCOMPLETED"));
    assert_eq!(payout, Some(dec("119.60")));
    assert_eq!(adjustments, Some(dec("-20.40")));
    assert_eq!(
        product_id.as_deref(),
        Some("5e6a1e57-1c7d-435a-82bd-5666a13560fe")
    );
    assert_eq!(variant_id.as_deref(), Some("5e6a1e57-10"));

    let (name, brand, retail, inv_variant): (
        Option<String>,
        Option<String>,
        Option<Decimal>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT p.name, p.brand, p.retail_price, i.stockx_variant_id
             FROM products.products p JOIN products.inventory i ON i.product_id = p.id
             WHERE p.sku = 'DD1391-100' LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        name.as_deref(),
        Some("Nike Dunk Low Retro White Black Panda"),
        "the inventory job ran (variant stored) but the catalog's details are missing"
    );
    assert_eq!(brand.as_deref(), Some("Nike"));
    assert_eq!(retail, Some(dec("110")));
    assert_eq!(inv_variant.as_deref(), Some("5e6a1e57-10"));

    let market: (Option<Decimal>, Option<Decimal>, String) = sqlx::query_as(
        "SELECT lowest_ask, highest_bid, currency FROM platforms.marketplace_data
         WHERE stockx_variant_id = '5e6a1e57-10'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        market,
        (Some(dec("112")), Some(dec("95")), "EUR".to_string())
    );

    let warnings: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT rule, stockx_order_number FROM integration.validation_warnings
         WHERE resolved_at IS NULL ORDER BY stockx_order_number, rule",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let w = |rule: &str, order: &str| (rule.to_string(), Some(order.to_string()));
    assert_eq!(
        warnings,
        vec![
            w("stockx_product_not_found", "399000001-398900002"),
            w("payout_mismatch", "55476797-55376556"),
            // Only the profit was typed: the ROI computed from it is not warned about.
            w("profit_mismatch", "55476797-55376556"),
        ]
    );
    let not_found: String = sqlx::query_scalar(
        "SELECT enrichment_status FROM platforms.stockx_orders
         WHERE stockx_order_number = '399000001-398900002'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(not_found, "not_found");
}

/// The order job can store the product ID (from the order) before the inventory job asks the
/// catalog. The inventory job must still fetch the catalog's details by that ID.
#[tokio::test]
async fn catalog_details_are_filled_when_the_order_gave_the_product_id_first() {
    let db = TestDb::new().await;
    let mut sale = Sale::new("323314425-323214184");
    sale.net_proceeds = "119.60";
    sale.insert(&db.pool).await.unwrap();
    // Hold the inventory job back so the order job certainly runs first.
    sqlx::query(
        "UPDATE integration.enrichment_jobs SET run_after = now() + interval '1 hour'
         WHERE kind = 'inventory'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let setup = start(&db, 50.0, Faults::default(), 4).await;
    wait_until(
        &db,
        "SELECT EXISTS (SELECT 1 FROM products.products WHERE sku = 'DD1391-100'
                        AND stockx_product_id IS NOT NULL)
            AND NOT EXISTS (SELECT 1 FROM integration.enrichment_jobs
                            WHERE kind = 'order' AND state <> 'completed')",
        Duration::from_secs(30),
    )
    .await;
    sqlx::query(
        "UPDATE integration.enrichment_jobs SET run_after = now() WHERE kind = 'inventory'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    wait_for_idle_queue(&db, Duration::from_secs(30)).await;
    setup.stop().await;

    let (brand, retail, url_key): (Option<String>, Option<Decimal>, Option<String>) =
        sqlx::query_as(
            "SELECT brand, retail_price, stockx_url_key FROM products.products
             WHERE sku = 'DD1391-100'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(brand.as_deref(), Some("Nike"));
    assert_eq!(retail, Some(dec("110")));
    assert!(url_key.is_some(), "the catalog's url key is stored");
}

#[tokio::test]
async fn fixing_a_sale_resolves_its_warning_and_rerunning_duplicates_nothing() {
    let db = TestDb::new().await;
    let setup = start(&db, 50.0, Faults::default(), 4).await;
    let mut sale = Sale::new("323314425-323214184");
    sale.net_proceeds = "119.60";
    sale.profit = Some("5.00");
    sale.insert(&db.pool).await.unwrap();
    wait_for_idle_queue(&db, Duration::from_secs(10)).await;
    // Re-run both jobs by touching the row twice: still one open warning per rule.
    for roi in ["0.1", "0.2"] {
        sqlx::query("UPDATE platforms.stockx_orders SET roi = $1::numeric")
            .bind(roi)
            .execute(&db.pool)
            .await
            .unwrap();
        wait_for_idle_queue(&db, Duration::from_secs(10)).await;
    }
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM integration.validation_warnings
         WHERE resolved_at IS NULL AND rule = 'profit_mismatch'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(open, 1);
    // 119.60 − 110.00 = 9.60; ROI 9.60 / 110 = 0.0873
    sqlx::query("UPDATE platforms.stockx_orders SET net_profit = 9.60, roi = 0.0873")
        .execute(&db.pool)
        .await
        .unwrap();
    wait_for_idle_queue(&db, Duration::from_secs(10)).await;
    setup.stop().await;
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "SELECT rule, resolved_at IS NOT NULL FROM integration.validation_warnings ORDER BY rule",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("profit_mismatch".to_string(), true),
            ("roi_mismatch".to_string(), true)
        ]
    );
}

#[tokio::test]
async fn one_catalog_lookup_per_distinct_sku() {
    let db = TestDb::new().await;
    let skus = [
        "DD1391-100",
        "HQ4276",
        "B75806",
        "DZ5485-612",
        "CP9654",
        "BB550WT1",
        "FD0774-101",
        "1183A201-100",
        "DD1391-103",
        "NOPE-404",
    ];
    let sizes = [
        "8", "9", "9.5", "10", "10.5", "11", "11.5", "12", "7", "8.5",
    ];
    // Entered before the worker starts, so that many jobs of one SKU run at the same time.
    for i in 0..100 {
        let order = format!("CACHE-{i:03}");
        let mut sale = Sale::new(&order);
        sale.sku = skus[i % 10];
        sale.size = sizes[(i / 10) % 10];
        sale.insert(&db.pool).await.unwrap();
    }
    let setup = start(&db, 500.0, Faults::default(), 8).await;
    wait_for_idle_queue(&db, Duration::from_secs(60)).await;
    let sandbox = setup.stop().await;
    assert_eq!(
        sandbox.request_count("/catalog/search"),
        10,
        "one search per SKU"
    );
    assert_eq!(
        sandbox.request_count("/catalog/products/{productId}/variants"),
        9,
        "variants once per product found"
    );
    assert_eq!(
        sandbox.request_count("/catalog/products/{productId}/market-data"),
        9,
        "market data once per product (all sizes in one call)"
    );
    assert_eq!(
        sandbox.request_count("/oauth/token"),
        1,
        "one token for all"
    );
    let enriched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM products.inventory WHERE stockx_variant_id IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(enriched, 90);
}

/// A runtime that is shut down without blocking, so that dropping it inside a test (also while
/// a failed assertion unwinds) is allowed.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The sandbox on a runtime of its own: the times it records are when requests arrive, not
/// when the test's runtime, busy with the worker, got round to handling them.
fn sandbox_on_its_own_runtime(faults: Faults) -> (OwnRuntime, sandbox::SandboxHandle) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let handle = runtime
            .block_on(sandbox::spawn(
                "127.0.0.1:0".parse().unwrap(),
                SandboxOptions {
                    faults,
                    ..Default::default()
                },
            ))
            .unwrap();
        (OwnRuntime(Some(runtime)), handle)
    })
    .join()
    .unwrap()
}

/// The client sends at most `rps` requests per second, evenly, seen from the server. Single
/// gaps are not compared with `1/rps`: the time from the client's send to the server's arrival
/// varies by a few milliseconds under load, so one request late and the next on time looks like
/// a short gap. Instead: over any 8 consecutive gaps that variation counts at most once
/// (tolerance [`ARRIVAL_JITTER`]), which still fails a client at 1.3 × the rate; and no three
/// requests arrive within one period, which fails any burst.
pub fn assert_never_faster_than(times: &[Instant], rps: f64) {
    const GAPS: usize = 8;
    const ARRIVAL_JITTER: Duration = Duration::from_millis(100);
    assert!(
        times.len() > GAPS,
        "too few requests to judge: {}",
        times.len()
    );
    let period = Duration::from_secs_f64(1.0 / rps);
    let least = period.mul_f64(GAPS as f64).saturating_sub(ARRIVAL_JITTER);
    for (i, window) in times.windows(GAPS + 1).enumerate() {
        let span = window[GAPS].duration_since(window[0]);
        assert!(
            span >= least,
            "requests {i}..{}: {GAPS} gaps in {span:?}, faster than {rps}/s (at least {least:?})",
            i + GAPS
        );
    }
    for (i, three) in times.windows(3).enumerate() {
        let span = three[2].duration_since(three[0]);
        assert!(
            span >= period,
            "requests {i}..{}: three within {span:?}, a burst (period {period:?})",
            i + 2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_waited_out_without_exceeding_the_rate() {
    let db = TestDb::new().await;
    let faults = Faults {
        throttle_every_nth: Some(3),
        retry_after_secs: 1,
        ..Faults::default()
    };
    let rps = 20.0;
    for (i, sku) in ["DD1391-100", "HQ4276", "B75806"].iter().enumerate() {
        let order = format!("STORM-{i}");
        let mut sale = Sale::new(&order);
        sale.sku = sku;
        sale.insert(&db.pool).await.unwrap();
    }
    let (_runtime, sandbox) = sandbox_on_its_own_runtime(faults);
    let app = App::build(&settings_for(&sandbox, rps, 4), db.pool.clone())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    wait_for_idle_queue(&db, Duration::from_secs(60)).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    let times = sandbox.api_request_times();
    assert!(times.len() >= 9, "{} requests", times.len());
    assert_never_faster_than(&times, rps);
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM integration.enrichment_jobs WHERE state <> 'completed'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(failed, 0, "nothing lost to a 429");
    let enriched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM products.inventory WHERE stockx_variant_id IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(enriched, 3);
}

#[tokio::test]
async fn server_errors_retry_then_dead_letter_and_mark_the_order_failed() {
    let db = TestDb::new().await;
    let faults = Faults {
        server_error_every_nth: Some(1),
        ..Faults::default()
    };
    let mut sale = Sale::new("323314425-323214184");
    sale.net_proceeds = "119.60";
    sale.insert(&db.pool).await.unwrap();
    let setup = start_with(&db, 100.0, faults, 4, |settings| {
        settings.worker.max_attempts = 2
    })
    .await;
    wait_for_idle_queue(&db, Duration::from_secs(15)).await;
    setup.stop().await;
    let jobs: Vec<(String, String, i16, String)> = sqlx::query_as(
        "SELECT kind, state, attempt, last_error FROM integration.enrichment_jobs ORDER BY kind",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for (kind, state, attempt, error) in &jobs {
        assert_eq!((state.as_str(), *attempt), ("failed", 2), "{kind}");
        assert!(error.contains("503"), "{kind}: {error}");
    }
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT enrichment_status, enrichment_error FROM platforms.stockx_orders")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("503"));
}

#[tokio::test]
async fn malformed_json_fails_the_job_clearly_and_the_worker_keeps_going() {
    let db = TestDb::new().await;
    let faults = Faults {
        malformed_json: true,
        ..Faults::default()
    };
    Sale::new("323314425-323214184")
        .insert(&db.pool)
        .await
        .unwrap();
    let setup = start(&db, 100.0, faults, 4).await;
    wait_for_idle_queue(&db, Duration::from_secs(10)).await;
    let errors: Vec<(String, String, i16)> = sqlx::query_as(
        "SELECT state, last_error, attempt FROM integration.enrichment_jobs ORDER BY kind",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for (state, error, attempt) in &errors {
        assert_eq!(
            (state.as_str(), *attempt),
            ("failed", 1),
            "permanent: {error}"
        );
        assert!(error.contains("not the documented JSON"), "{error}");
    }
    // The worker is still alive and takes the next job once StockX behaves.
    setup.sandbox.set_faults(Faults::default());
    let mut next = Sale::new("55476797-55376556");
    next.sku = "HQ4276";
    next.size = "9.5";
    next.insert(&db.pool).await.unwrap();
    wait_for_idle_queue(&db, Duration::from_secs(10)).await;
    setup.stop().await;
    let status: String = sqlx::query_scalar(
        "SELECT enrichment_status FROM platforms.stockx_orders WHERE stockx_order_number = '55476797-55376556'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(status, "enriched");
}

#[tokio::test]
async fn refused_credentials_keep_jobs_waiting_and_readyz_says_why() {
    let db = TestDb::new().await;
    let sandbox = sandbox::spawn("127.0.0.1:0".parse().unwrap(), SandboxOptions::default())
        .await
        .unwrap();
    let mut settings = settings_for(&sandbox, 50.0, 4);
    settings.stockx.refresh_token = Some(secrecy::SecretString::from("revoked".to_string()));
    Sale::new("323314425-323214184")
        .insert(&db.pool)
        .await
        .unwrap();
    let app = App::build(&settings, db.pool.clone()).await.unwrap();
    let addr = app.http_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));

    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let response = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
        if response.status() == 503 {
            let body: serde_json::Value = response.json().await.unwrap();
            if body.to_string().contains("refused the credentials") {
                break body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "readyz never reported the credentials"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(body.to_string().contains("STOCKX_REFRESH_TOKEN"), "{body}");
    stop.cancel();
    task.await.unwrap().unwrap();
    let rows: Vec<(String, i16)> =
        sqlx::query_as("SELECT state, attempt FROM integration.enrichment_jobs")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    for (state, attempt) in rows {
        assert_eq!(
            (state.as_str(), attempt),
            ("available", 0),
            "waiting, not failed"
        );
    }
    let status: String =
        sqlx::query_scalar("SELECT enrichment_status FROM platforms.stockx_orders")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "pending");
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_retries() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let token_answer = |t: &str| {
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": t, "token_type": "Bearer", "expires_in": 43200
        }))
    };
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(token_answer("first"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(token_answer("second"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/selling/orders/1-2"))
        .and(header("authorization", "Bearer first"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({"statusCode": 401, "message": "Unauthorized"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/selling/orders/1-2"))
        .and(header("authorization", "Bearer second"))
        .and(header("x-api-key", "k"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "orderNumber": "1-2", "status": "COMPLETED", "amount": "100",
            "payout": {"totalPayout": "88.5", "currencyCode": "EUR", "adjustments": []}
        })))
        .mount(&server)
        .await;
    let client = StockxClient::new(stockx_sync::stockx::ClientConfig {
        api_url: server.uri().parse().unwrap(),
        auth_url: format!("{}/oauth/token", server.uri()).parse().unwrap(),
        api_key: secrecy::SecretString::from("k".to_string()),
        client_id: "c".into(),
        client_secret: secrecy::SecretString::from("s".to_string()),
        refresh_token: secrecy::SecretString::from("r".to_string()),
        requests_per_second: 100.0,
        daily_budget: 100,
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let order = client.order("1-2").await.unwrap().unwrap();
    assert_eq!(order.payout.unwrap().total_payout, Some(dec("88.5")));
    let requests = server.received_requests().await.unwrap();
    let tokens = requests
        .iter()
        .filter(|r| r.url.path() == "/oauth/token")
        .count();
    assert_eq!(tokens, 2, "one refresh after the 401");
    let form = String::from_utf8_lossy(&requests[0].body).to_string();
    assert!(
        form.contains("grant_type=refresh_token") && form.contains("audience=gateway.stockx.com"),
        "{form}"
    );
}

#[tokio::test]
async fn concurrent_callers_share_one_token_and_the_daily_budget_is_enforced() {
    let sandbox = sandbox::spawn("127.0.0.1:0".parse().unwrap(), SandboxOptions::default())
        .await
        .unwrap();
    let mut config = sandbox.client_config(1000.0);
    config.daily_budget = 5;
    let client = StockxClient::new(config).unwrap();
    let calls = (0..5).map(|_| {
        let client = client.clone();
        async move { client.search_product_by_sku("DD1391-100").await }
    });
    for result in futures::future::join_all(calls).await {
        let product = result.unwrap().unwrap();
        assert_eq!(
            product.style_id.as_deref(),
            Some("DD1391-100"),
            "exact match among near matches"
        );
    }
    assert_eq!(sandbox.request_count("/oauth/token"), 1);
    match client.search_product_by_sku("HQ4276").await {
        Err(e @ StockxError::BudgetExhausted { .. }) => {
            assert!(e.is_transient());
            assert!(e.retry_after().unwrap() > Duration::from_secs(86_000));
        }
        other => panic!("expected the budget to be exhausted, got {other:?}"),
    }
    assert_eq!(
        sandbox.request_count("/catalog/search"),
        5,
        "the sixth was never sent"
    );
}

/// Variants are cached, but not for ever: a size StockX adds after the first lookup is found
/// by a later job (the recheck interval is 0 here: a missing size always asks StockX again).
#[tokio::test]
async fn a_size_added_to_stockx_after_the_first_lookup_is_found_later() {
    let db = TestDb::new().await;
    let sandbox = sandbox::spawn("127.0.0.1:0".parse().unwrap(), SandboxOptions::default())
        .await
        .unwrap();
    let mut settings = settings_for(&sandbox, 100.0, 2);
    settings.stockx.variant_recheck_secs = 0;
    let app = App::build(&settings, db.pool.clone()).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    let variant_of = |order: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT i.stockx_variant_id FROM products.inventory i
                 JOIN platforms.stockx_listings l ON l.inventory_id = i.id
                 JOIN platforms.stockx_orders o ON o.listing_id = l.id
                 WHERE o.stockx_order_number = $1",
            )
            .bind(order)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };

    let mut first = Sale::new("NEWSIZE-1");
    first.size = "14";
    first.insert(&db.pool).await.unwrap();
    wait_for_idle_queue(&db, Duration::from_secs(20)).await;
    assert_eq!(variant_of("NEWSIZE-1").await, None, "StockX has no 14 yet");
    let not_found: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM integration.validation_warnings
         WHERE rule = 'stockx_variant_not_found' AND resolved_at IS NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(not_found, 1);

    sandbox.add_size("5e6a1e57-1c7d-435a-82bd-5666a13560fe", "14", "48.5");
    let mut second = Sale::new("NEWSIZE-2");
    second.size = "14";
    second.insert(&db.pool).await.unwrap();
    wait_for_idle_queue(&db, Duration::from_secs(20)).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(
        variant_of("NEWSIZE-2").await.as_deref(),
        Some("5e6a1e57-14"),
        "the new size is found without a restart"
    );
}

/// Market data without `currencyCode` is stored in the currency it was asked in
/// (`STOCKX_CURRENCY`), not in a fixed one.
#[tokio::test]
async fn market_data_is_stored_in_the_configured_currency() {
    let db = TestDb::new().await;
    let sandbox = sandbox::spawn(
        "127.0.0.1:0".parse().unwrap(),
        SandboxOptions {
            faults: Faults {
                market_data_without_currency: true,
                ..Faults::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut settings = settings_for(&sandbox, 100.0, 2);
    settings.stockx.currency = "USD".into();
    let app = App::build(&settings, db.pool.clone()).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    Sale::new("CURRENCY-1").insert(&db.pool).await.unwrap();
    wait_for_idle_queue(&db, Duration::from_secs(20)).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    let rows: Vec<(String, Option<Decimal>)> =
        sqlx::query_as("SELECT currency, lowest_ask FROM platforms.marketplace_data")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    // 112 EUR × 1.08 for US M 10 in the sandbox's fixed rates.
    assert_eq!(rows, vec![("USD".to_string(), Some(dec("121")))]);
}
