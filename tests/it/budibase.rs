//! The sale-entry table as Budibase 3.x uses it, connected as a real login in
//! `stockx_sync_entry`: its table discovery, then create, list, edit and delete with exactly the
//! statements Budibase's PostgreSQL integration sends, the worker's feedback on the row, bad
//! input refused with the column named, and existing orders turned into entry rows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgDatabaseError, PgRow};
use sqlx::{Connection, PgConnection, Row};
use stockx_sync::app::App;
use stockx_sync::sandbox::{self, SandboxOptions};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Sale, TestDb};

pub(crate) type Values = HashMap<String, Option<String>>;

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

/// Runs `sql` as Budibase's driver (node-postgres) does: every parameter untyped and sent as
/// text, so the server infers each one's type from where it stands and parses the text.
/// `PREPARE` without parameter types and `EXECUTE` with string literals are exactly that.
pub(crate) async fn bb(
    conn: &mut PgConnection,
    sql: &str,
    params: &[Option<&str>],
) -> Result<Vec<Values>, sqlx::Error> {
    let name = format!("bb_{}", STATEMENTS.fetch_add(1, Ordering::Relaxed));
    sqlx::raw_sql(&format!("PREPARE {name} AS {sql}"))
        .execute(&mut *conn)
        .await?;
    let args: Vec<String> = params
        .iter()
        .map(|p| match p {
            Some(v) => format!("'{}'", v.replace('\'', "''")),
            None => "NULL".to_string(),
        })
        .collect();
    let execute = if args.is_empty() {
        format!("EXECUTE {name}")
    } else {
        format!("EXECUTE {name}({})", args.join(", "))
    };
    let rows = sqlx::raw_sql(&execute).fetch_all(&mut *conn).await;
    sqlx::raw_sql(&format!("DEALLOCATE {name}"))
        .execute(&mut *conn)
        .await?;
    Ok(rows?.iter().map(values).collect())
}

fn values(row: &PgRow) -> Values {
    use sqlx::Column;
    row.columns()
        .iter()
        .map(|c| {
            let v: Option<String> = row.try_get_unchecked(c.ordinal()).unwrap();
            (c.name().to_string(), v)
        })
        .collect()
}

pub(crate) fn get<'a>(row: &'a Values, column: &str) -> Option<&'a str> {
    row.get(column)
        .unwrap_or_else(|| panic!("no column {column} in {row:?}"))
        .as_deref()
}

/// Budibase's connection set-up, on every connection it opens.
pub(crate) async fn budibase_session(conn: &mut PgConnection) {
    sqlx::raw_sql(r#"SET search_path TO "platforms""#)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql("SET TIME ZONE 'UTC'")
        .execute(&mut *conn)
        .await
        .unwrap();
}

/// Every column of the entry table, sorted: Budibase's UPDATE writes them all in this order.
const ALL_COLUMNS: [&str; 22] = [
    "checked_at",
    "delivered_at",
    "enrichment_status",
    "id",
    "net_proceeds",
    "notes",
    "open_warnings",
    "order_id",
    "profit",
    "purchase_date",
    "purchase_price",
    "roi",
    "sale_price",
    "size",
    "size_region",
    "sku",
    "sold_at",
    "stockx_order_number",
    "stockx_payout",
    "stockx_payout_currency",
    "stockx_title",
    "supplier",
];

/// Budibase's edit: `update ... set <every column, the key included> ... where <pk> = ...
/// returning *`, with the values the form holds.
pub(crate) async fn bb_update(
    conn: &mut PgConnection,
    id: &str,
    form: &Values,
) -> Result<Values, sqlx::Error> {
    let sets: Vec<String> = ALL_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!(r#""{c}" = ${}"#, i + 1))
        .collect();
    let sql = format!(
        r#"update "stockx_sale_entry" set {} where "id" = ${} returning *"#,
        sets.join(", "),
        ALL_COLUMNS.len() + 1
    );
    let mut params: Vec<Option<&str>> = ALL_COLUMNS
        .iter()
        .map(|c| form.get(*c).and_then(|v| v.as_deref()))
        .collect();
    params.push(Some(id));
    let mut rows = bb(conn, &sql, &params).await?;
    Ok(rows.remove(0))
}

pub(crate) async fn bb_read(conn: &mut PgConnection, id: &str) -> Values {
    bb(
        conn,
        r#"select * from "stockx_sale_entry" where "stockx_sale_entry"."id" = $1 limit $2"#,
        &[Some(id), Some("1")],
    )
    .await
    .unwrap()
    .remove(0)
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

async fn wait_for(db: &TestDb, sql: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done: bool = sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap();
        if done {
            return;
        }
        if Instant::now() > deadline {
            let state: Option<String> = sqlx::query_scalar(
                "SELECT json_build_object(
                    'entry', (SELECT json_agg(e) FROM platforms.stockx_sale_entry e),
                    'jobs', (SELECT json_agg(json_build_object('k', j.kind, 's', j.state, 'o', j.outcome, 'e', j.last_error)) FROM integration.enrichment_jobs j), 'products', (SELECT json_agg(json_build_object('name', p.name, 'st', p.stockx_lookup_status)) FROM products.products p))::text",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            panic!(
                "timed out waiting for {what}: {}",
                state.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budibase_discovers_creates_lists_edits_and_deletes_through_the_entry_table() {
    let db = TestDb::new().await;
    let budibase = db.login_role("budibase", &["stockx_sync_entry"]).await;
    let worker_login = db.login_role("worker", &["stockx_sync_worker"]).await;
    let mut conn = budibase.connect().await;
    budibase_session(&mut conn).await;

    // "Fetch tables": real tables (relkind 'r') in the schema, only those with a primary key.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY (current_schemas(false)) AND c.relkind = 'r'
           AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
           AND has_table_privilege(c.oid, 'SELECT')
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        tables,
        vec!["stockx_sale_entry"],
        "the login sees its table"
    );
    // Budibase reads the key through information_schema, which shows a login only the
    // constraints of tables it may do more than SELECT on.
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT tc.table_name::text, kc.column_name::text
         FROM information_schema.table_constraints tc
         JOIN information_schema.key_column_usage kc
           ON kc.table_name = tc.table_name AND kc.table_schema = tc.table_schema
          AND kc.constraint_name = tc.constraint_name
         WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = 'platforms'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(keys, vec![("stockx_sale_entry".into(), "id".into())]);
    let columns: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
        "SELECT column_name::text, is_nullable::text, column_default::text, is_identity::text
         FROM information_schema.columns
         WHERE table_schema = ANY (current_schemas(false)) AND table_name = 'stockx_sale_entry'
         ORDER BY column_name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, ALL_COLUMNS.to_vec());
    let id = columns.iter().find(|c| c.0 == "id").unwrap();
    assert_eq!(
        id.3, "YES",
        "an identity key: Budibase makes it an auto column"
    );

    // Create: the form's columns, sorted, as text; dates as ISO timestamps.
    let created = bb(
        &mut conn,
        r#"insert into "stockx_sale_entry" ("delivered_at", "net_proceeds", "notes", "profit", "purchase_date", "purchase_price", "roi", "sale_price", "size", "sku", "sold_at", "stockx_order_number", "supplier") values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) returning *"#,
        &[
            None,
            Some("240"),
            Some("from Budibase"),
            None,
            Some("2024-06-01T00:00:00.000Z"),
            Some("179.18"),
            None,
            Some("289"),
            Some("11"),
            Some("dz5485-612"),
            Some("2024-06-14T00:00:00.000Z"),
            Some("02-L0QT6MRVSG"),
            Some("Foot\u{a0}Locker "),
        ],
    )
    .await
    .expect("Budibase's insert")
    .remove(0);
    let id = get(&created, "id").expect("an id").to_string();
    assert_eq!(get(&created, "sku"), Some("DZ5485-612"));
    assert_eq!(get(&created, "supplier"), Some("Foot Locker"));
    assert_eq!(get(&created, "profit"), Some("60.82"));
    assert_eq!(get(&created, "roi"), Some("0.3394"));
    assert_eq!(get(&created, "sold_at"), Some("2024-06-14"));
    assert_eq!(get(&created, "enrichment_status"), Some("pending"));
    assert!(get(&created, "order_id").is_some());
    let reread = bb_read(&mut conn, &id).await;
    assert_eq!(
        reread, created,
        "the re-read by key shows what RETURNING showed"
    );

    // List.
    let listed = bb(
        &mut conn,
        r#"select * from "stockx_sale_entry" order by "stockx_sale_entry"."id" asc nulls first limit $1"#,
        &[Some("101")],
    )
    .await
    .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        get(&listed[0], "stockx_order_number"),
        Some("02-L0QT6MRVSG")
    );

    // The worker, as its own login, enriches the sale; its findings reach the row.
    let sandbox = sandbox::spawn("127.0.0.1:0".parse().unwrap(), SandboxOptions::default())
        .await
        .unwrap();
    let worker_pool = worker_login.pool().await;
    let mut settings = stockx_sync::config::Settings::default();
    sandbox.configure(&mut settings, 50.0);
    settings.http.addr = "127.0.0.1:0".parse().unwrap();
    settings.worker.concurrency = 4;
    settings.worker.poll_interval_ms = 200;
    let app = App::build(&settings, worker_pool.clone()).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    wait_for(
        &db,
        "SELECT count(*) = 1 FROM platforms.stockx_sale_entry
         WHERE enrichment_status = 'enriched' AND open_warnings LIKE '%payout_mismatch%'
           AND stockx_title IS NOT NULL AND checked_at IS NOT NULL",
        "the worker's feedback on the entry row",
    )
    .await;
    let enriched = bb_read(&mut conn, &id).await;
    assert_eq!(get(&enriched, "stockx_payout"), Some("252.21"));
    assert_eq!(get(&enriched, "stockx_payout_currency"), Some("EUR"));
    assert_eq!(
        get(&enriched, "stockx_title"),
        Some("Jordan 1 Retro High OG Chicago Lost and Found")
    );

    // Edit: the form held the row from before the worker ran (stale feedback) and the user
    // corrects net proceeds to what StockX paid. Budibase re-reads, then rewrites every column.
    let _ = bb_read(&mut conn, &id).await;
    let mut form = created.clone();
    form.insert("net_proceeds".into(), Some("252.21".into()));
    form.insert("sold_at".into(), Some("2024-06-14T00:00:00.000Z".into()));
    form.insert(
        "purchase_date".into(),
        Some("2024-06-01T00:00:00.000Z".into()),
    );
    form.insert("open_warnings".into(), Some(String::new()));
    form.insert("stockx_title".into(), Some("typed over".into()));
    form.insert("checked_at".into(), Some("2020-01-01T00:00:00.000Z".into()));
    let jobs_before = scalar(&db, "SELECT count(*) FROM integration.enrichment_jobs").await;
    let edited = bb_update(&mut conn, &id, &form)
        .await
        .expect("Budibase's update");
    assert_eq!(get(&edited, "net_proceeds"), Some("252.21"));
    assert_eq!(
        get(&edited, "profit"),
        Some("73.03"),
        "the computed profit follows"
    );
    for column in [
        "enrichment_status",
        "stockx_title",
        "stockx_payout",
        "stockx_payout_currency",
        "checked_at",
        "order_id",
    ] {
        assert_eq!(
            get(&edited, column),
            get(&enriched, column),
            "{column} is the worker's"
        );
    }
    assert!(
        get(&edited, "open_warnings").is_some_and(|w| w.contains("payout_mismatch")),
        "the stale empty warnings did not overwrite the worker's: {edited:?}"
    );
    let net: String = sqlx::query_scalar(
        "SELECT net_proceeds::text FROM platforms.stockx_orders WHERE stockx_order_number = '02-L0QT6MRVSG'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(net, "252.21", "the correction reached the order");
    assert!(
        scalar(&db, "SELECT count(*) FROM integration.enrichment_jobs").await > jobs_before,
        "the edit re-queued enrichment"
    );
    // The worker re-checks: the payout now matches, the warning is resolved, the row says so.
    wait_for(
        &db,
        "SELECT count(*) = 1 FROM platforms.stockx_sale_entry
         WHERE open_warnings IS NULL AND net_proceeds = 252.21",
        "the resolved warning to leave the row",
    )
    .await;
    let after = bb_read(&mut conn, &id).await;
    assert_eq!(get(&after, "enrichment_status"), Some("enriched"));
    stop.cancel();
    task.await.unwrap().unwrap();
    worker_pool.close().await;

    // Changing the order number keeps it unique.
    let edited = bb_read(&mut conn, &id).await;
    let mut form = edited.clone();
    form.insert("stockx_order_number".into(), Some("02-L0QT6MRVSG-B".into()));
    let renamed = bb_update(&mut conn, &id, &form).await.unwrap();
    assert_eq!(
        get(&renamed, "stockx_order_number"),
        Some("02-L0QT6MRVSG-B")
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM platforms.stockx_orders WHERE stockx_order_number = '02-L0QT6MRVSG-B'"
        )
        .await,
        1
    );

    // Delete: the sale's rows go, the lookups stay, an audit row remains.
    let deleted = bb(
        &mut conn,
        r#"delete from "stockx_sale_entry" where "stockx_sale_entry"."id" = $1 returning *"#,
        &[Some(&id)],
    )
    .await
    .expect("Budibase's delete");
    assert_eq!(deleted.len(), 1);
    for (table, left) in [
        ("platforms.stockx_sale_entry", 0),
        ("platforms.stockx_orders", 0),
        ("platforms.stockx_listings", 0),
        ("products.inventory", 0),
        ("products.suppliers", 1),
        ("products.sizes", 1),
        ("products.products", 1),
    ] {
        assert_eq!(db.count(table).await, left, "{table}");
    }
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM integration.validation_warnings WHERE resolved_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM integration.enrichment_jobs WHERE state IN ('available', 'retryable')"
        )
        .await,
        0
    );
    let audit: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT action, stockx_order_number, by_user FROM integration.sale_entry_audit
         ORDER BY id DESC LIMIT 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        audit,
        vec![(
            "delete".to_string(),
            "02-L0QT6MRVSG-B".to_string(),
            budibase.name.clone()
        )]
    );
    conn.close().await.ok();
    drop(sandbox);
}

#[tokio::test]
async fn a_sale_from_the_notion_import_is_edited_like_any_other() {
    let db = TestDb::new().await;
    let records = serde_json::json!([{
        "stockx_order_number": "N-100", "sku": "HQ4276", "size": "9.5", "supplier": "Zalando",
        "purchase_price": "90", "net_proceeds": "120", "sold_at": "2024-05-02"
    }]);
    let status: String = sqlx::query_scalar(
        "SELECT status FROM integration.import_sales($1, false, 'manual', 'test', gen_random_uuid())",
    )
    .bind(&records)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(status, "created");

    let budibase = db.login_role("budibase", &["stockx_sync_entry"]).await;
    let mut conn = budibase.connect().await;
    budibase_session(&mut conn).await;
    let rows = bb(
        &mut conn,
        r#"select * from "stockx_sale_entry" order by "stockx_sale_entry"."id" asc nulls first limit $1"#,
        &[Some("101")],
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let mut form = rows[0].clone();
    let id = get(&form, "id").unwrap().to_string();
    form.insert("supplier".into(), Some("Solebox".into()));
    form.insert("purchase_price".into(), Some("95.50".into()));
    let edited = bb_update(&mut conn, &id, &form).await.unwrap();
    assert_eq!(get(&edited, "supplier"), Some("Solebox"));
    let (supplier, price): (String, String) = sqlx::query_as(
        "SELECT s.name, i.purchase_price::text FROM products.inventory i
         JOIN products.suppliers s ON s.id = i.supplier_id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((supplier.as_str(), price.as_str()), ("Solebox", "95.50"));

    // An update by the import (`--update`) shows on the entry row too.
    let records = serde_json::json!([{
        "stockx_order_number": "N-100", "sku": "HQ4276", "size": "9.5", "supplier": "Solebox",
        "purchase_price": "95.50", "net_proceeds": "130", "sold_at": "2024-05-02"
    }]);
    let status: String = sqlx::query_scalar(
        "SELECT status FROM integration.import_sales($1, true, 'manual', 'test', gen_random_uuid())",
    )
    .bind(&records)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(status, "updated");
    let row = bb_read(&mut conn, &id).await;
    assert_eq!(get(&row, "net_proceeds"), Some("130.00"));
    conn.close().await.ok();
}

#[tokio::test]
async fn existing_orders_become_entry_rows_when_migrating() {
    let db = TestDb::unmigrated().await;
    // The schema as it was before the entry table: the migrations up to the entry view.
    let dir = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "20261125000010" {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(dir.path())
        .await
        .unwrap()
        .run(&db.pool)
        .await
        .unwrap();
    let kind: String = sqlx::query_scalar(
        "SELECT relkind::text FROM pg_class WHERE oid = 'platforms.stockx_sale_entry'::regclass",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(kind, "v", "a view before");
    for order in ["M-1", "M-2", "M-3"] {
        Sale::new(order).insert(&db.pool).await.unwrap();
    }
    sqlx::query(
        "UPDATE platforms.stockx_orders SET enrichment_status = 'enriched',
                stockx_total_payout = 161.00, stockx_currency = 'EUR', enriched_at = now()
         WHERE stockx_order_number = 'M-2'",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    stockx_sync::db::migrate(&db.pool).await.unwrap();

    let rows: Vec<(i32, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, stockx_order_number, supplier, profit::text, stockx_payout::text
         FROM platforms.stockx_sale_entry ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3, "one entry row per order");
    let orders: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(orders, vec!["M-1", "M-2", "M-3"]);
    assert!(rows.iter().all(|r| r.2 == "Nike Store" && r.3 == "50.00"));
    assert_eq!(rows[1].4.as_deref(), Some("161.00"));
    // New rows continue after the migrated ones.
    Sale::new("M-4").insert(&db.pool).await.unwrap();
    let id: i32 = sqlx::query_scalar(
        "SELECT id FROM platforms.stockx_sale_entry WHERE stockx_order_number = 'M-4'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(id, 4);
}

/// The tables one entry writes, counted.
async fn written(db: &TestDb) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "platforms.stockx_sale_entry",
        "products.suppliers",
        "products.sizes",
        "products.products",
        "products.inventory",
        "platforms.stockx_listings",
        "platforms.stockx_orders",
        "integration.enrichment_jobs",
    ] {
        out.push(db.count(table).await);
    }
    out
}

fn sqlstate_and_column(err: &sqlx::Error) -> (String, String, String) {
    let db_err = err
        .as_database_error()
        .unwrap_or_else(|| panic!("a database error: {err}"));
    let pg = db_err.downcast_ref::<PgDatabaseError>();
    (
        pg.code().to_string(),
        pg.column().unwrap_or_default().to_string(),
        pg.message().to_string(),
    )
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_column_and_nothing_is_written() {
    let db = TestDb::new().await;
    let budibase = db.login_role("budibase", &["stockx_sync_entry"]).await;
    let mut conn = budibase.connect().await;
    budibase_session(&mut conn).await;
    let long = "9".repeat(101);
    // (column, value, SQLSTATE)
    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    for column in [
        "purchase_price",
        "sale_price",
        "net_proceeds",
        "profit",
        "roi",
    ] {
        for value in ["NaN", "Infinity", "-Infinity"] {
            cases.push((column, value.to_string(), "22003"));
        }
    }
    for column in ["purchase_date", "sold_at", "delivered_at"] {
        for value in [
            "1899-12-31T00:00:00.000Z",
            "2101-01-01T00:00:00.000Z",
            "infinity",
            "-infinity",
        ] {
            cases.push((column, value.to_string(), "22008"));
        }
    }
    cases.push(("stockx_order_number", long.clone(), "22001"));
    for value in [
        "12\u{1}34",
        "12\n34",
        "1234\u{7f}",
        "12\u{200b}34",
        "\u{9b}1234",
    ] {
        cases.push(("stockx_order_number", value.to_string(), "23514"));
    }
    for column in ["supplier", "size", "sku"] {
        for value in ["\u{200b}", "\u{a0}\u{a0}", "\u{feff}\u{2060}", " \u{3000} "] {
            cases.push((column, value.to_string(), "23514"));
        }
    }
    let insert = r#"insert into "stockx_sale_entry" ("delivered_at", "net_proceeds", "profit", "purchase_date", "purchase_price", "roi", "sale_price", "size", "sku", "sold_at", "stockx_order_number", "supplier") values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) returning *"#;
    let columns = [
        "delivered_at",
        "net_proceeds",
        "profit",
        "purchase_date",
        "purchase_price",
        "roi",
        "sale_price",
        "size",
        "sku",
        "sold_at",
        "stockx_order_number",
        "supplier",
    ];
    let good = [
        "2024-03-25",
        "160",
        "50",
        "2024-03-01",
        "110",
        "0.4545",
        "180",
        "10",
        "DD1391-100",
        "2024-03-20",
        "BAD-1",
        "Nike Store",
    ];
    for (column, value, code) in &cases {
        let params: Vec<Option<&str>> = columns
            .iter()
            .zip(good)
            .map(|(c, g)| Some(if c == column { value.as_str() } else { g }))
            .collect();
        let err = bb(&mut conn, insert, &params)
            .await
            .expect_err(&format!("{column} = {value:?} is refused"));
        let (sqlstate, named, message) = sqlstate_and_column(&err);
        assert_eq!(&sqlstate, code, "{column} = {value:?}: {message}");
        assert_eq!(&named, column, "{column} = {value:?}: {message}");
        assert!(message.contains(column), "{column}: {message}");
        assert_eq!(
            written(&db).await,
            vec![0; 8],
            "{column} = {value:?} wrote nothing"
        );
    }

    // The same on an edit: refused, and the sale stays as it was.
    let created = bb(&mut conn, insert, &good.map(Some))
        .await
        .unwrap()
        .remove(0);
    let id = get(&created, "id").unwrap().to_string();
    let before = written(&db).await;
    let order_before: String =
        sqlx::query_scalar("SELECT to_jsonb(o)::text FROM platforms.stockx_orders o")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    for (column, value, code) in [
        ("net_proceeds", "NaN", "22003"),
        ("sold_at", "2101-01-01T00:00:00.000Z", "22008"),
        ("stockx_order_number", long.as_str(), "22001"),
        ("supplier", "\u{200b}\u{a0}", "23514"),
    ] {
        let mut form = created.clone();
        form.insert(column.into(), Some(value.into()));
        let err = bb_update(&mut conn, &id, &form).await.unwrap_err();
        let (sqlstate, named, message) = sqlstate_and_column(&err);
        assert_eq!(
            (sqlstate.as_str(), named.as_str()),
            (code, column),
            "{message}"
        );
        assert_eq!(written(&db).await, before);
        let order_after: String =
            sqlx::query_scalar("SELECT to_jsonb(o)::text FROM platforms.stockx_orders o")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(
            order_after, order_before,
            "{column}: the order is unchanged"
        );
    }
    assert_eq!(bb_read(&mut conn, &id).await, created);

    // A duplicate order number, on create and on edit.
    let mut params = good.map(Some);
    params[10] = Some("BAD-2");
    let second = bb(&mut conn, insert, &params).await.unwrap().remove(0);
    let before = written(&db).await;
    let err = bb(&mut conn, insert, &good.map(Some)).await.unwrap_err();
    let (sqlstate, named, message) = sqlstate_and_column(&err);
    assert_eq!(
        (sqlstate.as_str(), named.as_str()),
        ("23505", "stockx_order_number")
    );
    assert!(message.contains("BAD-1"), "{message}");
    let mut form = second.clone();
    form.insert("stockx_order_number".into(), Some("BAD-1".into()));
    let err = bb_update(&mut conn, get(&second, "id").unwrap(), &form)
        .await
        .unwrap_err();
    let (sqlstate, named, _) = sqlstate_and_column(&err);
    assert_eq!(
        (sqlstate.as_str(), named.as_str()),
        ("23505", "stockx_order_number")
    );
    assert_eq!(written(&db).await, before);
    conn.close().await.ok();
}

#[tokio::test]
async fn invisible_spaces_fold_like_ordinary_ones_in_suppliers_and_sizes() {
    let db = TestDb::new().await;
    let variants = [
        ("F-1", "Foot Locker", "10"),
        ("F-2", "Foot\u{a0}Locker", "10\u{200b}"),
        ("F-3", "\u{feff}foot \u{200b} locker\u{2007}", "\u{a0}10"),
        ("F-4", "FOOT\u{202f}LOCKER", "10 "),
    ];
    for (order, supplier, size) in variants {
        let mut sale = Sale::new(order);
        sale.supplier = supplier;
        sale.size = size;
        sale.insert(&db.pool).await.unwrap();
    }
    let suppliers: Vec<String> = sqlx::query_scalar("SELECT name FROM products.suppliers")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(suppliers, vec!["Foot Locker"]);
    let sizes: Vec<String> = sqlx::query_scalar("SELECT value FROM products.sizes")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(sizes, vec!["10"]);
}

/// The import's rows skip the entry table's INSERT trigger while the refresh key is set
/// (migration 41); a user who sets the setting by hand gets the whole statement refused.
#[tokio::test]
async fn setting_the_refresh_key_by_hand_lets_nothing_through() {
    let db = TestDb::new().await;
    let budibase = db.login_role("budibase", &["stockx_sync_entry"]).await;
    let mut conn = budibase.connect().await;
    budibase_session(&mut conn).await;
    sqlx::raw_sql("SET stockx_sync.entry_refresh = 'guessed'")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = bb(
        &mut conn,
        r#"insert into "stockx_sale_entry" ("net_proceeds", "purchase_price", "size", "sku", "sold_at", "stockx_order_number", "supplier", "enrichment_status", "stockx_title") values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning *"#,
        &[
            Some("150"),
            Some("100"),
            Some("10"),
            Some("DD1391-100"),
            Some("2024-03-20"),
            Some("GUESS-1"),
            Some("Zalando"),
            Some("enriched"),
            Some("typed over"),
        ],
    )
    .await
    .expect_err("a guessed refresh key is refused");
    let db_err = err.as_database_error().unwrap();
    assert_eq!(
        db_err.code().as_deref(),
        Some("42501"),
        "{}",
        db_err.message()
    );
    assert!(
        db_err.message().contains("reserved"),
        "{}",
        db_err.message()
    );
    assert_eq!(db.count("platforms.stockx_sale_entry").await, 0);

    // Cleared, the same insert goes through the trigger as always.
    sqlx::raw_sql("RESET stockx_sync.entry_refresh")
        .execute(&mut conn)
        .await
        .unwrap();
    let row = bb(
        &mut conn,
        r#"insert into "stockx_sale_entry" ("net_proceeds", "purchase_price", "size", "sku", "sold_at", "stockx_order_number", "supplier", "enrichment_status", "stockx_title") values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning *"#,
        &[
            Some("150"),
            Some("100"),
            Some("10"),
            Some("DD1391-100"),
            Some("2024-03-20"),
            Some("GUESS-1"),
            Some("Zalando"),
            Some("enriched"),
            Some("typed over"),
        ],
    )
    .await
    .unwrap()
    .remove(0);
    assert_eq!(get(&row, "enrichment_status"), Some("pending"));
    assert_eq!(db.count("platforms.stockx_orders").await, 1);
    conn.close().await.ok();
}
