//! Orders in bulk: while many order jobs wait (a Notion backfill, a catch-up after an outage),
//! an order job looks its order up in the seller's order lists instead of asking for it alone.
//! StockX lists 100 orders per call, so 10,000 sales cost about 100 history pages instead of
//! 10,000 single-order calls.
//!
//! How it goes, per order job (each job still runs, completes and fails on its own; the queue's
//! claims and leases are untouched):
//!
//! 1. **Backlog?** At least `stockx.bulk_orders_threshold` order jobs waiting or running
//!    (a backlog is counted at most once a second). Below it, a job reads what the lists
//!    already fetched, and fetches more of a list only while the pages left are no more than
//!    the open order jobs (the tail of a backlog); a single new sale costs its one order call,
//!    as before.
//! 2. **Window.** The history is read in date windows (the order's creation day, which is the
//!    sale's day give or take the time zone, so windows are padded by a day). The first job
//!    that finds no window for its date plans them from the sale dates of every waiting order
//!    job: days with sales close together (gaps of at most [`MAX_GAP_DAYS`]) form one window,
//!    so a dense history is one window paged once, and sparse sales do not page the months
//!    between them. Windows already planned are never planned again while they live.
//! 3. **Paging.** The first job that needs a window and finds nobody paging it fetches it to
//!    the end; every page serves the jobs whose orders it holds. A job that finds another one
//!    paging is deferred (back in the queue when the pages left should be there; no attempt
//!    spent), so that it does not hold a worker slot meanwhile. A failed page call fails only
//!    the pager's job (its own StockX error: postponed on 429, retried later); the pages
//!    already fetched stay, and the next job that comes goes on from the failed page. So no
//!    page is fetched twice, and nothing is lost to a 429.
//! 4. **Misses.** An order that the whole window does not hold is looked up among the active
//!    orders (listed the same way, once), and only then asked for by its number.
//!
//! The fetched orders are kept by order number for [`WINDOW_TTL`] after a window's last page,
//! then dropped: the lists are a batch's shared answer, not a long-lived cache. The order
//! found in a list is the same `DetailedOrder` the single call gives (ListOrder is it without
//! the shipment), and it is written by the same code.
//!
//! Several workers: the windows are shared by the jobs of one process. Two worker processes
//! each page their own windows (see ARCHITECTURE.md for why that is accepted).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use time::Date;

use crate::queue::{self, JobKind};
use crate::sales::{self, OrderRow};
use crate::stockx::{DetailedOrder, OrderPage, StockxClient, StockxError};

/// How long a window's orders are used after its last page was fetched.
pub const WINDOW_TTL: Duration = Duration::from_secs(600);
/// Days without sales that still do not split a window: paging across a short gap costs less
/// than the partly filled last page of one more window.
pub const MAX_GAP_DAYS: i64 = 2;
/// The longest a job is deferred while another one reads a list.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// How long a count of the waiting order jobs is trusted.
const BACKLOG_RECOUNT: Duration = Duration::from_secs(1);

/// The order lists shared by one enricher's jobs.
pub struct BulkOrders {
    /// Order jobs waiting or running from which jobs use the lists; 0: never.
    threshold: usize,
    /// The client's rate, to tell a deferred job when the pages should be there.
    rate: f64,
    windows: Mutex<Vec<Arc<Window>>>,
    active: Mutex<Option<Arc<Window>>>,
    /// One job plans windows at a time (the others then find them).
    planning: tokio::sync::Mutex<()>,
    backlog: Mutex<Option<(Instant, i64)>>,
}

/// Which list a window pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `/selling/orders/history` between two days, inclusive.
    History { from: Date, to: Date },
    /// `/selling/orders/active`.
    Active,
}

/// One list, paged on demand.
struct Window {
    source: Source,
    /// Held by the job fetching the pages.
    pager: tokio::sync::Mutex<()>,
    /// Pages fetched so far (the next one is this plus one).
    fetched: AtomicU32,
    orders: Mutex<HashMap<String, Arc<DetailedOrder>>>,
    /// Pages in all, from the first page's `count`.
    pages: Mutex<Option<u64>>,
    complete: AtomicBool,
    /// When its last page was fetched (or it was planned).
    touched: Mutex<Instant>,
}

impl Window {
    fn new(source: Source) -> Arc<Window> {
        Arc::new(Window {
            source,
            pager: tokio::sync::Mutex::new(()),
            fetched: AtomicU32::new(0),
            orders: Mutex::new(HashMap::new()),
            pages: Mutex::new(None),
            complete: AtomicBool::new(false),
            touched: Mutex::new(Instant::now()),
        })
    }

    fn get(&self, order_number: &str) -> Option<Arc<DetailedOrder>> {
        self.orders.lock().expect("lock").get(order_number).cloned()
    }

    fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    fn is_live(&self, now: Instant) -> bool {
        now.saturating_duration_since(*self.touched.lock().expect("lock")) < WINDOW_TTL
    }

    fn covers(&self, date: Date) -> bool {
        matches!(self.source, Source::History { from, to } if from <= date && date <= to)
    }

    /// Pages not fetched yet, when the first page said how many orders there are.
    fn pages_left(&self) -> Option<u64> {
        let pages = (*self.pages.lock().expect("lock"))?;
        Some(pages.saturating_sub(u64::from(self.fetched.load(Ordering::Acquire))))
    }

    fn add(&self, page: OrderPage) {
        let last = !page.has_next_page.unwrap_or(false) || page.orders.is_empty();
        if let (Some(count), Some(size)) = (page.count, page.page_size.filter(|s| *s > 0)) {
            *self.pages.lock().expect("lock") = Some(count.div_ceil(size));
        }
        let mut orders = self.orders.lock().expect("lock");
        for listed in page.orders {
            orders.insert(listed.order.order_number.clone(), Arc::new(listed.order));
        }
        drop(orders);
        *self.touched.lock().expect("lock") = Instant::now();
        if last {
            self.complete.store(true, Ordering::Release);
        }
    }

    /// The order from this list. The job that finds nobody paging becomes the pager and
    /// fetches the list to its end (every page serves the jobs whose orders it holds); a job
    /// that finds another one paging is told to come back when the pages left should be
    /// fetched, so that it does not hold a worker slot meanwhile. Without a `backlog`, pages
    /// are fetched only while the pages left are no more than the `open` order jobs (each
    /// would otherwise cost a call of its own); else only what is fetched is read.
    async fn find(
        &self,
        client: &StockxClient,
        order_number: &str,
        backlog: bool,
        open: i64,
        rate: f64,
    ) -> Result<Lookup, StockxError> {
        if let Some(order) = self.get(order_number) {
            return Ok(Lookup::Found(order));
        }
        if self.is_complete() {
            return Ok(Lookup::Absent);
        }
        let worth_it = backlog
            || self
                .pages_left()
                .is_some_and(|left| left <= open.max(0) as u64);
        if !worth_it {
            return Ok(Lookup::Absent);
        }
        let Ok(_pager) = self.pager.try_lock() else {
            return Ok(Lookup::Wait(self.time_left(rate)));
        };
        loop {
            // Checked under the pager's lock: the previous pager may have just finished.
            if self.is_complete() {
                break;
            }
            let next = self.fetched.load(Ordering::Acquire) + 1;
            let page = match self.source {
                Source::History { from, to } => client.orders_history(from, to, next, None).await?,
                Source::Active => client.orders_active(next).await?,
            };
            tracing::debug!(source = ?self.source, page = next, orders = page.orders.len(),
                            "order list page");
            self.add(page);
            self.fetched.store(next, Ordering::Release);
        }
        Ok(match self.get(order_number) {
            Some(order) => Lookup::Found(order),
            None => Lookup::Absent,
        })
    }

    /// When the pager should be done: the pages left at `rate`, plus a second.
    fn time_left(&self, rate: f64) -> Duration {
        let pages = self.pages_left().unwrap_or(1) as f64;
        let seconds = pages / rate.max(0.01) + 1.0;
        Duration::from_secs_f64(seconds.min(MAX_WAIT.as_secs_f64()))
    }
}

/// What a list says of an order.
enum Lookup {
    Found(Arc<DetailedOrder>),
    Absent,
    /// Another job is reading the list: come back after this.
    Wait(Duration),
}

/// What the lists say of an order, for its job.
#[derive(Debug)]
pub enum BulkAnswer {
    Found(Box<DetailedOrder>),
    /// Not in the lists (or no backlog): ask for it by its number.
    AskAlone,
    /// Another job is reading the list that should hold it: run again after this, without
    /// spending an attempt.
    Wait(Duration),
}

impl BulkOrders {
    pub fn new(threshold: usize, requests_per_second: f64) -> BulkOrders {
        BulkOrders {
            threshold,
            rate: requests_per_second,
            windows: Mutex::new(Vec::new()),
            active: Mutex::new(None),
            planning: tokio::sync::Mutex::new(()),
            backlog: Mutex::new(None),
        }
    }

    /// What the lists say of the order: found, ask for it alone (no backlog, or the lists do
    /// not hold it), or wait for the job reading its list.
    pub async fn find(
        &self,
        client: &StockxClient,
        pool: &PgPool,
        row: &OrderRow,
    ) -> Result<BulkAnswer, StockxError> {
        if self.threshold == 0 {
            return Ok(BulkAnswer::AskAlone);
        }
        let date = row.facts.sold_at;
        let open = self.open_order_jobs(pool).await?;
        let backlog = open >= self.threshold as i64;
        let window = match self.covering(date) {
            Some(window) => Some(window),
            None if backlog => Some(self.plan(pool, date).await?),
            None => None,
        };
        let lists = window.into_iter().chain(self.active(backlog));
        for list in lists {
            match list
                .find(client, &row.order_number, backlog, open, self.rate)
                .await?
            {
                Lookup::Found(order) => return Ok(BulkAnswer::Found(Box::new((*order).clone()))),
                Lookup::Wait(delay) => return Ok(BulkAnswer::Wait(delay)),
                Lookup::Absent => {}
            }
        }
        Ok(BulkAnswer::AskAlone)
    }

    /// Order jobs waiting or running (a backlog is counted at most once a second).
    async fn open_order_jobs(&self, pool: &PgPool) -> Result<i64, StockxError> {
        let now = Instant::now();
        let cached = *self.backlog.lock().expect("lock");
        let waiting = match cached {
            Some((at, n)) if now.saturating_duration_since(at) < BACKLOG_RECOUNT => n,
            _ => {
                let n = queue::count_open_jobs_of_kind(pool, JobKind::Order)
                    .await
                    .map_err(internal)?;
                // Only a backlog is worth not counting again; a few jobs are counted each
                // time, so that a new sale after a backlog is not taken for part of it.
                *self.backlog.lock().expect("lock") =
                    (n >= self.threshold as i64).then_some((now, n));
                n
            }
        };
        Ok(waiting)
    }

    /// A live window holding `date`; expired windows are dropped on the way.
    fn covering(&self, date: Date) -> Option<Arc<Window>> {
        let now = Instant::now();
        let mut windows = self.windows.lock().expect("lock");
        windows.retain(|w| w.is_live(now));
        windows.iter().find(|w| w.covers(date)).cloned()
    }

    /// The active orders' list: a live one, or (with a backlog) a new one.
    fn active(&self, backlog: bool) -> Option<Arc<Window>> {
        let mut active = self.active.lock().expect("lock");
        let now = Instant::now();
        if active.as_ref().is_some_and(|w| !w.is_live(now)) {
            *active = None;
        }
        if active.is_none() && backlog {
            *active = Some(Window::new(Source::Active));
        }
        active.clone()
    }

    /// Plans windows over the sale dates of the waiting order jobs that no live window holds
    /// (`date` among them), and returns the one holding `date`.
    async fn plan(&self, pool: &PgPool, date: Date) -> Result<Arc<Window>, StockxError> {
        let _planning = self.planning.lock().await;
        if let Some(window) = self.covering(date) {
            return Ok(window);
        }
        let ids = queue::open_job_entities(pool, JobKind::Order)
            .await
            .map_err(internal)?;
        let mut dates = sales::order_sale_dates(pool, &ids)
            .await
            .map_err(internal)?;
        dates.push(date);
        let now = Instant::now();
        let mut windows = self.windows.lock().expect("lock");
        windows.retain(|w| w.is_live(now));
        let planned: Vec<(Date, Date)> = windows
            .iter()
            .filter_map(|w| match w.source {
                Source::History { from, to } => Some((from, to)),
                Source::Active => None,
            })
            .collect();
        dates.retain(|d| !planned.iter().any(|(from, to)| from <= d && d <= to));
        let ranges = group_dates(&dates, &planned);
        tracing::info!(
            windows = ranges.len(),
            dates = dates.len(),
            "order backlog: reading the order history in windows"
        );
        for (from, to) in ranges {
            windows.push(Window::new(Source::History { from, to }));
        }
        windows
            .iter()
            .find(|w| w.covers(date))
            .cloned()
            .ok_or_else(|| StockxError::Internal(format!("no order window holds {date}")))
    }
}

/// Windows over `dates` (any order, repeats allowed): each date padded by a day on both sides
/// (an order's creation day is UTC, the sale's day may be local), dates at most
/// [`MAX_GAP_DAYS`] apart joined, and the ends kept out of the windows already `planned`.
pub fn group_dates(dates: &[Date], planned: &[(Date, Date)]) -> Vec<(Date, Date)> {
    let mut sorted: Vec<Date> = dates.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let pad = time::Duration::days(1);
    let gap = time::Duration::days(MAX_GAP_DAYS);
    let mut ranges: Vec<(Date, Date)> = Vec::new();
    for date in sorted {
        let (from, to) = (date.saturating_sub(pad), date.saturating_add(pad));
        match ranges.last_mut() {
            Some((_, end)) if from <= end.saturating_add(gap) => *end = (*end).max(to),
            _ => ranges.push((from, to)),
        }
    }
    ranges
        .into_iter()
        .filter_map(|(mut from, mut to)| {
            for (p_from, p_to) in planned {
                if *p_from <= from && from <= *p_to {
                    from = p_to.saturating_add(time::Duration::days(1));
                }
                if *p_from <= to && to <= *p_to {
                    to = p_from.saturating_sub(time::Duration::days(1));
                }
            }
            (from <= to).then_some((from, to))
        })
        .collect()
}

fn internal(e: sqlx::Error) -> StockxError {
    StockxError::Internal(format!("database: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn close_dates_form_one_padded_window_and_gaps_split() {
        let dates = [
            date!(2024 - 03 - 10),
            date!(2024 - 03 - 01),
            date!(2024 - 03 - 03),
            date!(2024 - 03 - 03),
            date!(2024 - 06 - 01),
        ];
        assert_eq!(
            group_dates(&dates, &[]),
            vec![
                (date!(2024 - 02 - 29), date!(2024 - 03 - 04)),
                (date!(2024 - 03 - 09), date!(2024 - 03 - 11)),
                (date!(2024 - 05 - 31), date!(2024 - 06 - 02)),
            ]
        );
        // Padded ends two days apart still join.
        let near = [date!(2024 - 03 - 01), date!(2024 - 03 - 05)];
        assert_eq!(
            group_dates(&near, &[]),
            vec![(date!(2024 - 02 - 29), date!(2024 - 03 - 06))]
        );
        assert!(group_dates(&[], &[]).is_empty());
    }

    #[test]
    fn new_windows_keep_out_of_planned_ones() {
        let planned = [(date!(2024 - 03 - 01), date!(2024 - 03 - 31))];
        // 2024-04-01 padded starts inside the planned window: it starts after it instead.
        assert_eq!(
            group_dates(&[date!(2024 - 04 - 01)], &planned),
            vec![(date!(2024 - 04 - 01), date!(2024 - 04 - 02))]
        );
        assert_eq!(
            group_dates(&[date!(2024 - 02 - 29)], &planned),
            vec![(date!(2024 - 02 - 28), date!(2024 - 02 - 29))]
        );
    }
}
