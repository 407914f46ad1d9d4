//! StockX orders (`platforms.stockx_orders`, through their listing to the inventory item): read
//! with the facts the sale rules need, written with what StockX says about them.

use sqlx::{PgConnection, PgExecutor, PgPool};
use time::Date;
use uuid::Uuid;

use crate::stockx::DetailedOrder;
use crate::validate::{OrderItemFacts, SaleFacts};

/// The condition of an order still `pending` more than 24 hours after it was recorded (`o` is
/// the order): one text for the gauge and the integrity check.
macro_rules! pending_over_24h {
    () => {
        "o.enrichment_status = 'pending' AND o.created_at < now() - interval '24 hours'"
    };
}
pub(super) use pending_over_24h;

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

/// Which of `numbers` are recorded already.
pub async fn recorded_order_numbers<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    numbers: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT stockx_order_number FROM platforms.stockx_orders
         WHERE stockx_order_number = ANY($1)",
    )
    .bind(numbers)
    .fetch_all(executor)
    .await
}

/// An order with what its rules need.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub order_number: String,
    pub currency: String,
    pub inventory_id: Uuid,
    pub product_id: Uuid,
    #[sqlx(flatten)]
    pub facts: SaleFacts,
}

/// A date PostgreSQL holds but this program cannot read (`infinity`, `-infinity`, years past
/// 9999): reading one would abort the reader, so the select names it instead and the row is
/// refused with that name.
macro_rules! readable_date {
    ($column:literal, $alias:literal) => {
        concat!(
            "CASE WHEN isfinite(",
            $column,
            ") AND ",
            $column,
            " < DATE '10000-01-01' OR ",
            $column,
            " IS NULL THEN ",
            $column,
            " ELSE DATE '1970-01-01' END AS ",
            $alias,
            ",
             CASE WHEN NOT (isfinite(",
            $column,
            ") AND ",
            $column,
            " < DATE '10000-01-01') THEN '",
            $alias,
            " = ' || ",
            $column,
            " END AS ",
            $alias,
            "_unreadable"
        )
    };
}

/// Selects [`OrderRow`]s; the aliases are its field names (and [`SaleFacts`]'s), plus one
/// `<date>_unreadable` per date (see `readable_date!`).
const ORDER_SELECT: &str = concat!(
    "SELECT o.id, o.stockx_order_number AS order_number, o.currency,
        i.id AS inventory_id, i.product_id, i.purchase_price, o.sale_price,
        o.net_proceeds, o.net_profit AS profit, o.roi, ",
    readable_date!("i.purchase_date", "purchase_date"),
    ", ",
    readable_date!("o.sold_at", "sold_at"),
    ", ",
    readable_date!("o.delivered_at", "delivered_at"),
    "
     FROM platforms.stockx_orders o
     JOIN platforms.stockx_listings l ON l.id = o.listing_id
     JOIN products.inventory i ON i.id = l.inventory_id"
);

/// An [`OrderRow`] as selected, with the dates it could not read.
#[derive(sqlx::FromRow)]
struct SelectedOrder {
    #[sqlx(flatten)]
    row: OrderRow,
    purchase_date_unreadable: Option<String>,
    sold_at_unreadable: Option<String>,
    delivered_at_unreadable: Option<String>,
}

pub async fn load_order(pool: &PgPool, order_id: Uuid) -> Result<Option<OrderRow>, sqlx::Error> {
    load_order_where(pool, "o.id = $1", order_id).await
}

/// The order an inventory item was sold in, read in the caller's transaction (which has just
/// written the item).
pub async fn load_order_for_inventory(
    conn: &mut PgConnection,
    inventory_id: Uuid,
) -> Result<Option<OrderRow>, sqlx::Error> {
    load_order_where(conn, "i.id = $1", inventory_id).await
}

/// A row with an unreadable date is a decoding error naming the date (a data error: reading it
/// again fails again).
async fn load_order_where(
    executor: impl PgExecutor<'_>,
    condition: &str,
    id: Uuid,
) -> Result<Option<OrderRow>, sqlx::Error> {
    let selected: Option<SelectedOrder> =
        sqlx::query_as(&format!("{ORDER_SELECT} WHERE {condition}"))
            .bind(id)
            .fetch_optional(executor)
            .await?;
    let Some(selected) = selected else {
        return Ok(None);
    };
    let unreadable = [
        ("purchase_date", selected.purchase_date_unreadable),
        ("sold_at", selected.sold_at_unreadable),
        ("delivered_at", selected.delivered_at_unreadable),
    ];
    if let Some((column, value)) = unreadable
        .into_iter()
        .find_map(|(column, value)| Some((column, value?)))
    {
        return Err(sqlx::Error::ColumnDecode {
            index: column.to_string(),
            source: format!(
                "{value} is not a date this program can read (years 1 to 9999, no infinity); correct the row"
            )
            .into(),
        });
    }
    Ok(Some(selected.row))
}

/// Stores what StockX says of an order (status, sale price, payout, adjustments, the payout's
/// currency and the order's own, the product and variant it sold) and marks it `enriched`. The
/// payout's currency is stored only as StockX names it: a payout without one has none.
pub async fn store_stockx_order(
    conn: &mut PgConnection,
    order_id: Uuid,
    order: &DetailedOrder,
) -> Result<(), sqlx::Error> {
    let payout = order.payout.as_ref();
    let adjustments = payout.map(|p| serde_json::to_value(&p.adjustments).unwrap_or_default());
    let product = order.product.as_ref();
    let variant = order.variant.as_ref();
    sqlx::query(
        "UPDATE platforms.stockx_orders
         SET stockx_status = $2, stockx_sale_price = $3, stockx_total_payout = $4,
             stockx_total_adjustments = $5, stockx_adjustments = $6, stockx_currency = $7,
             stockx_order_currency = $8, stockx_product_id = $9, stockx_product_name = $10,
             stockx_style_id = $11, stockx_variant_id = $12, stockx_variant_value = $13,
             enrichment_status = 'enriched', enrichment_error = NULL, enriched_at = now()
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(&order.status)
    .bind(payout.and_then(|p| p.sale_price).or(order.amount))
    .bind(payout.and_then(|p| p.total_payout))
    .bind(payout.and_then(|p| p.total_adjustments))
    .bind(adjustments)
    .bind(payout.and_then(|p| p.currency_code.as_deref()))
    .bind(order.currency_code.as_deref())
    .bind(product.map(|p| p.product_id.as_str()))
    .bind(product.and_then(|p| p.product_name.as_deref()))
    .bind(product.and_then(|p| p.style_id.as_deref()))
    .bind(variant.map(|v| v.variant_id.as_str()))
    .bind(variant.and_then(|v| v.variant_value.as_deref()))
    .execute(conn)
    .await?;
    Ok(())
}

/// What an order's item is on StockX's order and in the catalog, for the order-item check.
/// The catalog's product is unknown while its lookup found nothing.
pub async fn order_item_facts(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<OrderItemFacts>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.sku, s.value AS size, s.region,
                o.stockx_product_id AS order_product_id, o.stockx_product_name AS order_product_name,
                o.stockx_style_id AS order_style_id, o.stockx_variant_id AS order_variant_id,
                o.stockx_variant_value AS order_variant_value,
                CASE WHEN p.stockx_lookup_status IS DISTINCT FROM 'not_found'
                     THEN p.stockx_product_id END AS catalog_product_id,
                p.name AS catalog_title, i.stockx_variant_id AS catalog_variant_id
         FROM platforms.stockx_orders o
         JOIN platforms.stockx_listings l ON l.id = o.listing_id
         JOIN products.inventory i ON i.id = l.inventory_id
         JOIN products.products p ON p.id = i.product_id
         JOIN products.sizes s ON s.id = i.size_id
         WHERE o.id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await
}

/// Marks an order StockX does not know: `not_found`, which is final (not a retry).
pub async fn mark_order_not_found(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE platforms.stockx_orders
         SET enrichment_status = 'not_found', enrichment_error = NULL, enriched_at = now()
         WHERE id = $1",
    )
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks an order whose enrichment failed for good, with the error kept for a person.
pub async fn mark_order_failed(
    pool: &PgPool,
    order_id: Uuid,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE platforms.stockx_orders SET enrichment_status = 'failed', enrichment_error = $2
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// The distinct sale days of these orders (those this program can read).
pub async fn order_sale_dates(pool: &PgPool, order_ids: &[Uuid]) -> Result<Vec<Date>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT sold_at FROM platforms.stockx_orders
         WHERE id = ANY($1) AND isfinite(sold_at) AND sold_at < DATE '10000-01-01'",
    )
    .bind(order_ids)
    .fetch_all(pool)
    .await
}

/// Orders per enrichment status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct EnrichmentCount {
    pub status: String,
    pub orders: i64,
}

pub async fn count_orders_by_enrichment(
    pool: &PgPool,
) -> Result<Vec<EnrichmentCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT enrichment_status AS status, count(*) AS orders FROM platforms.stockx_orders
         GROUP BY enrichment_status ORDER BY enrichment_status",
    )
    .fetch_all(pool)
    .await
}

/// The enrichment status of the order with this number, if recorded.
pub async fn order_enrichment_status(
    pool: &PgPool,
    order_number: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT enrichment_status FROM platforms.stockx_orders WHERE stockx_order_number = $1",
    )
    .bind(order_number)
    .fetch_optional(pool)
    .await
}

/// Orders still `pending` more than 24 hours after they were recorded (a gauge).
pub async fn count_orders_pending_over_24h(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(concat!(
        "SELECT count(*) FROM platforms.stockx_orders o WHERE ",
        pending_over_24h!()
    ))
    .fetch_one(pool)
    .await
}

/// Orders whose number is not among `numbers`; 0 in a database not migrated yet (the demo
/// refuses to recreate a database that holds sales it did not enter).
pub async fn count_orders_other_than(
    conn: &mut PgConnection,
    numbers: &[&str],
) -> Result<i64, sqlx::Error> {
    let migrated: bool =
        sqlx::query_scalar("SELECT to_regclass('platforms.stockx_orders') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    if !migrated {
        return Ok(0);
    }
    sqlx::query_scalar(
        "SELECT count(*) FROM platforms.stockx_orders WHERE stockx_order_number <> ALL($1)",
    )
    .bind(numbers)
    .fetch_one(conn)
    .await
}
