//! Keeps `integration.validation_warnings` in step with the rules: one open row per (entity,
//! rule) while the finding holds, `resolved_at` set once it no longer does. Re-running a check
//! changes nothing; only findings that are new are counted in the metric.

use sqlx::PgConnection;
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
