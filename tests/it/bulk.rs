//! StockX orders in bulk: a backlog of order jobs reconciled through the seller's order lists
//! (history pages over the sales' dates, then the active orders), with single-order calls only
//! for what the lists did not hold; and the guarantees around it (one order call per sale when
//! the worker's own writes follow, identical rows whichever path found the order, nothing lost
//! to 429s). Calls are counted by the sandbox, never timed.

use std::time::Duration;

use rust_decimal::Decimal;
use stockx_sync::sales;
use stockx_sync::sandbox::{generated_sales, Faults, GeneratedSale};

use crate::enrich::{start, start_with, wait_for_idle_queue};
use crate::helpers::TestDb;

async fn enter(db: &TestDb, sales_: &[GeneratedSale]) {
    let entries: Vec<_> = sales_.iter().map(GeneratedSale::entry).collect();
    sales::enter_sales(&db.pool, &entries).await.unwrap();
}

/// Issue 11's waiting-only dedupe let a second job queue while the first runs: the worker's
/// own writes (the order's StockX columns, the product and variant IDs, the warnings, the
/// entry row's refresh) must not queue one, or the same order is asked twice.
#[tokio::test]
async fn the_workers_own_writes_never_ask_for_an_order_twice() {
    let db = TestDb::new().await;
    let setup = start(&db, 500.0, Faults::default(), 8).await;
    let sold = generated_sales(12, 6, 730);
    setup.sandbox.add_generated(&sold);
    enter(&db, &sold).await;
    wait_for_idle_queue(&db, Duration::from_secs(60)).await;
    let sandbox = setup.stop().await;
    let calls: Vec<(String, usize)> = sold
        .iter()
        .map(|s| {
            (
                s.order_number.clone(),
                sandbox.order_lookups(&s.order_number),
            )
        })
        .collect();
    assert!(
        calls.iter().all(|(_, n)| *n == 1),
        "order calls per sale: {calls:?}"
    );
    let jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM integration.enrichment_jobs WHERE kind = 'order'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(jobs, 12, "one order job per sale");
}

/// What enrichment wrote for one sale: the order's StockX columns, the IDs on the product and
/// inventory rows, and the sale's open warnings.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct Written {
    order_number: String,
    enrichment_status: String,
    stockx_status: Option<String>,
    stockx_sale_price: Option<Decimal>,
    stockx_total_payout: Option<Decimal>,
    stockx_total_adjustments: Option<Decimal>,
    stockx_adjustments: Option<String>,
    stockx_currency: Option<String>,
    order_product_id: Option<String>,
    order_variant_id: Option<String>,
    inventory_variant_id: Option<String>,
    product_stockx_id: Option<String>,
    product_name: Option<String>,
    warnings: Option<String>,
    entry_status: Option<String>,
    entry_payout: Option<Decimal>,
}

async fn written(db: &TestDb) -> Vec<Written> {
    sqlx::query_as(
        "SELECT o.stockx_order_number AS order_number, o.enrichment_status, o.stockx_status,
                o.stockx_sale_price, o.stockx_total_payout, o.stockx_total_adjustments,
                o.stockx_adjustments::text AS stockx_adjustments, o.stockx_currency,
                o.stockx_product_id AS order_product_id, o.stockx_variant_id AS order_variant_id,
                i.stockx_variant_id AS inventory_variant_id,
                p.stockx_product_id AS product_stockx_id, p.name AS product_name,
                (SELECT string_agg(w.rule || ': ' || w.message, ' | ' ORDER BY w.rule)
                 FROM integration.validation_warnings w
                 WHERE w.resolved_at IS NULL
                   AND ((w.entity_type = 'order' AND w.entity_id = o.id)
                        OR (w.entity_type = 'inventory' AND w.entity_id = i.id))) AS warnings,
                e.enrichment_status AS entry_status, e.stockx_payout AS entry_payout
         FROM platforms.stockx_orders o
         JOIN platforms.stockx_listings l ON l.id = o.listing_id
         JOIN products.inventory i ON i.id = l.inventory_id
         JOIN products.products p ON p.id = i.product_id
         JOIN platforms.stockx_sale_entry e ON e.order_id = o.id
         ORDER BY o.stockx_order_number",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// 260 sales over 30 days: 255 in the history (3 pages), 5 still active, of which `missing`
/// are not on the account; a few recorded with a net amount that is not StockX's payout.
fn backlog(missing: &[usize]) -> (Vec<GeneratedSale>, Vec<String>) {
    let mut sold = generated_sales(260, 3, 30);
    for i in [5, 77, 130] {
        sold[i].payout += Decimal::from(12);
    }
    let gone = missing
        .iter()
        .map(|i| sold[*i].order_number.clone())
        .collect();
    (sold, gone)
}

/// Runs the worker over the backlog with `threshold`; the sandbox afterwards.
async fn enrich_backlog(
    db: &TestDb,
    threshold: usize,
    faults: Faults,
    sold: &[GeneratedSale],
    gone: &[String],
) -> stockx_sync::sandbox::SandboxHandle {
    // Entered before the worker starts: the whole backlog waits at once, as after an import.
    enter(db, sold).await;
    let setup = start_with(db, 500.0, faults, 8, |s| {
        s.stockx.bulk_orders_threshold = threshold;
    })
    .await;
    // The sandbox's orders are StockX's truth: the recorded net amounts of some sales differ.
    let mut truth = sold.to_vec();
    for (i, sale) in truth.iter_mut().enumerate() {
        if [5, 77, 130].contains(&i) {
            sale.payout -= Decimal::from(12);
        }
    }
    setup.sandbox.add_generated(&truth);
    for number in gone {
        setup.sandbox.remove_order(number);
    }
    wait_for_idle_queue(db, Duration::from_secs(120)).await;
    setup.stop().await
}

#[tokio::test]
async fn orders_found_in_the_lists_are_written_exactly_as_by_the_single_order_path() {
    let (sold, gone) = backlog(&[0, 1, 2]);
    let single_db = TestDb::new().await;
    let single = enrich_backlog(&single_db, 0, Faults::default(), &sold, &gone).await;
    let bulk_db = TestDb::new().await;
    let bulk = enrich_backlog(&bulk_db, 20, Faults::default(), &sold, &gone).await;

    // The single-order path: one call per sale, no list.
    assert_eq!(single.request_count("/selling/orders/{orderNumber}"), 260);
    assert_eq!(single.request_count("/selling/orders/history"), 0);

    // In bulk: 252 history orders in one window of 3 pages, 5 active ones on one page, and a
    // single call for each of the 3 orders StockX does not have, none for the others.
    assert_eq!(bulk.request_count("/selling/orders/history"), 3);
    assert_eq!(bulk.request_count("/selling/orders/active"), 1);
    assert_eq!(bulk.request_count("/selling/orders/{orderNumber}"), 3);
    for number in &gone {
        assert_eq!(bulk.order_lookups(number), 1, "{number} asked once");
    }
    // Catalog: the product's details, variants and market data once per product.
    for route in [
        "/catalog/products/{productId}",
        "/catalog/products/{productId}/variants",
        "/catalog/products/{productId}/market-data",
    ] {
        assert!(
            bulk.request_count(route) <= 3,
            "{route}: {}",
            bulk.request_count(route)
        );
    }

    let by_single = written(&single_db).await;
    let by_bulk = written(&bulk_db).await;
    assert_eq!(by_single.len(), 260);
    for (s, b) in by_single.iter().zip(&by_bulk) {
        assert_eq!(s, b);
    }
    assert_eq!(by_single, by_bulk);
    // The comparison is not between empty rows: both hold every kind of outcome.
    let count = |status: &str| {
        by_bulk
            .iter()
            .filter(|w| w.enrichment_status == status)
            .count()
    };
    assert_eq!((count("enriched"), count("not_found")), (257, 3));
    let active = by_bulk
        .iter()
        .filter(|w| w.stockx_status.as_deref() == Some("PAYOUTPENDING"))
        .count();
    assert_eq!(active, 5, "the active orders were found in the active list");
    let mismatches = by_bulk
        .iter()
        .filter(|w| {
            w.warnings
                .as_deref()
                .is_some_and(|t| t.contains("payout_mismatch"))
        })
        .count();
    assert_eq!(mismatches, 3);
    assert!(by_bulk
        .iter()
        .filter(|w| w.enrichment_status == "enriched")
        .all(|w| w.stockx_total_payout.is_some()
            && w.stockx_adjustments
                .as_deref()
                .is_some_and(|a| a.contains("Transaction Fee"))
            && w.inventory_variant_id.is_some()));
}

#[tokio::test]
async fn a_429_while_paging_loses_nothing_and_asks_for_no_order_alone() {
    let (sold, gone) = backlog(&[]);
    let db = TestDb::new().await;
    let faults = Faults {
        throttle_every_nth: Some(3),
        retry_after_secs: 1,
        ..Faults::default()
    };
    let sandbox = enrich_backlog(&db, 20, faults, &sold, &gone).await;
    assert!(sandbox.throttled_count() > 0, "the sandbox answered 429s");
    assert_eq!(sandbox.request_count("/selling/orders/{orderNumber}"), 0);
    let rows = written(&db).await;
    assert_eq!(rows.len(), 260);
    let enriched = rows
        .iter()
        .filter(|w| w.enrichment_status == "enriched" && w.stockx_total_payout.is_some())
        .count();
    assert_eq!(enriched, 260, "every order enriched from the lists");
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM integration.enrichment_jobs WHERE state <> 'completed'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(failed, 0);
}

/// Below the threshold nothing changes: one new sale is one order call, no list.
#[tokio::test]
async fn a_single_new_sale_costs_one_order_call_and_no_list() {
    let db = TestDb::new().await;
    let setup = start(&db, 500.0, Faults::default(), 8).await;
    let sold = generated_sales(1, 1, 30);
    setup.sandbox.add_generated(&sold);
    enter(&db, &sold).await;
    wait_for_idle_queue(&db, Duration::from_secs(30)).await;
    let sandbox = setup.stop().await;
    assert_eq!(sandbox.request_count("/selling/orders/{orderNumber}"), 1);
    assert_eq!(sandbox.request_count("/selling/orders/history"), 0);
    assert_eq!(sandbox.request_count("/selling/orders/active"), 0);
    assert_eq!(written(&db).await[0].enrichment_status, "enriched");
}

/// A page call that fails (503) fails only the job that paged; the next job that comes for
/// the window goes on from the failed page, and the pages fetched are not fetched again.
#[tokio::test]
async fn a_failed_page_is_taken_up_by_the_next_job_and_nothing_is_fetched_twice() {
    let (sold, gone) = backlog(&[]);
    let db = TestDb::new().await;
    let faults = Faults {
        server_error_every_nth: Some(4),
        ..Faults::default()
    };
    let sandbox = enrich_backlog(&db, 20, faults, &sold, &gone).await;
    let errors = sandbox.server_error_count() as usize;
    assert!(errors > 0, "the sandbox answered 503s");
    let history = sandbox.request_count("/selling/orders/history");
    let active = sandbox.request_count("/selling/orders/active");
    // 3 history pages and 1 active page, plus the calls that failed.
    assert!(history + active >= 4 && history + active <= 4 + errors);
    assert_eq!(sandbox.request_count("/selling/orders/{orderNumber}"), 0);
    let rows = written(&db).await;
    assert!(
        rows.iter().all(|w| w.enrichment_status == "enriched"),
        "{:?}",
        rows.iter()
            .filter(|w| w.enrichment_status != "enriched")
            .collect::<Vec<_>>()
    );
}
