//! The worker's own timetable: tasks that run at times given in cron syntax, once per due slot
//! however many workers there are, and that catch up after a downtime.
//!
//! Each task has a row in `integration.scheduled_tasks` ([`store`]): the slot due next and a
//! lease. Every worker runs the same loop per task: claim the row when its slot is due and the
//! lease is free, run the task while renewing the lease, then record the outcome and move the
//! slot to the next occurrence after the finish. A run that never finished keeps its slot due,
//! so it runs again when the lease ends or at the next start; several missed slots make one
//! catch-up run, not one per slot. Times come from the database's clock, so workers whose
//! clocks disagree still agree on what is due.
//!
//! The tasks themselves ([`tasks`]): the incremental Notion import (`notion_reconcile`) and the
//! daily refresh of stale enrichments and open warnings (`refresh_stale`).

pub mod store;
pub mod tasks;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::metrics as m;

/// A cron expression or time zone that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("{expression:?} is not a cron expression (minute hour day month weekday, optionally seconds first): {message}")]
    Cron { expression: String, message: String },
    #[error("{name:?} is not a time zone name (use an IANA name such as UTC or Europe/Berlin)")]
    TimeZone { name: String },
    #[error("{expression:?} never matches a time")]
    NeverDue { expression: String },
}

/// A parsed cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: croner::Cron,
    zone: jiff::tz::TimeZone,
    text: String,
}

impl CronSchedule {
    pub fn parse(expression: &str, time_zone: &str) -> Result<CronSchedule, ScheduleError> {
        let cron = croner::Cron::from_str(expression.trim()).map_err(|e| ScheduleError::Cron {
            expression: expression.to_string(),
            message: e.to_string(),
        })?;
        let zone =
            jiff::tz::TimeZone::get(time_zone.trim()).map_err(|_| ScheduleError::TimeZone {
                name: time_zone.to_string(),
            })?;
        let schedule = CronSchedule {
            cron,
            zone,
            text: format!("{} {}", expression.trim(), time_zone.trim()),
        };
        // An expression such as "0 0 31 2 *" parses but never comes.
        schedule.next_after(OffsetDateTime::now_utc())?;
        Ok(schedule)
    }

    /// The first slot strictly after `after`.
    pub fn next_after(&self, after: OffsetDateTime) -> Result<OffsetDateTime, ScheduleError> {
        let never = || ScheduleError::NeverDue {
            expression: self.text.clone(),
        };
        let instant =
            jiff::Timestamp::from_nanosecond(after.unix_timestamp_nanos()).map_err(|_| never())?;
        let next = self
            .cron
            .find_next_occurrence(&instant.to_zoned(self.zone.clone()), false)
            .map_err(|_| never())?;
        OffsetDateTime::from_unix_timestamp_nanos(next.timestamp().as_nanosecond())
            .map_err(|_| never())
    }

    /// "0 2 * * * Europe/Berlin": what the slots were computed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// What a task run reports: a one-line summary, or why it failed.
pub type TaskResult = Result<String, String>;

/// A task the scheduler runs.
pub trait ScheduledTask: Send + Sync + 'static {
    /// The row's key and the metrics' `task` label.
    fn name(&self) -> &'static str;
    fn run(&self) -> BoxFuture<'_, TaskResult>;
}

/// How the scheduler behaves; the defaults suit production.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Identifies this process in `locked_by`.
    pub worker_id: String,
    /// A claimed run belongs to its worker this long; renewed every third of it.
    pub lease: Duration,
    /// Longest sleep between looks at the table (the gauges are refreshed as often).
    pub max_idle: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            worker_id: crate::queue::worker::worker_id(),
            lease: Duration::from_secs(120),
            max_idle: Duration::from_secs(30),
        }
    }
}

/// The tasks of one worker process and their schedules.
pub struct Scheduler {
    pool: PgPool,
    options: SchedulerOptions,
    tasks: Vec<(Arc<dyn ScheduledTask>, CronSchedule)>,
}

impl Scheduler {
    pub fn new(pool: PgPool, options: SchedulerOptions) -> Scheduler {
        Scheduler {
            pool,
            options,
            tasks: Vec::new(),
        }
    }

    pub fn add(&mut self, task: Arc<dyn ScheduledTask>, schedule: CronSchedule) {
        self.tasks.push((task, schedule));
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Runs every task's loop until `shutdown`. A run in progress at shutdown is abandoned
    /// (its writes are idempotent) and its slot stays due for the next start.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut loops = tokio::task::JoinSet::new();
        for (task, schedule) in self.tasks {
            tracing::info!(
                task = task.name(),
                schedule = schedule.as_str(),
                "scheduled"
            );
            let runner = TaskLoop {
                pool: self.pool.clone(),
                options: self.options.clone(),
                task,
                schedule,
            };
            loops.spawn(runner.run(shutdown.clone()));
        }
        while loops.join_next().await.is_some() {}
    }
}

struct TaskLoop {
    pool: PgPool,
    options: SchedulerOptions,
    task: Arc<dyn ScheduledTask>,
    schedule: CronSchedule,
}

impl TaskLoop {
    async fn run(self, shutdown: CancellationToken) {
        let name = self.task.name();
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let wait = match self.step(&shutdown).await {
                Ok(wait) => {
                    failures = 0;
                    wait
                }
                Err(e) => {
                    failures += 1;
                    let wait = Duration::from_secs(1 << failures.min(5));
                    tracing::warn!(task = name, error = %e, retry_in_s = wait.as_secs(), "scheduler could not reach the database");
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }

    /// Registers the task, runs it if due, refreshes the gauges; says how long to sleep.
    async fn step(&self, shutdown: &CancellationToken) -> Result<Duration, sqlx::Error> {
        let name = self.task.name();
        let now = store::database_now(&self.pool).await?;
        let first = self
            .schedule
            .next_after(now)
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        store::register(&self.pool, name, self.schedule.as_str(), first).await?;
        if let Some(claim) = store::claim(
            &self.pool,
            name,
            &self.options.worker_id,
            self.options.lease,
        )
        .await?
        {
            self.execute(claim, shutdown).await?;
        }
        let Some(row) = store::task(&self.pool, name).await? else {
            return Ok(self.options.max_idle);
        };
        export_gauges(&row);
        let now = store::database_now(&self.pool).await?;
        // Wake when the slot is due, or when another worker's lease on it ends.
        let mut wake = row.next_run_at;
        if let Some(until) = row.locked_until {
            wake = wake.max(until);
        }
        let wait = (wake - now).max(time::Duration::ZERO);
        let wait = Duration::try_from(wait).unwrap_or_default();
        Ok(wait.clamp(Duration::from_millis(20), self.options.max_idle))
    }

    async fn execute(
        &self,
        claim: store::Claim,
        shutdown: &CancellationToken,
    ) -> Result<(), sqlx::Error> {
        let name = self.task.name();
        let worker = &self.options.worker_id;
        tracing::info!(task = name, slot = %claim.slot, "scheduled task started");
        let run = self.task.run();
        tokio::pin!(run);
        let mut renew = tokio::time::interval(self.options.lease / 3);
        renew.tick().await;
        let result = loop {
            tokio::select! {
                result = &mut run => break Some(result),
                _ = renew.tick() => {
                    if let Err(e) = store::renew(&self.pool, name, worker, self.options.lease).await {
                        tracing::warn!(task = name, error = %e, "could not renew the scheduled task's lease");
                    }
                }
                _ = shutdown.cancelled() => break None,
            }
        };
        let Some(result) = result else {
            tracing::warn!(
                task = name,
                "stopping: the scheduled run is abandoned and runs again at the next start"
            );
            return store::release(&self.pool, name, worker).await;
        };
        let now = store::database_now(&self.pool).await?;
        let next = self
            .schedule
            .next_after(now)
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        let outcome = if result.is_ok() { "success" } else { "failed" };
        match &result {
            Ok(summary) => {
                tracing::info!(task = name, %summary, next = %next, "scheduled task done")
            }
            Err(error) => {
                tracing::error!(task = name, %error, next = %next, "scheduled task failed")
            }
        }
        metrics::counter!(m::SCHEDULED_RUNS_TOTAL, "task" => name, "outcome" => outcome)
            .increment(1);
        store::finish(&self.pool, name, worker, &claim, &result, next).await
    }
}

fn export_gauges(row: &store::TaskRow) {
    let since = row.last_success_at.unwrap_or(row.created_at);
    metrics::gauge!(m::SCHEDULED_LAST_SUCCESS_TIMESTAMP_SECONDS, "task" => row.task.clone())
        .set(since.unix_timestamp_nanos() as f64 / 1e9);
    metrics::gauge!(m::SCHEDULED_CONSECUTIVE_FAILURES, "task" => row.task.clone())
        .set(f64::from(row.consecutive_failures));
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn two_in_the_morning_in_the_configured_zone() {
        let s = CronSchedule::parse("0 2 * * *", "Europe/Berlin").unwrap();
        // 01:30 UTC on 10 January is 02:30 in Berlin (UTC+1): the next 02:00 is the next day.
        let next = s.next_after(datetime!(2026-01-10 01:30 UTC)).unwrap();
        assert_eq!(next, datetime!(2026-01-11 01:00 UTC));
        // In summer Berlin is UTC+2.
        let next = s.next_after(datetime!(2026-07-10 12:00 UTC)).unwrap();
        assert_eq!(next, datetime!(2026-07-11 00:00 UTC));
        let utc = CronSchedule::parse("0 2 * * *", "UTC").unwrap();
        let next = utc.next_after(datetime!(2026-07-10 02:00 UTC)).unwrap();
        assert_eq!(next, datetime!(2026-07-11 02:00 UTC), "strictly after");
    }

    #[test]
    fn seconds_are_an_optional_sixth_field() {
        let s = CronSchedule::parse("* * * * * *", "UTC").unwrap();
        let next = s.next_after(datetime!(2026-07-10 12:00:00.5 UTC)).unwrap();
        assert_eq!(next, datetime!(2026-07-10 12:00:01 UTC));
    }

    #[test]
    fn bad_input_is_named() {
        let e = CronSchedule::parse("0 25 * * *", "UTC").unwrap_err();
        assert!(e.to_string().contains("\"0 25 * * *\""), "{e}");
        let e = CronSchedule::parse("every night", "UTC").unwrap_err();
        assert!(matches!(e, ScheduleError::Cron { .. }), "{e}");
        let e = CronSchedule::parse("0 2 * * *", "Mars/Olympus").unwrap_err();
        assert!(matches!(e, ScheduleError::TimeZone { .. }), "{e}");
    }
}
