//! Market data for the stock still held: which products the daily refresh asks StockX about,
//! the day-by-day price history (`platforms.market_price_history`), and the figures the
//! valuation, the outlier rules and the report read from the business's tables.

use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use time::Date;
use uuid::Uuid;

use crate::stockx::MarketData;

/// "Unsold": in stock or listed, and no order recorded for it. One definition, shared with
/// the reporting views (migration 091), so the refresh values what the views show.
const UNSOLD: &str = "i.status IN ('in_stock', 'listed')
     AND NOT EXISTS (SELECT 1 FROM platforms.stockx_listings l
                     JOIN platforms.stockx_orders o ON o.listing_id = l.id
                     WHERE l.inventory_id = i.id)";

/// A product with unsold stock that the refresh asks StockX about.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProductToRefresh {
    pub product_id: Uuid,
    pub sku: String,
    pub stockx_product_id: String,
    /// Unsold items of this product.
    pub unsold_items: i64,
}

/// What the refresh has to do today.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshPlan {
    /// Products with unsold stock, a known StockX product and no history row for today in
    /// `currency` (a run that was cut off, or a second worker, does not ask twice).
    pub products: Vec<ProductToRefresh>,
    /// Products with unsold stock already refreshed today.
    pub already_today: i64,
    /// Products with unsold stock whose StockX product is not known yet (enrichment looks it
    /// up; the refresh does not spend a search on them).
    pub without_stockx_id: i64,
}

pub async fn market_refresh_plan(
    pool: &PgPool,
    currency: &str,
) -> Result<RefreshPlan, sqlx::Error> {
    let products: Vec<ProductToRefresh> = sqlx::query_as(&format!(
        "SELECT p.id AS product_id, p.sku, p.stockx_product_id, count(*) AS unsold_items
         FROM products.inventory i
         JOIN products.products p ON p.id = i.product_id
         WHERE {UNSOLD} AND p.stockx_product_id IS NOT NULL
         GROUP BY p.id
         ORDER BY p.sku"
    ))
    .fetch_all(pool)
    .await?;
    let refreshed: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT product_id FROM platforms.market_price_history
         WHERE currency = $1 AND day = current_date AND product_id = ANY($2)",
    )
    .bind(currency)
    .bind(products.iter().map(|p| p.product_id).collect::<Vec<_>>())
    .fetch_all(pool)
    .await?;
    let without_stockx_id: i64 = sqlx::query_scalar(&format!(
        "SELECT count(DISTINCT p.id) FROM products.inventory i
         JOIN products.products p ON p.id = i.product_id
         WHERE {UNSOLD} AND p.stockx_product_id IS NULL"
    ))
    .fetch_one(pool)
    .await?;
    let (done, todo): (Vec<_>, Vec<_>) = products
        .into_iter()
        .partition(|p| refreshed.contains(&p.product_id));
    Ok(RefreshPlan {
        products: todo,
        already_today: done.len() as i64,
        without_stockx_id,
    })
}

/// One product's market answer as columns for `unnest`: a row per variant and currency (the
/// one StockX names, else the one it was asked in); a variant named twice counts once, with
/// its last prices.
struct MarketRows<'a> {
    variants: Vec<&'a str>,
    currencies: Vec<&'a str>,
    lowest_ask: Vec<Option<Decimal>>,
    highest_bid: Vec<Option<Decimal>>,
    sell_faster: Vec<Option<Decimal>>,
    earn_more: Vec<Option<Decimal>>,
}

impl<'a> MarketRows<'a> {
    fn new(data: &'a [MarketData], requested_currency: &'a str) -> MarketRows<'a> {
        let mut last = std::collections::BTreeMap::new();
        for md in data {
            let currency = md.currency_code.as_deref().unwrap_or(requested_currency);
            last.insert((md.variant_id.as_str(), currency), md);
        }
        let (keys, rows): (Vec<_>, Vec<&MarketData>) = last.into_iter().unzip();
        let (variants, currencies) = keys.into_iter().unzip();
        let prices = |f: fn(&MarketData) -> Option<Decimal>| rows.iter().map(|md| f(md)).collect();
        MarketRows {
            variants,
            currencies,
            lowest_ask: prices(|md| md.lowest_ask_amount),
            highest_bid: prices(|md| md.highest_bid_amount),
            sell_faster: prices(|md| md.sell_faster_amount),
            earn_more: prices(|md| md.earn_more_amount),
        }
    }

    /// Binds the columns as `$3`..`$8` (after the product's two IDs).
    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&self.variants)
            .bind(&self.currencies)
            .bind(&self.lowest_ask)
            .bind(&self.highest_bid)
            .bind(&self.sell_faster)
            .bind(&self.earn_more)
    }
}

/// The columns `MarketRows::bind` gives, as a table `d`.
const MARKET_ROWS: &str = "unnest($3::text[], $4::text[], $5::numeric[], $6::numeric[],
                                  $7::numeric[], $8::numeric[])
         AS d(variant_id, currency, lowest_ask, highest_bid, sell_faster, earn_more)";

/// Stores StockX's latest prices for a product's variants (one row per variant and currency,
/// replaced on each fetch), in one statement.
pub async fn store_market_data(
    conn: &mut PgConnection,
    product_id: Uuid,
    stockx_product_id: &str,
    data: &[MarketData],
    requested_currency: &str,
) -> Result<(), sqlx::Error> {
    let rows = MarketRows::new(data, requested_currency);
    let sql = format!(
        "INSERT INTO platforms.marketplace_data
             (product_id, stockx_product_id, stockx_variant_id, currency, lowest_ask, highest_bid,
              sell_faster, earn_more, fetched_at)
         SELECT $1, $2, d.variant_id, d.currency, d.lowest_ask, d.highest_bid, d.sell_faster,
                d.earn_more, now()
         FROM {MARKET_ROWS}
         ON CONFLICT (stockx_variant_id, currency) DO UPDATE
         SET lowest_ask = EXCLUDED.lowest_ask, highest_bid = EXCLUDED.highest_bid,
             sell_faster = EXCLUDED.sell_faster, earn_more = EXCLUDED.earn_more,
             fetched_at = EXCLUDED.fetched_at"
    );
    rows.bind(sqlx::query(&sql).bind(product_id).bind(stockx_product_id))
        .execute(conn)
        .await?;
    Ok(())
}

/// Today's prices of a product's variants, in one statement: the day's history row is
/// replaced by a later fetch the same day, so the row holds the day's last answer.
pub async fn store_market_history(
    conn: &mut PgConnection,
    product_id: Uuid,
    stockx_product_id: &str,
    data: &[MarketData],
    requested_currency: &str,
) -> Result<(), sqlx::Error> {
    let rows = MarketRows::new(data, requested_currency);
    let sql = format!(
        "INSERT INTO platforms.market_price_history
             (stockx_variant_id, currency, day, product_id, stockx_product_id, lowest_ask,
              highest_bid, sell_faster, earn_more, fetched_at)
         SELECT d.variant_id, d.currency, current_date, $1, $2, d.lowest_ask, d.highest_bid,
                d.sell_faster, d.earn_more, now()
         FROM {MARKET_ROWS}
         ON CONFLICT (stockx_variant_id, currency, day) DO UPDATE
         SET product_id = EXCLUDED.product_id, stockx_product_id = EXCLUDED.stockx_product_id,
             lowest_ask = EXCLUDED.lowest_ask, highest_bid = EXCLUDED.highest_bid,
             sell_faster = EXCLUDED.sell_faster, earn_more = EXCLUDED.earn_more,
             fetched_at = EXCLUDED.fetched_at"
    );
    rows.bind(sqlx::query(&sql).bind(product_id).bind(stockx_product_id))
        .execute(conn)
        .await?;
    Ok(())
}

/// Items in `reporting.dead_stock` (the gauge the dead-stock alert watches; counted once a minute).
pub async fn count_dead_stock(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    without_jit(&mut tx).await?;
    let n = sqlx::query_scalar("SELECT count(*) FROM reporting.dead_stock")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

/// Turns JIT off for the transaction. On tables without statistics the planner's default
/// estimates can price the valuation views above `jit_above_cost` (before migration 090
/// analyzed the settings table, compiling took 2.5 s of CPU for a count over no rows); with
/// statistics they stay far below it and run in milliseconds, and JIT would only cost time.
pub async fn without_jit(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET LOCAL jit = off").execute(conn).await?;
    Ok(())
}

/// One earlier price to compare a price with.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PriceSample {
    pub price: Decimal,
}

/// StockX's market for the variant around `day` (history rows within `window_days` either
/// side): each day's lowest ask and highest bid are samples of what the pair was worth.
pub async fn market_samples_around(
    conn: &mut PgConnection,
    stockx_variant_id: &str,
    currency: &str,
    day: Date,
    window_days: i32,
) -> Result<Vec<Decimal>, sqlx::Error> {
    let rows: Vec<PriceSample> = sqlx::query_as(
        "SELECT x.price FROM platforms.market_price_history h
         CROSS JOIN LATERAL (VALUES (h.lowest_ask), (h.highest_bid)) AS x(price)
         WHERE h.stockx_variant_id = $1 AND h.currency = $2
           AND h.day BETWEEN $3 - $4 AND $3 + $4 AND x.price IS NOT NULL",
    )
    .bind(stockx_variant_id)
    .bind(currency)
    .bind(day)
    .bind(window_days)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.price).collect())
}

/// The seller's other sale prices of the same product and size in `currency` (not the order
/// itself), newest first, at most `limit`.
pub async fn own_sale_prices(
    conn: &mut PgConnection,
    order_id: Uuid,
    currency: &str,
    limit: i64,
) -> Result<Vec<Decimal>, sqlx::Error> {
    let rows: Vec<PriceSample> = sqlx::query_as(
        "SELECT o.sale_price AS price
         FROM platforms.stockx_orders this
         JOIN platforms.stockx_listings tl ON tl.id = this.listing_id
         JOIN products.inventory ti ON ti.id = tl.inventory_id
         JOIN products.inventory i ON i.product_id = ti.product_id AND i.size_id = ti.size_id
         JOIN platforms.stockx_listings l ON l.inventory_id = i.id
         JOIN platforms.stockx_orders o ON o.listing_id = l.id
         WHERE this.id = $1 AND o.id <> this.id AND o.currency = $2 AND o.sale_price IS NOT NULL
         ORDER BY o.sold_at DESC LIMIT $3",
    )
    .bind(order_id)
    .bind(currency)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.price).collect())
}

/// The purchase prices of the seller's other items of the same product and size, newest
/// first, at most `limit`.
pub async fn own_purchase_prices(
    conn: &mut PgConnection,
    inventory_id: Uuid,
    limit: i64,
) -> Result<Vec<Decimal>, sqlx::Error> {
    let rows: Vec<PriceSample> = sqlx::query_as(
        "SELECT i.purchase_price AS price
         FROM products.inventory ti
         JOIN products.inventory i ON i.product_id = ti.product_id AND i.size_id = ti.size_id
         WHERE ti.id = $1 AND i.id <> ti.id
         ORDER BY i.purchase_date DESC NULLS LAST, i.created_at DESC LIMIT $2",
    )
    .bind(inventory_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.price).collect())
}

/// What [`insert_synthetic_stock`] creates.
#[derive(Debug, Clone, Copy)]
pub struct SyntheticStock {
    /// Products `SYN-1`…`SYN-n`, StockX IDs `synthetic-1`… (the sandbox answers their
    /// market data).
    pub products: u32,
    /// Unsold pairs spread over them and over 13 sizes, bought 0–199 days ago.
    pub unsold: u32,
    /// Pairs sold, each with its listing and an enriched order.
    pub sold: u32,
}

/// The benchmark's stock, inserted set-based (the entry table's triggers would take minutes
/// for 100,000 rows). Only for a scratch database.
pub async fn insert_synthetic_stock(pool: &PgPool, s: SyntheticStock) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO products.suppliers (name) VALUES ('Synthetic Supplier')
         ON CONFLICT ((lower(name))) DO NOTHING",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO products.sizes (value, region, category_id)
         SELECT v, 'US', c.id
         FROM unnest(ARRAY['7','7.5','8','8.5','9','9.5','10','10.5','11','11.5','12','12.5','13']) v,
              products.categories c WHERE c.name = 'sneakers'
         ON CONFLICT (value, region, category_id) DO NOTHING",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO products.products (sku, category_id, name, stockx_product_id,
                                        stockx_lookup_status, enriched_at)
         SELECT 'SYN-' || n, c.id, 'Synthetic sneaker ' || n, 'synthetic-' || n, 'found', now()
         FROM generate_series(1, $1) n, products.categories c WHERE c.name = 'sneakers'
         ON CONFLICT (sku) DO NOTHING",
    )
    .bind(s.products as i32)
    .execute(&mut *tx)
    .await?;
    // Item k: product 1 + k mod products, size k mod 13, price 60 + k mod 140.
    let insert_items = |status: &'static str| {
        format!(
            "INSERT INTO products.inventory (product_id, size_id, supplier_id, purchase_price,
                                             purchase_date, status, stockx_variant_id)
             SELECT p.id, sz.id, sup.id, 60 + (k % 140), current_date - (k % 200), '{status}',
                    p.stockx_product_id || '-' || sz.value
             FROM generate_series(1, $1) k
             JOIN products.products p ON p.sku = 'SYN-' || (1 + k % $2)
             JOIN LATERAL (SELECT id, value FROM products.sizes
                           WHERE region = 'US' AND value = (ARRAY['7','7.5','8','8.5','9','9.5',
                                 '10','10.5','11','11.5','12','12.5','13'])[1 + k % 13]) sz ON true
             CROSS JOIN (SELECT id FROM products.suppliers
                         WHERE name = 'Synthetic Supplier') sup"
        )
    };
    sqlx::query(&insert_items("in_stock"))
        .bind(s.unsold as i32)
        .bind(s.products as i32)
        .execute(&mut *tx)
        .await?;
    if s.sold > 0 {
        sqlx::query(&format!(
            "WITH items AS ({} RETURNING id, product_id, purchase_price),
                  listings AS (INSERT INTO platforms.stockx_listings
                                   (inventory_id, product_id, ask_price, status)
                               SELECT id, product_id, purchase_price + 40, 'sold' FROM items
                               RETURNING id, ask_price)
             INSERT INTO platforms.stockx_orders
                 (listing_id, stockx_order_number, sale_price, net_proceeds, currency, sold_at,
                  stockx_sale_price, stockx_total_payout, enrichment_status, enriched_at)
             SELECT id, 'SYN-' || id, ask_price, round(ask_price * 0.89 - 5, 2), 'EUR',
                    current_date - 10, ask_price, round(ask_price * 0.89 - 5, 2), 'enriched', now()
             FROM listings",
            insert_items("sold")
        ))
        .bind(s.sold as i32)
        .bind(s.products as i32)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// What the price-outlier rules need of one order.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutlierFacts {
    pub inventory_id: Uuid,
    pub sale_price: Option<Decimal>,
    pub purchase_price: Decimal,
    pub currency: String,
    pub sold_at: Date,
    /// The item's StockX variant (from the inventory job, else StockX's order).
    pub stockx_variant_id: Option<String>,
}

pub async fn outlier_facts(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<OutlierFacts>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.id AS inventory_id, o.sale_price, i.purchase_price, o.currency, o.sold_at,
                coalesce(i.stockx_variant_id, o.stockx_variant_id) AS stockx_variant_id
         FROM platforms.stockx_orders o
         JOIN platforms.stockx_listings l ON l.id = o.listing_id
         JOIN products.inventory i ON i.id = l.inventory_id
         WHERE o.id = $1 AND isfinite(o.sold_at) AND o.sold_at < DATE '10000-01-01'",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await
}
