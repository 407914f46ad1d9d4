//! The sales store: every statement on the `products` and `platforms` tables outside the
//! migrations. Rows are read into named structs, never positional tuples, so that two columns of
//! the same type cannot be swapped silently. Callers (`enrich`, the commands, the HTTP layer)
//! say what they need; this module says how it is stored.

use sqlx::PgPool;
use uuid::Uuid;

/// Rows that still wait for enrichment: orders `pending`, and inventory items whose variant
/// is unknown and whose product has not been looked up yet.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PendingEnrichment {
    pub orders: Vec<Uuid>,
    pub inventory: Vec<Uuid>,
}

/// What a worker with StockX credentials picks up at start (rows entered while no credentials
/// were set, or whose jobs were pruned).
pub async fn pending_enrichment(pool: &PgPool) -> Result<PendingEnrichment, sqlx::Error> {
    let orders = sqlx::query_scalar(
        "SELECT id FROM platforms.stockx_orders WHERE enrichment_status = 'pending'",
    )
    .fetch_all(pool)
    .await?;
    let inventory = sqlx::query_scalar(
        "SELECT i.id FROM products.inventory i
         JOIN products.products p ON p.id = i.product_id
         WHERE i.stockx_variant_id IS NULL AND p.stockx_lookup_status IS NULL",
    )
    .fetch_all(pool)
    .await?;
    Ok(PendingEnrichment { orders, inventory })
}

/// An order and the rows it hangs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderRef {
    pub order_id: Uuid,
    pub inventory_id: Uuid,
    pub product_id: Uuid,
}

/// Finds an order by its StockX number (surrounding spaces ignored, as the entry table does).
pub async fn find_order(
    pool: &PgPool,
    order_number: &str,
) -> Result<Option<OrderRef>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.id AS order_id, l.inventory_id, l.product_id
         FROM platforms.stockx_orders o
         JOIN platforms.stockx_listings l ON l.id = o.listing_id
         WHERE o.stockx_order_number = $1",
    )
    .bind(order_number.trim())
    .fetch_optional(pool)
    .await
}

/// Forgets that StockX did not know a product's SKU, so that the next lookup asks again.
pub async fn forget_product_not_found(pool: &PgPool, product_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE products.products SET stockx_lookup_status = NULL
         WHERE id = $1 AND stockx_lookup_status = 'not_found'",
    )
    .bind(product_id)
    .execute(pool)
    .await?;
    Ok(())
}
