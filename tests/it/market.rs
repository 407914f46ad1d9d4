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

/// One row of `reporting.inventory_valuation`, the columns the tests check.
#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Valuation {
    sku: String,
    size: String,
    days_held: i32,
    highest_bid: Option<Decimal>,
    lowest_ask: Option<Decimal>,
    fee_rate: Decimal,
    fixed_fee: Decimal,
    fee_source: String,
    expected_payout: Option<Decimal>,
    expected_payout_listed: Option<Decimal>,
    unrealised_profit: Option<Decimal>,
    unrealised_roi: Option<Decimal>,
}

async fn valuation(pool: &PgPool) -> Vec<Valuation> {
    sqlx::query_as(
        "SELECT sku, size, days_held, highest_bid, lowest_ask, fee_rate, fixed_fee, fee_source,
                expected_payout, expected_payout_listed, unrealised_profit, unrealised_roi
         FROM reporting.inventory_valuation ORDER BY sku, size",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Sales of the seller, enriched: StockX's sale price and payout.
async fn enriched_sales(pool: &PgPool, prefix: &str, sales: &[(&str, &str)]) {
    let sold = (time::OffsetDateTime::now_utc().date() - time::Duration::days(5)).to_string();
    for (n, (price, payout)) in sales.iter().enumerate() {
        let order = format!("{prefix}-{n}");
        let mut sale = crate::helpers::Sale::new(&order);
        sale.sold_at = &sold;
        sale.purchase_date = None;
        sale.insert(pool).await.unwrap();
        sqlx::query(
            "UPDATE platforms.stockx_orders SET enrichment_status = 'enriched',
                 stockx_sale_price = $2::numeric, stockx_total_payout = $3::numeric,
                 stockx_currency = 'EUR', enriched_at = now()
             WHERE stockx_order_number = $1",
        )
        .bind(&order)
        .bind(price)
        .bind(payout)
        .execute(pool)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn valuation_and_dead_stock_with_the_fallback_fees_then_the_sellers_own() {
    let db = TestDb::new().await;
    // synthetic-20: ask 120, bid 102; synthetic-50: ask 150, bid 128 (127.5 rounded to even).
    Item::synthetic(20, "10", "90.00", 10)
        .insert(&db.pool)
        .await;
    Item::synthetic(50, "9", "100.00", 120)
        .insert(&db.pool)
        .await;
    Item::synthetic(50, "10", "80.00", 30)
        .insert(&db.pool)
        .await;
    Item {
        stockx_product_id: None,
        variant: None,
        ..Item::synthetic(60, "9", "70.00", 5)
    }
    .insert(&db.pool)
    .await;
    no_jobs(&db.pool).await;
    let sandbox = sandbox().await;
    MarketRefresh::new(db.pool.clone(), client(&sandbox, 50.0, 1000), options(0))
        .refresh()
        .await
        .unwrap();

    // No orders of the seller: the fallback, 11 % + 5.00.
    type Money<'a> = Option<&'a str>;
    #[allow(clippy::too_many_arguments)]
    fn fallback(
        sku: &str,
        size: &str,
        days: i32,
        bid: Money,
        ask: Money,
        payout: Money,
        listed: Money,
        profit: Money,
        roi: Money,
    ) -> Valuation {
        Valuation {
            sku: sku.into(),
            size: size.into(),
            days_held: days,
            highest_bid: bid.map(dec),
            lowest_ask: ask.map(dec),
            fee_rate: dec("0.11"),
            fixed_fee: dec("5.00"),
            fee_source: "fallback".into(),
            expected_payout: payout.map(dec),
            expected_payout_listed: listed.map(dec),
            unrealised_profit: profit.map(dec),
            unrealised_roi: roi.map(dec),
        }
    }
    assert_eq!(
        valuation(&db.pool).await,
        vec![
            // 102 × 0.89 − 5 = 85.78; 120 × 0.89 − 5 = 101.80; 85.78 − 90 = −4.22; / 90.
            fallback(
                "SYN-20",
                "10",
                10,
                Some("102"),
                Some("120"),
                Some("85.78"),
                Some("101.80"),
                Some("-4.22"),
                Some("-0.0469")
            ),
            // 128 × 0.89 − 5 = 108.92; 150 × 0.89 − 5 = 128.50.
            fallback(
                "SYN-50",
                "10",
                30,
                Some("128"),
                Some("150"),
                Some("108.92"),
                Some("128.50"),
                Some("28.92"),
                Some("0.3615")
            ),
            fallback(
                "SYN-50",
                "9",
                120,
                Some("128"),
                Some("150"),
                Some("108.92"),
                Some("128.50"),
                Some("8.92"),
                Some("0.0892")
            ),
            fallback("SYN-60", "9", 5, None, None, None, None, None, None),
        ]
    );
    #[derive(Debug, PartialEq, sqlx::FromRow)]
    struct Dead {
        sku: String,
        size: String,
        held_too_long: bool,
        below_purchase_price: bool,
        reason: String,
    }
    let dead: Vec<Dead> = sqlx::query_as(
        "SELECT sku, size, held_too_long, below_purchase_price, reason
         FROM reporting.dead_stock ORDER BY sku, size",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        dead,
        vec![
            Dead {
                sku: "SYN-20".into(),
                size: "10".into(),
                held_too_long: false,
                below_purchase_price: true,
                reason: "expected payout 85.78 below purchase price 90.00".into(),
            },
            Dead {
                sku: "SYN-50".into(),
                size: "9".into(),
                held_too_long: true,
                below_purchase_price: false,
                reason: "held 120 days (more than 90)".into(),
            },
        ]
    );
    assert_eq!(
        stockx_sync::sales::count_dead_stock(&db.pool)
            .await
            .unwrap(),
        2
    );

    // Nine enriched orders are fewer than fee_min_orders (10): still the fallback.
    let nine = [("200.00", "172.00"); 8]
        .into_iter()
        .chain([("100.00", "80.00")])
        .collect::<Vec<_>>();
    enriched_sales(&db.pool, "9000", &nine).await;
    assert_eq!(valuation(&db.pool).await[0].fee_source, "fallback");
    // The tenth: fees (9 × 28 + 20) / (9 × 200 + 100) = 272 / 1900 = 0.1432 (4 places).
    enriched_sales(&db.pool, "9001", &[("200.00", "172.00")]).await;
    let rows = valuation(&db.pool).await;
    assert_eq!(
        (rows[0].fee_rate, rows[0].fixed_fee),
        (dec("0.1432"), dec("0"))
    );
    assert_eq!(rows[0].fee_source, "own_orders");
    // 102 × 0.8568 = 87.3936 → 87.39; 120 × 0.8568 = 102.816 → 102.82.
    assert_eq!(rows[0].expected_payout, Some(dec("87.39")));
    assert_eq!(rows[0].expected_payout_listed, Some(dec("102.82")));
    assert_eq!(rows[0].unrealised_profit, Some(dec("-2.61")));

    // The totals view adds up the item view: 3 items with market data, 1 without.
    #[derive(Debug, PartialEq, sqlx::FromRow)]
    struct Totals {
        items: i64,
        purchase_total: Decimal,
        items_without_market_data: i64,
        expected_payout_total: Option<Decimal>,
        unrealised_profit: Option<Decimal>,
        fee_source: Option<String>,
    }
    let totals: Totals = sqlx::query_as(
        "SELECT items, purchase_total, items_without_market_data, expected_payout_total,
                unrealised_profit, fee_source
         FROM reporting.inventory_valuation_totals",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    // Payouts 87.39 + 2 × (128 × 0.8568 = 109.6704 → 109.67); paid 90 + 100 + 80 (+ 70).
    assert_eq!(
        totals,
        Totals {
            items: 4,
            purchase_total: dec("340.00"),
            items_without_market_data: 1,
            expected_payout_total: Some(dec("306.73")),
            unrealised_profit: Some(dec("36.73")),
            fee_source: Some("own_orders".into()),
        }
    );

    // The dead-stock threshold is a setting.
    sqlx::query("UPDATE integration.market_settings SET dead_stock_days = 20")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        stockx_sync::sales::count_dead_stock(&db.pool)
            .await
            .unwrap(),
        3
    );

    // Metabase's and Grafana's role reads every new view.
    let reader = db.login_role("reader", &["stockx_sync_reader"]).await;
    let pool = reader.pool().await;
    for view in [
        "reporting.inventory_valuation",
        "reporting.inventory_valuation_totals",
        "reporting.dead_stock",
        "reporting.market_trend",
        "reporting.seller_fee_rates",
    ] {
        sqlx::query(&format!("SELECT * FROM {view}"))
            .fetch_all(&pool)
            .await
            .unwrap_or_else(|e| panic!("{view}: {e}"));
    }
}

#[tokio::test]
async fn market_trend_compares_with_seven_and_thirty_days_before() {
    let db = TestDb::new().await;
    Item::synthetic(20, "10", "90.00", 10)
        .insert(&db.pool)
        .await;
    no_jobs(&db.pool).await;
    // Earlier days, as earlier refreshes stored them.
    for (days_ago, ask, bid) in [
        (31, "110", "88"),
        (30, "111", "90"),
        (8, "118", "99"),
        (7, "119", "100"),
    ] {
        sqlx::query(
            "INSERT INTO platforms.market_price_history
                 (stockx_variant_id, currency, day, product_id, stockx_product_id, lowest_ask,
                  highest_bid)
             SELECT 'synthetic-20-10', 'EUR', current_date - $1, id, 'synthetic-20',
                    $2::numeric, $3::numeric
             FROM products.products WHERE sku = 'SYN-20'",
        )
        .bind(days_ago)
        .bind(ask)
        .bind(bid)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let sandbox = sandbox().await;
    MarketRefresh::new(db.pool.clone(), client(&sandbox, 50.0, 1000), options(0))
        .refresh()
        .await
        .unwrap();
    #[derive(Debug, PartialEq, sqlx::FromRow)]
    struct Trend {
        size: Option<String>,
        lowest_ask: Option<Decimal>,
        highest_bid: Option<Decimal>,
        lowest_ask_change_7d: Option<Decimal>,
        highest_bid_change_7d: Option<Decimal>,
        highest_bid_change_7d_pct: Option<Decimal>,
        highest_bid_change_30d: Option<Decimal>,
        highest_bid_change_30d_pct: Option<Decimal>,
    }
    let rows: Vec<Trend> = sqlx::query_as(
        "SELECT size, lowest_ask, highest_bid, lowest_ask_change_7d, highest_bid_change_7d,
                highest_bid_change_7d_pct, highest_bid_change_30d, highest_bid_change_30d_pct
         FROM reporting.market_trend
         WHERE stockx_variant_id IN ('synthetic-20-10', 'synthetic-20-9') ORDER BY stockx_variant_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            // Today ask 120, bid 102; 7 days ago 119/100; 30 days ago bid 90.
            Trend {
                size: Some("10".into()),
                lowest_ask: Some(dec("120")),
                highest_bid: Some(dec("102")),
                lowest_ask_change_7d: Some(dec("1")),
                highest_bid_change_7d: Some(dec("2")),
                highest_bid_change_7d_pct: Some(dec("0.0200")),
                highest_bid_change_30d: Some(dec("12")),
                highest_bid_change_30d_pct: Some(dec("0.1333")),
            },
            // A size nobody holds: no history before today, no size name.
            Trend {
                size: None,
                lowest_ask: Some(dec("120")),
                highest_bid: Some(dec("102")),
                lowest_ask_change_7d: None,
                highest_bid_change_7d: None,
                highest_bid_change_7d_pct: None,
                highest_bid_change_30d: None,
                highest_bid_change_30d_pct: None,
            },
        ]
    );
}

/// The open warnings of one order: (rule, basis of an outlier finding).
async fn outlier_warnings(pool: &PgPool, order: &str) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        "SELECT rule, details->>'basis' FROM integration.validation_warnings
         WHERE stockx_order_number = $1 AND resolved_at IS NULL AND rule LIKE '%outlier'
         ORDER BY rule",
    )
    .bind(order)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_flags_price_typos_against_the_sellers_own_history() {
    let db = TestDb::new().await;
    let setup = crate::enrich::start(&db, 50.0, Default::default(), 4).await;
    let prices = [
        ("180.00", "110.00"),
        ("185.00", "112.00"),
        ("190.00", "110.00"),
        ("195.00", "108.00"),
        ("200.00", "110.00"),
    ];
    for (n, (sale, purchase)) in prices.iter().enumerate() {
        let order = format!("7000-{n}");
        let mut s = crate::helpers::Sale::new(&order);
        s.sale_price = Some(sale);
        s.purchase_price = purchase;
        s.insert(&db.pool).await.unwrap();
    }
    crate::enrich::wait_for_idle_queue(&db, Duration::from_secs(60)).await;
    // A missing digit in the sale price, cents typed as euros in the purchase price.
    let mut typo = crate::helpers::Sale::new("7000-9");
    typo.sale_price = Some("19.50");
    typo.purchase_price = "11000.00";
    typo.insert(&db.pool).await.unwrap();
    crate::enrich::wait_for_idle_queue(&db, Duration::from_secs(60)).await;
    assert_eq!(
        outlier_warnings(&db.pool, "7000-9").await,
        vec![
            (
                "purchase_price_outlier".to_string(),
                Some("own_history".to_string())
            ),
            (
                "sale_price_outlier".to_string(),
                Some("own_history".to_string())
            ),
        ]
    );
    for n in 0..5 {
        assert_eq!(
            outlier_warnings(&db.pool, &format!("7000-{n}")).await,
            vec![]
        );
    }
    // Corrected, the warnings are resolved.
    sqlx::query(
        "UPDATE platforms.stockx_sale_entry SET sale_price = 195.00, purchase_price = 110.00
         WHERE stockx_order_number = '7000-9'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    crate::enrich::wait_for_idle_queue(&db, Duration::from_secs(60)).await;
    assert_eq!(outlier_warnings(&db.pool, "7000-9").await, vec![]);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sale_price_is_compared_with_the_market_of_its_date() {
    let db = TestDb::new().await;
    let setup = crate::enrich::start(&db, 50.0, Default::default(), 4).await;
    // The sandbox's variant of DD1391-100 in US 10, sold 2024-03-20: the market that week.
    crate::helpers::Sale::new("7100-1")
        .insert(&db.pool)
        .await
        .unwrap();
    crate::enrich::wait_for_idle_queue(&db, Duration::from_secs(60)).await;
    for (day, ask, bid) in [
        ("2024-03-17", "190", "170"),
        ("2024-03-19", "195", "172"),
        ("2024-03-20", "196", "175"),
        ("2024-03-23", "199", "176"),
        ("2024-04-10", "900", "900"),
    ] {
        sqlx::query(
            "INSERT INTO platforms.market_price_history
                 (stockx_variant_id, currency, day, product_id, stockx_product_id, lowest_ask,
                  highest_bid)
             SELECT i.stockx_variant_id, 'EUR', $1::date, i.product_id, 'x', $2::numeric,
                    $3::numeric
             FROM products.inventory i JOIN platforms.stockx_listings l ON l.inventory_id = i.id
             JOIN platforms.stockx_orders o ON o.listing_id = l.id
             WHERE o.stockx_order_number = '7100-1' AND i.stockx_variant_id IS NOT NULL",
        )
        .bind(day)
        .bind(ask)
        .bind(bid)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    assert_eq!(outlier_warnings(&db.pool, "7100-1").await, vec![]);
    // 1800 instead of 180: eight market prices that week (the April one is outside ±3 days).
    sqlx::query(
        "UPDATE platforms.stockx_sale_entry SET sale_price = 1800.00
         WHERE stockx_order_number = '7100-1'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    crate::enrich::wait_for_idle_queue(&db, Duration::from_secs(60)).await;
    assert_eq!(
        outlier_warnings(&db.pool, "7100-1").await,
        vec![(
            "sale_price_outlier".to_string(),
            Some("stockx_market".to_string())
        )]
    );
    let samples: i64 = sqlx::query_scalar(
        "SELECT (details->>'samples')::bigint FROM integration.validation_warnings
         WHERE stockx_order_number = '7100-1' AND rule = 'sale_price_outlier'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(samples, 8);
    setup.stop().await;
}

/// Records the bodies POSTed to it, answering as Slack does.
async fn slack_receiver() -> (String, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let received: Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/services/T000/B000/XXXX",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or_default());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/services/T000/B000/XXXX",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_sums_up_the_day_and_the_scheduler_posts_it_to_slack() {
    let db = TestDb::new().await;
    let setup = crate::enrich::start(&db, 50.0, Default::default(), 4).await;
    // A sandbox order (enriched: 140 − 11.20 − 4.20 − 5 = 119.60 paid out) and one StockX does
    // not know, whose recorded profit is wrong.
    let mut known = crate::helpers::Sale::new("323314425-323214184");
    known.sale_price = Some("140.00");
    known.net_proceeds = "119.60";
    known.insert(&db.pool).await.unwrap();
    let mut unknown = crate::helpers::Sale::new("8000-1");
    unknown.profit = Some("1.00");
    unknown.insert(&db.pool).await.unwrap();
    crate::enrich::wait_for_idle_queue(&db, Duration::from_secs(60)).await;
    let sandbox = setup.stop().await;
    // The stock of the valuation test, refreshed; SYN-20's bid was 100 a week ago.
    Item::synthetic(20, "10", "90.00", 10)
        .insert(&db.pool)
        .await;
    Item::synthetic(50, "9", "100.00", 120)
        .insert(&db.pool)
        .await;
    no_jobs(&db.pool).await;
    MarketRefresh::new(db.pool.clone(), client(&sandbox, 50.0, 1000), options(0))
        .refresh()
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO platforms.market_price_history
             (stockx_variant_id, currency, day, product_id, stockx_product_id, lowest_ask,
              highest_bid)
         SELECT 'synthetic-20-10', 'EUR', current_date - 7, id, 'synthetic-20', 119, 100
         FROM products.products WHERE sku = 'SYN-20'",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let yesterday = (time::OffsetDateTime::now_utc().date() - time::Duration::days(1)).to_string();
    let out = crate::helpers::command()
        .args(["report", "--json", "--since", &yesterday])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["since"].as_str().unwrap().starts_with(&yesterday),
        "{report}"
    );
    assert_eq!(
        report["sales"],
        serde_json::json!({"entered": 2, "imported": 0, "enriched": 1, "not_found": 1,
                           "enrichment_failed": 0, "dead_letter_jobs": 0})
    );
    let profit = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["rule"] == "profit_mismatch")
        .cloned();
    assert_eq!(
        profit,
        Some(
            serde_json::json!({"rule": "profit_mismatch", "opened": 1, "resolved": 0,
                                "open_now": 1})
        )
    );
    // One enriched order is fewer than ten: the fallback fees. 85.78 + 108.92 = 194.70.
    let v = &report["valuation"];
    assert_eq!(v["items"], 2);
    assert_eq!(v["purchase_total"], "190.00");
    assert_eq!(v["expected_payout_total"], "194.70");
    assert_eq!(v["unrealised_profit"], "4.70");
    assert_eq!(v["fee_source"], "fallback");
    assert_eq!(report["dead_stock"]["items"], 2);
    assert_eq!(report["dead_stock"]["purchase_total"], "190.00");
    assert_eq!(report["dead_stock"]["top"][0]["sku"], "SYN-20");
    assert_eq!(
        report["movers"],
        serde_json::json!([{"sku": "SYN-20", "product_name": "Product SYN-20", "size": "10",
            "currency": "EUR", "highest_bid": "102.00", "highest_bid_change_7d": "2.00",
            "highest_bid_change_7d_pct": "0.0200"}])
    );
    let text = crate::helpers::command()
        .arg("report")
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Dead stock: 2 items bought for 190.00"),
        "{text}"
    );
    assert!(
        text.contains("SYN-20 10: 102.00 EUR (2.00 +2.0%)"),
        "{text}"
    );
    let bad = crate::helpers::command()
        .args(["report", "--since", "yesterday"])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));

    // The morning post: on the schedule only with a webhook set.
    let (url, received) = slack_receiver().await;
    let mut settings = stockx_sync::config::Settings::default();
    let mut scheduler = stockx_sync::schedule::Scheduler::new(db.pool.clone(), Default::default());
    stockx_sync::market::add_scheduled_tasks(&mut scheduler, &settings, db.pool.clone(), None)
        .unwrap();
    assert!(
        scheduler.is_empty(),
        "no webhook, no StockX: nothing to schedule"
    );
    settings.report.slack_webhook_url = Some(url.clone().into());
    stockx_sync::market::add_scheduled_tasks(&mut scheduler, &settings, db.pool.clone(), None)
        .unwrap();
    assert!(!scheduler.is_empty());
    use stockx_sync::schedule::ScheduledTask;
    let task = stockx_sync::report::DailyReport::new(db.pool.clone(), url.into());
    let summary = task.run().await.unwrap();
    assert!(summary.contains("2 sales, 2 dead items"), "{summary}");
    let posts = received.lock().unwrap().clone();
    assert_eq!(posts.len(), 1);
    let posted = posts[0]["text"].as_str().unwrap();
    assert!(posted.contains("stockx-sync daily summary"), "{posted}");
    assert!(posted.contains("Dead stock: 2 items"), "{posted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_schedules_the_refresh_and_asks_once_a_day() {
    let db = TestDb::new().await;
    for n in 1..=3 {
        Item::synthetic(n, "10", "90.00", 10).insert(&db.pool).await;
    }
    no_jobs(&db.pool).await;
    let sandbox = sandbox().await;
    let mut settings = crate::enrich::settings_for(&sandbox, 50.0, 2);
    // Every second: the first run asks, the later ones find today's prices stored.
    settings.market.refresh = "* * * * * *".into();
    settings.market.dead_stock_days = 5;
    let app = stockx_sync::app::App::build(&settings, db.pool.clone())
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = scalar_i64(
            &db.pool,
            "SELECT count(*) FROM integration.scheduled_task_runs
             WHERE task = 'market_refresh' AND outcome = 'success'",
        )
        .await;
        if runs >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the refresh did not run twice");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(sandbox.request_count(MARKET_ROUTE), 3);
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM platforms.market_price_history"
        )
        .await,
        39
    );
    // The worker wrote its [market] settings for the views.
    let settings = stockx_sync::market::store::read_settings(&db.pool)
        .await
        .unwrap();
    assert_eq!(settings.dead_stock_days, 5);
    assert_eq!(
        stockx_sync::sales::count_dead_stock(&db.pool)
            .await
            .unwrap(),
        3
    );
}

#[tokio::test]
async fn market_settings_are_checked_at_start_and_reach_the_views() {
    let db = TestDb::new().await;
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.env("DATABASE_URL", db.url()).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stockx-sync.toml");
    std::fs::write(&file, "[market]\nfallback_fee_rate = 1.5\n").unwrap();
    let (code, stderr) = run(crate::helpers::command()
        .args(["status", "--config"])
        .arg(&file));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("market.fallback_fee_rate"), "{stderr}");
    let (code, stderr) = run(crate::helpers::command()
        .arg("status")
        .env("STOCKX_SYNC_DEAD_STOCK_DAYS", "0"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("STOCKX_SYNC_DEAD_STOCK_DAYS"), "{stderr}");
    let (code, stderr) = run(crate::helpers::command().arg("status").env(
        "STOCKX_SYNC_REPORT_SLACK_WEBHOOK_URL",
        "hooks-slack-T0-secret",
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("report.slack_webhook_url"), "{stderr}");
    assert!(
        !stderr.contains("hooks-slack-T0-secret"),
        "the URL is a secret: {stderr}"
    );
    // Decimals as TOML numbers and as strings.
    std::fs::write(
        &file,
        "[market]\nfallback_fee_rate = 0.12\nfallback_fixed_fee = \"4.50\"\n",
    )
    .unwrap();
    let (code, stderr) = run(crate::helpers::command()
        .args(["status", "--config"])
        .arg(&file));
    assert_eq!(code, 0, "{stderr}");
    let settings = stockx_sync::config::Settings::load(Some(&file)).unwrap();
    assert_eq!(settings.market.fallback_fee_rate, dec("0.12"));
    assert_eq!(settings.market.fallback_fixed_fee, dec("4.50"));
    stockx_sync::market::store::write_settings(
        &db.pool,
        &stockx_sync::market::store::ValuationSettings::from_settings(&settings),
    )
    .await
    .unwrap();
    let (rate, fixed, source): (Decimal, Decimal, String) = sqlx::query_as(
        "SELECT fee_rate, fixed_fee, fee_source FROM reporting.seller_fee_rates
         WHERE currency = 'EUR'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (rate, fixed, source.as_str()),
        (dec("0.12"), dec("4.50"), "fallback")
    );
}

/// The order job alone knows the variant on a sale's first enrichment (StockX's order names it;
/// the inventory job has not run): the market at the sale date still counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_order_job_compares_with_the_market_of_the_variant_its_order_names() {
    let db = TestDb::new().await;
    let mut sale = crate::helpers::Sale::new("323314425-323214184");
    sale.net_proceeds = "119.60";
    sale.sale_price = Some("1400.00"); // 140.00 with a digit too many
    sale.insert(&db.pool).await.unwrap();
    sqlx::query(
        "UPDATE integration.enrichment_jobs SET run_after = now() + interval '1 hour'
         WHERE kind = 'inventory'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    // The sandbox's order 323314425-323214184 sold variant 5e6a1e57-10 (DD1391-100, US 10).
    for (day, ask, bid) in [
        ("2024-03-17", "150", "130"),
        ("2024-03-19", "152", "131"),
        ("2024-03-20", "149", "133"),
        ("2024-03-22", "151", "135"),
    ] {
        sqlx::query(
            "INSERT INTO platforms.market_price_history
                 (stockx_variant_id, currency, day, product_id, stockx_product_id, lowest_ask,
                  highest_bid)
             SELECT '5e6a1e57-10', 'EUR', $1::date, p.id, 'x', $2::numeric, $3::numeric
             FROM products.products p WHERE p.sku = 'DD1391-100'",
        )
        .bind(day)
        .bind(ask)
        .bind(bid)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let setup = crate::enrich::start(&db, 50.0, Default::default(), 4).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let done: bool = sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM integration.enrichment_jobs
                                WHERE kind = 'order' AND state <> 'completed')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the order job never finished"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let inventory_variant: Option<String> = sqlx::query_scalar(
        "SELECT i.stockx_variant_id FROM products.inventory i
         JOIN products.products p ON p.id = i.product_id WHERE p.sku = 'DD1391-100'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    setup.stop().await;
    assert_eq!(
        inventory_variant.as_deref(),
        Some("5e6a1e57-10"),
        "the order job stored the variant its order names"
    );
    assert_eq!(
        outlier_warnings(&db.pool, "323314425-323214184").await,
        vec![(
            "sale_price_outlier".to_string(),
            Some("stockx_market".to_string())
        )]
    );
}

#[tokio::test]
async fn a_variant_named_twice_in_one_answer_is_stored_once_with_its_last_prices() {
    let db = TestDb::new().await;
    crate::helpers::Sale::new("MK-1")
        .insert(&db.pool)
        .await
        .unwrap();
    let product_id: Uuid = sqlx::query_scalar("SELECT id FROM products.products")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let md = |variant: &str, currency: Option<&str>, ask: &str| stockx_sync::stockx::MarketData {
        product_id: None,
        variant_id: variant.into(),
        currency_code: currency.map(Into::into),
        lowest_ask_amount: Some(ask.parse().unwrap()),
        highest_bid_amount: None,
        sell_faster_amount: None,
        earn_more_amount: None,
        flex_lowest_ask_amount: None,
    };
    let stored = |data: Vec<stockx_sync::stockx::MarketData>| {
        let pool = db.pool.clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            stockx_sync::sales::store_market_data(&mut conn, product_id, "p-1", &data, "EUR")
                .await
                .unwrap();
            stockx_sync::sales::store_market_history(&mut conn, product_id, "p-1", &data, "EUR")
                .await
                .unwrap();
            let mut tables = Vec::new();
            for table in [
                "platforms.marketplace_data",
                "platforms.market_price_history",
            ] {
                let rows: Vec<(String, String, String)> = sqlx::query_as(&format!(
                    "SELECT stockx_variant_id, currency, lowest_ask::text FROM {table}
                     ORDER BY 1, 2"
                ))
                .fetch_all(&pool)
                .await
                .unwrap();
                tables.push(rows);
            }
            (tables[0].clone(), tables[1].clone())
        }
    };
    let row = |v: &str, c: &str, a: &str| (v.to_string(), c.to_string(), a.to_string());

    // v-1 twice (the last answer wins), v-2 without a currency (the one asked in).
    let (latest, history) = stored(vec![
        md("v-1", Some("EUR"), "100.00"),
        md("v-2", None, "90.00"),
        md("v-1", Some("EUR"), "110.00"),
    ])
    .await;
    let expected = vec![row("v-1", "EUR", "110.00"), row("v-2", "EUR", "90.00")];
    assert_eq!(latest, expected);
    assert_eq!(history, expected);

    // Later the same day: both tables keep one row per variant, with the later prices.
    let (latest, history) = stored(vec![md("v-1", Some("EUR"), "120.00")]).await;
    let expected = vec![row("v-1", "EUR", "120.00"), row("v-2", "EUR", "90.00")];
    assert_eq!(latest, expected);
    assert_eq!(history, expected);
}
