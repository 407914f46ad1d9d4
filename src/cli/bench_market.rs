//! `stockx-sync bench --market`: the market refresh's StockX calls for unsold stock spread over
//! products (goal: one call per product), and the valuation views' query times on a large
//! stock (goal: under 200 ms on 100,000 unsold items), in a scratch database against the local
//! StockX sandbox.

use std::time::Instant;

use serde::Serialize;
use sqlx::PgPool;

use super::bench::ScratchDb;
use crate::market::{MarketRefresh, RefreshOptions};
use crate::sales::{self, SyntheticStock};
use crate::sandbox::{self, SandboxOptions};
use crate::stockx::StockxClient;

/// The benchmark's sizes.
#[derive(Debug, Clone, Copy)]
pub struct MarketBenchOptions {
    pub products: u32,
    /// Unsold items the refresh is measured on.
    pub refresh_items: u32,
    /// Unsold items the valuation is measured on (the refresh's included).
    pub valuation_items: u32,
    /// Sold items beside them (the fee rate and the "unsold" test read them).
    pub sold_items: u32,
}

#[derive(Debug, Serialize)]
pub struct MarketFigures {
    pub products: u32,
    pub refresh_items: u32,
    pub market_calls: usize,
    pub variants_stored: usize,
    pub refresh_seconds: f64,
    pub valuation_items: i64,
    pub sold_items: u32,
    /// `reporting.inventory_valuation_totals` (what the report and the dashboard read).
    pub valuation_totals: QueryTime,
    /// count and sums straight over `reporting.inventory_valuation`.
    pub valuation_item_sums: QueryTime,
    /// Every row of `reporting.inventory_valuation`, fetched and decoded.
    pub valuation_all_rows: QueryTime,
    pub valuation_one_sku: QueryTime,
    pub dead_stock_count: QueryTime,
    pub market_trend_top_movers: QueryTime,
    /// The machine's 1-minute load average while measuring (the times grow with it).
    pub load_average: Option<f64>,
}

/// One query's time: the median wall time of 5 runs as the client sees it, and the server
/// backend's mean CPU time per run (from /proc, when the server runs on this machine; 10 ms
/// resolution), which a loaded machine inflates far less than the wall time.
#[derive(Debug, Serialize)]
pub struct QueryTime {
    pub wall_ms: f64,
    pub backend_cpu_ms: Option<f64>,
}

impl std::fmt::Display for QueryTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1} ms", self.wall_ms)?;
        if let Some(cpu) = self.backend_cpu_ms {
            write!(f, " (server CPU {cpu:.0} ms)")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for MarketFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Market refresh: {} unsold items over {} products → {} market-data calls ({} variants stored) in {:.2} s\n\
             Valuation on {} unsold items (+ {} sold), median of 5, load average {}:\n  \
             totals view {}; sums over the item view {}; all rows fetched {}; one SKU {}; \
             dead-stock count {}; top 20 movers {}",
            self.refresh_items,
            self.products,
            self.market_calls,
            self.variants_stored,
            self.refresh_seconds,
            self.valuation_items,
            self.sold_items,
            self.load_average
                .map(|l| format!("{l:.1}"))
                .unwrap_or_else(|| "unknown".into()),
            self.valuation_totals,
            self.valuation_item_sums,
            self.valuation_all_rows,
            self.valuation_one_sku,
            self.dead_stock_count,
            self.market_trend_top_movers
        )
    }
}

pub async fn run(
    database: &crate::db::Database,
    options: MarketBenchOptions,
    json: bool,
) -> anyhow::Result<()> {
    let scratch = ScratchDb::create(&database.connect_options, "market").await?;
    let figures = measure(&scratch.pool, options).await;
    scratch.drop_now().await?;
    super::print_report(&figures?, json);
    Ok(())
}

async fn measure(pool: &PgPool, o: MarketBenchOptions) -> anyhow::Result<MarketFigures> {
    let sandbox = sandbox::spawn("127.0.0.1:0".parse()?, SandboxOptions::default()).await?;
    // The sandbox is local: the rate is not what is measured here, the number of calls is.
    let client = StockxClient::new(sandbox.client_config(200.0))?;
    sales::insert_synthetic_stock(
        pool,
        SyntheticStock {
            products: o.products,
            unsold: o.refresh_items,
            sold: 0,
        },
    )
    .await?;
    // No worker runs here: the jobs the inserts queued would only make the refresh wait.
    crate::queue::delete_all_jobs(pool).await?;
    let refresh = MarketRefresh::new(
        pool.clone(),
        client,
        RefreshOptions {
            budget_reserve: 0,
            ..RefreshOptions::default()
        },
    );
    let started = Instant::now();
    let report = refresh.refresh().await?;
    let refresh_seconds = started.elapsed().as_secs_f64();
    let market_calls = sandbox.request_count("/catalog/products/{productId}/market-data");

    sales::insert_synthetic_stock(
        pool,
        SyntheticStock {
            products: o.products,
            unsold: o.valuation_items.saturating_sub(o.refresh_items),
            sold: o.sold_items,
        },
    )
    .await?;
    crate::queue::delete_all_jobs(pool).await?;
    crate::queue::vacuum_analyze(pool).await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    let valuation_items: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reporting.inventory_valuation")
            .fetch_one(pool)
            .await?;
    Ok(MarketFigures {
        products: o.products,
        refresh_items: o.refresh_items,
        market_calls,
        variants_stored: report.variants,
        refresh_seconds,
        valuation_items,
        sold_items: o.sold_items,
        valuation_totals: time_query(pool, "SELECT * FROM reporting.inventory_valuation_totals")
            .await?,
        valuation_item_sums: time_query(pool, ITEM_SUMS).await?,
        valuation_all_rows: time_query(pool, "SELECT * FROM reporting.inventory_valuation").await?,
        valuation_one_sku: time_query(
            pool,
            "SELECT * FROM reporting.inventory_valuation WHERE sku = 'SYN-42'",
        )
        .await?,
        dead_stock_count: time_query(pool, "SELECT count(*) FROM reporting.dead_stock").await?,
        market_trend_top_movers: time_query(
            pool,
            "SELECT * FROM reporting.market_trend
             ORDER BY abs(highest_bid_change_7d_pct) DESC NULLS LAST LIMIT 20",
        )
        .await?,
        load_average: load_average(),
    })
}

/// The same totals, summed row by row over the item view.
const ITEM_SUMS: &str = "SELECT count(*), sum(purchase_price), sum(expected_payout),
                             sum(unrealised_profit)
                      FROM reporting.inventory_valuation";

/// Runs `sql` once to warm the cache, then 5 times on one connection; see [`QueryTime`].
async fn time_query(pool: &PgPool, sql: &str) -> anyhow::Result<QueryTime> {
    let mut conn = pool.acquire().await?;
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(sql).fetch_all(&mut *conn).await?;
    let cpu_before = super::bench::process_cpu_seconds(backend);
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        sqlx::query(sql).fetch_all(&mut *conn).await?;
        times.push(started.elapsed());
    }
    let cpu_after = super::bench::process_cpu_seconds(backend);
    times.sort();
    Ok(QueryTime {
        wall_ms: times[2].as_secs_f64() * 1000.0,
        backend_cpu_ms: match (cpu_before, cpu_after) {
            (Some(before), Some(after)) => Some((after - before) * 1000.0 / 5.0),
            _ => None,
        },
    })
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
