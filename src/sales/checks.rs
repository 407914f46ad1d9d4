//! The integrity checks over the whole database (`stockx-sync verify`): each one query that
//! returns the order numbers (or inventory ids) that fail it. The profit and ROI checks use the
//! tolerances of the validation rules (`validate::PROFIT_TOLERANCE`, `validate::ROI_TOLERANCE`),
//! bound as parameters, so that the checks and the rules cannot drift apart; ROI is checked
//! against the recorded profit.

use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;

use super::orders::pending_over_24h;
use crate::validate::{PROFIT_TOLERANCE, ROI_TOLERANCE};

/// One check's result: how many rows fail it, and the first few of them.
#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    pub description: String,
    pub failures: i64,
    pub examples: Vec<String>,
}

/// The failing orders (`o`, with its inventory item `i`) of a check, by sale date:
/// `$condition` says which fail.
macro_rules! failing_orders {
    ($condition:expr) => {
        concat!(
            "SELECT o.stockx_order_number AS example FROM platforms.stockx_orders o
             JOIN platforms.stockx_listings l ON l.id = o.listing_id
             JOIN products.inventory i ON i.id = l.inventory_id
             WHERE ",
            $condition,
            " ORDER BY o.sold_at, o.stockx_order_number"
        )
    };
}

struct Check {
    name: &'static str,
    description: &'static str,
    /// Bound as `$1` (and said in the description) when the check has a tolerance.
    tolerance: Option<Decimal>,
    /// Selects one text column `example` per failing row.
    sql: &'static str,
}

const CHECKS: &[Check] = &[
    Check {
        name: "sold_inventory_without_order",
        description: "inventory marked sold that has no StockX order",
        tolerance: None,
        sql: "SELECT i.id::text AS example FROM products.inventory i
              WHERE i.status = 'sold' AND NOT EXISTS (
                  SELECT 1 FROM platforms.stockx_listings l
                  JOIN platforms.stockx_orders o ON o.listing_id = l.id
                  WHERE l.inventory_id = i.id)
              ORDER BY i.created_at",
    },
    Check {
        name: "profit_mismatch",
        description: "orders whose profit differs from net proceeds minus purchase price",
        tolerance: Some(PROFIT_TOLERANCE),
        sql: failing_orders!(
            "o.net_profit IS NOT NULL
             AND abs(o.net_profit - (o.net_proceeds - i.purchase_price)) > $1"
        ),
    },
    Check {
        name: "roi_mismatch",
        description: "orders whose ROI differs from profit / purchase price",
        tolerance: Some(ROI_TOLERANCE),
        sql: failing_orders!(
            "o.roi IS NOT NULL AND o.net_profit IS NOT NULL AND i.purchase_price > 0
             AND abs(o.roi - o.net_profit / i.purchase_price) > $1"
        ),
    },
    Check {
        name: "sale_before_purchase",
        description: "orders sold before the item was bought",
        tolerance: None,
        sql: failing_orders!("i.purchase_date IS NOT NULL AND o.sold_at < i.purchase_date"),
    },
    Check {
        name: "pending_enrichment_over_24h",
        description: "orders still pending enrichment more than 24 hours after they were recorded",
        tolerance: None,
        sql: concat!(
            "SELECT o.stockx_order_number AS example FROM platforms.stockx_orders o WHERE ",
            pending_over_24h!(),
            " ORDER BY o.created_at"
        ),
    },
];

/// Runs every check, keeping up to `examples` failing rows of each.
pub async fn run_integrity_checks(
    pool: &PgPool,
    examples: i64,
) -> Result<Vec<CheckResult>, sqlx::Error> {
    let mut results = Vec::with_capacity(CHECKS.len());
    for check in CHECKS {
        // The tolerance is `$1`, so the limit comes after it.
        let limit = if check.tolerance.is_some() { 2 } else { 1 };
        let sql = format!(
            "WITH failing AS ({}) SELECT (SELECT count(*) FROM failing) AS failures,
                    ARRAY(SELECT example FROM failing LIMIT ${limit}) AS examples",
            check.sql
        );
        let mut query = sqlx::query_as(&sql);
        if let Some(tolerance) = check.tolerance {
            query = query.bind(tolerance);
        }
        let (failures, examples): (i64, Vec<String>) = query.bind(examples).fetch_one(pool).await?;
        results.push(CheckResult {
            name: check.name,
            description: match check.tolerance {
                Some(tolerance) => format!("{} by more than {tolerance}", check.description),
                None => check.description.to_string(),
            },
            failures,
            examples,
        });
    }
    Ok(results)
}
