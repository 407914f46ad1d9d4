//! The catalog side of a sale: `products.products` (one row per SKU, with what the StockX
//! lookup found), `products.inventory` (one row per pair, with its StockX variant) and
//! `platforms.marketplace_data` (StockX's prices per variant and currency).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::stockx::Product;

/// What is known of a product's StockX lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct ProductLookup {
    pub stockx_product_id: Option<String>,
    /// `found`, `not_found`, or `None` while nobody has asked.
    pub lookup_status: Option<String>,
    /// Whether the catalog's details (brand, retail price, ...) are stored. An order can give
    /// the product ID before anyone asked the catalog.
    pub catalog_fetched: bool,
}

impl ProductLookup {
    /// Whether StockX said it has no product with this SKU.
    pub fn is_not_found(&self) -> bool {
        self.lookup_status.as_deref() == Some("not_found")
    }
}

/// An inventory item with what its lookup needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InventoryRow {
    pub product_id: Uuid,
    pub sku: String,
    #[sqlx(flatten)]
    pub lookup: ProductLookup,
    pub size: String,
    pub region: String,
    /// The order it was sold in, if any.
    pub order_number: Option<String>,
}

pub async fn load_inventory(
    pool: &PgPool,
    inventory_id: Uuid,
) -> Result<Option<InventoryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.id AS product_id, p.sku, p.stockx_product_id, p.stockx_lookup_status AS lookup_status,
                p.enriched_at IS NOT NULL AS catalog_fetched, s.value AS size, s.region,
                coalesce(o.stockx_order_number, i.external_ids->>'stockx_order_number')
                    AS order_number
         FROM products.inventory i
         JOIN products.products p ON p.id = i.product_id
         JOIN products.sizes s ON s.id = i.size_id
         LEFT JOIN platforms.stockx_listings l ON l.inventory_id = i.id
         LEFT JOIN platforms.stockx_orders o ON o.listing_id = l.id
         WHERE i.id = $1",
    )
    .bind(inventory_id)
    .fetch_optional(pool)
    .await
}

/// What is known now of a product's lookup (`None`: no such product).
pub async fn product_lookup(
    pool: &PgPool,
    product_id: Uuid,
) -> Result<Option<ProductLookup>, sqlx::Error> {
    sqlx::query_as(
        "SELECT stockx_product_id, stockx_lookup_status AS lookup_status,
                enriched_at IS NOT NULL AS catalog_fetched
         FROM products.products WHERE id = $1",
    )
    .bind(product_id)
    .fetch_optional(pool)
    .await
}

/// Stores the answer of a SKU lookup: StockX's product (its catalog fields fill what the row
/// lacks), or `None` for "StockX has no such SKU", which later lookups take as final.
pub async fn store_product(
    pool: &PgPool,
    product_id: Uuid,
    product: Option<&Product>,
) -> Result<(), sqlx::Error> {
    match product {
        None => {
            sqlx::query(
                "UPDATE products.products SET stockx_lookup_status = 'not_found' WHERE id = $1",
            )
            .bind(product_id)
            .execute(pool)
            .await?;
        }
        Some(p) => {
            let attrs = p.product_attributes.as_ref();
            sqlx::query(
                "UPDATE products.products
                 SET stockx_product_id = $2, stockx_url_key = $3,
                     name = coalesce($4, name), brand = coalesce($5, brand),
                     colorway = coalesce($6, colorway), retail_price = coalesce($7, retail_price),
                     release_date = coalesce($8, release_date),
                     stockx_lookup_status = 'found', enriched_at = now()
                 WHERE id = $1",
            )
            .bind(product_id)
            .bind(&p.product_id)
            .bind(&p.url_key)
            .bind(&p.title)
            .bind(&p.brand)
            .bind(attrs.and_then(|a| a.colorway.clone()))
            .bind(attrs.and_then(|a| a.retail_price))
            .bind(attrs.and_then(|a| a.release_date))
            .execute(pool)
            .await?;
        }
    }
    Ok(())
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

/// Records a product's StockX ID (and so its lookup as `found`) when none is recorded yet,
/// with its title when the product has no name: the inventory job skips the catalog once the
/// ID is known, so the title would otherwise stay empty. Returns whether it was written.
pub async fn fill_product_id(
    conn: &mut PgConnection,
    product_id: Uuid,
    stockx_product_id: &str,
    title: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let written = sqlx::query(
        "UPDATE products.products SET stockx_product_id = $2, stockx_lookup_status = 'found',
                name = coalesce(name, $3)
         WHERE id = $1 AND stockx_product_id IS NULL",
    )
    .bind(product_id)
    .bind(stockx_product_id)
    .bind(title)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(written > 0)
}

/// Whether [`set_variant_id`] replaces a variant already recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariantWrite {
    /// Only when none is recorded: an order's IDs fill gaps, they do not correct.
    IfUnknown,
    /// The variant matched from the catalog by size wins over what is recorded.
    Replace,
}

/// Records an inventory item's StockX variant. Returns whether the row changed.
pub async fn set_variant_id(
    conn: &mut PgConnection,
    inventory_id: Uuid,
    variant_id: &str,
    write: VariantWrite,
) -> Result<bool, sqlx::Error> {
    let written = sqlx::query(
        "UPDATE products.inventory SET stockx_variant_id = $2
         WHERE id = $1
           AND (stockx_variant_id IS NULL OR ($3 AND stockx_variant_id <> $2))",
    )
    .bind(inventory_id)
    .bind(variant_id)
    .bind(write == VariantWrite::Replace)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(written > 0)
}
