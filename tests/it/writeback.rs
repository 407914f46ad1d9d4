//! Notion write-back end to end: sales imported from a local Notion API, the real worker runs
//! their jobs, and the local API records the status PATCHes and the comments it receives.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stockx_sync::app::App;
use stockx_sync::config::Settings;
use stockx_sync::notion::backfill::{backfill_api, Since};
use stockx_sync::notion::import::ImportOptions;
use stockx_sync::notion::writeback::{COMMENT_PREFIX, STATUS_SYNCED};
use stockx_sync::schedule::tasks::RefreshStale;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::TestDb;
use crate::notion::{
    list, mount_database_with_data_source, mount_supplier, page_id, sale_page, DB, DS_QUERY,
};

const DS_PATH: &str = "/v1/data_sources/11111111-2222-3333-4444-555555555555";

/// Sale 1 is consistent; sale 2's profit disagrees with its prices.
fn pages() -> Vec<Value> {
    let clean = sale_page(1, "2025-03-01T10:00:00.000Z", Some("StockX"));
    let mut warned = sale_page(2, "2025-03-01T11:00:00.000Z", Some("StockX"));
    warned["properties"]["Profit"]["formula"]["number"] = json!(80);
    vec![clean, warned]
}

async fn notion(status_type: &str) -> MockServer {
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    mount_supplier(&server, false).await;
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(pages(), None)))
        .mount(&server)
        .await;
    let mut status = json!({ "id": "ss", "name": "Sync Status", "type": status_type });
    status[status_type] = json!({});
    Mock::given(method("GET"))
        .and(path(DS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "data_source", "id": "11111111-2222-3333-4444-555555555555",
            "properties": {
                "Sale ID": { "id": "title", "name": "Sale ID", "type": "title", "title": {} },
                "Sync Status": status
            }
        })))
        .mount(&server)
        .await;
    // The first status write meets a Notion outage.
    Mock::given(method("PATCH"))
        .and(path_regex("^/v1/pages/"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "object": "error", "status": 500, "code": "internal_server_error", "message": "Unexpected error."
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex("^/v1/pages/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "object": "page" })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "object": "comment" })))
        .mount(&server)
        .await;
    server
}

fn settings_for(server: &MockServer) -> Settings {
    let mut settings = Settings::default();
    settings.notion.api_url = server.uri().parse().unwrap();
    settings.notion.token = Some(secrecy::SecretString::from("ntn_test_token"));
    settings.notion.database_id = Some(DB.into());
    settings.notion.requests_per_second = 1000.0;
    settings.notion.writeback = true;
    settings.http.addr = "127.0.0.1:0".parse().unwrap();
    settings.worker.poll_interval_ms = 200;
    settings.schedule.enabled = false;
    settings
}

async fn requests(server: &MockServer, verb: &str, prefix: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == verb && r.url.path().starts_with(prefix))
        .collect()
}

/// Write-back jobs completed, once no job of any kind is open.
async fn settled_writebacks(db: &TestDb, at_least: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (open, written): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state IN ('available', 'running', 'retryable')),
                    count(*) FILTER (WHERE kind = 'notion_writeback' AND state = 'completed')
             FROM integration.enrichment_jobs",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if open == 0 && written >= at_least {
            return written;
        }
        assert!(
            Instant::now() < deadline,
            "{open} jobs open, {written} write-backs done"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn open_warnings(db: &TestDb, order_number: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT w.message FROM integration.validation_warnings w
         JOIN platforms.stockx_orders o ON o.stockx_order_number = $1
         JOIN platforms.stockx_listings l ON l.id = o.listing_id
         WHERE w.resolved_at IS NULL
           AND ((w.entity_type = 'order' AND w.entity_id = o.id)
                OR (w.entity_type = 'inventory' AND w.entity_id = l.inventory_id))",
    )
    .bind(order_number)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

fn status_of(request: &Request) -> String {
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    let property = &body["properties"]["Sync Status"];
    property["rich_text"][0]["text"]["content"]
        .as_str()
        .or(property["select"]["name"].as_str())
        .unwrap_or_else(|| panic!("no status in {body}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_pages_get_their_status_and_one_comment_per_new_warning() {
    let db = TestDb::new().await;
    let server = notion("rich_text").await;
    let settings = settings_for(&server);
    let app = App::build(&settings, db.pool.clone()).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));

    let report = backfill_api(
        &settings,
        &db.pool,
        Since::Full,
        &ImportOptions::default(),
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(report.created, 2);
    let done = settled_writebacks(&db, 2).await;

    let warnings = open_warnings(&db, "75000002-76000002").await;
    assert!(!warnings.is_empty(), "sale 2 has warnings");
    assert!(open_warnings(&db, "75000001-76000001").await.is_empty());

    // One 500, retried by the queue, then one status per page.
    let patches = requests(&server, "PATCH", "/v1/pages/").await;
    assert_eq!(patches.len(), 3, "{patches:#?}");
    let ok: Vec<&Request> = patches[1..].iter().collect();
    let status = |n: u32| {
        ok.iter()
            .find(|r| r.url.path() == format!("/v1/pages/{}", page_id(n)))
            .map(|r| status_of(r))
            .unwrap_or_else(|| panic!("no status written to page {n}"))
    };
    assert_eq!(status(1), STATUS_SYNCED);
    let expected = if warnings.len() == 1 {
        "⚠️ 1 validation warning".to_string()
    } else {
        format!("⚠️ {} validation warnings", warnings.len())
    };
    assert_eq!(status(2), expected);
    let retried: i16 = sqlx::query_scalar(
        "SELECT max(attempt) FROM integration.enrichment_jobs WHERE kind = 'notion_writeback'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(retried, 2, "the failed write went back through the queue");

    let comments = requests(&server, "POST", "/v1/comments").await;
    assert_eq!(comments.len(), warnings.len(), "{comments:#?}");
    for comment in &comments {
        let body: Value = serde_json::from_slice(&comment.body).unwrap();
        assert_eq!(body["parent"]["page_id"], page_id(2));
        let text = body["rich_text"][0]["text"]["content"].as_str().unwrap();
        assert!(text.starts_with(COMMENT_PREFIX), "{text}");
        assert!(
            warnings.iter().any(|w| text.ends_with(w.as_str())),
            "{text} is one of {warnings:?}"
        );
    }
    // The import was never at risk: both sales are stored.
    assert_eq!(db.count("platforms.stockx_orders").await, 2);

    // The daily refresh checks the warned sale again: its jobs and its write-back run, and
    // Notion hears nothing new. The same import again changes nothing either.
    let summary = RefreshStale::new(db.pool.clone(), false, true)
        .refresh()
        .await
        .unwrap();
    settled_writebacks(&db, done + 1).await;
    let again = backfill_api(
        &settings,
        &db.pool,
        Since::Full,
        &ImportOptions::default(),
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(again.skipped, 2);
    settled_writebacks(&db, done + 1).await;
    assert_eq!(
        requests(&server, "POST", "/v1/comments").await.len(),
        comments.len(),
        "no comment twice ({summary})"
    );
    assert_eq!(requests(&server, "PATCH", "/v1/pages/").await.len(), 3);

    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_property_gets_a_select_value_and_a_missing_one_is_named() {
    let db = TestDb::new().await;
    let server = notion("select").await;
    let settings = settings_for(&server);
    let app = App::build(&settings, db.pool.clone()).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    backfill_api(
        &settings,
        &db.pool,
        Since::Full,
        &ImportOptions::default(),
        &mut |_, _| {},
    )
    .await
    .unwrap();
    settled_writebacks(&db, 2).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    let patches = requests(&server, "PATCH", "/v1/pages/").await;
    let clean = patches
        .iter()
        .rev()
        .find(|r| r.url.path() == format!("/v1/pages/{}", page_id(1)))
        .unwrap();
    let body: Value = serde_json::from_slice(&clean.body).unwrap();
    assert_eq!(
        body["properties"]["Sync Status"],
        json!({ "select": { "name": STATUS_SYNCED } })
    );

    // A database without the property: the job fails for good and says what to add.
    let db = TestDb::new().await;
    let mut settings = settings_for(&server);
    settings.notion.status_property = "Sync State".into();
    let app = App::build(&settings, db.pool.clone()).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    backfill_api(
        &settings,
        &db.pool,
        Since::Full,
        &ImportOptions::default(),
        &mut |_, _| {},
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let error: String = loop {
        let failed: Option<String> = sqlx::query_scalar(
            "SELECT last_error FROM integration.enrichment_jobs
             WHERE kind = 'notion_writeback' AND state = 'failed' LIMIT 1",
        )
        .fetch_optional(&db.pool)
        .await
        .unwrap()
        .flatten();
        if let Some(error) = failed {
            break error;
        }
        assert!(Instant::now() < deadline, "no write-back failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.cancel();
    task.await.unwrap().unwrap();
    assert!(
        error.contains("\"Sync State\"") && error.contains("Text or Select"),
        "{error}"
    );
    assert_eq!(db.count("platforms.stockx_orders").await, 2);
}
