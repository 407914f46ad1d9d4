//! The set-based import against the one-record-at-a-time import it replaces: on the same messy
//! export (repeated order numbers within and across batches, broken rows, values the entry
//! table refuses, other platforms, a sale already recorded), both must leave the same rows,
//! report the same outcomes and errors, and write the same sync log. Also: one bad record
//! never stops the rest, a failed record names its order number, every record is logged.

use std::path::Path;

use stockx_sync::config::Settings;
use stockx_sync::notion::backfill::backfill_csv;
use stockx_sync::notion::import::{ImportOptions, ImportReport};

use crate::helpers::{Sale, TestDb};

const HEADER: &str = "Sale ID,Delivery Date,Name,Net Buy,Net Sale,Profit,Purchase Date,ROI,SKU,Sale Date,Sale Platform,Sale Price,Size,Supplier";

/// One line: the fields that vary, the rest fixed.
fn line(order: &str, sku: &str, supplier: &str, buy: &str, net: &str, platform: &str) -> String {
    format!(
        "{order},\"March 30, 2024\",Some Shoe,\"{buy}\",\"{net}\",,\"March 1, 2024\",,{sku},\"March 20, 2024\",{platform},€180.00,US 10,\"{supplier}\""
    )
}

fn messy_export(dir: &Path, net_of_first: &str) -> std::path::PathBuf {
    let long_id = "9".repeat(101);
    let lines = [
        HEADER.to_string(),
        line("80000001-1", "DD1391-100", "Foot Locker", "€100.00", net_of_first, "StockX"),
        // The same order again, other values: the first one wins, this one is skipped.
        line("80000001-1", "DD1391-100", "Foot Locker", "€90.00", "€99.00", "StockX"),
        line("80000002-1", "dd1391-100", "foot locker", "€100.00", "€150.00", "StockX"),
        line("GOAT-1", "DD1391-100", "Zalando", "€100.00", "€150.00", "GOAT"),
        line("EMPTY-1", "DD1391-100", "Zalando", "€100.00", "€150.00", ""),
        // Unreadable money, readable order number.
        line("80000003-1", "DD1391-100", "Zalando", "€100.00", "€twelve", "StockX"),
        // Longer than the order number column.
        line(&long_id, "DD1391-100", "Zalando", "€100.00", "€150.00", "StockX"),
        // Refused by the entry table: a hidden character inside, a negative price, too much.
        line("8000\u{a0}0004-1", "DD1391-100", "Zalando", "€100.00", "€150.00", "StockX"),
        line("80000005-1", "DD1391-100", "Zalando", "-€5.00", "€150.00", "StockX"),
        line("80000006-1", "DD1391-100", "Zalando", "€20,000,000,000.00", "€150.00", "StockX"),
        // A supplier already in the database under another spelling; a sale already recorded.
        line("80000007-1", "HQ4540", "nike  store", "€210.00", "€180.00", "StockX"),
        line("PRE-1", "DD1391-100", "Nike Store", "€110.00", "€160.00", "StockX"),
        // Sold before it was bought: imported with a validation warning.
        "80000008-1,,Some Shoe,€100.00,€150.00,,\"April 1, 2024\",,CW2288-111,\"March 20, 2024\",StockX,,EU 44,Solebox"
            .to_string(),
        // A broken line (a field too many).
        "80000009-1,a,b,c,d,e,f,g,h,i,j,k,l,m,n".to_string(),
        line("80000010-1", "DD1391-100", "Foot Locker", "€100.00", "€150.00", "StockX"),
        // Repeats in a later batch.
        line("80000002-1", "DD1391-100", "Foot Locker", "€100.00", "€150.00", "StockX"),
        line("80000007-1", "HQ4540", "Nike Store", "€210.00", "€181.00", "StockX"),
    ];
    let path = dir.join("Sales 0123456789abcdef0123456789abcdef_all.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

async fn import(db: &TestDb, file: &Path, set_based: bool, update: bool) -> ImportReport {
    import_in_batches(db, file, set_based, update, 6).await
}

async fn import_in_batches(
    db: &TestDb,
    file: &Path,
    set_based: bool,
    update: bool,
    batch_size: usize,
) -> ImportReport {
    let options = ImportOptions {
        set_based,
        update,
        batch_size,
        ..ImportOptions::default()
    };
    backfill_csv(
        &Settings::default(),
        &db.pool,
        file,
        &options,
        &mut |_, _| {},
    )
    .await
    .unwrap()
}

/// The report without its run ID and timings; failures in file order.
fn outcome(report: &ImportReport) -> String {
    let failures: Vec<String> = report
        .failures
        .iter()
        .map(|f| format!("{} {:?} {}", f.source, f.order_number, f.reason))
        .collect();
    format!(
        "records {} created {} updated {} skipped {} other {} failed {} warnings {}\n{}",
        report.records,
        report.created,
        report.updated,
        report.skipped,
        report.skipped_other_platform,
        report.failed,
        report.with_warnings,
        failures.join("\n")
    )
}

/// Everything the import writes, without generated IDs and clocks, in a stable order.
async fn contents(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT 'sale ' || concat_ws(' | ', o.stockx_order_number, o.sale_price, o.net_proceeds,
                o.net_profit, o.roi, o.currency, o.sold_at, o.delivered_at, o.notes,
                o.enrichment_status, l.ask_price, l.status, i.purchase_price, i.purchase_date,
                i.status, i.external_ids::text, p.sku, p.name, s.value, s.region, sup.name)
         FROM platforms.stockx_orders o
         JOIN platforms.stockx_listings l ON l.id = o.listing_id
         JOIN products.inventory i ON i.id = l.inventory_id
         JOIN products.products p ON p.id = i.product_id
         JOIN products.sizes s ON s.id = i.size_id
         JOIN products.suppliers sup ON sup.id = i.supplier_id
         UNION ALL
         SELECT 'entry ' || concat_ws(' | ', e.stockx_order_number, e.sku, e.size, e.size_region,
                e.supplier, e.purchase_price, e.purchase_date, e.sale_price, e.net_proceeds,
                e.profit, e.roi, e.sold_at, e.delivered_at, e.notes, e.enrichment_status,
                e.stockx_title, e.stockx_payout, e.stockx_payout_currency, e.open_warnings,
                e.checked_at, e.order_id = o.id)
         FROM platforms.stockx_sale_entry e
         LEFT JOIN platforms.stockx_orders o ON o.stockx_order_number = e.stockx_order_number
         UNION ALL
         SELECT 'supplier ' || name FROM products.suppliers
         UNION ALL
         SELECT 'size ' || value || ' ' || region FROM products.sizes
         UNION ALL
         SELECT 'product ' || concat_ws(' | ', sku, name) FROM products.products
         UNION ALL
         SELECT 'job ' || concat_ws(' | ', j.kind, j.state, coalesce(o.stockx_order_number,
                i.external_ids->>'stockx_order_number'))
         FROM integration.enrichment_jobs j
         LEFT JOIN platforms.stockx_orders o ON j.kind = 'order' AND o.id = j.entity_id
         LEFT JOIN products.inventory i ON j.kind = 'inventory' AND i.id = j.entity_id
         UNION ALL
         SELECT 'log ' || concat_ws(' | ', stockx_order_number, notion_page_id, sync_status,
                trigger_type, validation_warnings::text, error_message,
                entities_created IS NOT NULL, synced_by)
         FROM integration.notion_sale_sync_log
         UNION ALL
         SELECT 'audit ' || count(*) FROM integration.sale_entry_audit
         ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_set_based_import_writes_what_the_per_record_import_writes() {
    let set = TestDb::new().await;
    let single = TestDb::new().await;
    for db in [&set, &single] {
        Sale::new("PRE-1").insert(&db.pool).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = messy_export(dir.path(), "€150.00");

    // First run, a re-run, and an --update run with one sale changed.
    let changed_dir = tempfile::tempdir().unwrap();
    let changed = messy_export(changed_dir.path(), "€155.00");
    let runs: [(&Path, bool); 3] = [(&file, false), (&file, false), (&changed, true)];
    for (n, (path, update)) in runs.into_iter().enumerate() {
        let by_set = import(&set, path, true, update).await;
        let by_record = import(&single, path, false, update).await;
        assert_eq!(outcome(&by_set), outcome(&by_record), "run {n}");
        assert_eq!(contents(&set).await, contents(&single).await, "run {n}");
    }

    // What the first run did, on the set-based side.
    let log: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT stockx_order_number, sync_status, error_message
         FROM integration.notion_sale_sync_log ORDER BY synced_at, stockx_order_number",
    )
    .fetch_all(&set.pool)
    .await
    .unwrap();
    let first_run = &log[..17];
    assert_eq!(
        first_run.len(),
        17,
        "every record of the file is logged: {log:?}"
    );
    let status_of = |order: &str| -> Vec<&str> {
        first_run
            .iter()
            .filter(|(o, _, _)| o == order)
            .map(|(_, s, _)| s.as_str())
            .collect()
    };
    // Other platforms' rows are logged as skipped, named by their row.
    assert_eq!(status_of("row 5"), ["skipped"]);
    assert_eq!(status_of("row 6"), ["skipped"]);
    // A record that could not be read but had a readable title names its order.
    assert_eq!(status_of("80000003-1"), ["failed"]);
    // The over-long order number fails alone, logged cut to the column.
    assert_eq!(status_of(&"9".repeat(100)), ["failed"]);
    assert_eq!(status_of("80000010-1"), ["success"], "{first_run:?}");
    assert_eq!(status_of("80000008-1"), ["warning"]);
    let report_failures: Vec<Option<String>> = import(&set, &file, true, false)
        .await
        .failures
        .into_iter()
        .map(|f| f.order_number)
        .collect();
    assert!(
        report_failures.contains(&Some("80000003-1".to_string())),
        "{report_failures:?}"
    );
}

/// The same comparison with the whole file in one batch (one COPY, one set-based load, the
/// re-run's early filter over every record), and the database time split adding up.
#[tokio::test]
async fn one_batch_of_the_messy_export_writes_what_the_per_record_import_writes() {
    let set = TestDb::new().await;
    let single = TestDb::new().await;
    for db in [&set, &single] {
        Sale::new("PRE-1").insert(&db.pool).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = messy_export(dir.path(), "€150.00");
    let changed_dir = tempfile::tempdir().unwrap();
    let changed = messy_export(changed_dir.path(), "€155.00");
    let runs: [(&Path, bool); 3] = [(&file, false), (&file, false), (&changed, true)];
    for (n, (path, update)) in runs.into_iter().enumerate() {
        let by_set = import_in_batches(&set, path, true, update, 10_000).await;
        let by_record = import_in_batches(&single, path, false, update, 10_000).await;
        assert_eq!(outcome(&by_set), outcome(&by_record), "run {n}");
        assert_eq!(contents(&set).await, contents(&single).await, "run {n}");
        let split = &by_set.database_split;
        let parts = split.lookup_ms
            + split.copy_ms
            + split.load_ms
            + split.one_by_one_ms
            + split.log_ms
            + split.transaction_ms
            + split.dry_run_ms;
        // Each part is rounded down on its own.
        assert!(
            parts <= by_set.database_ms && by_set.database_ms <= parts + 7,
            "{split:?} vs {}",
            by_set.database_ms
        );
        if n == 1 {
            // The re-run: everything readable was recorded by the first run (the repeats
            // inside the file still go one at a time and are skipped there).
            assert_eq!(by_set.created + by_set.updated, 0, "{by_set}");
        }
    }
}

#[tokio::test]
async fn a_long_sale_id_fails_alone_in_the_per_record_import_too() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("Sales 0123456789abcdef0123456789abcdef_all.csv");
    let lines = [
        HEADER.to_string(),
        line(
            &"7".repeat(101),
            "DD1391-100",
            "Zalando",
            "€100.00",
            "€150.00",
            "StockX",
        ),
        line(
            "81000001-1",
            "DD1391-100",
            "Zalando",
            "€100.00",
            "€150.00",
            "StockX",
        ),
    ];
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    for set_based in [false, true] {
        let report = import(&db, &path, set_based, false).await;
        assert_eq!(report.failed, 1, "{report}");
        assert!(
            report.failures[0].reason.contains("longer than 100"),
            "{}",
            report.failures[0].reason
        );
        assert_eq!(report.created + report.skipped, 1, "{report}");
    }
    assert_eq!(db.count("platforms.stockx_sale_entry").await, 1);
    assert_eq!(db.count("integration.notion_sale_sync_log").await, 4);
}

#[test]
fn with_json_usage_and_configuration_errors_are_json_too() {
    let cases: [(&[&str], &str); 2] = [
        (&["backfill", "notion", "--json", "--no-such-flag"], "usage"),
        (
            &[
                "--config",
                "/nonexistent/stockx-sync.toml",
                "backfill",
                "notion",
                "--json",
            ],
            "configuration",
        ),
    ];
    for (args, kind) in cases {
        let out = crate::helpers::command().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let error: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"));
        assert_eq!(error["kind"], kind, "{error}");
        assert_eq!(error["exit_code"], 2);
        assert!(!error["error"].as_str().unwrap().is_empty());
    }
}
