//! What the stock is worth (issue 14): the market refresh against the StockX sandbox (calls,
//! rate limit, budget, giving way to enrichment), the valuation views with hand-computed
//! figures, and the daily report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use sqlx::PgPool;
use stockx_sync::market::{MarketRefresh, RefreshOptions};
use stockx_sync::sandbox::{self, SandboxHandle, SandboxOptions};
use stockx_sync::stockx::StockxClient;
use uuid::Uuid;

use crate::helpers::TestDb;

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// One unsold pair, inserted as a purchase is (no sale).
pub struct Item<'a> {
    pub sku: &'a str,
    pub stockx_product_id: Option<&'a str>,
    pub size: &'a str,
    pub variant: Option<&'a str>,
    pub supplier: &'a str,
    pub purchase_price: &'a str,
    /// Days before today.
    pub bought_days_ago: i32,
}

impl<'a> Item<'a> {
    /// A pair of the sandbox's product `synthetic-N` (lowest ask 100 + N, bid 85 % of it).
    pub fn synthetic(n: u32, size: &'a str, price: &'a str, days: i32) -> Item<'a> {
        let sku: &'static str = Box::leak(format!("SYN-{n}").into_boxed_str());
        let id: &'static str = Box::leak(format!("synthetic-{n}").into_boxed_str());
        let variant: &'static str = Box::leak(format!("synthetic-{n}-{size}").into_boxed_str());
        Item {
            sku,
            stockx_product_id: Some(id),
            size,
            variant: Some(variant),
            supplier: "Solebox",
            purchase_price: price,
            bought_days_ago: days,
        }
    }

    pub async fn insert(&self, pool: &PgPool) -> Uuid {
        sqlx::query_scalar(
            "WITH cat AS (SELECT id FROM products.categories WHERE name = 'sneakers'),
             p AS (INSERT INTO products.products (sku, category_id, stockx_product_id, name)
                   SELECT $1, cat.id, $2, 'Product ' || $1 FROM cat
                   ON CONFLICT (sku) DO UPDATE SET stockx_product_id = EXCLUDED.stockx_product_id
                   RETURNING id),
             s AS (INSERT INTO products.sizes (value, region, category_id)
                   SELECT $3, 'US', cat.id FROM cat
                   ON CONFLICT (value, region, category_id) DO UPDATE SET value = EXCLUDED.value
                   RETURNING id),
             sup AS (INSERT INTO products.suppliers (name) VALUES ($5)
                     ON CONFLICT ((lower(name))) DO UPDATE SET name = EXCLUDED.name
                     RETURNING id)
             INSERT INTO products.inventory
                 (product_id, size_id, supplier_id, purchase_price, purchase_date, status,
                  stockx_variant_id)
             SELECT p.id, s.id, sup.id, $6::numeric, current_date - $7, 'in_stock', $4
             FROM p, s, sup
             RETURNING id",
        )
        .bind(self.sku)
        .bind(self.stockx_product_id)
        .bind(self.size)
        .bind(self.variant)
        .bind(self.supplier)
        .bind(self.purchase_price)
        .bind(self.bought_days_ago)
        .fetch_one(pool)
        .await
        .unwrap()
    }
}

/// The jobs the inserts queued are done (no worker runs in these tests).
async fn no_jobs(pool: &PgPool) {
    sqlx::query("DELETE FROM integration.enrichment_jobs")
        .execute(pool)
        .await
        .unwrap();
}

async fn sandbox() -> SandboxHandle {
    sandbox::spawn("127.0.0.1:0".parse().unwrap(), SandboxOptions::default())
        .await
        .unwrap()
}

fn client(sandbox: &SandboxHandle, rate: f64, budget: u32) -> StockxClient {
    let mut config = sandbox.client_config(rate);
    config.daily_budget = budget;
    StockxClient::new(config).unwrap()
}

fn options(reserve: u32) -> RefreshOptions {
    RefreshOptions {
        currency: "EUR".into(),
        budget_reserve: reserve,
        yield_poll: Duration::from_millis(20),
    }
}

const MARKET_ROUTE: &str = "/catalog/products/{productId}/market-data";

async fn scalar_i64(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn one_market_call_per_product_with_unsold_stock_latest_and_history_stored() {
    let db = TestDb::new().await;
    // Three products, six unsold pairs; one product whose StockX ID is not known yet.
    for (n, size) in [
        (1, "9"),
        (1, "10"),
        (1, "10"),
        (2, "8"),
        (3, "11"),
        (3, "12"),
    ] {
        Item::synthetic(n, size, "90.00", 10).insert(&db.pool).await;
    }
    Item {
        stockx_product_id: None,
        variant: None,
        ..Item::synthetic(4, "9", "90.00", 10)
    }
    .insert(&db.pool)
    .await;
    // A sold pair of another product is not refreshed.
    crate::helpers::Sale::new("1000-1")
        .insert(&db.pool)
        .await
        .unwrap();
    no_jobs(&db.pool).await;
    let sandbox = sandbox().await;
    let refresh = MarketRefresh::new(db.pool.clone(), client(&sandbox, 50.0, 1000), options(0));

    let report = refresh.refresh().await.unwrap();
    assert_eq!(sandbox.request_count(MARKET_ROUTE), 3, "{report}");
    assert_eq!((report.planned, report.refreshed), (3, 3), "{report}");
    assert_eq!(report.without_stockx_id, 1);
    // Every size of the three products (13 each), latest and today's history.
    assert_eq!(report.variants, 39);
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM platforms.marketplace_data").await,
        39
    );
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM platforms.market_price_history WHERE day = current_date"
        )
        .await,
        39
    );
    let (ask, bid): (Decimal, Decimal) = sqlx::query_as(
        "SELECT lowest_ask, highest_bid FROM platforms.market_price_history
         WHERE stockx_variant_id = 'synthetic-3-11' AND currency = 'EUR'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((ask, bid), (dec("103"), dec("88")));

    // The same day again: nothing left to ask.
    let again = refresh.refresh().await.unwrap();
    assert_eq!(sandbox.request_count(MARKET_ROUTE), 3, "{again}");
    assert_eq!((again.planned, again.already_today), (0, 3));
}

#[tokio::test]
async fn the_refresh_keeps_the_rate_limit_and_stops_at_the_budget_reserve() {
    let db = TestDb::new().await;
    for n in 1..=8 {
        Item::synthetic(n, "10", "90.00", 10).insert(&db.pool).await;
    }
    no_jobs(&db.pool).await;
    let sandbox = sandbox().await;
    // 5 requests per second; a budget of 10 with 4 kept for enrichment: 6 calls, then stop.
    let refresh = MarketRefresh::new(db.pool.clone(), client(&sandbox, 5.0, 10), options(4));
    let report = refresh.refresh().await.unwrap();
    assert_eq!(sandbox.request_count(MARKET_ROUTE), 6, "{report}");
    assert_eq!(report.refreshed, 6);
    let stopped = report.stopped.clone().unwrap_or_default();
    assert!(stopped.contains("market.budget_reserve"), "{report}");
    let times = sandbox.api_request_times();
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        // 200 ms apart, less the jitter of the sandbox seeing two sends.
        assert!(gap >= Duration::from_millis(170), "requests {gap:?} apart");
    }
    // The two products left are the next run's.
    let next = MarketRefresh::new(db.pool.clone(), client(&sandbox, 5.0, 1000), options(4));
    let report = next.refresh().await.unwrap();
    assert_eq!((report.planned, report.refreshed), (2, 2), "{report}");
}

#[tokio::test]
async fn the_refresh_waits_while_enrichment_jobs_are_due_or_running() {
    let db = TestDb::new().await;
    for n in 1..=3 {
        Item::synthetic(n, "10", "90.00", 10).insert(&db.pool).await;
    }
    // The inserts queued inventory jobs; mark one running and leave the others due.
    let running: i64 = sqlx::query_scalar(
        "UPDATE integration.enrichment_jobs SET state = 'running', attempt = 1,
             locked_by = 'test', locked_until = now() + interval '1 hour'
         WHERE id = (SELECT min(id) FROM integration.enrichment_jobs) RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let sandbox = sandbox().await;
    let refresh = Arc::new(MarketRefresh::new(
        db.pool.clone(),
        client(&sandbox, 50.0, 1000),
        options(0),
    ));
    let task = tokio::spawn({
        let refresh = refresh.clone();
        async move { refresh.refresh().await.unwrap() }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while refresh.yields() == 0 {
        assert!(Instant::now() < deadline, "the refresh never paused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Enrichment finishes the due jobs first, then the running one.
    sqlx::query("DELETE FROM integration.enrichment_jobs WHERE id <> $1")
        .bind(running)
        .execute(&db.pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let enrichment_done = Instant::now();
    sqlx::query("DELETE FROM integration.enrichment_jobs")
        .execute(&db.pool)
        .await
        .unwrap();
    let report = task.await.unwrap();
    assert_eq!(report.refreshed, 3, "{report}");
    assert!(report.yields >= 1);
    let times = sandbox.api_request_times();
    assert_eq!(times.len(), 3);
    assert!(
        times.iter().all(|t| *t >= enrichment_done),
        "a market call was sent while an enrichment job was running"
    );
}
