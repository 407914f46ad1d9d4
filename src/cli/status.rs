//! `stockx-sync status`: what the queue and the validation look like right now, for a person
//! (text) or a script (`--json`).

use serde::Serialize;
use sqlx::PgPool;

use crate::queue::{self, FailedJob, StateCount, WaitingJob};
use crate::validate::store::{open_warnings_by_rule, RuleCount};

#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// Jobs per state; every state is listed, zero included.
    pub queue: Vec<StateCount>,
    pub oldest_waiting: Option<WaitingJob>,
    pub recent_failures: Vec<FailedJob>,
    /// Open validation warnings per rule.
    pub warnings: Vec<RuleCount>,
}

/// Failed jobs shown.
const RECENT_FAILURES: i64 = 10;

pub async fn collect(pool: &PgPool) -> Result<StatusReport, sqlx::Error> {
    Ok(StatusReport {
        queue: queue::count_by_state(pool).await?,
        oldest_waiting: queue::oldest_waiting_job(pool).await?,
        recent_failures: queue::recent_failures(pool, RECENT_FAILURES).await?,
        warnings: open_warnings_by_rule(pool).await?,
    })
}

impl std::fmt::Display for StatusReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "queue:")?;
        for s in &self.queue {
            writeln!(f, "  {:<10} {}", s.state, s.jobs)?;
        }
        match &self.oldest_waiting {
            Some(job) => writeln!(
                f,
                "oldest waiting job: #{} ({}), waiting {:.1} s",
                job.id, job.kind, job.age_seconds
            )?,
            None => writeln!(f, "oldest waiting job: none")?,
        }
        if self.recent_failures.is_empty() {
            writeln!(f, "recent failures: none")?;
        } else {
            writeln!(f, "recent failures:")?;
            for job in &self.recent_failures {
                writeln!(
                    f,
                    "  #{} {} {} after {} attempt(s): {}",
                    job.id,
                    job.kind,
                    job.entity_id,
                    job.attempt,
                    job.last_error.as_deref().unwrap_or("-")
                )?;
            }
        }
        if self.warnings.is_empty() {
            write!(f, "open validation warnings: none")
        } else {
            writeln!(f, "open validation warnings:")?;
            let lines: Vec<String> = self
                .warnings
                .iter()
                .map(|w| format!("  {:<26} {}", w.rule, w.open))
                .collect();
            write!(f, "{}", lines.join("\n"))
        }
    }
}
