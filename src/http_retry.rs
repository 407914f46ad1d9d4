//! How long to wait before asking an HTTP API again, shared by the StockX and Notion clients so
//! that both read a server's `Retry-After` the same way and back off on the same curve.
//!
//! `Retry-After` comes as delta-seconds (`120`) or as an HTTP date (`Wed, 21 Oct 2015 07:28:00
//! GMT`); both are honoured, a date in the past means "now", and anything longer than
//! [`MAX_RETRY_AFTER`] is shortened to it so that a wrong header cannot park a worker for days.
//! When the server says nothing, [`Backoff`] doubles a first delay per attempt up to a ceiling
//! and spreads it by ±20 % so that many waiting tasks do not come back in the same instant.

use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

/// The longest wait a `Retry-After` header can ask for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The `Retry-After` of an answer, if it has a readable one; `now` is the clock the HTTP-date
/// form is measured against.
pub fn retry_after(headers: &HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, now)
}

/// One `Retry-After` value: delta-seconds or an HTTP date, at most [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() || seconds < 0.0 {
            return None;
        }
        Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64()))
    } else {
        // IMF-fixdate, the form servers send, is RFC 2822 with `GMT` as the zone.
        let at = OffsetDateTime::parse(value, &Rfc2822).ok()?;
        Duration::try_from(at - now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A server's `Retry-After` plus up to half again (and at least up to 250 ms more): never
/// sooner than asked, and the many requests refused in the same instant do not all come back
/// in the same instant and get refused again.
pub fn spread(wait: Duration) -> Duration {
    let room = wait.mul_f64(0.5).max(Duration::from_millis(250));
    wait + room.mul_f64(rand::rng().random_range(0.0..1.0))
}

/// Exponential backoff: `initial`, then twice that per retry, never above `max`, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait before retry number `retry` (0 for the first retry), jittered by ±20 %.
    pub fn delay(&self, retry: u32) -> Duration {
        self.base(retry).mul_f64(rand::rng().random_range(0.8..1.2))
    }

    /// The wait before retry number `retry` without jitter.
    pub fn base(&self, retry: u32) -> Duration {
        self.initial
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-11-05 12:00:00 UTC);

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_retry_after("2", NOW), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0 ", NOW), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", NOW),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("-1", NOW), None);
        assert_eq!(parse_retry_after("NaN", NOW), None);
        assert_eq!(parse_retry_after("inf", NOW), None);
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_retry_after("Wed, 05 Nov 2025 12:00:30 GMT", NOW),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 05 Nov 2025 11:59:00 GMT", NOW),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon", NOW), None);
        assert_eq!(parse_retry_after("", NOW), None);
    }

    #[test]
    fn long_waits_are_capped() {
        assert_eq!(parse_retry_after("86400", NOW), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("1e300", NOW), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Thu, 06 Nov 2025 12:00:00 GMT", NOW),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn retry_after_in_seconds_or_date() {
        let mut headers = reqwest::header::HeaderMap::new();
        let now = datetime!(2025-11-05 12:00:00 UTC);
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(2)));
        headers.insert(
            "retry-after",
            "Wed, 05 Nov 2025 12:00:30 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn a_spread_wait_is_never_shorter_and_not_all_the_same() {
        let wait = Duration::from_secs(1);
        let waits: Vec<Duration> = (0..50).map(|_| spread(wait)).collect();
        assert!(waits
            .iter()
            .all(|w| *w >= wait && *w < Duration::from_millis(1500)));
        let distinct: std::collections::HashSet<_> = waits.iter().collect();
        assert!(distinct.len() > 40, "{} distinct waits", distinct.len());
        let zero = spread(Duration::ZERO);
        assert!(zero < Duration::from_millis(250));
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let bases: Vec<u64> = (0..6).map(|r| backoff.base(r).as_secs()).collect();
        assert_eq!(bases, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff.base(u32::MAX), Duration::from_secs(10));
        for retry in 0..6 {
            let base = backoff.base(retry);
            let delay = backoff.delay(retry);
            assert!(
                delay >= base.mul_f64(0.8) && delay < base.mul_f64(1.2),
                "retry {retry}: {delay:?} around {base:?}"
            );
        }
    }
}
