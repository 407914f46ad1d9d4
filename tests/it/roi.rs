//! A computed ROI follows the recorded profit (issue 13): a sale with only its profit typed is
//! stored with ROI = profit / purchase price, so the worker's validation finds no
//! `roi_mismatch` in what the system computed itself, while a wrong ROI the user typed is still
//! warned about. Through the entry table as Budibase writes it, and through the import (the
//! set-based load and the one-record-at-a-time one), on create and on update.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use sqlx::Connection;
use stockx_sync::app::App;
use stockx_sync::notion::import::{import_records, ImportOptions, Record};
use stockx_sync::notion::mapping::{Mapped, RecordSource, SaleRecord};
use stockx_sync::sales::run_integrity_checks;
use stockx_sync::sandbox::{self, SandboxOptions};
use time::macros::date;
use tokio_util::sync::CancellationToken;

use crate::budibase::{bb, bb_read, bb_update, budibase_session, get};
use crate::enrich::wait_for_idle_queue;
use crate::helpers::TestDb;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// A sale the sandbox knows, with the money the user typed.
fn sale(
    order: &str,
    sku: &str,
    size: &str,
    purchase: &str,
    net: &str,
    profit: Option<&str>,
    roi: Option<&str>,
) -> (RecordSource, Record) {
    let source = RecordSource::CsvRow { row: 2 };
    let record = SaleRecord {
        source: source.clone(),
        stockx_order_number: order.into(),
        sku: sku.into(),
        size: size.into(),
        size_region: None,
        supplier: "Zalando".into(),
        purchase_price: d(purchase),
        purchase_date: Some(date!(2024 - 01 - 01)),
        sale_price: None,
        net_proceeds: d(net),
        profit: profit.map(d),
        roi: roi.map(d),
        sold_at: date!(2024 - 06 - 01),
        delivered_at: None,
        notes: None,
    };
    (source, Ok(Mapped::Sale(Box::new(record))))
}

async fn import(db: &TestDb, records: Vec<(RecordSource, Record)>, set_based: bool, update: bool) {
    let options = ImportOptions {
        set_based,
        update,
        ..ImportOptions::default()
    };
    let report = import_records(&db.pool, "test", records, &options, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.failed, 0, "{report}");
}

async fn stored(db: &TestDb, order: &str) -> (String, String) {
    sqlx::query_as(
        "SELECT net_profit::text, roi::text FROM platforms.stockx_orders
         WHERE stockx_order_number = $1",
    )
    .bind(order)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

const BUDIBASE_INSERT: &str = r#"insert into "stockx_sale_entry" ("net_proceeds", "profit", "purchase_price", "roi", "size", "sku", "sold_at", "stockx_order_number", "supplier") values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning *"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computed_roi_follows_the_recorded_profit_and_only_typed_ones_are_warned() {
    let db = TestDb::new().await;
    let budibase = db.login_role("budibase", &["stockx_sync_entry"]).await;
    let mut conn = budibase.connect().await;
    budibase_session(&mut conn).await;

    // Budibase: only the profit typed (shipping paid on top, so not net - purchase).
    let only_profit = bb(
        &mut conn,
        BUDIBASE_INSERT,
        &[
            Some("240"),
            Some("55.00"),
            Some("179.18"),
            None,
            Some("11"),
            Some("DZ5485-612"),
            Some("2024-06-14T00:00:00.000Z"),
            Some("02-L0QT6MRVSG"),
            Some("Zalando"),
        ],
    )
    .await
    .unwrap()
    .remove(0);
    assert_eq!(get(&only_profit, "profit"), Some("55.00"));
    assert_eq!(
        get(&only_profit, "roi"),
        Some("0.3070"),
        "55 / 179.18, not (240 - 179.18) / 179.18"
    );
    // Budibase: a wrong ROI typed (profit computed: 30, so 0.30).
    let typed_roi = bb(
        &mut conn,
        BUDIBASE_INSERT,
        &[
            Some("130"),
            None,
            Some("100"),
            Some("0.50"),
            Some("9.5"),
            Some("HQ4276"),
            Some("2024-05-02T00:00:00.000Z"),
            Some("55476797-55376556"),
            Some("Zalando"),
        ],
    )
    .await
    .unwrap()
    .remove(0);
    assert_eq!(get(&typed_roi, "roi"), Some("0.5000"));

    // Budibase edit: a new profit typed, the ROI sent back unchanged follows it.
    let id = get(&only_profit, "id").unwrap().to_string();
    let mut form = bb_read(&mut conn, &id).await;
    form.insert("profit".into(), Some("60.00".into()));
    let edited = bb_update(&mut conn, &id, &form).await.unwrap();
    assert_eq!(get(&edited, "roi"), Some("0.3349"), "60 / 179.18");
    // An ROI typed on edit stays as typed.
    let id = get(&typed_roi, "id").unwrap().to_string();
    let mut form = bb_read(&mut conn, &id).await;
    form.insert("net_proceeds".into(), Some("131".into()));
    let edited = bb_update(&mut conn, &id, &form).await.unwrap();
    assert_eq!(get(&edited, "roi"), Some("0.5000"));
    conn.close().await.ok();

    // The import: only profit typed, set-based and one record at a time; a wrong ROI typed.
    import(
        &db,
        vec![
            sale(
                "412208765-412108544",
                "CP9654",
                "10.5",
                "200",
                "230",
                Some("20"),
                None,
            ),
            sale(
                "405531982-405431760",
                "B75806",
                "8.5",
                "50",
                "80",
                None,
                Some("0.9"),
            ),
        ],
        true,
        false,
    )
    .await;
    import(
        &db,
        vec![sale(
            "398877120-398776901",
            "BB550WT1",
            "9",
            "80",
            "110",
            Some("25"),
            None,
        )],
        false,
        false,
    )
    .await;
    assert_eq!(
        stored(&db, "412208765-412108544").await,
        ("20.00".into(), "0.1000".into())
    );
    assert_eq!(
        stored(&db, "398877120-398776901").await,
        ("25.00".into(), "0.3125".into())
    );
    assert_eq!(
        stored(&db, "405531982-405431760").await,
        ("30.00".into(), "0.9000".into())
    );

    // The import with --update: a changed profit (and purchase price) carries the computed ROI
    // along, in both paths; a typed ROI stays.
    import(
        &db,
        vec![
            sale(
                "412208765-412108544",
                "CP9654",
                "10.5",
                "200",
                "230",
                Some("24"),
                None,
            ),
            sale(
                "405531982-405431760",
                "B75806",
                "8.5",
                "50",
                "80",
                Some("35"),
                None,
            ),
        ],
        true,
        true,
    )
    .await;
    import(
        &db,
        vec![sale(
            "398877120-398776901",
            "BB550WT1",
            "9",
            "75",
            "110",
            Some("30"),
            None,
        )],
        false,
        true,
    )
    .await;
    assert_eq!(
        stored(&db, "412208765-412108544").await,
        ("24.00".into(), "0.1200".into())
    );
    assert_eq!(
        stored(&db, "398877120-398776901").await,
        ("30.00".into(), "0.4000".into())
    );
    assert_eq!(
        stored(&db, "405531982-405431760").await,
        ("35.00".into(), "0.9000".into())
    );

    // The worker enriches and validates every sale: roi_mismatch only where an ROI was typed.
    let sandbox = sandbox::spawn("127.0.0.1:0".parse().unwrap(), SandboxOptions::default())
        .await
        .unwrap();
    let mut settings = stockx_sync::config::Settings::default();
    sandbox.configure(&mut settings, 50.0);
    settings.http.addr = "127.0.0.1:0".parse().unwrap();
    settings.worker.poll_interval_ms = 200;
    let app = App::build(&settings, db.pool.clone()).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    wait_for_idle_queue(&db, Duration::from_secs(60)).await;
    stop.cancel();
    task.await.unwrap().unwrap();

    let checked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM platforms.stockx_sale_entry WHERE checked_at IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(checked, 5, "the worker asked StockX about every sale");
    let warned: Vec<String> = sqlx::query_scalar(
        "SELECT stockx_order_number FROM integration.validation_warnings
         WHERE rule = 'roi_mismatch' AND resolved_at IS NULL ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let typed = vec![
        "405531982-405431760".to_string(),
        "55476797-55376556".to_string(),
    ];
    assert_eq!(warned, typed);
    let checks = run_integrity_checks(&db.pool, 10).await.unwrap();
    let roi = checks.iter().find(|c| c.name == "roi_mismatch").unwrap();
    let mut examples = roi.examples.clone();
    examples.sort();
    assert_eq!(examples, typed, "`verify` agrees");
}
