//! The order checks against StockX's answers (issue 12, items 3 and 4), with the real enricher
//! and StockX client against the sandbox, whose seller orders are shaped like the published
//! `DetailedOrder`: an order or payout in another currency than the sale's, a payout without a
//! currency, and an order of another product or size than the recorded SKU's catalog match,
//! whichever of the order and inventory jobs runs second.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde_json::{json, Value};
use stockx_sync::enrich::{Enricher, JobReport};
use stockx_sync::queue::{Health, Job, JobKind};
use stockx_sync::sales;
use stockx_sync::sandbox::{self, SandboxHandle, SandboxOptions};

use crate::enrich::settings_for;
use crate::helpers::{Sale, TestDb};

const DUNK: &str = "5e6a1e57-1c7d-435a-82bd-5666a13560fe";
const SAMBA: &str = "9c1b6d7e-3a2f-4e8b-8f1d-2b7c4a5e6f70";

/// A seller order of the Dunk Low Panda in US M 10, as `GET /v2/selling/orders/{orderNumber}`
/// answers it, with the given top-level `currencyCode` and `payout` object.
fn dunk_order(number: &str, order_currency: Option<&str>, payout: Value) -> Value {
    let mut order = json!({
        "askId": format!("ask-{number}"),
        "orderNumber": number,
        "listingId": format!("listing-{number}"),
        "amount": "150.00",
        "createdAt": "2024-03-20T13:51:47.000Z",
        "updatedAt": "2024-03-24T09:12:03.000Z",
        "variant": {"variantId": "5e6a1e57-10",
                    "variantName": "nike-dunk-low-retro-white-black-panda:10",
                    "variantValue": "10"},
        "product": {"productId": DUNK, "productName": "Nike Dunk Low Retro White Black Panda",
                    "styleId": "DD1391-100"},
        "status": "PAYOUTCOMPLETED",
        "inventoryType": "STANDARD",
        "shipment": {"shipByDate": null, "trackingNumber": "1Z999AA10123456784",
                     "trackingUrl": null, "carrierCode": "UPS",
                     "shippingLabelUrl": null, "shippingDocumentUrl": null},
        "authenticationDetails": {"status": "AUTHENTICATED", "failureNotes": null},
        "payout": payout,
    });
    if let Some(currency) = order_currency {
        order["currencyCode"] = json!(currency);
    }
    order
}

/// A payout of 150 less StockX's fees; `currency` None leaves `currencyCode` out.
fn payout(total: &str, currency: Option<&str>) -> Value {
    let mut payout = json!({
        "totalPayout": total,
        "salePrice": "150.00",
        "totalAdjustments": "-21.50",
        "adjustments": [
            {"adjustmentType": "Transaction Fee (8%)", "amount": "-12.00", "percentage": "0.08"},
            {"adjustmentType": "Payment Proc. (3%)", "amount": "-4.50", "percentage": "0.03"},
            {"adjustmentType": "Shipping Fee", "amount": "-5.00", "percentage": null},
        ],
    });
    if let Some(currency) = currency {
        payout["currencyCode"] = json!(currency);
    }
    payout
}

async fn sandbox_with(orders: Vec<Value>) -> SandboxHandle {
    let sandbox = sandbox::spawn("127.0.0.1:0".parse().unwrap(), SandboxOptions::default())
        .await
        .unwrap();
    for order in orders {
        sandbox.add_order(order);
    }
    sandbox
}

fn enricher(db: &TestDb, sandbox: &SandboxHandle, currency: &str) -> Enricher {
    let mut settings = settings_for(sandbox, 100.0, 2);
    settings.stockx.currency = currency.into();
    let enricher =
        Enricher::from_settings(db.pool.clone(), &settings, Arc::new(Health::default())).unwrap();
    assert!(enricher.has_stockx());
    enricher
}

/// Runs one of an order's jobs now, as a worker would.
async fn run(db: &TestDb, enricher: &Enricher, order_number: &str, kind: JobKind) -> JobReport {
    let order = sales::find_order(&db.pool, order_number)
        .await
        .unwrap()
        .expect("the order is recorded");
    let entity_id = match kind {
        JobKind::Inventory => order.inventory_id,
        _ => order.order_id,
    };
    let job = Job {
        id: 0,
        kind,
        entity_id,
        attempt: 1,
        max_attempts: 1,
        lag_seconds: 0.0,
    };
    enricher.run_job(&job).await.unwrap()
}

/// Warnings of one rule on an order: (details, open).
async fn warnings(db: &TestDb, order_number: &str, rule: &str) -> Vec<(Value, bool)> {
    sqlx::query_as(
        "SELECT details, resolved_at IS NULL FROM integration.validation_warnings
         WHERE stockx_order_number = $1 AND rule = $2 ORDER BY id",
    )
    .bind(order_number)
    .bind(rule)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test]
async fn an_order_paid_in_another_currency_is_a_currency_mismatch_with_both_amounts() {
    let db = TestDb::new().await;
    let number = "81000001-81000002";
    let sandbox = sandbox_with(vec![dunk_order(
        number,
        Some("USD"),
        payout("128.50", Some("USD")),
    )])
    .await;
    let mut sale = Sale::new(number);
    sale.net_proceeds = "120.00"; // recorded in EUR, the table's default currency
    sale.insert(&db.pool).await.unwrap();
    // Market data in the configured currency, not StockX's default (USD) nor the sale's.
    let enricher = enricher(&db, &sandbox, "GBP");
    run(&db, &enricher, number, JobKind::Inventory).await;
    let report = run(&db, &enricher, number, JobKind::Order).await;

    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("currency_mismatch")),
        "{report:?}"
    );
    let found = warnings(&db, number, "currency_mismatch").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let (details, open) = &found[0];
    assert!(open);
    assert_eq!(details["currency"], json!("EUR"));
    assert_eq!(details["net_proceeds"], json!(dec("120.00")));
    assert_eq!(details["stockx_payout_currency"], json!("USD"));
    assert_eq!(details["stockx_total_payout"], json!(dec("128.50")));
    assert_eq!(details["stockx_order_currency"], json!("USD"));
    assert_eq!(warnings(&db, number, "payout_mismatch").await, vec![]);

    // The order's currency is recorded beside the payout's, and the entry row shows both the
    // payout's and the warning.
    let (payout_currency, order_currency): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT stockx_currency, stockx_order_currency FROM platforms.stockx_orders
         WHERE stockx_order_number = $1",
    )
    .bind(number)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (payout_currency.as_deref(), order_currency.as_deref()),
        (Some("USD"), Some("USD"))
    );
    let (shown_currency, open_warnings): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT stockx_payout_currency, open_warnings FROM platforms.stockx_sale_entry
         WHERE stockx_order_number = $1",
    )
    .bind(number)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(shown_currency.as_deref(), Some("USD"));
    assert!(
        open_warnings
            .as_deref()
            .is_some_and(|w| w.contains("currency_mismatch")),
        "{open_warnings:?}"
    );

    let market: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT currency FROM platforms.marketplace_data WHERE stockx_product_id = $1",
    )
    .bind(DUNK)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(market, vec!["GBP".to_string()]);

    // Recorded in USD after all: the currencies agree, and the payout is compared.
    sqlx::query(
        "UPDATE platforms.stockx_orders SET currency = 'USD' WHERE stockx_order_number = $1",
    )
    .bind(number)
    .execute(&db.pool)
    .await
    .unwrap();
    run(&db, &enricher, number, JobKind::Order).await;
    let found = warnings(&db, number, "currency_mismatch").await;
    assert_eq!(
        found.iter().filter(|(_, open)| *open).count(),
        0,
        "{found:?}"
    );
    let payout_found = warnings(&db, number, "payout_mismatch").await;
    assert_eq!(payout_found.len(), 1);
    assert_eq!(payout_found[0].0["difference"], json!(dec("8.50")));
}

#[tokio::test]
async fn a_payout_without_a_currency_is_named_unknown_and_not_compared() {
    let db = TestDb::new().await;
    let number = "81000003-81000004";
    let sandbox = sandbox_with(vec![dunk_order(number, Some("EUR"), payout("38.03", None))]).await;
    Sale::new(number).insert(&db.pool).await.unwrap(); // net proceeds 160.00 EUR
    let enricher = enricher(&db, &sandbox, "EUR");
    let report = run(&db, &enricher, number, JobKind::Order).await;

    let status_line = report
        .changes
        .iter()
        .find(|c| c.starts_with("StockX status"))
        .expect("a status line");
    assert!(
        status_line.contains("payout 38.03 (StockX names no currency)"),
        "{status_line}"
    );
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.contains("names no currency: not compared with the net proceeds")),
        "{report:?}"
    );
    assert_eq!(report.warnings, Vec::<String>::new());
    assert_eq!(warnings(&db, number, "payout_mismatch").await, vec![]);
    // The order's own currency is not taken for the payout's.
    let (payout_currency, order_currency, total): (
        Option<String>,
        Option<String>,
        Option<Decimal>,
    ) = sqlx::query_as(
        "SELECT stockx_currency, stockx_order_currency, stockx_total_payout
             FROM platforms.stockx_orders WHERE stockx_order_number = $1",
    )
    .bind(number)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (payout_currency, order_currency.as_deref(), total),
        (None, Some("EUR"), Some(dec("38.03")))
    );
}

#[tokio::test]
async fn an_order_of_another_product_or_size_is_flagged_whichever_job_runs_second() {
    let db = TestDb::new().await;
    // Two Dunk sales entered as the Samba B75806 (the order job first in one, the inventory
    // job first in the other), and one entered as the Dunk in US 9 though US 10 was sold.
    let order_first = "82000001-82000002";
    let inventory_first = "82000003-82000004";
    let wrong_size = "82000005-82000006";
    let sandbox = sandbox_with(
        [order_first, inventory_first, wrong_size]
            .iter()
            .map(|n| dunk_order(n, Some("EUR"), payout("128.50", Some("EUR"))))
            .collect(),
    )
    .await;
    for (number, sku, size) in [
        (order_first, "B75806", "8.5"),
        (inventory_first, "B75806", "8.5"),
        (wrong_size, "DD1391-100", "9"),
    ] {
        let mut sale = Sale::new(number);
        sale.sku = sku;
        sale.size = size;
        sale.net_proceeds = "128.50";
        sale.insert(&db.pool).await.unwrap();
    }
    let enricher = enricher(&db, &sandbox, "EUR");
    run(&db, &enricher, order_first, JobKind::Order).await;
    run(&db, &enricher, order_first, JobKind::Inventory).await;
    run(&db, &enricher, inventory_first, JobKind::Inventory).await;
    run(&db, &enricher, inventory_first, JobKind::Order).await;
    run(&db, &enricher, wrong_size, JobKind::Order).await;
    run(&db, &enricher, wrong_size, JobKind::Inventory).await;

    for number in [order_first, inventory_first] {
        let found = warnings(&db, number, "order_product_mismatch").await;
        assert_eq!(found.len(), 1, "{number}: {found:?}");
        let (details, open) = &found[0];
        assert!(open);
        assert_eq!(details["recorded_sku"], json!("B75806"), "{number}");
        assert_eq!(details["order"]["stockx_product_id"], json!(DUNK));
        assert_eq!(details["order"]["style_id"], json!("DD1391-100"));
        assert_eq!(
            details["order"]["title"],
            json!("Nike Dunk Low Retro White Black Panda")
        );
        assert_eq!(details["catalog"]["stockx_product_id"], json!(SAMBA));
    }
    // The order of another product did not become the Samba's catalog match.
    let samba: Option<String> =
        sqlx::query_scalar("SELECT stockx_product_id FROM products.products WHERE sku = 'B75806'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(samba.as_deref(), Some(SAMBA));
    let found = warnings(&db, wrong_size, "order_product_mismatch").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0["order"]["size"], json!("10"));
    assert_eq!(found[0].0["recorded_size"], json!("9"));

    // Corrected to what was sold: the next run resolves the warning.
    sqlx::query(
        "UPDATE platforms.stockx_sale_entry SET sku = 'DD1391-100', size = '10'
         WHERE stockx_order_number = ANY($1)",
    )
    .bind(vec![order_first, wrong_size])
    .execute(&db.pool)
    .await
    .unwrap();
    for number in [order_first, wrong_size] {
        run(&db, &enricher, number, JobKind::Inventory).await;
        let found = warnings(&db, number, "order_product_mismatch").await;
        assert_eq!(
            found.iter().filter(|(_, open)| *open).count(),
            0,
            "{number}: {found:?}"
        );
    }
    let still: Vec<(Value, bool)> = warnings(&db, inventory_first, "order_product_mismatch").await;
    assert!(still[0].1, "the uncorrected sale keeps its warning");
}

/// Correcting the SKU or size through the entry table (as Budibase does) re-queues both jobs;
/// it failed on the queue's ON CONFLICT since the one-waiting-job index replaced the old one.
#[tokio::test]
async fn correcting_the_sku_on_the_entry_row_requeues_the_order_and_the_item() {
    let db = TestDb::new().await;
    let number = "83000001-83000002";
    let mut sale = Sale::new(number);
    sale.sku = "B75806";
    sale.insert(&db.pool).await.unwrap();
    // The jobs of the insert are done: the correction must queue new ones.
    sqlx::query("UPDATE integration.enrichment_jobs SET state = 'completed', finished_at = now()")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE platforms.stockx_sale_entry SET sku = 'DD1391-100', size = '9.5'
         WHERE stockx_order_number = $1",
    )
    .bind(number)
    .execute(&db.pool)
    .await
    .expect("the correction is accepted");
    let waiting: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM integration.enrichment_jobs WHERE state = 'available' ORDER BY kind",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(waiting, vec!["inventory".to_string(), "order".to_string()]);
    let sku: String = sqlx::query_scalar(
        "SELECT p.sku FROM products.inventory i JOIN products.products p ON p.id = i.product_id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(sku, "DD1391-100");
}
