//! `stockx-sync demo`: the whole flow in one command, for a newcomer.
//!
//! In the database every other command uses (the embedded cluster's `stockx_sync`, or the one
//! named with `--db`; with `DATABASE_URL` and no `--db`, `stockx_sync_demo` beside
//! the configured one, so a real database never gets demo sales), recreated each run and left
//! in place to look at, it starts the local StockX sandbox and the worker in this process, enters
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

/// The demo's database when `DATABASE_URL` is set and `--db` is not.
pub const DEMO_DB: &str = "stockx_sync_demo";

/// Runs the demo in the database `target` of `database`'s server.
pub async fn run(
    settings: &Settings,
    database: &Database,
    target: &str,
    stop: CancellationToken,
) -> anyhow::Result<bool> {
    let pool = recreate_database(database, target).await?;
    crate::db::migrate(&pool).await?;
    let server = match database.connect_options.get_socket() {
        Some(socket) if database.is_embedded() => {
            format!("the embedded cluster in {}", socket.display())
        }
        Some(socket) => format!("the server at {}", socket.display()),
        None => format!(
            "the server at {}:{}",
            database.connect_options.get_host(),
            database.connect_options.get_port()
        ),
    };
    println!("1. Database {target} on {server}: recreated and migrated.");

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
    let flag = if target == database.connect_options.get_database().unwrap_or_default() {
        String::new()
    } else {
        format!(" --db {target}")
    };
    println!(
        "6. Done. The demo data stays in database {target}: `stockx-sync{flag} status`, `verify` and `worker` see it; `stockx-sync{flag} demo` starts over."
    );
    Ok(finished)
}

/// Drops and creates `target`, unless it holds sales the demo did not enter.
async fn recreate_database(database: &Database, target: &str) -> anyhow::Result<PgPool> {
    let options = &database.connect_options;
    if let Ok(mut conn) = options.clone().database(target).connect().await {
        let demo_orders: Vec<&str> = sandbox::bundled_sales()
            .iter()
            .map(|s| s.order_number)
            .chain([UNKNOWN_SKU_ORDER])
            .collect();
        let foreign = sales::count_orders_other_than(&mut conn, &demo_orders).await?;
        conn.close().await?;
        if foreign > 0 {
            anyhow::bail!(
                "database {target} holds {foreign} sale(s) the demo did not enter, and the demo starts by recreating its database; run it in another one: stockx-sync --db {DEMO_DB} demo"
            );
        }
    }
    // A database cannot be dropped from a connection to itself.
    let admin_db = if options.get_database() == Some(target) {
        "postgres"
    } else {
        options.get_database().unwrap_or("postgres")
    };
    let mut admin = options.clone().database(admin_db).connect().await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {target} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {target}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(PgPoolOptions::new()
        .max_connections(6)
        .connect_with(options.clone().database(target))
        .await?)
}

const UNKNOWN_SKU_ORDER: &str = "399000001-398900002";

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
            "{:<22} {:<11} size {:<5} bought {purchase:>7}  net {net:>7}{note}",
            sale.order_number, sale.sku, sale.size,
        ));
    }
    enter(
        pool,
        UNKNOWN_SKU_ORDER,
        "ZZ9999-999",
        "10",
        "Zalando",
        Decimal::new(8000, 2),
        Decimal::new(12000, 2),
        None,
        "2024-10-01",
    )
    .await?;
    lines.push(format!(
        "{UNKNOWN_SKU_ORDER:<22} {:<11} size {:<5} (a SKU StockX does not know)",
        "ZZ9999-999", "10"
    ));
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
