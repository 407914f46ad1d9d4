//! StockX orders in bulk: a backlog of order jobs reconciled through the seller's order lists
//! (history pages over the sales' dates, then the active orders), with single-order calls only
//! for what the lists did not hold; and the guarantees around it (one order call per sale when
//! the worker's own writes follow, identical rows whichever path found the order, nothing lost
//! to 429s). Calls are counted by the sandbox, never timed.

use std::time::Duration;

use stockx_sync::sales;
use stockx_sync::sandbox::{generated_sales, Faults, GeneratedSale};

use crate::enrich::{start, wait_for_idle_queue};
use crate::helpers::TestDb;

async fn enter(db: &TestDb, sales_: &[GeneratedSale]) {
    let entries: Vec<_> = sales_.iter().map(GeneratedSale::entry).collect();
    sales::enter_sales(&db.pool, &entries).await.unwrap();
}

/// Issue 11's waiting-only dedupe let a second job queue while the first runs: the worker's
/// own writes (the order's StockX columns, the product and variant IDs, the warnings, the
/// entry row's refresh) must not queue one, or the same order is asked twice.
#[tokio::test]
async fn the_workers_own_writes_never_ask_for_an_order_twice() {
    let db = TestDb::new().await;
    let setup = start(&db, 500.0, Faults::default(), 8).await;
    let sold = generated_sales(12, 6);
    setup.sandbox.add_generated(&sold);
    enter(&db, &sold).await;
    wait_for_idle_queue(&db, Duration::from_secs(60)).await;
    let sandbox = setup.stop().await;
    let calls: Vec<(String, usize)> = sold
        .iter()
        .map(|s| {
            (
                s.order_number.clone(),
                sandbox.order_lookups(&s.order_number),
            )
        })
        .collect();
    assert!(
        calls.iter().all(|(_, n)| *n == 1),
        "order calls per sale: {calls:?}"
    );
    let jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM integration.enrichment_jobs WHERE kind = 'order'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(jobs, 12, "one order job per sale");
}
