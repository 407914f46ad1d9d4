//! Sales entered through `platforms.stockx_sale_entry`, the flat table Budibase writes to (its
//! triggers create or reuse supplier, size and product, and create the inventory item, listing
//! and order), and the sales read back for a person.

use rust_decimal::Decimal;
use sqlx::PgPool;
use time::Date;

/// One sale as a person types it. `None` leaves a column empty (profit and ROI are then
/// computed by the entry table's trigger).
#[derive(Debug, Clone)]
pub struct SaleEntry<'a> {
    pub order_number: &'a str,
    pub sku: &'a str,
    pub size: &'a str,
    pub supplier: &'a str,
    pub purchase_price: Decimal,
    pub purchase_date: Option<Date>,
    pub sale_price: Option<Decimal>,
    pub net_proceeds: Decimal,
    pub profit: Option<Decimal>,
    pub sold_at: Date,
}

/// Enters one sale, as Budibase does: one statement, so one transaction; its trigger enqueues
/// the enrichment jobs.
pub async fn enter_sale(pool: &PgPool, sale: &SaleEntry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO platforms.stockx_sale_entry
           (stockx_order_number, sku, size, supplier, purchase_price, purchase_date,
            sale_price, net_proceeds, profit, sold_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(sale.order_number)
    .bind(sale.sku)
    .bind(sale.size)
    .bind(sale.supplier)
    .bind(sale.purchase_price)
    .bind(sale.purchase_date)
    .bind(sale.sale_price)
    .bind(sale.net_proceeds)
    .bind(sale.profit)
    .bind(sale.sold_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Enters many sales in one statement (the benchmark's and the tests' backfill): the entry
/// table's row trigger runs for each, the queue's statement triggers once.
pub async fn enter_sales<'a>(pool: &PgPool, sales: &[SaleEntry<'a>]) -> Result<(), sqlx::Error> {
    let column = |f: fn(&SaleEntry<'a>) -> &'a str| sales.iter().map(f).collect::<Vec<&str>>();
    sqlx::query(
        "INSERT INTO platforms.stockx_sale_entry
           (stockx_order_number, sku, size, supplier, purchase_price, purchase_date,
            sale_price, net_proceeds, profit, sold_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
                              $6::date[], $7::numeric[], $8::numeric[], $9::numeric[],
                              $10::date[])",
    )
    .bind(column(|s| s.order_number))
    .bind(column(|s| s.sku))
    .bind(column(|s| s.size))
    .bind(column(|s| s.supplier))
    .bind(sales.iter().map(|s| s.purchase_price).collect::<Vec<_>>())
    .bind(sales.iter().map(|s| s.purchase_date).collect::<Vec<_>>())
    .bind(sales.iter().map(|s| s.sale_price).collect::<Vec<_>>())
    .bind(sales.iter().map(|s| s.net_proceeds).collect::<Vec<_>>())
    .bind(sales.iter().map(|s| s.profit).collect::<Vec<_>>())
    .bind(sales.iter().map(|s| s.sold_at).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(())
}

/// A sale and what enrichment made of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SaleSummary {
    pub order_number: String,
    pub sku: String,
    pub enrichment_status: String,
    pub stockx_status: Option<String>,
    pub stockx_total_payout: Option<Decimal>,
    /// The catalog name; `None` until StockX's catalog has given it.
    pub product_name: Option<String>,
}

/// Every sale, by sale date.
pub async fn sale_summaries(pool: &PgPool) -> Result<Vec<SaleSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.stockx_order_number AS order_number, p.sku, o.enrichment_status,
                o.stockx_status, o.stockx_total_payout, p.name AS product_name
         FROM platforms.stockx_orders o
         JOIN platforms.stockx_listings l ON l.id = o.listing_id
         JOIN products.inventory i ON i.id = l.inventory_id
         JOIN products.products p ON p.id = i.product_id
         ORDER BY o.sold_at",
    )
    .fetch_all(pool)
    .await
}

/// How many suppliers there are (names that differ only in case and spacing are one).
pub async fn supplier_count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM products.suppliers")
        .fetch_one(pool)
        .await
}
