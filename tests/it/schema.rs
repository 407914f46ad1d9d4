//! The schema as Budibase and the worker see it: the entry view, the triggers that fill the job
//! queue, the roles' grants, and `verify`.

use rust_decimal::Decimal;
use sqlx::postgres::PgListener;
use sqlx::{Connection, Row};
use std::str::FromStr;
use std::time::Duration;

use crate::helpers::{Sale, TestDb};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

const TABLES: [&str; 7] = [
    "products.suppliers",
    "products.sizes",
    "products.products",
    "products.inventory",
    "platforms.stockx_listings",
    "platforms.stockx_orders",
    "integration.enrichment_jobs",
];

async fn counts(db: &TestDb) -> Vec<i64> {
    let mut out = Vec::new();
    for table in TABLES {
        out.push(db.count(table).await);
    }
    out
}

#[tokio::test]
async fn one_insert_creates_every_row_and_computes_profit_and_roi() {
    let db = TestDb::new().await;
    Sale::new("323314425-323214184")
        .insert(&db.pool)
        .await
        .unwrap();

    assert_eq!(counts(&db).await, vec![1, 1, 1, 1, 1, 1, 2]);
    let row = sqlx::query(
        "SELECT o.net_profit, o.roi, o.enrichment_status, i.status, i.external_ids->>'stockx_order_number' AS ext,
                l.status AS listing_status, p.sku, s.value, s.region
         FROM platforms.stockx_orders o
         JOIN platforms.stockx_listings l ON l.id = o.listing_id
         JOIN products.inventory i ON i.id = l.inventory_id
         JOIN products.products p ON p.id = i.product_id
         JOIN products.sizes s ON s.id = i.size_id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(row.get::<Decimal, _>("net_profit"), dec("50.00"));
    // 50 / 110 = 0.45454... rounded to 4 places
    assert_eq!(row.get::<Decimal, _>("roi"), dec("0.4545"));
    assert_eq!(row.get::<String, _>("enrichment_status"), "pending");
    assert_eq!(row.get::<String, _>("status"), "sold");
    assert_eq!(row.get::<String, _>("listing_status"), "sold");
    assert_eq!(row.get::<String, _>("ext"), "323314425-323214184");
    assert_eq!(row.get::<String, _>("sku"), "DD1391-100");
    assert_eq!(row.get::<String, _>("region"), "US");

    // The view reads back what was entered.
    let (order, supplier, profit): (String, String, Decimal) = sqlx::query_as(
        "SELECT stockx_order_number, supplier, profit FROM platforms.stockx_sale_entry",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (order.as_str(), supplier.as_str(), profit),
        ("323314425-323214184", "Nike Store", dec("50.00"))
    );
}

#[tokio::test]
async fn given_profit_and_roi_are_stored_as_given() {
    let db = TestDb::new().await;
    let mut sale = Sale::new("A-1");
    sale.profit = Some("55.00");
    sale.roi = Some("0.5");
    sale.insert(&db.pool).await.unwrap();
    let (profit, roi): (Decimal, Decimal) =
        sqlx::query_as("SELECT net_profit, roi FROM platforms.stockx_orders")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((profit, roi), (dec("55.00"), dec("0.5")));
}

#[tokio::test]
async fn returning_shows_the_computed_values() {
    let db = TestDb::new().await;
    let (profit, roi, supplier): (Decimal, Decimal, String) = sqlx::query_as(
        "INSERT INTO platforms.stockx_sale_entry
           (stockx_order_number, sku, size, supplier, purchase_price, net_proceeds, sold_at)
         VALUES ('R-1', 'dd1391-100', '9.5', '  nike   store ', 100, 125, '2024-01-02')
         RETURNING profit, roi, supplier",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((profit, roi), (dec("25.00"), dec("0.2500")));
    assert_eq!(supplier, "nike store");
}

#[tokio::test]
async fn existing_supplier_size_and_product_are_reused() {
    let db = TestDb::new().await;
    Sale::new("B-1").insert(&db.pool).await.unwrap();
    let variants = ["nike store", "  NIKE   Store  ", "Nike\tStore"];
    for (i, supplier) in variants.iter().enumerate() {
        let order = format!("B-{}", i + 2);
        let mut sale = Sale::new(&order);
        sale.supplier = supplier;
        sale.sku = " dd1391-100 ";
        sale.insert(&db.pool).await.unwrap();
    }
    let mut other = Sale::new("B-9");
    other.size = "11";
    other.supplier = "Solebox";
    other.insert(&db.pool).await.unwrap();

    assert_eq!(db.count("products.suppliers").await, 2);
    assert_eq!(db.count("products.products").await, 1);
    assert_eq!(db.count("products.sizes").await, 2);
    assert_eq!(db.count("products.inventory").await, 5);
    assert_eq!(db.count("platforms.stockx_orders").await, 5);
}

#[tokio::test]
async fn a_duplicate_order_number_is_an_error_and_writes_nothing() {
    let db = TestDb::new().await;
    Sale::new("DUP-1").insert(&db.pool).await.unwrap();
    let before = counts(&db).await;

    let mut again = Sale::new("DUP-1");
    again.supplier = "A Brand New Supplier";
    again.sku = "NEW-SKU-1";
    again.size = "12";
    let err = again.insert(&db.pool).await.unwrap_err();
    let db_err = err.as_database_error().expect("a database error");
    assert_eq!(db_err.code().as_deref(), Some("23505"));
    assert!(
        db_err.message().contains("DUP-1"),
        "message names the order: {}",
        db_err.message()
    );
    assert_eq!(counts(&db).await, before, "nothing was written");
}

#[tokio::test]
async fn a_missing_required_column_is_named_in_the_error() {
    let db = TestDb::new().await;
    let cases = [
        (
            "stockx_order_number",
            "NULL",
            "'X'",
            "'S'",
            "10",
            "10",
            "'2024-01-01'",
        ),
        ("sku", "'N-1'", "NULL", "'S'", "10", "10", "'2024-01-01'"),
        (
            "supplier",
            "'N-2'",
            "'X'",
            "NULL",
            "10",
            "10",
            "'2024-01-01'",
        ),
        (
            "purchase_price",
            "'N-3'",
            "'X'",
            "'S'",
            "NULL",
            "10",
            "'2024-01-01'",
        ),
        (
            "net_proceeds",
            "'N-4'",
            "'X'",
            "'S'",
            "10",
            "NULL",
            "'2024-01-01'",
        ),
        ("sold_at", "'N-5'", "'X'", "'S'", "10", "10", "NULL"),
    ];
    for (column, order, sku, supplier, price, proceeds, sold_at) in cases {
        let sql = format!(
            "INSERT INTO platforms.stockx_sale_entry
               (stockx_order_number, sku, size, supplier, purchase_price, net_proceeds, sold_at)
             VALUES ({order}, {sku}, '10', {supplier}, {price}, {proceeds}, {sold_at})"
        );
        let err = sqlx::query(&sql).execute(&db.pool).await.unwrap_err();
        let db_err = err.as_database_error().unwrap();
        assert_eq!(db_err.code().as_deref(), Some("23502"), "{column}");
        assert!(
            db_err.message().contains(column),
            "error for {column} names it: {}",
            db_err.message()
        );
    }
    assert_eq!(counts(&db).await, vec![0, 0, 0, 0, 0, 0, 0]);
}

#[tokio::test]
async fn inserts_enqueue_jobs_and_notify_the_worker_channel() {
    let db = TestDb::new().await;
    let mut listener = PgListener::connect_with(&db.pool).await.unwrap();
    listener.listen("stockx_sync_jobs").await.unwrap();

    Sale::new("N-1").insert(&db.pool).await.unwrap();

    let mut payloads = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), listener.recv()).await {
        payloads.push(n.payload().to_string());
        if payloads.len() == 2 {
            break;
        }
    }
    payloads.sort();
    assert_eq!(payloads, vec!["inventory", "order"]);

    let jobs: Vec<(String, String, i16)> = sqlx::query_as(
        "SELECT kind, state, attempt FROM integration.enrichment_jobs ORDER BY kind",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        jobs,
        vec![
            ("inventory".to_string(), "available".to_string(), 0),
            ("order".to_string(), "available".to_string(), 0)
        ]
    );
}

#[tokio::test]
async fn a_second_change_while_a_job_is_open_adds_no_job() {
    let db = TestDb::new().await;
    Sale::new("O-1").insert(&db.pool).await.unwrap();
    for proceeds in ["150", "151", "152"] {
        sqlx::query("UPDATE platforms.stockx_orders SET net_proceeds = $1::numeric")
            .bind(proceeds)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM integration.enrichment_jobs WHERE kind = 'order'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(open, 1);
}

#[tokio::test]
async fn only_changes_that_matter_enqueue_a_new_job() {
    let db = TestDb::new().await;
    Sale::new("U-1").insert(&db.pool).await.unwrap();
    sqlx::query("UPDATE integration.enrichment_jobs SET state = 'completed', finished_at = now()")
        .execute(&db.pool)
        .await
        .unwrap();
    let open = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM integration.enrichment_jobs WHERE state = 'available'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };

    // What the worker writes, and notes, do not matter for enrichment.
    sqlx::query(
        "UPDATE platforms.stockx_orders SET notes = 'checked', stockx_status = 'COMPLETED',
                enrichment_status = 'enriched', net_proceeds = net_proceeds",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE products.inventory SET notes = 'box damaged', stockx_variant_id = 'v'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(open().await, 0);

    sqlx::query("UPDATE platforms.stockx_orders SET net_proceeds = 170")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE products.inventory SET purchase_price = 100")
        .execute(&db.pool)
        .await
        .unwrap();
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM integration.enrichment_jobs WHERE state = 'available' ORDER BY kind",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(kinds, vec!["inventory", "order"]);
}

#[tokio::test]
async fn roles_grant_what_budibase_and_metabase_need_and_no_more() {
    let db = TestDb::new().await;
    Sale::new("G-1").insert(&db.pool).await.unwrap();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let entry = format!("t_entry_{suffix}");
    let reader = format!("t_reader_{suffix}");
    let mut conn = db.connect().await;
    for (role, group) in [
        (&entry, "stockx_sync_entry"),
        (&reader, "stockx_sync_reader"),
    ] {
        sqlx::query(&format!("CREATE ROLE {role} LOGIN"))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(&format!("GRANT {group} TO {role}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }

    let as_role = |role: String, sql: &'static str| {
        let options = db.options.clone();
        async move {
            let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap();
            sqlx::query(&format!("SET ROLE {role}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let result = sqlx::query(sql).execute(&mut conn).await.map(|_| ());
            conn.close().await.ok();
            result
        }
    };
    let denied = |r: Result<(), sqlx::Error>| {
        r.unwrap_err()
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|c| c == "42501")
    };

    as_role(
        entry.clone(),
        "INSERT INTO platforms.stockx_sale_entry
           (stockx_order_number, sku, size, supplier, purchase_price, net_proceeds, sold_at)
         VALUES ('G-2', 'HQ4276', '42', 'Zalando', 90, 120, '2024-05-01')",
    )
    .await
    .expect("entry role inserts through the view");
    as_role(entry.clone(), "SELECT * FROM products.suppliers")
        .await
        .expect("entry role reads lookups");
    assert!(denied(
        as_role(
            entry.clone(),
            "UPDATE platforms.stockx_orders SET net_proceeds = 1"
        )
        .await
    ));
    assert!(denied(
        as_role(entry.clone(), "DELETE FROM products.inventory").await
    ));

    as_role(reader.clone(), "SELECT * FROM platforms.stockx_orders")
        .await
        .expect("reader selects");
    as_role(reader.clone(), "SELECT * FROM integration.enrichment_jobs")
        .await
        .expect("reader selects the queue");
    assert!(denied(
        as_role(
            reader.clone(),
            "INSERT INTO platforms.stockx_sale_entry
               (stockx_order_number, sku, size, supplier, purchase_price, net_proceeds, sold_at)
             VALUES ('G-3', 'X', '1', 'S', 1, 1, '2024-01-01')"
        )
        .await
    ));
    assert!(denied(
        as_role(reader.clone(), "UPDATE products.products SET name = 'x'").await
    ));

    assert_eq!(db.count("platforms.stockx_orders").await, 2);
    for role in [&entry, &reader] {
        sqlx::query(&format!("DROP ROLE {role}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn verify_passes_on_consistent_data_and_names_what_fails() {
    let db = TestDb::new().await;
    Sale::new("V-1").insert(&db.pool).await.unwrap();
    let report = stockx_sync::cli::verify::run_checks(&db.pool)
        .await
        .unwrap();
    assert!(report.ok, "{report}");

    let mut wrong_profit = Sale::new("V-2");
    wrong_profit.profit = Some("99.00");
    wrong_profit.insert(&db.pool).await.unwrap();
    let mut sold_before_bought = Sale::new("V-3");
    sold_before_bought.purchase_date = Some("2024-04-01");
    sold_before_bought.sold_at = "2024-03-01";
    sold_before_bought.insert(&db.pool).await.unwrap();
    sqlx::query(
        "INSERT INTO products.inventory (product_id, size_id, supplier_id, purchase_price, status)
         SELECT product_id, size_id, supplier_id, 10, 'sold' FROM products.inventory LIMIT 1",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE platforms.stockx_orders SET created_at = now() - interval '2 days'
         WHERE stockx_order_number = 'V-1'",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let report = stockx_sync::cli::verify::run_checks(&db.pool)
        .await
        .unwrap();
    assert!(!report.ok);
    let failing: Vec<(&str, i64, Vec<String>)> = report
        .checks
        .iter()
        .filter(|c| c.failures > 0)
        .map(|c| (c.name, c.failures, c.examples.clone()))
        .collect();
    assert_eq!(
        failing,
        vec![
            ("sold_inventory_without_order", 1, failing[0].2.clone()),
            ("profit_mismatch", 1, vec!["V-2".to_string()]),
            // No roi_mismatch for V-2: only its profit was typed, and the ROI computed from it
            // (99 / 110) matches it.
            ("sale_before_purchase", 1, vec!["V-3".to_string()]),
            ("pending_enrichment_over_24h", 1, vec!["V-1".to_string()]),
        ]
    );
}

#[tokio::test]
async fn status_counts_jobs_by_state_and_warnings_by_rule() {
    let db = TestDb::new().await;
    Sale::new("S-1").insert(&db.pool).await.unwrap();
    Sale::new("S-2").insert(&db.pool).await.unwrap();
    sqlx::query(
        "UPDATE integration.enrichment_jobs SET state = 'failed', finished_at = now(),
                last_error = 'StockX answered 500', attempt = 3
         WHERE id = (SELECT min(id) FROM integration.enrichment_jobs)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO integration.validation_warnings (entity_type, entity_id, rule, message)
         SELECT 'order', id, 'profit_mismatch', 'x' FROM platforms.stockx_orders",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let report = stockx_sync::cli::status::collect(&db.pool).await.unwrap();
    let queue: Vec<(&str, i64)> = report
        .queue
        .iter()
        .map(|s| (s.state.as_str(), s.jobs))
        .collect();
    assert_eq!(
        queue,
        vec![
            ("available", 3),
            ("running", 0),
            ("retryable", 0),
            ("completed", 0),
            ("failed", 1)
        ]
    );
    assert_eq!(report.recent_failures.len(), 1);
    assert_eq!(
        report.recent_failures[0].last_error.as_deref(),
        Some("StockX answered 500")
    );
    assert!(report.oldest_waiting.is_some());
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(report.warnings[0].open, 2);
}

/// How often the entry row's refresh ran in the current transaction.
async fn entry_refreshes(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_xact_user_functions
         WHERE schemaname = 'integration' AND funcname = 'sale_entry_sync'",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_entry_row_follows_what_it_shows_and_an_order_written_directly_gets_one() {
    let db = TestDb::new().await;
    Sale::new("F-1").insert(&db.pool).await.unwrap();
    let mut conn = db.connect().await;
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SET LOCAL track_functions = 'pl'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let inventory = "(SELECT l.inventory_id FROM platforms.stockx_listings l
                      JOIN platforms.stockx_orders o ON o.listing_id = l.id
                      WHERE o.stockx_order_number = 'F-1')";

    // The StockX variant is not on the entry row: no refresh.
    sqlx::query(&format!(
        "UPDATE products.inventory SET stockx_variant_id = 'v-1' WHERE id = {inventory}"
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(entry_refreshes(&mut tx).await, 0);

    // The purchase price is: refreshed.
    sqlx::query(&format!(
        "UPDATE products.inventory SET purchase_price = 95.00 WHERE id = {inventory}"
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(entry_refreshes(&mut tx).await, 1);
    let shown: Decimal = sqlx::query_scalar(
        "SELECT purchase_price FROM platforms.stockx_sale_entry WHERE stockx_order_number = 'F-1'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(shown, dec("95.00"));

    // An order written straight into the business tables gets its entry row.
    sqlx::query(
        "WITH i AS (
             INSERT INTO products.inventory (product_id, size_id, supplier_id, purchase_price,
                                             status)
             SELECT product_id, size_id, supplier_id, 70.00, 'sold' FROM products.inventory
             LIMIT 1 RETURNING id, product_id
         ), l AS (
             INSERT INTO platforms.stockx_listings (inventory_id, product_id, status)
             SELECT id, product_id, 'sold' FROM i RETURNING id
         )
         INSERT INTO platforms.stockx_orders (listing_id, stockx_order_number, net_proceeds,
                                              sold_at)
         SELECT id, 'F-2', 120.00, DATE '2024-04-01' FROM l",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let (price, supplier): (Decimal, String) = sqlx::query_as(
        "SELECT purchase_price, supplier FROM platforms.stockx_sale_entry
         WHERE stockx_order_number = 'F-2'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!((price, supplier.as_str()), (dec("70.00"), "Nike Store"));
    tx.rollback().await.unwrap();
}
