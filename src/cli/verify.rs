//! `stockx-sync verify`: the integrity checks (see [`crate::sales::run_integrity_checks`]) run
//! against the whole database, reported for a person or a script.

use serde::Serialize;
use sqlx::PgPool;

pub use crate::sales::CheckResult;

/// Examples shown per failing check.
const EXAMPLES: i64 = 10;

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub checks: Vec<CheckResult>,
}

/// Runs every check.
pub async fn run_checks(pool: &PgPool) -> Result<VerifyReport, sqlx::Error> {
    let checks = crate::sales::run_integrity_checks(pool, EXAMPLES).await?;
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
