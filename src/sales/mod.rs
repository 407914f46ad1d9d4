//! The sales store: every statement on the `products` and `platforms` tables outside the
//! migrations and the reporting views. Rows are read into named structs, never positional
//! tuples, so that two columns of the same type cannot be swapped silently. Callers (`enrich`,
//! the commands, the Notion import) say what they need; this module says how it is stored.
//!
//! - `orders`: StockX orders with the facts their rules need, and what StockX says of them.
//! - `products`: the catalog side (products, inventory items).
//! - `market`: StockX's market data (latest prices and the price history), the unsold stock
//!   the market refresh asks about, and the samples the price-outlier rules compare with.
//! - `entry`: sales entered through `platforms.stockx_sale_entry`, as Budibase enters them.
//! - `checks`: the integrity checks `verify` runs over the whole database.
//!
//! Functions that must run inside the caller's transaction take `&mut PgConnection`; the rest
//! take the pool.

mod checks;
mod entry;
mod market;
mod orders;
mod products;
mod stale;

pub use checks::{run_integrity_checks, CheckResult};
pub use entry::{enter_sale, enter_sales, sale_summaries, supplier_count, SaleEntry, SaleSummary};
pub use market::{
    count_dead_stock, insert_synthetic_stock, market_refresh_plan, market_samples_around,
    outlier_facts, own_purchase_prices, own_sale_prices, store_market_data, store_market_history,
    without_jit, OutlierFacts, ProductToRefresh, RefreshPlan, SyntheticStock,
};
pub use orders::{
    count_orders_by_enrichment, count_orders_other_than, count_orders_pending_over_24h, find_order,
    load_order, load_order_for_inventory, mark_order_failed, mark_order_not_found,
    order_enrichment_status, order_item_facts, order_sale_dates, recorded_order_numbers,
    store_stockx_order, EnrichmentCount, OrderRef, OrderRow,
};
pub use products::{
    fill_product_id, forget_product_not_found, load_inventory, product_lookup, set_variant_id,
    store_product, InventoryRow, ProductLookup, VariantWrite,
};
pub use stale::{forget_products_not_found, order_ids, stale_enrichment, StaleEnrichment};

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
