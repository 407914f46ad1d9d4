//! What the stock is worth today (issue 14).
//!
//! - The market refresh (this file): once a day the scheduler asks StockX for the market data
//!   of every product with unsold stock, one product-level call for all its sizes, and stores
//!   the latest prices (`platforms.marketplace_data`, as enrichment does) and a row per
//!   variant, currency and day (`platforms.market_price_history`) through the sales store.
//! - `outliers`: the price-outlier rules' samples for one order (the rules are in `validate`).
//! - `store`: the valuation settings the reporting views read (`integration.market_settings`).
//!
//! The refresh is the lowest-priority user of StockX. It goes through the worker's own client,
//! so it shares the process-wide rate limit and daily budget with enrichment, and it gives way:
//! before each call it waits while order or inventory jobs are due or running (a new sale's
//! enrichment never queues behind it for more than the one call in flight), and it stops while
//! fewer than `market.budget_reserve` requests are left of the daily budget. A run that stops
//! early leaves the rest for the next run: products already refreshed today are skipped.

pub mod outliers;
pub mod store;

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::PgPool;

use crate::config::Settings;
use crate::metrics as m;
use crate::queue;
use crate::sales;
use crate::schedule::{CronSchedule, ScheduleError, ScheduledTask, Scheduler, TaskResult};
use crate::stockx::{StockxClient, StockxError};

pub const MARKET_REFRESH: &str = "market_refresh";

/// How the refresh behaves.
#[derive(Debug, Clone)]
pub struct RefreshOptions {
    /// The currency market data is asked in (`stockx.currency`).
    pub currency: String,
    /// Stop while fewer requests than this are left of the daily budget.
    pub budget_reserve: u32,
    /// How often to look again whether enrichment is done while giving way to it.
    pub yield_poll: Duration,
}

impl Default for RefreshOptions {
    fn default() -> Self {
        RefreshOptions {
            currency: "EUR".into(),
            budget_reserve: 5_000,
            yield_poll: Duration::from_millis(250),
        }
    }
}

/// What one refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RefreshReport {
    /// Products with unsold stock and a StockX product still to refresh today.
    pub planned: usize,
    /// Products whose market data was stored.
    pub refreshed: usize,
    /// Variant rows stored (latest and history each).
    pub variants: usize,
    /// Products StockX answered with no market data (unknown product, no sizes).
    pub empty: usize,
    /// Products whose call failed (the next run asks again).
    pub failed: usize,
    pub already_today: i64,
    pub without_stockx_id: i64,
    /// Times the refresh paused because enrichment jobs were due or running.
    pub yields: usize,
    /// Why the run stopped before the end, if it did.
    pub stopped: Option<String>,
}

impl std::fmt::Display for RefreshReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "market data of {} of {} products ({} variants), {} without market data, {} failed; {} already refreshed today, {} without a StockX product yet; gave way to enrichment {} times",
            self.refreshed,
            self.planned,
            self.variants,
            self.empty,
            self.failed,
            self.already_today,
            self.without_stockx_id,
            self.yields
        )?;
        if let Some(why) = &self.stopped {
            write!(f, "; stopped early: {why}")?;
        }
        Ok(())
    }
}

/// Adds the market refresh to the worker's schedule: daily (`market.refresh`) unless
/// `market.enabled` is off or the worker has no StockX client. Adds the morning summary's
/// Slack post (`report.schedule`) when `report.slack_webhook_url` is set.
pub fn add_scheduled_tasks(
    scheduler: &mut Scheduler,
    settings: &Settings,
    pool: PgPool,
    client: Option<StockxClient>,
) -> Result<(), ScheduleError> {
    let time_zone = &settings.schedule.time_zone;
    if let Some(webhook) = &settings.report.slack_webhook_url {
        scheduler.add(
            std::sync::Arc::new(crate::report::DailyReport::new(
                pool.clone(),
                webhook.clone(),
            )),
            CronSchedule::parse(&settings.report.schedule, time_zone)?,
        );
    }
    match client {
        Some(client) if settings.market.enabled => {
            let options = RefreshOptions {
                currency: settings.stockx.currency.clone(),
                budget_reserve: settings.market.budget_reserve,
                ..RefreshOptions::default()
            };
            scheduler.add(
                std::sync::Arc::new(MarketRefresh::new(pool, client, options)),
                CronSchedule::parse(&settings.market.refresh, time_zone)?,
            );
        }
        Some(_) => tracing::info!("the market refresh is off (market.enabled = false)"),
        None => tracing::info!("no StockX credentials: no market refresh"),
    }
    Ok(())
}

/// The refresh; see the module documentation.
pub struct MarketRefresh {
    pool: PgPool,
    client: StockxClient,
    options: RefreshOptions,
    /// Pauses so far, over every run (tests watch it to know the refresh is waiting).
    yields: std::sync::atomic::AtomicUsize,
}

impl MarketRefresh {
    pub fn new(pool: PgPool, client: StockxClient, options: RefreshOptions) -> MarketRefresh {
        MarketRefresh {
            pool,
            client,
            options,
            yields: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// How many times the refresh has paused for enrichment since it was made.
    pub fn yields(&self) -> usize {
        self.yields.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// One refresh of every product with unsold stock not refreshed today.
    pub async fn refresh(&self) -> Result<RefreshReport, sqlx::Error> {
        let currency = &self.options.currency;
        let plan = sales::market_refresh_plan(&self.pool, currency).await?;
        let mut report = RefreshReport {
            planned: plan.products.len(),
            already_today: plan.already_today,
            without_stockx_id: plan.without_stockx_id,
            ..RefreshReport::default()
        };
        for product in &plan.products {
            self.give_way(&mut report).await?;
            let left = self.client.budget_left();
            if left <= self.options.budget_reserve {
                report.stopped = Some(format!(
                    "{left} requests left of the daily budget, the reserve for enrichment is {} (market.budget_reserve)",
                    self.options.budget_reserve
                ));
                break;
            }
            let data = match self
                .client
                .product_market_data(&product.stockx_product_id, currency)
                .await
            {
                Ok(data) => data,
                Err(error) if stops_the_run(&error) => {
                    report.stopped = Some(error.to_string());
                    count(error_outcome(&error));
                    break;
                }
                Err(error) => {
                    // One product's failure does not stop the others; tomorrow asks again.
                    tracing::warn!(sku = %product.sku, stockx_product_id = %product.stockx_product_id,
                        %error, "market refresh: could not fetch market data");
                    report.failed += 1;
                    count("failed");
                    continue;
                }
            };
            if data.is_empty() {
                report.empty += 1;
                count("empty");
                continue;
            }
            let mut tx = self.pool.begin().await?;
            let (id, stockx_id) = (product.product_id, &product.stockx_product_id);
            sales::store_market_data(&mut tx, id, stockx_id, &data, currency).await?;
            sales::store_market_history(&mut tx, id, stockx_id, &data, currency).await?;
            tx.commit().await?;
            report.refreshed += 1;
            report.variants += data.len();
            count("refreshed");
        }
        Ok(report)
    }

    /// Waits while enrichment jobs are due or running.
    async fn give_way(&self, report: &mut RefreshReport) -> Result<(), sqlx::Error> {
        let mut paused = false;
        while queue::count_enrichment_due(&self.pool).await? > 0 {
            if !paused {
                paused = true;
                report.yields += 1;
                self.yields
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                metrics::counter!(m::MARKET_REFRESH_YIELDS_TOTAL).increment(1);
            }
            tokio::time::sleep(self.options.yield_poll).await;
        }
        Ok(())
    }
}

/// Errors every further call would meet too: stop instead of spending the run on them.
fn stops_the_run(error: &StockxError) -> bool {
    error.is_account_wide()
        || matches!(
            error,
            StockxError::BudgetExhausted { .. } | StockxError::RateLimited { .. }
        )
}

fn error_outcome(error: &StockxError) -> &'static str {
    if matches!(error, StockxError::BudgetExhausted { .. }) {
        "budget"
    } else {
        "failed"
    }
}

/// `outcome`: refreshed, empty, failed, budget.
fn count(outcome: &'static str) {
    metrics::counter!(m::MARKET_REFRESH_PRODUCTS_TOTAL, "outcome" => outcome).increment(1);
}

impl ScheduledTask for MarketRefresh {
    fn name(&self) -> &'static str {
        MARKET_REFRESH
    }

    fn run(&self) -> BoxFuture<'_, TaskResult> {
        Box::pin(async move {
            let report = self.refresh().await.map_err(|e| format!("database: {e}"))?;
            Ok(report.to_string())
        })
    }
}
