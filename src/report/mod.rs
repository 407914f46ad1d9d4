//! The daily summary (`stockx-sync report`, and the scheduler's morning Slack post): sales
//! recorded and enriched, warnings opened and resolved per rule, failures, the stock's value,
//! dead stock and the largest market movers. Read from the reporting views and functions
//! (migrations 091 and 093), the same figures Metabase and Grafana show.

use std::time::Duration;

use futures::future::BoxFuture;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::schedule::{ScheduledTask, TaskResult};

pub const DAILY_REPORT: &str = "daily_report";

/// Dead items and movers listed by name.
const TOP: i64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SalesActivity {
    /// Sales recorded (any way in).
    pub entered: i64,
    /// Of those, sales that came through the Notion import.
    pub imported: i64,
    /// Orders StockX enrichment finished as enriched.
    pub enriched: i64,
    pub not_found: i64,
    pub enrichment_failed: i64,
    /// Jobs dead-lettered (`stockx-sync status`, `retry`).
    pub dead_letter_jobs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct WarningActivity {
    pub rule: String,
    pub opened: i64,
    pub resolved: i64,
    pub open_now: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Valuation {
    pub currency: String,
    pub items: i64,
    pub purchase_total: Decimal,
    pub items_without_market_data: i64,
    pub expected_payout_total: Option<Decimal>,
    pub expected_payout_listed_total: Option<Decimal>,
    pub unrealised_profit: Option<Decimal>,
    pub fee_source: Option<String>,
    pub fee_rate: Option<Decimal>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub market_as_of: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DeadItem {
    pub sku: String,
    pub size: String,
    pub supplier: String,
    pub days_held: i32,
    pub purchase_price: Decimal,
    pub expected_payout: Option<Decimal>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadStock {
    pub items: i64,
    pub purchase_total: Decimal,
    /// The worst few: lowest unrealised profit first.
    pub top: Vec<DeadItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Mover {
    pub sku: String,
    pub product_name: Option<String>,
    pub size: String,
    pub currency: String,
    pub highest_bid: Option<Decimal>,
    pub highest_bid_change_7d: Option<Decimal>,
    pub highest_bid_change_7d_pct: Option<Decimal>,
}

/// The summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    pub sales: SalesActivity,
    pub warnings: Vec<WarningActivity>,
    pub valuation: Option<Valuation>,
    pub dead_stock: DeadStock,
    /// Sizes the business holds or held whose highest bid moved most in 7 days (by share).
    pub movers: Vec<Mover>,
}

pub async fn collect(pool: &PgPool, since: OffsetDateTime) -> Result<Report, sqlx::Error> {
    // One transaction: one snapshot for every figure, and no JIT (see `sales::without_jit`).
    let mut tx = pool.begin().await?;
    crate::sales::without_jit(&mut tx).await?;
    let report = collect_in(&mut tx, since).await?;
    tx.commit().await?;
    Ok(report)
}

async fn collect_in(
    conn: &mut sqlx::PgConnection,
    since: OffsetDateTime,
) -> Result<Report, sqlx::Error> {
    let generated_at: OffsetDateTime = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await?;
    let sales = sqlx::query_as("SELECT * FROM reporting.sales_activity($1)")
        .bind(since)
        .fetch_one(&mut *conn)
        .await?;
    let warnings = sqlx::query_as("SELECT * FROM reporting.warning_activity($1)")
        .bind(since)
        .fetch_all(&mut *conn)
        .await?;
    let valuation = sqlx::query_as(
        "SELECT currency, items, purchase_total, items_without_market_data,
                expected_payout_total, expected_payout_listed_total, unrealised_profit,
                fee_source, fee_rate, market_as_of
         FROM reporting.inventory_valuation_totals",
    )
    .fetch_optional(&mut *conn)
    .await?;
    // The totals ride along with the worst few (window aggregates are taken before the
    // LIMIT), so the dead-stock view is computed once; no row means 0 items, 0 spent.
    #[derive(sqlx::FromRow)]
    struct DeadRow {
        items: i64,
        purchase_total: Decimal,
        #[sqlx(flatten)]
        item: DeadItem,
    }
    let dead: Vec<DeadRow> = sqlx::query_as(
        "SELECT count(*) OVER () AS items,
                coalesce(sum(purchase_price) OVER (), 0) AS purchase_total,
                sku, size, supplier, days_held, purchase_price, expected_payout, reason
         FROM reporting.dead_stock
         ORDER BY unrealised_profit NULLS LAST, days_held DESC, sku, size LIMIT $1",
    )
    .bind(TOP)
    .fetch_all(&mut *conn)
    .await?;
    let (items, purchase_total) = dead
        .first()
        .map_or((0, Decimal::ZERO), |d| (d.items, d.purchase_total));
    let movers = sqlx::query_as(
        "SELECT sku, product_name, size, currency, highest_bid, highest_bid_change_7d,
                highest_bid_change_7d_pct
         FROM reporting.market_trend
         WHERE size IS NOT NULL AND highest_bid_change_7d_pct IS NOT NULL
         ORDER BY abs(highest_bid_change_7d_pct) DESC, sku, size LIMIT $1",
    )
    .bind(TOP)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Report {
        since,
        generated_at,
        sales,
        warnings,
        valuation,
        dead_stock: DeadStock {
            items,
            purchase_total,
            top: dead.into_iter().map(|d| d.item).collect(),
        },
        movers,
    })
}

fn money(amount: Option<Decimal>) -> String {
    amount.map_or_else(|| "-".into(), |a| a.to_string())
}

fn percent(share: Option<Decimal>) -> String {
    share.map_or_else(
        || "-".into(),
        |s| format!("{:+}%", (s * Decimal::ONE_HUNDRED).round_dp(1)),
    )
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.sales;
        writeln!(f, "stockx-sync daily summary since {}", self.since)?;
        writeln!(
            f,
            "Sales: {} recorded ({} from Notion), {} enriched, {} not found on StockX, {} failed; {} dead-letter jobs",
            s.entered, s.imported, s.enriched, s.not_found, s.enrichment_failed, s.dead_letter_jobs
        )?;
        if self.warnings.is_empty() {
            writeln!(f, "Warnings: none")?;
        } else {
            writeln!(f, "Warnings (opened / resolved / open now):")?;
            for w in &self.warnings {
                writeln!(
                    f,
                    "  {}: {} / {} / {}",
                    w.rule, w.opened, w.resolved, w.open_now
                )?;
            }
        }
        match &self.valuation {
            Some(v) => writeln!(
                f,
                "Stock: {} items bought for {} {c}; selling now would pay {} {c} (listing: {} {c}), unrealised profit {} {c}; {} items without market data; fees: {} {}",
                v.items,
                v.purchase_total,
                money(v.expected_payout_total),
                money(v.expected_payout_listed_total),
                money(v.unrealised_profit),
                v.items_without_market_data,
                v.fee_source.as_deref().unwrap_or("-"),
                percent(v.fee_rate),
                c = v.currency,
            )?,
            None => writeln!(f, "Stock: no valuation settings")?,
        }
        writeln!(
            f,
            "Dead stock: {} items bought for {}",
            self.dead_stock.items, self.dead_stock.purchase_total
        )?;
        for d in &self.dead_stock.top {
            writeln!(f, "  {} {} ({}): {}", d.sku, d.size, d.supplier, d.reason)?;
        }
        if self.movers.is_empty() {
            write!(f, "Largest movers (7 days): none yet")?;
        } else {
            write!(f, "Largest movers (7 days, highest bid):")?;
            for m in &self.movers {
                write!(
                    f,
                    "\n  {} {}: {} {} ({} {})",
                    m.sku,
                    m.size,
                    money(m.highest_bid),
                    m.currency,
                    money(m.highest_bid_change_7d),
                    percent(m.highest_bid_change_7d_pct)
                )?;
            }
        }
        Ok(())
    }
}

/// Posts the last 24 hours' summary to a Slack incoming webhook.
pub struct DailyReport {
    pool: PgPool,
    webhook: SecretString,
    http: reqwest::Client,
}

/// A Slack webhook that would not take the post.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    // The webhook URL is a secret: errors never show it.
    #[error("Slack webhook: {0}")]
    Slack(String),
}

impl DailyReport {
    pub fn new(pool: PgPool, webhook: SecretString) -> DailyReport {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        DailyReport {
            pool,
            webhook,
            http,
        }
    }

    /// Collects the summary of the last 24 hours and posts it; returns what was posted.
    pub async fn post(&self) -> Result<Report, PostError> {
        let now: OffsetDateTime = sqlx::query_scalar("SELECT now()")
            .fetch_one(&self.pool)
            .await?;
        let report = collect(&self.pool, now - time::Duration::days(1)).await?;
        let body = serde_json::json!({ "text": format!("```\n{report}\n```") });
        let response = self
            .http
            .post(self.webhook.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| PostError::Slack(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(PostError::Slack(format!(
                "answered {status}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        Ok(report)
    }
}

impl ScheduledTask for DailyReport {
    fn name(&self) -> &'static str {
        DAILY_REPORT
    }

    fn run(&self) -> BoxFuture<'_, TaskResult> {
        Box::pin(async move {
            let report = self.post().await.map_err(|e| e.to_string())?;
            Ok(format!(
                "posted the summary to Slack: {} sales, {} dead items",
                report.sales.entered, report.dead_stock.items
            ))
        })
    }
}
