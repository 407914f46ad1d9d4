//! The worker's schedule with real workers (`App`) on one database and a local Notion API: a
//! slot runs once however many workers there are, a slot missed while every worker was down
//! runs at the next start, and the daily refresh puts stale enrichments and warned sales back
//! in the queue.

use std::time::{Duration, Instant};

use serde_json::Value;
use stockx_sync::app::{App, AppError};
use stockx_sync::config::Settings;
use stockx_sync::schedule::store::{self, RunRow};
use stockx_sync::schedule::tasks::{RefreshStale, NOTION_RECONCILE};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Sale, TestDb};
use crate::notion::{
    list, mount_database_with_data_source, mount_supplier, sale_page, DB, DS_QUERY,
};

/// A Notion database with one sale, whatever the filter.
async fn notion() -> MockServer {
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    mount_supplier(&server, false).await;
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(
            vec![sale_page(1, "2025-03-01T10:00:00.000Z", Some("StockX"))],
            None,
        )))
        .mount(&server)
        .await;
    server
}

fn settings_for(server: &MockServer, reconcile: &str) -> Settings {
    let mut settings = Settings::default();
    settings.notion.api_url = server.uri().parse().unwrap();
    settings.notion.token = Some(secrecy::SecretString::from("ntn_test_token"));
    settings.notion.database_id = Some(DB.into());
    settings.notion.requests_per_second = 1000.0;
    settings.http.addr = "127.0.0.1:0".parse().unwrap();
    settings.worker.poll_interval_ms = 200;
    settings.schedule.reconcile = reconcile.into();
    // Far away: only the reconciliation is under test here.
    settings.schedule.refresh = "0 0 1 1 *".into();
    settings
}

struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), AppError>>,
    addr: std::net::SocketAddr,
}

async fn start(db: &TestDb, settings: &Settings) -> Running {
    let app = App::build(settings, db.pool.clone()).await.unwrap();
    let addr = app.http_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    Running { stop, task, addr }
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn queries(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == DS_QUERY)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_two_workers_each_slot_runs_once() {
    let db = TestDb::new().await;
    let server = notion().await;
    let settings = settings_for(&server, "* * * * * *");
    let first = start(&db, &settings).await;
    let second = start(&db, &settings).await;

    let pool = db.pool.clone();
    wait_for("six scheduled runs", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move { store::runs(&pool, NOTION_RECONCILE).await.unwrap().len() >= 6 }
    })
    .await;
    let metrics = reqwest::get(format!("http://{}/metrics", first.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    first.stop().await;
    second.stop().await;

    let runs: Vec<RunRow> = store::runs(&db.pool, NOTION_RECONCILE).await.unwrap();
    let slots: std::collections::HashSet<_> = runs.iter().map(|r| r.slot).collect();
    assert_eq!(slots.len(), runs.len(), "a slot ran twice: {runs:#?}");
    for pair in runs.windows(2) {
        assert!(
            pair[0].finished_at <= pair[1].started_at,
            "two runs overlapped: {pair:#?}"
        );
        assert!(pair[0].slot < pair[1].slot, "slots go forward: {pair:#?}");
    }
    assert!(runs.iter().all(|r| r.outcome == "success"), "{runs:#?}");
    // Every query Notion saw belongs to a recorded run; a run cut short at shutdown (one per
    // worker at most) has sent its query without finishing.
    let sent = queries(&server).await;
    assert!(
        sent >= runs.len() && sent <= runs.len() + 2,
        "{sent} queries for {} runs",
        runs.len()
    );
    let workers: std::collections::HashSet<&str> = runs.iter().map(|r| r.worker.as_str()).collect();
    eprintln!("{} runs by {} worker(s)", runs.len(), workers.len());

    // The first run imported the sale, the later ones skipped it: all logged as scheduled.
    let log: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT sync_status, trigger_type, synced_by FROM integration.notion_sale_sync_log",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(log.len() >= runs.len(), "{log:?}");
    assert!(log
        .iter()
        .all(|(_, trigger, by)| trigger == "scheduled" && by == "scheduler"));
    assert_eq!(log.iter().filter(|(s, _, _)| s == "success").count(), 1);
    assert_eq!(db.count("platforms.stockx_orders").await, 1);

    assert!(
        metrics.contains(
            "stockx_sync_scheduled_last_success_timestamp_seconds{task=\"notion_reconcile\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "stockx_sync_scheduled_runs_total{task=\"notion_reconcile\",outcome=\"success\"}"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_missed_while_every_worker_was_down_runs_at_the_next_start() {
    let db = TestDb::new().await;
    let server = notion().await;
    let settings = settings_for(&server, "0 2 * * *");

    // A first start sets the task up for the next 02:00 and runs nothing.
    let worker = start(&db, &settings).await;
    let pool = db.pool.clone();
    wait_for("the task's row", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move {
            store::task(&pool, NOTION_RECONCILE)
                .await
                .unwrap()
                .is_some()
        }
    })
    .await;
    worker.stop().await;
    let row = store::task(&db.pool, NOTION_RECONCILE)
        .await
        .unwrap()
        .unwrap();
    let now = store::database_now(&db.pool).await.unwrap();
    assert!(row.next_run_at > now, "{row:?}");
    assert_eq!(row.last_outcome, None);
    assert!(store::runs(&db.pool, NOTION_RECONCILE)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(queries(&server).await, 0);

    // Every worker stays down over the 02:00 slot (moved into the past: the test cannot wait
    // for a night), and a dead worker's lease has ended.
    let missed: time::OffsetDateTime = sqlx::query_scalar(
        "UPDATE integration.scheduled_tasks
         SET next_run_at = date_trunc('hour', now()) - interval '3 hours',
             locked_by = 'crashed-worker', locked_until = now() - interval '1 second'
         WHERE task = 'notion_reconcile' RETURNING next_run_at",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();

    let worker = start(&db, &settings).await;
    wait_for("the catch-up run", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move {
            !store::runs(&pool, NOTION_RECONCILE)
                .await
                .unwrap()
                .is_empty()
        }
    })
    .await;
    let report = stockx_sync::cli::status::collect(&db.pool).await.unwrap();
    worker.stop().await;

    let runs = store::runs(&db.pool, NOTION_RECONCILE).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].slot, missed);
    assert_eq!(runs[0].outcome, "success");
    assert_eq!(queries(&server).await, 1);
    let row = store::task(&db.pool, NOTION_RECONCILE)
        .await
        .unwrap()
        .unwrap();
    let now = store::database_now(&db.pool).await.unwrap();
    assert!(
        row.next_run_at > now && row.next_run_at - now <= time::Duration::hours(24),
        "the next slot is the coming 02:00: {row:?}"
    );
    assert_eq!(row.next_run_at.time(), time::macros::time!(02:00));
    assert_eq!(row.last_outcome.as_deref(), Some("success"));
    assert_eq!(row.running_on, None, "the lease is free");

    let text = report.to_string();
    assert!(
        text.contains("notion_reconcile") && text.contains("last run success"),
        "{text}"
    );
    let json: Value = serde_json::to_value(&report).unwrap();
    let task = json["schedule"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == NOTION_RECONCILE)
        .unwrap()
        .clone();
    assert_eq!(task["last_outcome"], "success", "{task}");
    assert!(task["next_run_at"].is_string(), "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reconciliation_is_recorded_and_counted() {
    let db = TestDb::new().await;
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "object": "error", "status": 401, "code": "unauthorized", "message": "API token is invalid."
        })))
        .mount(&server)
        .await;
    let settings = settings_for(&server, "* * * * * *");
    let worker = start(&db, &settings).await;
    let pool = db.pool.clone();
    wait_for("two failed runs", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move {
            store::task(&pool, NOTION_RECONCILE)
                .await
                .unwrap()
                .is_some_and(|t| t.consecutive_failures >= 2)
        }
    })
    .await;
    worker.stop().await;
    let row = store::task(&db.pool, NOTION_RECONCILE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.last_outcome.as_deref(), Some("failed"));
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("NOTION_TOKEN"),
        "{row:?}"
    );
    assert_eq!(row.last_success_at, None);
    let report = stockx_sync::cli::status::collect(&db.pool).await.unwrap();
    assert!(report.to_string().contains("failures in a row"), "{report}");
}

/// Order, inventory item and product IDs of a sale.
async fn ids(db: &TestDb, order: &str) -> stockx_sync::sales::OrderRef {
    stockx_sync::sales::find_order(&db.pool, order)
        .await
        .unwrap()
        .unwrap()
}

async fn open_jobs(db: &TestDb, kind: &str) -> Vec<uuid::Uuid> {
    sqlx::query_scalar(
        "SELECT entity_id FROM integration.enrichment_jobs
         WHERE kind = $1 AND state IN ('available', 'running', 'retryable') ORDER BY entity_id",
    )
    .bind(kind)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_daily_refresh_requeues_stale_enrichments_and_warned_sales() {
    let db = TestDb::new().await;
    for (order, sku) in [
        ("R-1", "AAA-001"),
        ("R-2", "BBB-002"),
        ("R-3", "CCC-003"),
        ("R-4", "DDD-004"),
    ] {
        let mut sale = Sale::new(order);
        sale.sku = sku;
        if order == "R-3" {
            sale.profit = Some("99.00"); // 160 - 110 = 50: a profit mismatch
        }
        sale.insert(&db.pool).await.unwrap();
    }
    let (r1, r2, r3, r4) = (
        ids(&db, "R-1").await,
        ids(&db, "R-2").await,
        ids(&db, "R-3").await,
        ids(&db, "R-4").await,
    );
    // As a worker with StockX left them: R-1 unknown to StockX (its SKU too), R-2 failed for
    // good, R-3 enriched with an open warning, R-4 enriched and clean.
    sqlx::query(
        "UPDATE platforms.stockx_orders SET enrichment_status = CASE stockx_order_number
             WHEN 'R-1' THEN 'not_found' WHEN 'R-2' THEN 'failed' ELSE 'enriched' END",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE products.products SET stockx_lookup_status = 'not_found' WHERE sku = 'AAA-001'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE products.products SET stockx_lookup_status = 'found', stockx_product_id = 'p-' || sku
         WHERE sku <> 'AAA-001'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE products.inventory SET stockx_variant_id = 'v-' || id WHERE id IN ($1, $2, $3)",
    )
    .bind(r2.inventory_id)
    .bind(r3.inventory_id)
    .bind(r4.inventory_id)
    .execute(&db.pool)
    .await
    .unwrap();
    let mut conn = db.connect().await;
    let order = stockx_sync::sales::load_order(&db.pool, r3.order_id)
        .await
        .unwrap()
        .unwrap();
    let findings = stockx_sync::validate::check_sale(&order.facts);
    assert!(!findings.is_empty());
    stockx_sync::validate::store::record_findings(
        &mut conn,
        stockx_sync::validate::store::Subject {
            entity_type: "order",
            entity_id: r3.order_id,
            order_number: Some("R-3"),
        },
        &stockx_sync::validate::SALE_RULES,
        &findings,
    )
    .await
    .unwrap();
    sqlx::query("UPDATE integration.enrichment_jobs SET state = 'completed', finished_at = now()")
        .execute(&db.pool)
        .await
        .unwrap();

    // Without StockX only the warnings are checked again.
    let summary = RefreshStale::new(db.pool.clone(), false, false)
        .refresh()
        .await
        .unwrap();
    assert_eq!(
        open_jobs(&db, "order").await,
        vec![r3.order_id],
        "{summary}"
    );
    assert!(open_jobs(&db, "inventory").await.is_empty(), "{summary}");
    let lookup: Option<String> = sqlx::query_scalar(
        "SELECT stockx_lookup_status FROM products.products WHERE sku = 'AAA-001'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(lookup.as_deref(), Some("not_found"));

    // With StockX: not found and failed orders again, the unknown SKU asked again.
    let summary = RefreshStale::new(db.pool.clone(), true, false)
        .refresh()
        .await
        .unwrap();
    let mut expected = vec![r1.order_id, r2.order_id, r3.order_id];
    expected.sort();
    assert_eq!(open_jobs(&db, "order").await, expected, "{summary}");
    assert_eq!(
        open_jobs(&db, "inventory").await,
        vec![r1.inventory_id],
        "{summary}"
    );
    let lookup: Option<String> = sqlx::query_scalar(
        "SELECT stockx_lookup_status FROM products.products WHERE sku = 'AAA-001'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(lookup, None, "the inventory job asks StockX again");
    let untouched: Option<String> = sqlx::query_scalar(
        "SELECT stockx_lookup_status FROM products.products WHERE sku = 'DDD-004'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(untouched.as_deref(), Some("found"));
    assert!(!open_jobs(&db, "order").await.contains(&r4.order_id));

    // Running it again adds nothing while those jobs are open.
    let before = db.count("integration.enrichment_jobs").await;
    RefreshStale::new(db.pool.clone(), true, false)
        .refresh()
        .await
        .unwrap();
    assert_eq!(db.count("integration.enrichment_jobs").await, before);
}

#[test]
fn a_bad_schedule_setting_stops_the_program_and_names_it() {
    for (variable, value, named) in [
        (
            "STOCKX_SYNC_RECONCILE_CRON",
            "0 25 * * *",
            "schedule.reconcile",
        ),
        (
            "STOCKX_SYNC_SCHEDULE_TIME_ZONE",
            "Mars/Olympus",
            "schedule.time_zone",
        ),
        ("STOCKX_SYNC_NOTION_WRITEBACK", "true", "notion.writeback"),
    ] {
        let out = crate::helpers::command()
            .arg("status")
            .env(variable, value)
            .env("DATABASE_URL", "postgres://127.0.0.1:1/none")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{variable}: {stderr}");
        assert!(
            stderr.contains(named) && stderr.contains(variable),
            "{variable}: {stderr}"
        );
    }
}
