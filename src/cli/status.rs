//! `stockx-sync status`: what the queue and the validation look like right now, for a person
//! (text) or a script (`--json`).

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// Jobs per state; every state is listed, zero included.
    pub queue: Vec<StateCount>,
    pub oldest_waiting: Option<WaitingJob>,
    pub recent_failures: Vec<FailedJob>,
    /// Open validation warnings per rule.
    pub warnings: Vec<RuleCount>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct StateCount {
    pub state: String,
    pub jobs: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct WaitingJob {
    pub id: i64,
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub age_seconds: f64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct FailedJob {
    pub id: i64,
    pub kind: String,
    pub entity_id: uuid::Uuid,
    pub attempt: i16,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct RuleCount {
    pub rule: String,
    pub open: i64,
}

pub const STATES: [&str; 5] = ["available", "running", "retryable", "completed", "failed"];

pub async fn collect(pool: &PgPool) -> Result<StatusReport, sqlx::Error> {
    let queue = sqlx::query_as::<_, StateCount>(
        "SELECT s.state, count(j.id) AS jobs
         FROM unnest($1::text[]) WITH ORDINALITY AS s(state, n)
         LEFT JOIN integration.enrichment_jobs j ON j.state = s.state
         GROUP BY s.state, s.n ORDER BY s.n",
    )
    .bind(&STATES[..])
    .fetch_all(pool)
    .await?;
    let oldest_waiting = sqlx::query_as::<_, WaitingJob>(
        "SELECT id, kind, created_at,
                extract(epoch FROM clock_timestamp() - created_at)::float8 AS age_seconds
         FROM integration.enrichment_jobs
         WHERE state IN ('available', 'retryable')
         ORDER BY created_at, id LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    let recent_failures = sqlx::query_as::<_, FailedJob>(
        "SELECT id, kind, entity_id, attempt, finished_at, last_error
         FROM integration.enrichment_jobs WHERE state = 'failed'
         ORDER BY finished_at DESC, id DESC LIMIT 10",
    )
    .fetch_all(pool)
    .await?;
    let warnings = sqlx::query_as::<_, RuleCount>(
        "SELECT rule, count(*) AS open FROM integration.validation_warnings
         WHERE resolved_at IS NULL GROUP BY rule ORDER BY rule",
    )
    .fetch_all(pool)
    .await?;
    Ok(StatusReport {
        queue,
        oldest_waiting,
        recent_failures,
        warnings,
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
