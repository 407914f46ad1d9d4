//! `stockx-sync report [--json] [--since DATE]`: the daily summary (`crate::report`).

use sqlx::PgPool;
use time::{Date, OffsetDateTime};

use crate::report::{self, Report};

/// `--since`: a calendar date, read as midnight UTC.
pub fn parse_date(text: &str) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text.trim(), &format)
        .map_err(|_| format!("{text:?} is not a date (use YYYY-MM-DD, e.g. 2026-11-01)"))
}

pub async fn run(pool: &PgPool, since: Option<Date>) -> Result<Report, sqlx::Error> {
    let since = match since {
        Some(date) => date.midnight().assume_utc(),
        None => {
            let now: OffsetDateTime = sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
            now - time::Duration::days(1)
        }
    };
    report::collect(pool, since).await
}
