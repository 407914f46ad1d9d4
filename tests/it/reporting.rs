//! The reporting views against known data, with exact figures.

use rust_decimal::Decimal;

use crate::helpers::{Sale, TestDb};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

async fn fixture(db: &TestDb) {
    // (order, sku, supplier, bought, net, sold_at, recorded profit)
    let sales = [
        (
            "R-1",
            "DD1391-100",
            "Nike Store",
            "100.00",
            "150.00",
            "2024-03-05",
            None,
        ),
        (
            "R-2",
            "DD1391-100",
            "Zalando",
            "110.00",
            "121.00",
            "2024-03-20",
            Some("99.00"),
        ),
        (
            "R-3",
            "HQ4276",
            "Zalando",
            "80.00",
            "60.00",
            "2024-04-02",
            None,
        ),
    ];
    for (order, sku, supplier, bought, net, sold, profit) in sales {
        let mut sale = Sale::new(order);
        sale.sku = sku;
        sale.supplier = supplier;
        sale.purchase_price = bought;
        sale.net_proceeds = net;
        sale.sold_at = sold;
        sale.purchase_date = Some("2024-02-01");
        sale.sale_price = Some(net);
        sale.profit = profit;
        sale.insert(&db.pool).await.unwrap();
    }
    sqlx::query("UPDATE products.products SET brand = 'Nike' WHERE sku = 'DD1391-100'")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE platforms.stockx_orders SET enrichment_status = CASE stockx_order_number
             WHEN 'R-1' THEN 'enriched' WHEN 'R-3' THEN 'not_found' ELSE enrichment_status END",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    // Unsold stock bought 10 days ago.
    sqlx::query(
        "INSERT INTO products.inventory (product_id, size_id, supplier_id, purchase_price, purchase_date, status)
         SELECT product_id, size_id, supplier_id, 95, current_date - 10, 'in_stock'
         FROM products.inventory LIMIT 1",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO integration.validation_warnings (entity_type, entity_id, rule, message)
         SELECT 'order', id, 'profit_mismatch', 'x' FROM platforms.stockx_orders WHERE stockx_order_number = 'R-2'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_reporting_views_give_exact_figures() {
    let db = TestDb::new().await;
    fixture(&db).await;

    let months: Vec<(time::Date, i64, Decimal, Decimal, Decimal)> = sqlx::query_as(
        "SELECT month, sales, revenue, profit, avg_roi FROM reporting.sales_by_month ORDER BY month",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    // March: profits 50 and 11 (the recorded 99 is ignored); ROIs 0.5 and 0.1 → 0.3.
    // April: −20, ROI −0.25.
    assert_eq!(months.len(), 2);
    assert_eq!(months[0].0.to_string(), "2024-03-01");
    assert_eq!(
        (months[0].1, months[0].2, months[0].3, months[0].4),
        (2, d("271.00"), d("61.00"), d("0.3000"))
    );
    assert_eq!(
        (months[1].1, months[1].2, months[1].3, months[1].4),
        (1, d("60.00"), d("-20.00"), d("-0.2500"))
    );

    let suppliers: Vec<(String, i64, Decimal, Decimal)> = sqlx::query_as(
        "SELECT supplier, sales, profit, avg_roi FROM reporting.profit_by_supplier ORDER BY supplier",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        suppliers,
        vec![
            ("Nike Store".to_string(), 1, d("50.00"), d("0.5000")),
            ("Zalando".to_string(), 2, d("-9.00"), d("-0.0750")),
        ]
    );
    let brands: Vec<(String, i64, Decimal)> =
        sqlx::query_as("SELECT brand, sales, profit FROM reporting.profit_by_brand ORDER BY brand")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        brands,
        vec![
            ("(unknown)".to_string(), 1, d("-20.00")),
            ("Nike".to_string(), 2, d("61.00"))
        ]
    );
    let products: Vec<(String, i64, Decimal)> =
        sqlx::query_as("SELECT sku, sales, profit FROM reporting.profit_by_product ORDER BY sku")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        products,
        vec![
            ("DD1391-100".to_string(), 2, d("61.00")),
            ("HQ4276".to_string(), 1, d("-20.00"))
        ]
    );
    let aged: Vec<(String, i32)> =
        sqlx::query_as("SELECT status, days_held FROM reporting.inventory_age")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(aged, vec![("in_stock".to_string(), 10)]);
    let warnings: Vec<(String, i64)> =
        sqlx::query_as("SELECT rule, open_warnings FROM reporting.open_warnings_by_rule")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(warnings, vec![("profit_mismatch".to_string(), 1)]);
    let coverage: (i64, i64, i64, i64, i64, Decimal) = sqlx::query_as(
        "SELECT total, enriched, pending, not_found, failed, enriched_share FROM reporting.enrichment_coverage",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(coverage, (3, 1, 1, 1, 0, d("0.3333")));
}

#[tokio::test]
async fn the_reader_role_can_read_the_reports() {
    let db = TestDb::new().await;
    fixture(&db).await;
    let role = format!("t_metabase_{}", uuid::Uuid::new_v4().simple());
    let mut conn = db.connect().await;
    sqlx::query(&format!(
        "CREATE ROLE {role} LOGIN IN ROLE stockx_sync_reader"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(&format!("SET ROLE {role}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT sum(sales)::bigint FROM reporting.sales_by_month")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 3);
    sqlx::query("RESET ROLE").execute(&mut conn).await.unwrap();
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&mut conn)
        .await
        .unwrap();
}
