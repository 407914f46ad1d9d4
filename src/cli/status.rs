//! `stockx-sync status`: what the queue, the validation and the scheduled tasks look like right
//! now, for a person (text) or a script (`--json`).

use serde::Serialize;
use sqlx::PgPool;

use crate::queue::{self, FailedJob, StateCount, WaitingJob};
use crate::schedule::store::{self as schedule_store, TaskRow};
use crate::validate::store::{open_warnings_by_rule, RuleCount};

#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// Jobs per state; every state is listed, zero included.
    pub queue: Vec<StateCount>,
    pub oldest_waiting: Option<WaitingJob>,
    pub recent_failures: Vec<FailedJob>,
    /// Open validation warnings per rule.
    pub warnings: Vec<RuleCount>,
    /// The scheduled tasks workers have set up: last run, outcome, next run.
    pub schedule: Vec<TaskRow>,
}

/// Failed jobs shown.
const RECENT_FAILURES: i64 = 10;

pub async fn collect(pool: &PgPool) -> Result<StatusReport, sqlx::Error> {
    Ok(StatusReport {
        queue: queue::count_by_state(pool).await?,
        oldest_waiting: queue::oldest_waiting_job(pool).await?,
        recent_failures: queue::recent_failures(pool, RECENT_FAILURES).await?,
        warnings: open_warnings_by_rule(pool).await?,
        schedule: schedule_store::tasks(pool).await?,
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
            writeln!(f, "open validation warnings: none")?;
        } else {
            writeln!(f, "open validation warnings:")?;
            for w in &self.warnings {
                writeln!(f, "  {:<26} {}", w.rule, w.open)?;
            }
        }
        if self.schedule.is_empty() {
            return write!(
                f,
                "scheduled tasks: none set up yet (a running worker sets them up)"
            );
        }
        write!(f, "scheduled tasks:")?;
        for task in &self.schedule {
            write!(f, "\n  {:<17} {}", task.task, describe_task(task))?;
        }
        Ok(())
    }
}

/// "last success at ... (created 2, ...); next 2026-01-02 02:00 UTC (0 2 * * * UTC)"
fn describe_task(task: &TaskRow) -> String {
    let when = |t: time::OffsetDateTime| {
        let t = t.to_offset(time::UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    let last = match (&task.last_outcome, task.last_finished_at) {
        (Some(outcome), Some(at)) => {
            let detail = if outcome == "success" {
                task.last_summary.as_deref()
            } else {
                task.last_error.as_deref()
            };
            format!(
                "last run {outcome} at {}{}",
                when(at),
                detail.map(|d| format!(" ({d})")).unwrap_or_default()
            )
        }
        _ => "never run".to_string(),
    };
    let failures = if task.consecutive_failures > 1 {
        format!(", {} failures in a row", task.consecutive_failures)
    } else {
        String::new()
    };
    let running = task
        .running_on
        .as_deref()
        .map(|w| format!("; running now on {w}"))
        .unwrap_or_default();
    format!(
        "{last}{failures}{running}; next {} ({})",
        when(task.next_run_at),
        task.schedule
    )
}
