//! What goes stale: StockX adds products and orders after we asked, so answers of "not found"
//! and enrichments that failed for good are worth asking again once in a while. The daily
//! refresh (`schedule`) reads them here and puts them back in the queue.

use sqlx::PgPool;
use uuid::Uuid;

/// Rows whose enrichment is worth another try.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StaleEnrichment {
    /// Orders StockX did not know, or whose enrichment failed for good.
    pub orders: Vec<Uuid>,
    /// Inventory items without a StockX variant (product or size not found, or not asked yet).
    pub inventory: Vec<Uuid>,
}

pub async fn stale_enrichment(pool: &PgPool) -> Result<StaleEnrichment, sqlx::Error> {
    let orders = sqlx::query_scalar(
        "SELECT id FROM platforms.stockx_orders
         WHERE enrichment_status IN ('not_found', 'failed') ORDER BY created_at",
    )
    .fetch_all(pool)
    .await?;
    let inventory = sqlx::query_scalar(
        "SELECT id FROM products.inventory WHERE stockx_variant_id IS NULL ORDER BY created_at",
    )
    .fetch_all(pool)
    .await?;
    Ok(StaleEnrichment { orders, inventory })
}

/// Forgets every "StockX has no product with this SKU" answer, so that the next inventory job
/// of those products asks StockX again. Returns how many products were reset.
pub async fn forget_products_not_found(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE products.products SET stockx_lookup_status = NULL
         WHERE stockx_lookup_status = 'not_found'",
    )
    .execute(pool)
    .await?
    .rows_affected())
}

/// The IDs of the orders with these numbers (those recorded).
pub async fn order_ids(pool: &PgPool, numbers: &[String]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM platforms.stockx_orders WHERE stockx_order_number = ANY($1) ORDER BY id",
    )
    .bind(numbers)
    .fetch_all(pool)
    .await
}
