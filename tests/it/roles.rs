//! Each role can do its job and nothing else, checked by connecting as real LOGIN roles:
//! `stockx_sync_entry` (Budibase), `stockx_sync_reader` (Metabase, Grafana) and
//! `stockx_sync_worker` (the worker and the operator's commands, with no DDL rights).

use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use stockx_sync::sandbox::{self, SandboxOptions};

use crate::helpers::{command, LoginRole, Sale, TestDb};

async fn try_sql(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(&mut *conn).await.map(|_| ())
}

fn sqlstate(result: Result<(), sqlx::Error>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(e) => e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.to_string())
            .unwrap_or_else(|| format!("not a database error: {e}")),
    }
}

/// Runs `sql` as `role` inside a transaction that is rolled back: what it may do, without
/// changing what the next check sees.
async fn allowed(role: &LoginRole, sql: &str) -> String {
    let mut conn = role.connect().await;
    try_sql(&mut conn, "BEGIN").await.unwrap();
    let result = try_sql(&mut conn, sql).await;
    let _ = try_sql(&mut conn, "ROLLBACK").await;
    conn.close().await.ok();
    sqlstate(result)
}

const ENTRY_INSERT: &str = "INSERT INTO platforms.stockx_sale_entry
    (stockx_order_number, sku, size, supplier, purchase_price, net_proceeds, sold_at)
    VALUES ('R-2', 'HQ4276', '42', 'Zalando', 90, 120, '2024-05-01')";

/// The attack from the issue: a temporary view with the entry's columns and an INSTEAD OF
/// trigger running the SECURITY DEFINER entry function, which would write as the owner.
const TEMP_VIEW_ATTACK: &str = "
    CREATE TEMP VIEW entry_copy AS SELECT * FROM platforms.stockx_sale_entry WHERE false;
    CREATE TRIGGER entry_copy_insert INSTEAD OF INSERT ON entry_copy
        FOR EACH ROW EXECUTE FUNCTION platforms.stockx_sale_entry_insert();
    INSERT INTO entry_copy (stockx_order_number, sku, size, supplier, purchase_price, net_proceeds, sold_at)
    VALUES ('ATTACK-1', 'X-1', '1', 'Evil', 1, 1, '2024-01-01');";

/// The same with the queue trigger: arbitrary jobs from a temporary table.
const TEMP_TABLE_QUEUE_ATTACK: &str = "
    CREATE TEMP TABLE fake_orders (id uuid);
    CREATE TRIGGER fake_enqueue AFTER INSERT ON fake_orders
        FOR EACH ROW EXECUTE FUNCTION integration.enqueue_enrichment('order');
    INSERT INTO fake_orders VALUES (gen_random_uuid());";

async fn attacks_fail(db: &TestDb, role: &LoginRole) {
    for attack in [TEMP_VIEW_ATTACK, TEMP_TABLE_QUEUE_ATTACK] {
        let mut conn = role.connect().await;
        let result = try_sql(&mut conn, attack).await;
        conn.close().await.ok();
        assert_eq!(sqlstate(result), "42501", "{}: {attack}", role.name);
    }
    let orders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM platforms.stockx_orders WHERE stockx_order_number = 'ATTACK-1'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(orders, 0);
    let jobs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM integration.enrichment_jobs j
         WHERE NOT EXISTS (SELECT 1 FROM platforms.stockx_orders o WHERE o.id = j.entity_id)
           AND NOT EXISTS (SELECT 1 FROM products.inventory i WHERE i.id = j.entity_id)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(jobs, 0, "no job for a row that does not exist");
}

#[tokio::test]
async fn the_entry_role_uses_its_table_and_lookups_and_nothing_else() {
    let db = TestDb::new().await;
    Sale::new("R-1").insert(&db.pool).await.unwrap();
    let entry = db.login_role("budibase", &["stockx_sync_entry"]).await;

    // Its job.
    for sql in [
        "SELECT * FROM platforms.stockx_sale_entry",
        ENTRY_INSERT,
        "UPDATE platforms.stockx_sale_entry SET notes = 'checked' WHERE stockx_order_number = 'R-1'",
        "DELETE FROM platforms.stockx_sale_entry WHERE stockx_order_number = 'R-1'",
        "SELECT * FROM products.categories",
        "SELECT * FROM products.suppliers",
        "SELECT * FROM products.sizes",
        "SELECT * FROM products.products",
    ] {
        assert_eq!(allowed(&entry, sql).await, "ok", "{sql}");
    }
    // Nothing else.
    for sql in [
        "SELECT * FROM platforms.stockx_orders",
        "SELECT * FROM platforms.stockx_listings",
        "SELECT * FROM products.inventory",
        "INSERT INTO products.suppliers (name) VALUES ('Sneaky')",
        "UPDATE products.products SET name = 'x'",
        "DELETE FROM products.sizes",
        "UPDATE platforms.stockx_orders SET net_proceeds = 1",
        "SELECT * FROM integration.enrichment_jobs",
        "SELECT * FROM integration.sale_entry_audit",
        "SELECT * FROM integration.sale_entry_refresh_key",
        "SELECT * FROM reporting.sales",
        "SELECT integration.sale_entry_sync(ARRAY[gen_random_uuid()])",
        "SELECT * FROM integration.import_sales('[]', false, 'manual', 'x', gen_random_uuid())",
        "CREATE TABLE platforms.mine (id int)",
        "TRUNCATE platforms.stockx_sale_entry",
    ] {
        assert_eq!(allowed(&entry, sql).await, "42501", "{sql}");
    }
    attacks_fail(&db, &entry).await;
}

#[tokio::test]
async fn the_reader_role_reads_everything_and_writes_nothing() {
    let db = TestDb::new().await;
    Sale::new("R-1").insert(&db.pool).await.unwrap();
    let reader = db.login_role("metabase", &["stockx_sync_reader"]).await;

    let relations: Vec<String> = sqlx::query_scalar(
        "SELECT c.oid::regclass::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('products', 'platforms', 'integration', 'reporting')
           AND c.relkind IN ('r', 'v')
           AND c.oid <> 'integration.sale_entry_refresh_key'::regclass
         ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(relations.len() > 15, "{relations:?}");
    for relation in &relations {
        assert_eq!(
            allowed(&reader, &format!("SELECT * FROM {relation} LIMIT 1")).await,
            "ok",
            "{relation}"
        );
    }
    for sql in [
        ENTRY_INSERT,
        "UPDATE platforms.stockx_sale_entry SET notes = 'x'",
        "DELETE FROM platforms.stockx_sale_entry",
        "UPDATE products.products SET name = 'x'",
        "INSERT INTO integration.enrichment_jobs (kind, entity_id) VALUES ('order', gen_random_uuid())",
        "DELETE FROM integration.validation_warnings",
        "SELECT * FROM integration.sale_entry_refresh_key",
        "SELECT integration.sale_entry_sync(ARRAY[gen_random_uuid()])",
        "SELECT * FROM integration.import_sales('[]', false, 'manual', 'x', gen_random_uuid())",
        "CREATE TABLE platforms.mine (id int)",
    ] {
        assert_eq!(allowed(&reader, sql).await, "42501", "{sql}");
    }
    attacks_fail(&db, &reader).await;
    assert_eq!(db.count("platforms.stockx_orders").await, 1);
}

#[tokio::test]
async fn no_function_of_ours_is_executable_by_public() {
    let db = TestDb::new().await;
    let public: Vec<String> = sqlx::query_scalar(
        "SELECT p.oid::regprocedure::text FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('products', 'platforms', 'integration', 'reporting')
           AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                       WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
         ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(public, Vec::<String>::new());
    let functions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('products', 'platforms', 'integration')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(functions > 5, "the query sees our functions");
}

/// Even a role that may execute them (here the owner) cannot attach our SECURITY DEFINER
/// trigger functions to a table of its own: each refuses to run on anything but its tables.
#[tokio::test]
async fn security_definer_trigger_functions_refuse_other_tables() {
    let db = TestDb::new().await;
    let functions: Vec<String> = sqlx::query_scalar(
        "SELECT p.oid::regproc::text FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('products', 'platforms', 'integration')
           AND p.prosecdef AND p.prorettype = 'trigger'::regtype
         ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        functions,
        vec![
            "integration.enqueue_enrichment",
            "integration.sale_entry_follow",
            "integration.sale_entry_refresh_guard",
            "platforms.stockx_sale_entry_delete",
            "platforms.stockx_sale_entry_insert",
            "platforms.stockx_sale_entry_update",
        ]
    );
    for function in &functions {
        let mut conn = db.connect().await;
        for (when, event) in [
            ("AFTER", "INSERT"),
            ("BEFORE", "INSERT"),
            ("BEFORE", "UPDATE"),
            ("AFTER", "DELETE"),
        ] {
            let sql = format!(
                "CREATE TEMP TABLE IF NOT EXISTS decoy (LIKE platforms.stockx_orders INCLUDING DEFAULTS);
                 DROP TRIGGER IF EXISTS decoy_trigger ON decoy;
                 CREATE TRIGGER decoy_trigger {when} {event} ON decoy
                     FOR EACH ROW EXECUTE FUNCTION {function}('order');
                 INSERT INTO decoy (id, listing_id, stockx_order_number, net_proceeds, sold_at)
                     VALUES (gen_random_uuid(), gen_random_uuid(), 'DECOY', 1, '2024-01-01');
                 UPDATE decoy SET notes = 'x';
                 DELETE FROM decoy;"
            );
            let result = try_sql(&mut conn, &sql).await;
            let err = result.expect_err(&format!("{function} {when} {event} on a decoy"));
            let db_err = err.as_database_error().unwrap();
            assert_eq!(
                db_err.code().as_deref(),
                Some("42501"),
                "{function}: {}",
                db_err.message()
            );
            assert!(
                db_err.message().contains("runs only"),
                "{}",
                db_err.message()
            );
        }
        conn.close().await.ok();
    }
    assert_eq!(db.count("integration.enrichment_jobs").await, 0);
    assert_eq!(db.count("platforms.stockx_sale_entry").await, 0);
}

fn run(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().expect("run stockx-sync");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_run_as_a_worker_login_after_the_owner_migrated() {
    let db = TestDb::new().await; // the owner migrated
    let worker = db.login_role("worker", &["stockx_sync_worker"]).await;
    let url = db.url_as(&worker.name);
    let sandbox = sandbox::spawn("127.0.0.1:0".parse().unwrap(), SandboxOptions::default())
        .await
        .unwrap();
    let as_worker = |args: &[&str]| {
        let mut cmd = command();
        cmd.args(args).env("DATABASE_URL", &url);
        crate::binary::with_sandbox(&mut cmd, &sandbox);
        cmd
    };

    // No DDL for this login.
    assert_eq!(
        allowed(&worker, "CREATE TABLE platforms.mine (id int)").await,
        "42501"
    );
    assert_eq!(
        allowed(&worker, "DELETE FROM platforms.stockx_sale_entry").await,
        "42501"
    );

    let mut sale = Sale::new("02-L0QT6MRVSG");
    sale.sku = "DZ5485-612";
    sale.size = "11";
    sale.net_proceeds = "240.00";
    sale.insert(&db.pool).await.unwrap();

    let (code, stdout, stderr) = run(&mut as_worker(&["status"]));
    assert_eq!(code, 0, "status: {stdout}{stderr}");
    let (code, stdout, stderr) = run(&mut as_worker(&["verify"]));
    assert_eq!(code, 0, "verify: {stdout}{stderr}");
    let (code, stdout, stderr) = run(&mut as_worker(&["sync-order", "02-L0QT6MRVSG"]));
    assert_eq!(code, 0, "sync-order: {stdout}{stderr}");
    assert!(stdout.contains("enriched"), "{stdout}");
    let (code, stdout, stderr) = run(&mut as_worker(&["retry", "--all-failed"]));
    assert_eq!(code, 0, "retry: {stdout}{stderr}");
    let csv = crate::notion::fixture("sales_bom.csv");
    let (code, stdout, stderr) = run(&mut as_worker(&[
        "backfill",
        "notion",
        "--csv",
        csv.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "backfill: {stdout}{stderr}");
    let imported: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM platforms.stockx_sale_entry WHERE stockx_order_number <> '02-L0QT6MRVSG'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(imported > 0, "the backfill wrote entry rows");

    // The worker process enriches what the backfill wrote, then stops on SIGTERM.
    let mut cmd = as_worker(&["worker"]);
    cmd.env("STOCKX_SYNC_HTTP_ADDR", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM integration.enrichment_jobs
             WHERE state IN ('available', 'running', 'retryable')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut logs = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut logs).ok();
            panic!("the worker exited ({status}): {logs}");
        }
        assert!(Instant::now() < deadline, "{open} jobs still open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "worker exit: {status:?}");
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM integration.enrichment_jobs WHERE state = 'failed'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(failed, 0);

    // Migrating is the owner's step.
    let (code, stdout, stderr) = run(&mut as_worker(&["migrate"]));
    assert_eq!(code, 2, "migrate as the worker: {stdout}{stderr}");
    assert!(
        stderr.contains("run `stockx-sync migrate` as the database owner"),
        "{stderr}"
    );

    // A schema behind the binary stops every command with the same advice.
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    for args in [&["status"][..], &["verify"], &["retry", "--all-failed"]] {
        let (code, stdout, stderr) = run(&mut as_worker(args));
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains("the database schema is behind")
                && stderr.contains("run `stockx-sync migrate` as the database owner"),
            "{args:?}: {stderr}"
        );
    }
}
