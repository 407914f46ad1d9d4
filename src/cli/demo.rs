//! `stockx-sync demo`: the whole flow in one command, for a newcomer.
//!
//! In a `stockx_sync_demo` database beside the configured one (recreated each run, left in
//! place to look at), it starts the local StockX sandbox and the worker in this process, enters
//! sales through `platforms.stockx_sale_entry` as Budibase would (among them one with a wrong
//! profit and one whose SKU StockX does not know), waits until the worker has enriched and
//! checked them, and prints what happened.

use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use sqlx::postgres::PgPoolOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio_util::sync::CancellationToken;

use time::macros::format_description;
use time::Date;

use crate::app::App;
use crate::config::Settings;
use crate::db::Database;
use crate::queue::{self, JobState};
use crate::sales::{self, SaleEntry};
use crate::sandbox::{self, SandboxOptions};
use crate::validate::store::open_warnings;

const DEMO_DB: &str = "stockx_sync_demo";

pub async fn run(
    settings: &Settings,
    database: &Database,
    stop: CancellationToken,
) -> anyhow::Result<bool> {
    let pool = recreate_database(database).await?;
    crate::db::migrate(&pool).await?;
    println!(
        "1. Database {DEMO_DB} created and migrated ({}).",
        database.location
    );

    let sandbox = sandbox::spawn("127.0.0.1:0".parse()?, SandboxOptions::default()).await?;
    println!(
        "2. StockX sandbox running at {} (the real client talks to it).",
        sandbox.base_url()
    );

    let mut demo_settings = settings.clone();
    sandbox.configure(&mut demo_settings, 20.0);
    demo_settings.worker.concurrency = 4;
    demo_settings.worker.poll_only = false;
    if std::net::TcpListener::bind(settings.http.addr).is_err() {
        // The configured port is taken (a worker may be running): any free port will do.
        demo_settings.http.addr.set_port(0);
    }
    let app = App::build(&demo_settings, pool.clone()).await?;
    let addr = app.http_addr();
    let worker_stop = CancellationToken::new();
    let worker_task = tokio::spawn(app.run_until_stopped(worker_stop.clone()));
    println!("3. Worker running; metrics at http://{addr}/metrics");

    println!("4. Entering sales through platforms.stockx_sale_entry, as Budibase does:");
    let entered = enter_sales(&pool).await?;
    for line in &entered {
        println!("   {line}");
    }

    let started = Instant::now();
    let finished = loop {
        let open = queue::count_jobs(&pool, &JobState::OPEN).await?;
        if open == 0 {
            break true;
        }
        if started.elapsed() > Duration::from_secs(60) || stop.is_cancelled() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "5. {} in {:.2} s:",
        if finished {
            "Enriched and checked"
        } else {
            "Stopped waiting"
        },
        started.elapsed().as_secs_f64()
    );
    print_results(&pool).await?;

    worker_stop.cancel();
    worker_task.await??;
    drop(sandbox);
    pool.close().await;
    println!(
        "6. Done. The demo data stays in database {DEMO_DB}; run `stockx-sync demo` again to start over."
    );
    Ok(finished)
}

async fn recreate_database(database: &Database) -> anyhow::Result<PgPool> {
    let mut admin = database.connect_options.clone().connect().await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {DEMO_DB} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {DEMO_DB}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(PgPoolOptions::new()
        .max_connections(6)
        .connect_with(database.connect_options.clone().database(DEMO_DB))
        .await?)
}

async fn enter_sales(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let suppliers = [
        "Nike Store",
        "  nike store ",
        "Zalando",
        "Solebox",
        "Foot Locker",
    ];
    for (i, sale) in sandbox::bundled_sales().iter().take(5).enumerate() {
        let purchase = (sale.sale_price * Decimal::new(62, 2)).round_dp(2);
        // Typed by hand: the third with a wrong profit, the fourth with net proceeds that are
        // not what StockX paid out.
        let profit = (i == 2).then(|| Decimal::new(9999, 2));
        let net = if i == 3 {
            sale.payout - Decimal::TEN
        } else {
            sale.payout
        };
        enter(
            pool,
            sale.order_number,
            sale.sku,
            sale.size,
            suppliers[i],
            purchase,
            net,
            profit,
            sale.sold_at,
        )
        .await?;
        let note = match i {
            2 => "  (profit typed as 99.99)",
            3 => "  (net proceeds typed 10.00 below StockX's payout)",
            _ => "",
        };
        lines.push(format!(
            "{}  {} size {}  bought {purchase}  net {net}{note}",
            sale.order_number, sale.sku, sale.size,
        ));
    }
    enter(
        pool,
        "399000001-398900002",
        "ZZ9999-999",
        "10",
        "Zalando",
        Decimal::new(8000, 2),
        Decimal::new(12000, 2),
        None,
        "2024-10-01",
    )
    .await?;
    lines.push("399000001-398900002  ZZ9999-999 size 10  (a SKU StockX does not know)".into());
    Ok(lines)
}

/// Enters a sale bought 20 days before it sold, whose sale price is its net proceeds.
#[allow(clippy::too_many_arguments)]
async fn enter(
    pool: &PgPool,
    order_number: &str,
    sku: &str,
    size: &str,
    supplier: &str,
    purchase_price: Decimal,
    net: Decimal,
    profit: Option<Decimal>,
    sold_at: &str,
) -> anyhow::Result<()> {
    let sold_at = Date::parse(sold_at, format_description!("[year]-[month]-[day]"))?;
    sales::enter_sale(
        pool,
        &SaleEntry {
            order_number,
            sku,
            size,
            supplier,
            purchase_price,
            purchase_date: Some(sold_at - time::Duration::days(20)),
            sale_price: Some(net),
            net_proceeds: net,
            profit,
            sold_at,
        },
    )
    .await?;
    Ok(())
}

async fn print_results(pool: &PgPool) -> anyhow::Result<()> {
    for sale in sales::sale_summaries(pool).await? {
        println!(
            "   {:<22} {:<11} {:<9} {:<16} payout {:<7} {}",
            sale.order_number,
            sale.sku,
            sale.enrichment_status,
            sale.stockx_status.unwrap_or_else(|| "-".into()),
            sale.stockx_total_payout
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            sale.product_name
                .unwrap_or_else(|| "(not in the StockX catalog)".into())
        );
    }
    let suppliers = sales::supplier_count(pool).await?;
    println!("   {suppliers} suppliers (\"Nike Store\" and \"  nike store \" are one)");
    println!("   validation warnings:");
    for warning in open_warnings(pool).await? {
        println!(
            "   - {} [{}]: {}",
            warning.rule,
            warning.stockx_order_number.unwrap_or_default(),
            warning.message
        );
    }
    Ok(())
}
