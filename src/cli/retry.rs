//! `stockx-sync retry [--all-failed | JOB_ID...]`: failed jobs back in the queue.

use std::process::ExitCode;

use sqlx::PgPool;

use super::CliError;
use crate::db::DbError;
use crate::queue;

pub async fn run(pool: &PgPool, all_failed: bool, job_ids: &[i64]) -> Result<ExitCode, CliError> {
    let ids = (!all_failed).then_some(job_ids);
    let n = queue::retry_failed_jobs(pool, ids)
        .await
        .map_err(DbError::from)?;
    println!("{n} failed job(s) back in the queue");
    if !all_failed && (n as usize) < job_ids.len() {
        println!(
            "({} of the given ids were not failed jobs, or their row has an open job already)",
            job_ids.len() - n as usize
        );
    }
    Ok(ExitCode::SUCCESS)
}
