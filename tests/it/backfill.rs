//! The Notion backfill into a real database: the command on export files (idempotency, dry
//! run, broken rows, the sync log), the API source with its watermark, and the n8n endpoints.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{command, TestDb};
use crate::notion::{
    fixture, list, mount_database_with_data_source, mount_supplier, page_id, sale_page, DB,
    DS_QUERY,
};

fn backfill(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let out = command()
        .args(["backfill", "notion"])
        .args(args)
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every table's row count and the money totals: "nothing changed" in one value.
async fn snapshot(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT concat_ws(' ', (SELECT count(*) FROM products.suppliers), (SELECT count(*) FROM products.sizes),
                (SELECT count(*) FROM products.products), (SELECT count(*) FROM products.inventory),
                (SELECT count(*) FROM platforms.stockx_listings), (SELECT count(*) FROM platforms.stockx_orders),
                (SELECT count(*) FROM integration.enrichment_jobs),
                (SELECT sum(net_proceeds) FROM platforms.stockx_orders),
                (SELECT sum(purchase_price) FROM products.inventory))",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_export_imports_once_and_a_second_run_changes_nothing() {
    let db = TestDb::new().await;
    let file = fixture("sales_bom.csv");
    let (code, stdout, stderr) = backfill(&db, &["--csv", file.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let first: Value = serde_json::from_str(&stdout).unwrap();
    assert!(first["created"].as_u64().unwrap() >= 2, "{first}");
    assert_eq!(first["failed"], 0);
    let after_first = snapshot(&db).await;

    let (code, stdout, _) = backfill(&db, &["--csv", file.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0);
    let second: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(second["created"], 0);
    assert_eq!(second["skipped"], first["created"]);
    assert_eq!(
        snapshot(&db).await,
        after_first,
        "the second run changed nothing"
    );

    // European money, US dates: €1,234.56 stored exactly.
    let price: rust_decimal::Decimal = sqlx::query_scalar(
        "SELECT i.purchase_price FROM products.inventory i
         JOIN products.products p ON p.id = i.product_id WHERE p.sku = 'DZ5485-612'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(price.to_string(), "1234.56");
    let log: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT sync_status, trigger_type, synced_by FROM integration.notion_sale_sync_log
         ORDER BY synced_at, stockx_order_number",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let created = first["created"].as_u64().unwrap() as usize;
    // Rows of other platforms are logged too (as skipped), in both runs.
    let records = first["records"].as_u64().unwrap() as usize;
    let other = first["skipped_other_platform"].as_u64().unwrap() as usize;
    assert_eq!(log.len(), 2 * records, "one log row per record per run");
    assert!(log
        .iter()
        .all(|(_, trigger, by)| trigger == "manual" && by == "stockx-sync"));
    assert_eq!(
        log.iter().filter(|(s, _, _)| s == "skipped").count(),
        created + 2 * other,
        "the second run's rows are skipped"
    );
}

#[tokio::test]
async fn a_broken_row_is_reported_and_the_rest_are_imported() {
    let db = TestDb::new().await;
    let file = fixture("sales_broken.csv");
    let (code, stdout, stderr) = backfill(&db, &["--csv", file.to_str().unwrap()]);
    assert_eq!(code, 1, "exit 1 when a record failed: {stdout}\n{stderr}");
    assert!(stdout.contains("FAILED row 6"), "names the row: {stdout}");
    assert!(stdout.contains("Net Sale"), "names the column: {stdout}");
    assert!(stdout.contains("€twelve"), "shows the raw value: {stdout}");
    let orders: Vec<String> =
        sqlx::query_scalar("SELECT stockx_order_number FROM platforms.stockx_orders ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert!(
        orders.contains(&"75300001-75300002".to_string()),
        "{orders:?}"
    );
    assert!(
        orders.contains(&"75300007-75300008".to_string()),
        "rows after the broken one: {orders:?}"
    );
    assert!(!orders.contains(&"75300005-75300006".to_string()));
    // The order number that appears twice in the file is imported once, then skipped.
    let dup: Vec<String> = sqlx::query_scalar(
        "SELECT sync_status FROM integration.notion_sale_sync_log
         WHERE stockx_order_number = '75300001-75300002' ORDER BY synced_at",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(dup.len(), 2);
    assert_eq!(dup[1], "skipped");
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM integration.notion_sale_sync_log WHERE sync_status = 'failed'
           AND error_message IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(failed >= 1);
}

#[tokio::test]
async fn a_dry_run_reports_the_same_and_writes_nothing() {
    let db = TestDb::new().await;
    let file = fixture("sales_bom.csv");
    let before = snapshot(&db).await;
    let (code, stdout, _) = backfill(
        &db,
        &["--csv", file.to_str().unwrap(), "--dry-run", "--json"],
    );
    assert_eq!(code, 0, "{stdout}");
    let dry: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(snapshot(&db).await, before);
    assert_eq!(db.count("integration.notion_sale_sync_log").await, 0);
    let (_, stdout, _) = backfill(&db, &["--csv", file.to_str().unwrap(), "--json"]);
    let real: Value = serde_json::from_str(&stdout).unwrap();
    for key in ["records", "created", "skipped", "failed", "with_warnings"] {
        assert_eq!(dry[key], real[key], "{key}");
    }
}

#[tokio::test]
async fn a_mapping_that_does_not_fit_lists_the_columns_the_export_has() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("stockx-sync.toml");
    std::fs::write(&settings, "[notion.mapping]\nnet_proceeds = \"Payout\"\n").unwrap();
    let file = fixture("sales_bom.csv");
    let out = command()
        .args([
            "backfill",
            "notion",
            "--csv",
            file.to_str().unwrap(),
            "--config",
        ])
        .arg(&settings)
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Payout"), "{stderr}");
    assert!(
        stderr.contains("Net Sale"),
        "lists what the export has: {stderr}"
    );
}

async fn notion_with_pages(pages: Vec<Value>) -> MockServer {
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    mount_supplier(&server, false).await;
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(pages, None)))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_source_imports_and_the_next_run_starts_from_its_watermark() {
    let db = TestDb::new().await;
    let server = notion_with_pages(vec![
        sale_page(1, "2025-03-01T10:00:00.000Z", Some("StockX")),
        sale_page(2, "2025-03-02T11:30:00.000Z", Some("StockX")),
        sale_page(3, "2025-03-02T12:00:00.000Z", Some("GOAT")),
    ])
    .await;
    let (db_url, notion_url) = (db.url(), server.uri());
    let run = move || {
        command()
            .args(["backfill", "notion", "--json"])
            .env("DATABASE_URL", &db_url)
            .env("NOTION_API_URL", &notion_url)
            .env("NOTION_TOKEN", "ntn_test_token")
            .env("NOTION_DATABASE_ID", DB)
            .output()
            .unwrap()
    };
    let out = tokio::task::spawn_blocking(run.clone()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (
            report["created"].as_u64(),
            report["skipped_other_platform"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let watermark: String = sqlx::query_scalar(
        "SELECT to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM integration.notion_sync_state",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(watermark, "2025-03-02 12:00");
    let page_ids: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT notion_page_id FROM integration.notion_sale_sync_log ORDER BY stockx_order_number",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    // The GOAT page is logged too (skipped), after the two sales.
    assert_eq!(
        page_ids,
        vec![Some(page_id(1)), Some(page_id(2)), Some(page_id(3))]
    );

    let out = tokio::task::spawn_blocking(run).await.unwrap();
    assert!(out.status.success());
    let requests = server.received_requests().await.unwrap();
    let last_query = requests
        .iter()
        .rev()
        .find(|r| r.url.path() == DS_QUERY)
        .unwrap();
    let body: Value = serde_json::from_slice(&last_query.body).unwrap();
    // 12:00 minus the 5-minute overlap.
    assert!(
        body.to_string().contains("2025-03-02T11:55:00"),
        "incremental filter: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_n8n_endpoints_require_the_token_validate_the_body_and_sync_one_sale() {
    let db = TestDb::new().await;
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    mount_supplier(&server, false).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/pages/{}", page_id(5))))
        .respond_with(ResponseTemplate::new(200).set_body_json(sale_page(
            5,
            "2025-01-01T10:00:00.000Z",
            Some("StockX"),
        )))
        .mount(&server)
        .await;
    let mut settings = stockx_sync::config::Settings::default();
    settings.notion.api_url = server.uri().parse().unwrap();
    settings.notion.token = Some(secrecy::SecretString::from("ntn_test_token"));
    settings.notion.database_id = Some(DB.into());
    let serve = |token: Option<&str>| {
        let mut settings = settings.clone();
        settings.http.api_token = token.map(secrecy::SecretString::from);
        let bridge = stockx_sync::http::notion::NotionBridge::new(db.pool.clone(), settings);
        let app = stockx_sync::http::router(
            stockx_sync::http::AppState {
                pool: db.pool.clone(),
                health: Default::default(),
                metrics: stockx_sync::http::metrics_handle(),
                poll_only: true,
            },
            Some(bridge),
        );
        stockx_sync::http::serve("127.0.0.1:0".parse().unwrap(), app, Default::default())
    };
    let http = reqwest::Client::new();
    let url = |addr: std::net::SocketAddr, p: &str| {
        format!("http://{addr}/api/v1/integration/notion-sale/{p}")
    };

    let (no_token, _) = serve(None).await.unwrap();
    let r = http
        .post(url(no_token, "sync"))
        .bearer_auth("x")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);

    let (addr, _) = serve(Some("s3cret")).await.unwrap();
    let r = http
        .post(url(addr, "sync"))
        .json(&json!({"stockx_order_number": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(url(addr, "sync"))
        .bearer_auth("wrong")
        .json(&json!({"stockx_order_number": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(url(addr, "sync"))
        .bearer_auth("s3cret")
        .json(&json!({"notion_page_id": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("stockx_order_number"),
        "{body}"
    );
    let r = http
        .post(url(addr, "sync"))
        .bearer_auth("s3cret")
        .json(&json!({"stockx_order_number": "75000005-76000005", "trigger": "sometimes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let request = json!({"stockx_order_number": "75000005-76000005", "notion_page_id": page_id(5), "trigger": "webhook"});
    let r = http
        .post(url(addr, "sync"))
        .bearer_auth("s3cret")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let entry: Value = r.json().await.unwrap();
    assert_eq!(entry["outcome"], "created", "{entry}");
    assert_eq!(entry["sync_status"], "success", "{entry}");
    assert_eq!(entry["trigger_type"], "webhook");
    assert!(entry["entities_created"]["order"].is_string(), "{entry}");
    // Idempotent: the same call again skips.
    let again: Value = http
        .post(url(addr, "sync"))
        .bearer_auth("s3cret")
        .json(&request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["outcome"], "skipped");
    assert_eq!(db.count("platforms.stockx_orders").await, 1);

    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(list(vec![], None))
                .set_delay(Duration::from_millis(500)),
        )
        .mount(&server)
        .await;
    let first = http
        .post(url(addr, "batch-sync?hours=2"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    let body: Value = first.json().await.unwrap();
    assert!(body["run_id"].is_string());
    let second = http
        .post(url(addr, "batch-sync?hours=2"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 409, "one batch at a time");
    let bad = http
        .post(url(addr, "batch-sync?hours=abc"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn update_writes_only_what_changed() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(fixture("sales_bom.csv")).unwrap();
    let file = dir.path().join("sales.csv");
    std::fs::write(&file, &original).unwrap();
    let (code, _, _) = backfill(&db, &["--csv", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    // The first sale's Net Sale changes in Notion.
    std::fs::write(
        &file,
        original.replacen("\"€1,500.00\"", "\"€1,510.00\"", 1),
    )
    .unwrap();
    let (_, stdout, _) = backfill(&db, &["--csv", file.to_str().unwrap(), "--json"]);
    let without: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(without["updated"], 0, "without --update nothing is touched");
    let (_, stdout, _) = backfill(
        &db,
        &["--csv", file.to_str().unwrap(), "--update", "--json"],
    );
    let with: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(with["updated"], 1, "{with}");
    assert_eq!(
        with["skipped"].as_u64(),
        Some(without["skipped"].as_u64().unwrap() - 1)
    );
    let net: rust_decimal::Decimal = sqlx::query_scalar(
        "SELECT net_proceeds FROM platforms.stockx_orders WHERE stockx_order_number = '75123456-75123457'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(net.to_string(), "1510.00");
}

#[tokio::test]
async fn a_crlf_export_names_the_spreadsheet_row_in_the_report_and_the_sync_log() {
    use crate::notion_export::{crlf_export, line};
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = (1..=6)
        .map(|n| line(&format!("7590000{n}-7690000{n}"), "€100.00", "€150.00"))
        .collect();
    lines[4] = line("75900005-76900005", "€100.00", "€twelve");
    let file = dir
        .path()
        .join("Sales 0123456789abcdef0123456789abcdef_all.csv");
    std::fs::write(&file, crlf_export(&lines)).unwrap();
    let (code, stdout, stderr) = backfill(&db, &["--csv", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("FAILED row 6"), "header = row 1: {stdout}");
    let errors: Vec<String> = sqlx::query_scalar(
        "SELECT error_message FROM integration.notion_sale_sync_log WHERE sync_status = 'failed'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("row 6, column \"Net Sale\""),
        "{errors:?}"
    );
    assert_eq!(db.count("platforms.stockx_orders").await, 5);
}

#[tokio::test]
async fn an_export_without_optional_columns_imports() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Sales.csv");
    std::fs::write(
        &file,
        "\u{feff}Sale ID,Name,Net Buy,Net Sale,SKU,Sale Date,Sale Platform,Size,Supplier\r\n\
         75600001-76600001,Dunk,€100.00,€150.00,DD1391-100,\"November 5, 2023\",StockX,US 10,Zalando\r\n",
    )
    .unwrap();
    let (code, stdout, stderr) = backfill(&db, &["--csv", file.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["created"], 1, "{report}");
}

#[tokio::test]
async fn a_multi_database_export_needs_and_takes_database() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = crate::notion_export::five_databases(dir.path());
    let (code, _, stderr) = backfill(&db, &["--csv", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("Sales Archive")
            && stderr.contains("Expenses")
            && stderr.contains("--database NAME"),
        "lists the databases: {stderr}"
    );
    let (code, stdout, stderr) = backfill(
        &db,
        &[
            "--csv",
            file.to_str().unwrap(),
            "--database",
            "Sales Archive",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["created"], 2, "{report}");
    assert!(
        report["source"]
            .as_str()
            .unwrap()
            .contains("Sales Archive 1123456789abcdef0123456789abcdef_all.csv"),
        "says which database was read: {report}"
    );
}
