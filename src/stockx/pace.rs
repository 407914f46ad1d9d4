//! The pace of requests to StockX, shared by every task of the process: never faster than
//! `STOCKX_REQUESTS_PER_SECOND`, and slower while StockX says that is too fast.
//!
//! StockX enforces its own limit, which may be lower than the setting (or lowered during an
//! incident). Waiting out each 429 at the configured rate keeps hitting it: with StockX allowing
//! 2 requests/s and the setting at 10, about two thirds of all requests were refused. So the
//! pace adapts like TCP's congestion control (AIMD):
//!
//! - a 429 pauses every task until its `Retry-After` and cuts the rate: to half, and to at most
//!   90 % of what StockX accepted during the last second (a good estimate of its real limit);
//!   429s answering requests sent before the last cut belong to the same event and do not cut
//!   again;
//! - each accepted request raises the rate by a small step: 1/80 of the rate StockX last allowed
//!   (about 40 accepted requests to climb from half back to it), growing with the rate once it is
//!   past that point, never above the setting;
//! - the rate never drops below a tenth of the setting.
//!
//! Requests are spaced evenly (no bursts): each one reserves the next slot, `1/rate` after the
//! previous send, counted from when that send really happened, so a task that wakes late never
//! lets the next one catch up.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Accepted requests before the rate is back where StockX last allowed it.
const STEPS_TO_RECOVER: f64 = 40.0;
/// The lowest rate, as a fraction of the setting.
const FLOOR_FRACTION: f64 = 0.1;
/// What StockX accepted over this window before a 429 estimates its limit.
const ESTIMATE_WINDOW: Duration = Duration::from_secs(1);

/// The shared pace (see the module documentation).
#[derive(Debug)]
pub(super) struct Pace {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    ceiling: f64,
    floor: f64,
    rate: f64,
    /// The rate StockX allowed when it last refused (the level the rate climbs back to at the
    /// slow step); the ceiling until the first 429.
    allowed: f64,
    next_slot: Option<Instant>,
    paused_until: Option<Instant>,
    last_cut: Option<Instant>,
    /// Send times of the accepted requests of the last [`ESTIMATE_WINDOW`].
    accepted: VecDeque<Instant>,
}

impl Pace {
    pub(super) fn new(requests_per_second: f64) -> Pace {
        let ceiling = if requests_per_second.is_finite() && requests_per_second > 0.0 {
            requests_per_second
        } else {
            1.0
        };
        Pace {
            state: Mutex::new(State {
                ceiling,
                floor: ceiling * FLOOR_FRACTION,
                rate: ceiling,
                allowed: ceiling,
                next_slot: None,
                paused_until: None,
                last_cut: None,
                accepted: VecDeque::new(),
            }),
        }
    }

    /// Takes the send slot at `now`, or says how long to wait before asking again (the slot
    /// may be gone to another task by then, or the rate may have changed).
    pub(super) fn try_reserve(&self, now: Instant) -> Result<(), Duration> {
        let mut s = self.state.lock().expect("lock");
        let earliest = [s.next_slot, s.paused_until].into_iter().flatten().max();
        if let Some(at) = earliest.filter(|at| *at > now) {
            return Err(at - now);
        }
        s.next_slot = Some(now + Duration::from_secs_f64(1.0 / s.rate));
        Ok(())
    }

    /// Waits for this task's turn.
    pub(super) async fn wait_turn(&self) {
        while let Err(wait) = self.try_reserve(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }

    /// StockX accepted a request sent at `sent_at`.
    pub(super) fn accepted(&self, sent_at: Instant, now: Instant) {
        let mut s = self.state.lock().expect("lock");
        let step = s.allowed.max(s.rate) / (2.0 * STEPS_TO_RECOVER);
        s.rate = (s.rate + step).min(s.ceiling);
        s.accepted.push_back(sent_at);
        while s
            .accepted
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > ESTIMATE_WINDOW)
        {
            s.accepted.pop_front();
        }
    }

    /// StockX answered 429 to a request sent at `sent_at` and asked for `retry_after`.
    pub(super) fn throttled(&self, sent_at: Instant, retry_after: Duration, now: Instant) {
        let mut s = self.state.lock().expect("lock");
        let until = now + retry_after;
        s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
        let same_event = s.last_cut.is_some_and(|cut| sent_at < cut);
        if !same_event {
            s.accepted
                .retain(|t| now.saturating_duration_since(*t) <= ESTIMATE_WINDOW);
            let mut rate = s.rate / 2.0;
            if !s.accepted.is_empty() {
                rate = rate.min(0.9 * s.accepted.len() as f64 / ESTIMATE_WINDOW.as_secs_f64());
            }
            s.rate = rate.max(s.floor);
            s.allowed = (2.0 * s.rate).min(s.ceiling);
            s.last_cut = Some(now);
            s.accepted.clear();
        }
    }

    /// Requests per second now.
    pub(super) fn rate(&self) -> f64 {
        self.state.lock().expect("lock").rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a pace against a server that accepts `limit` requests per sliding second, as
    /// fast as the pace lets it; returns (requests, refused).
    fn simulate(setting: f64, limit: usize, requests: usize) -> (usize, usize) {
        let pace = Pace::new(setting);
        let start = Instant::now();
        let mut now = start;
        let mut accepted_at: VecDeque<Instant> = VecDeque::new();
        let (mut sent, mut refused) = (0, 0);
        while sent - refused < requests {
            match pace.try_reserve(now) {
                Err(wait) => now += wait,
                Ok(()) => {
                    sent += 1;
                    while accepted_at
                        .front()
                        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
                    {
                        accepted_at.pop_front();
                    }
                    if accepted_at.len() >= limit {
                        refused += 1;
                        let free = *accepted_at.front().unwrap() + Duration::from_secs(1);
                        let retry_after =
                            Duration::from_secs((free - now).as_secs_f64().ceil() as u64);
                        pace.throttled(now, retry_after, now);
                    } else {
                        accepted_at.push_back(now);
                        pace.accepted(now, now);
                    }
                }
            }
        }
        (sent, refused)
    }

    #[test]
    fn a_lower_server_limit_is_found_and_few_requests_are_refused() {
        let (sent, refused) = simulate(10.0, 2, 200);
        assert!(
            refused * 100 <= sent * 5,
            "{refused} of {sent} requests refused"
        );
        assert!(refused >= 2, "the limit is probed, not guessed: {refused}");
    }

    #[test]
    fn without_429s_the_setting_is_kept_and_spacing_is_even() {
        let pace = Pace::new(4.0);
        let t0 = Instant::now();
        assert!(pace.try_reserve(t0).is_ok());
        assert_eq!(pace.try_reserve(t0), Err(Duration::from_millis(250)));
        let late = t0 + Duration::from_millis(400);
        assert!(pace.try_reserve(late).is_ok());
        // Counted from the late send: no catching up.
        assert_eq!(
            pace.try_reserve(late + Duration::from_millis(100)),
            Err(Duration::from_millis(150))
        );
        pace.accepted(late, late);
        assert_eq!(pace.rate(), 4.0, "never above the setting");
    }

    #[test]
    fn a_429_pauses_everyone_and_cuts_once_per_event() {
        let pace = Pace::new(8.0);
        let t0 = Instant::now();
        let cut = t0 + Duration::from_millis(5);
        pace.throttled(t0, Duration::from_secs(2), cut);
        assert_eq!(pace.rate(), 4.0);
        let during = cut + Duration::from_secs(1);
        assert_eq!(pace.try_reserve(during), Err(Duration::from_secs(1)));
        // A request sent before the cut, answered after it: the same event.
        let sent = t0 + Duration::from_millis(1);
        pace.throttled(sent, Duration::from_secs(1), t0 + Duration::from_millis(10));
        assert_eq!(pace.rate(), 4.0);
        // Sent after the cut: a new one, down to the floor at most.
        for i in 1..10 {
            let t = t0 + Duration::from_secs(i);
            pace.throttled(t, Duration::ZERO, t);
        }
        assert_eq!(pace.rate(), 0.8);
    }

    #[test]
    fn accepted_requests_raise_the_rate_slowly_back_to_the_setting() {
        let pace = Pace::new(10.0);
        let t0 = Instant::now();
        pace.throttled(t0, Duration::ZERO, t0);
        assert_eq!(pace.rate(), 5.0);
        for i in 0..39 {
            let t = t0 + Duration::from_millis(10 * i);
            pace.accepted(t, t);
        }
        assert!(pace.rate() < 10.0, "{}", pace.rate());
        for i in 0..200 {
            let t = t0 + Duration::from_millis(10 * i);
            pace.accepted(t, t);
        }
        assert_eq!(pace.rate(), 10.0);
    }
}
