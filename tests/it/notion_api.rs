//! The API backfill against the local Notion stand-in (`stockx_sync::sandbox::notion_api`) at
//! real sizes: the 10,000-result cap with pages spread over time and with more than 10,000
//! pages created and edited in the same minute (with the cost of each read in results per
//! page), an outage midway and the run after it, a related database not shared with the
//! integration, and the watermark's key.

use std::collections::HashSet;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use stockx_sync::notion::backfill::{backfill_api, BackfillError, Since};
use stockx_sync::notion::client::{NotionClient, NotionConfig};
use stockx_sync::notion::import::{ImportOptions, ImportReport};
use stockx_sync::notion::mapping::{Mapped, Mapping};
use stockx_sync::sandbox::notion_api::{self, NotionStandIn, NotionState, SalePage, DATABASE_ID};
use time::macros::datetime;
use time::OffsetDateTime;

use crate::helpers::{command, TestDb};

pub const SUPPLIER: &str = "99999999-8888-7777-6666-555555555555";

pub fn state(pages: Vec<SalePage>) -> NotionState {
    let mut state = NotionState {
        pages,
        ..NotionState::default()
    };
    state
        .related
        .insert(SUPPLIER.into(), Some("Foot Locker".into()));
    state
}

fn client(url: String) -> NotionClient {
    let mut config = NotionConfig::new(SecretString::from("ntn_test_token"), DATABASE_ID);
    config.api_url = url;
    config.initial_backoff = Duration::from_millis(10);
    config.requests_per_second = std::num::NonZeroU32::new(1000).unwrap();
    NotionClient::new(config, Mapping::default()).unwrap()
}

fn minute(base: OffsetDateTime, n: i64) -> OffsetDateTime {
    base + time::Duration::minutes(n)
}

/// Reads everything and checks every page came exactly once; returns (results, pages).
async fn read_all(pages: Vec<SalePage>) -> (u64, usize) {
    let expected: HashSet<String> = pages.iter().map(SalePage::id).collect();
    let stand_in = notion_api::spawn(state(pages)).await.unwrap();
    let client = client(stand_in.url());
    let (records, stats) = client.query_sales(None).collect_all().await.unwrap();
    let ids: Vec<String> = records.iter().map(|r| r.page_id.clone()).collect();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "no page twice");
    assert_eq!(unique, expected, "every page read");
    assert!(records
        .iter()
        .all(|r| matches!(r.result, Ok(Mapped::Sale(_)))));
    assert!(
        records
            .windows(2)
            .all(|w| w[0].last_edited_time <= w[1].last_edited_time),
        "pages arrive in last_edited_time order (the watermark relies on it)"
    );
    let results = stand_in.with(|s| s.results_returned);
    assert_eq!(results, stats.results, "the client counts what Notion sent");
    stand_in.stop();
    (results, records.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_is_read_in_windows_and_each_page_read_about_once() {
    let base = datetime!(2025-01-01 00:00 UTC);
    let bulk = datetime!(2025-02-01 10:00 UTC);
    let mut pages = Vec::new();
    // 6,000 pages edited one a minute, a bulk edit of 4,500 older pages at one minute, then
    // 1,388 more: 11,888 pages, the cap falling inside the bulk minute.
    for n in 0..6_000 {
        pages.push(SalePage::new(n, minute(base, n as i64), SUPPLIER));
    }
    for n in 6_000..10_500 {
        let mut page = SalePage::new(n, minute(base, n as i64 - 20_000), SUPPLIER);
        page.edited = bulk;
        pages.push(page);
    }
    for n in 10_500..11_888 {
        pages.push(SalePage::new(n, minute(bulk, n as i64), SUPPLIER));
    }
    let (results, read) = read_all(pages).await;
    let ratio = results as f64 / read as f64;
    println!("cap across a bulk minute: {results} results for {read} pages ({ratio:.3}x)");
    assert!(ratio <= 1.2, "{ratio}");
}

fn settings(stand_in: &NotionStandIn, database_id: &str) -> stockx_sync::config::Settings {
    let mut settings = stockx_sync::config::Settings::default();
    settings.notion.api_url = stand_in.url().parse().unwrap();
    settings.notion.token = Some(SecretString::from("ntn_test_token"));
    settings.notion.database_id = Some(database_id.into());
    settings.notion.requests_per_second = 1000.0;
    settings
}

async fn run(
    db: &TestDb,
    settings: &stockx_sync::config::Settings,
    since: Since,
) -> Result<ImportReport, BackfillError> {
    backfill_api(
        settings,
        &db.pool,
        since,
        &ImportOptions::default(),
        &mut |_, _| {},
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_ten_thousand_pages_in_one_minute_are_all_imported() {
    let db = TestDb::new().await;
    let at = datetime!(2025-03-01 09:00 UTC);
    let pages: Vec<SalePage> = (0..10_500)
        .map(|n| SalePage::new(n, at, SUPPLIER))
        .collect();
    let stand_in = notion_api::spawn(state(pages)).await.unwrap();
    let report = run(&db, &settings(&stand_in, DATABASE_ID), Since::Watermark)
        .await
        .unwrap();
    assert_eq!((report.created, report.failed), (10_500, 0), "{report}");
    assert_eq!(db.count("platforms.stockx_orders").await, 10_500);
    let results = stand_in.with(|s| s.results_returned);
    let ratio = results as f64 / 10_500.0;
    println!(
        "10,500 pages created and edited in one minute: {results} results for 10500 pages ({ratio:.3}x)"
    );
    // The rest of the instant is read backwards up to what the capped query read, not again
    // in two halves (20,500 results before).
    assert!(ratio <= 1.2, "{ratio}");
    stand_in.stop();
}

/// The cap falls inside an instant shared by 3,000 pages: the rest of the instant is read
/// backwards, not the instant again from its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_inside_a_crowded_instant_reads_its_rest_backwards() {
    let base = datetime!(2025-01-01 00:00 UTC);
    let bulk = datetime!(2025-02-01 10:00 UTC);
    let mut pages = Vec::new();
    for n in 0..9_000 {
        pages.push(SalePage::new(n, minute(base, n as i64), SUPPLIER));
    }
    for n in 9_000..12_000 {
        pages.push(SalePage::new(n, bulk, SUPPLIER));
    }
    for n in 12_000..12_500 {
        pages.push(SalePage::new(n, minute(bulk, n as i64), SUPPLIER));
    }
    let (results, read) = read_all(pages).await;
    let ratio = results as f64 / read as f64;
    println!("cap inside a crowded instant: {results} results for {read} pages ({ratio:.3}x)");
    // At most the two batches around the place where the backward read meets the first.
    assert!(results <= 12_500 + 200, "{results}");
}

/// The cap falls inside a run of 300 pages with one order number (Notion orders those as it
/// likes, not necessarily the same way backwards): the backward read goes on past all of them,
/// and no page is missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_among_pages_with_one_order_number_misses_none() {
    let at = datetime!(2025-03-01 09:00 UTC);
    let pages: Vec<SalePage> = (0..10_500)
        .map(|n| {
            let mut page = SalePage::new(n, at, SUPPLIER);
            if (9_850..10_150).contains(&n) {
                page.order_number = SalePage::new(9_850, at, SUPPLIER).order_number;
            }
            page
        })
        .collect();
    let (results, read) = read_all(pages).await;
    println!("cap among equal order numbers: {results} results for {read} pages");
    assert!(results <= 10_500 + 400, "{results}");
}

/// More than 20,000 pages in one instant: the backward read is capped too, and the instant is
/// split by title; every page still comes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_twenty_thousand_pages_in_one_instant_are_all_read() {
    let at = datetime!(2025-03-01 09:00 UTC);
    let pages: Vec<SalePage> = (0..21_000)
        .map(|n| SalePage::new(n, at, SUPPLIER))
        .collect();
    let (results, read) = read_all(pages).await;
    println!(
        "21,000 pages in one instant: {results} results for {read} pages ({:.3}x)",
        results as f64 / read as f64
    );
}

fn backfill_command(
    db: &TestDb,
    stand_in: &NotionStandIn,
    database_id: &str,
) -> std::process::Command {
    let mut command = command();
    command
        .args(["backfill", "notion", "--json"])
        .env("DATABASE_URL", db.url())
        .env("NOTION_API_URL", stand_in.url())
        .env("NOTION_TOKEN", "ntn_test_token")
        .env("NOTION_DATABASE_ID", database_id);
    command
}

async fn output(mut command: std::process::Command) -> (i32, String, String) {
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_midway_keeps_what_was_read_and_the_next_run_continues() {
    let db = TestDb::new().await;
    let base = datetime!(2025-01-01 00:00 UTC);
    let pages: Vec<SalePage> = (0..1_000)
        .map(|n| SalePage::new(n, minute(base, n as i64), SUPPLIER))
        .collect();
    let mut state = state(pages);
    // Five pages of 100 come back, then Notion answers 503 to everything.
    state.outage_from_query = Some(6);
    let stand_in = notion_api::spawn(state).await.unwrap();

    let (code, stdout, stderr) = output(backfill_command(&db, &stand_in, DATABASE_ID)).await;
    assert_eq!(code, 1, "an outage is not a configuration error: {stderr}");
    assert!(stderr.contains("run the backfill again"), "{stderr}");
    let partial: Value = serde_json::from_str(&stdout).expect("the report of what was imported");
    assert_eq!(partial["created"], 500, "{partial}");
    assert_eq!(db.count("platforms.stockx_orders").await, 500);
    let watermark: String = sqlx::query_scalar(
        "SELECT to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM integration.notion_sync_state",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(watermark, "2025-01-01 08:19", "page 499's edit");

    stand_in.with(|s| {
        s.outage_from_query = None;
        s.results_returned = 0;
    });
    let (code, stdout, stderr) = output(backfill_command(&db, &stand_in, DATABASE_ID)).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let rest: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rest["created"], 500, "{rest}");
    assert_eq!(db.count("platforms.stockx_orders").await, 1_000);
    let results = stand_in.with(|s| s.results_returned);
    assert!(
        results <= 510,
        "continued from the watermark, not from the start: {results}"
    );
    stand_in.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unshared_supplier_database_costs_a_few_requests_and_leaves_its_ids() {
    let db = TestDb::new().await;
    let base = datetime!(2025-01-01 00:00 UTC);
    let mut pages = Vec::new();
    let mut related = std::collections::HashMap::new();
    for n in 0..300u32 {
        // Every sale has its own supplier page, none of them shared with the integration.
        let supplier = format!("5{n:07}-0000-4000-8000-000000000000");
        related.insert(supplier.clone(), None);
        let mut page = SalePage::new(n, minute(base, n as i64), &supplier);
        if n % 5 == 0 {
            page.platform = Some("GOAT".into());
        }
        pages.push(page);
    }
    let stand_in = notion_api::spawn(NotionState {
        pages,
        related,
        ..NotionState::default()
    })
    .await
    .unwrap();
    let report = run(&db, &settings(&stand_in, DATABASE_ID), Since::Full)
        .await
        .unwrap();
    assert_eq!(
        (report.created, report.skipped_other_platform, report.failed),
        (240, 60, 0),
        "{report}"
    );
    let requests = stand_in.with(|s| s.page_requests);
    assert!(requests <= 3, "{requests} requests for related pages");
    let supplier: String =
        sqlx::query_scalar("SELECT s.name FROM products.suppliers s ORDER BY s.name LIMIT 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        supplier, "50000001-0000-4000-8000-000000000000",
        "the related page's ID stands in"
    );
    stand_in.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_of_the_database_id_shares_one_watermark() {
    let db = TestDb::new().await;
    let base = datetime!(2025-01-01 00:00 UTC);
    let pages: Vec<SalePage> = (0..50)
        .map(|n| SalePage::new(n, minute(base, n as i64 * 60), SUPPLIER))
        .collect();
    let stand_in = notion_api::spawn(state(pages)).await.unwrap();
    let forms = [
        "https://www.notion.so/acme/Sales-a1b2c3d4e5f60718293a4b5c6d7e8f90?v=0123456789abcdef0123456789abcdef",
        "a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90",
        "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        "11111111222233334444555555555555",
    ];
    for (i, form) in forms.iter().enumerate() {
        stand_in.with(|s| s.results_returned = 0);
        let report = run(&db, &settings(&stand_in, form), Since::Watermark)
            .await
            .unwrap();
        let results = stand_in.with(|s| s.results_returned);
        if i == 0 {
            assert_eq!((report.created, results), (50, 50));
        } else {
            assert!(
                results <= 2,
                "{form}: started from the watermark, read {results}"
            );
        }
    }
    let keys: Vec<String> = sqlx::query_scalar("SELECT source FROM integration.notion_sync_state")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        keys,
        ["notion:data_source:11111111-2222-3333-4444-555555555555"]
    );
    stand_in.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_digit_database_id_is_an_id_not_a_number() {
    let db = TestDb::new().await;
    let base = datetime!(2025-01-01 00:00 UTC);
    let mut state = state(vec![SalePage::new(1, base, SUPPLIER)]);
    state.database_id = "12345678-9012-3456-7890-123456789012".into();
    let stand_in = notion_api::spawn(state).await.unwrap();
    let (code, stdout, stderr) = output(backfill_command(
        &db,
        &stand_in,
        "12345678901234567890123456789012",
    ))
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["created"], 1, "{report}");
    stand_in.stop();
}
