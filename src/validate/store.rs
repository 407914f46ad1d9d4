//! Keeps `integration.validation_warnings` in step with the rules: one open row per (entity,
//! rule) while the finding holds, `resolved_at` set once it no longer does. Re-running a check
//! changes nothing; only findings that are new are counted in the metric. It is the one module
//! that names the table; the commands read the open warnings through it.

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Finding, Rule};
use crate::metrics as m;

/// Which row the findings are about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// `order` or `inventory`.
    pub entity_type: &'static str,
    pub entity_id: Uuid,
    pub order_number: Option<&'a str>,
}

/// Records `findings` and resolves open warnings of the `checked` rules that were not found.
/// Returns the findings that are new (not already open).
pub async fn record_findings(
    conn: &mut PgConnection,
    subject: Subject<'_>,
    checked: &[Rule],
    findings: &[Finding],
) -> Result<Vec<Rule>, sqlx::Error> {
    let mut new = Vec::new();
    for finding in findings {
        let inserted: bool = sqlx::query_scalar(
            "INSERT INTO integration.validation_warnings
                 (entity_type, entity_id, stockx_order_number, rule, message, details)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (entity_type, entity_id, rule) WHERE resolved_at IS NULL
             DO UPDATE SET message = EXCLUDED.message, details = EXCLUDED.details,
                           stockx_order_number = EXCLUDED.stockx_order_number
             RETURNING xmax = 0",
        )
        .bind(subject.entity_type)
        .bind(subject.entity_id)
        .bind(subject.order_number)
        .bind(finding.rule.code())
        .bind(&finding.message)
        .bind(&finding.details)
        .fetch_one(&mut *conn)
        .await?;
        if inserted {
            new.push(finding.rule);
        }
    }
    let holding: Vec<&str> = findings.iter().map(|f| f.rule.code()).collect();
    let resolvable: Vec<&str> = checked
        .iter()
        .map(|r| r.code())
        .filter(|code| !holding.contains(code))
        .collect();
    if !resolvable.is_empty() {
        sqlx::query(
            "UPDATE integration.validation_warnings SET resolved_at = now()
             WHERE entity_type = $1 AND entity_id = $2 AND rule = ANY($3) AND resolved_at IS NULL",
        )
        .bind(subject.entity_type)
        .bind(subject.entity_id)
        .bind(&resolvable)
        .execute(&mut *conn)
        .await?;
    }
    Ok(new)
}

/// Counts new findings in `stockx_sync_validation_warnings_total{rule}`. Call after commit.
pub fn count_new_findings(new: &[Rule]) {
    for rule in new {
        metrics::counter!(m::VALIDATION_WARNINGS_TOTAL, "rule" => rule.code()).increment(1);
    }
}

/// How many warnings of one rule are open.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RuleCount {
    pub rule: String,
    pub open: i64,
}

/// Open warnings per rule, by rule.
pub async fn open_warnings_by_rule(pool: &PgPool) -> Result<Vec<RuleCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT rule, count(*) AS open FROM integration.validation_warnings
         WHERE resolved_at IS NULL GROUP BY rule ORDER BY rule",
    )
    .fetch_all(pool)
    .await
}

/// An open warning, as a person reads it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OpenWarning {
    pub rule: String,
    pub stockx_order_number: Option<String>,
    pub message: String,
}

/// Every open warning, by rule and order number.
pub async fn open_warnings(pool: &PgPool) -> Result<Vec<OpenWarning>, sqlx::Error> {
    sqlx::query_as(
        "SELECT rule, stockx_order_number, message FROM integration.validation_warnings
         WHERE resolved_at IS NULL ORDER BY rule, stockx_order_number",
    )
    .fetch_all(pool)
    .await
}

/// Rows with at least one open warning, for the daily re-check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarnedRows {
    pub orders: Vec<Uuid>,
    pub inventory: Vec<Uuid>,
}

pub async fn rows_with_open_warnings(pool: &PgPool) -> Result<WarnedRows, sqlx::Error> {
    let rows: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT DISTINCT entity_type, entity_id FROM integration.validation_warnings
         WHERE resolved_at IS NULL ORDER BY entity_type, entity_id",
    )
    .fetch_all(pool)
    .await?;
    let mut warned = WarnedRows::default();
    for (entity_type, id) in rows {
        match entity_type.as_str() {
            "order" => warned.orders.push(id),
            _ => warned.inventory.push(id),
        }
    }
    Ok(warned)
}

/// An open warning of one sale, with the ID that tells it apart from a later one of the
/// same rule (a finding that was resolved and came back is a new row).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SaleWarning {
    pub id: i64,
    pub rule: String,
    pub message: String,
}

/// The open warnings of a sale: its order's and its inventory item's, oldest first.
pub async fn open_warnings_of_sale(
    pool: &PgPool,
    order_id: Uuid,
    inventory_id: Uuid,
) -> Result<Vec<SaleWarning>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, rule, message FROM integration.validation_warnings
         WHERE resolved_at IS NULL
           AND ((entity_type = 'order' AND entity_id = $1)
                OR (entity_type = 'inventory' AND entity_id = $2))
         ORDER BY id",
    )
    .bind(order_id)
    .bind(inventory_id)
    .fetch_all(pool)
    .await
}
