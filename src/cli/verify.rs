//! `stockx-sync verify`: the design document's integrity checks, run against the whole database.
//!
//! Each check is one SQL query that returns the order numbers (or inventory ids) that fail it;
//! the report keeps the count and up to ten examples. The tolerances are the design's: profit
//! within 0.01, ROI within 0.001 (ROI is checked against the recorded profit, as the design does).

use serde::Serialize;
use sqlx::PgPool;

/// Examples shown per failing check.
const EXAMPLES: i64 = 10;

#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    pub description: &'static str,
    pub failures: i64,
    pub examples: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub checks: Vec<CheckResult>,
}

struct Check {
    name: &'static str,
    description: &'static str,
    /// Selects one text column `example` per failing row.
    sql: &'static str,
}

const CHECKS: &[Check] = &[
    Check {
        name: "sold_inventory_without_order",
        description: "inventory marked sold that has no StockX order",
        sql: "SELECT i.id::text AS example FROM products.inventory i
              WHERE i.status = 'sold' AND NOT EXISTS (
                  SELECT 1 FROM platforms.stockx_listings l
                  JOIN platforms.stockx_orders o ON o.listing_id = l.id
                  WHERE l.inventory_id = i.id)
              ORDER BY i.created_at",
    },
    Check {
        name: "profit_mismatch",
        description:
            "orders whose profit differs from net proceeds minus purchase price by more than 0.01",
        sql: "SELECT o.stockx_order_number AS example FROM platforms.stockx_orders o
              JOIN platforms.stockx_listings l ON l.id = o.listing_id
              JOIN products.inventory i ON i.id = l.inventory_id
              WHERE o.net_profit IS NOT NULL
                AND abs(o.net_profit - (o.net_proceeds - i.purchase_price)) > 0.01
              ORDER BY o.sold_at, o.stockx_order_number",
    },
    Check {
        name: "roi_mismatch",
        description: "orders whose ROI differs from profit / purchase price by more than 0.001",
        sql: "SELECT o.stockx_order_number AS example FROM platforms.stockx_orders o
              JOIN platforms.stockx_listings l ON l.id = o.listing_id
              JOIN products.inventory i ON i.id = l.inventory_id
              WHERE o.roi IS NOT NULL AND o.net_profit IS NOT NULL AND i.purchase_price > 0
                AND abs(o.roi - o.net_profit / i.purchase_price) > 0.001
              ORDER BY o.sold_at, o.stockx_order_number",
    },
    Check {
        name: "sale_before_purchase",
        description: "orders sold before the item was bought",
        sql: "SELECT o.stockx_order_number AS example FROM platforms.stockx_orders o
              JOIN platforms.stockx_listings l ON l.id = o.listing_id
              JOIN products.inventory i ON i.id = l.inventory_id
              WHERE i.purchase_date IS NOT NULL AND o.sold_at < i.purchase_date
              ORDER BY o.sold_at, o.stockx_order_number",
    },
    Check {
        name: "pending_enrichment_over_24h",
        description: "orders still pending enrichment more than 24 hours after they were recorded",
        sql: "SELECT o.stockx_order_number AS example FROM platforms.stockx_orders o
              WHERE o.enrichment_status = 'pending' AND o.created_at < now() - interval '24 hours'
              ORDER BY o.created_at",
    },
];

/// Runs every check.
pub async fn run_checks(pool: &PgPool) -> Result<VerifyReport, sqlx::Error> {
    let mut checks = Vec::with_capacity(CHECKS.len());
    for check in CHECKS {
        let sql = format!(
            "WITH failing AS ({}) SELECT (SELECT count(*) FROM failing) AS failures,
                    ARRAY(SELECT example FROM failing LIMIT {EXAMPLES}) AS examples",
            check.sql
        );
        let (failures, examples): (i64, Vec<String>) = sqlx::query_as(&sql).fetch_one(pool).await?;
        checks.push(CheckResult {
            name: check.name,
            description: check.description,
            failures,
            examples,
        });
    }
    Ok(VerifyReport {
        ok: checks.iter().all(|c| c.failures == 0),
        checks,
    })
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for check in &self.checks {
            if check.failures == 0 {
                writeln!(f, "ok    {}", check.name)?;
            } else {
                writeln!(
                    f,
                    "FAIL  {}: {} {} (e.g. {})",
                    check.name,
                    check.failures,
                    check.description,
                    check.examples.join(", ")
                )?;
            }
        }
        let failed = self.checks.iter().filter(|c| c.failures > 0).count();
        if failed == 0 {
            write!(f, "all {} checks passed", self.checks.len())
        } else {
            write!(f, "{failed} of {} checks failed", self.checks.len())
        }
    }
}
