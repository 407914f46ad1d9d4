//! The test harness: a real PostgreSQL for every test, never a mock.
//!
//! With `DATABASE_URL` set, tests use that server. Without it, the first test starts ONE
//! throwaway embedded cluster (the same code as `stockx-sync`'s own) in a temporary directory,
//! and a small watcher process stops it and deletes the directory when the test binary exits.
//! Every test gets its own freshly migrated database, dropped when the test's `TestDb` is
//! dropped, so tests run in parallel and leave nothing behind.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use stockx_sync::db::embedded::{ClusterOptions, EmbeddedCluster};
use tokio::sync::OnceCell;

/// How to reach the server that hosts the test databases.
struct Server {
    admin: PgConnectOptions,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

async fn server() -> &'static Server {
    SERVER
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("DATABASE_URL") {
                let admin = PgConnectOptions::from_str(&url).expect("DATABASE_URL is not a URL");
                return Server { admin };
            }
            let dir = tempfile::Builder::new()
                .prefix("stockx-sync-test-")
                .tempdir_in("/tmp")
                .expect("temporary directory")
                .keep();
            let cluster = EmbeddedCluster::start(&dir, &ClusterOptions { ephemeral: true })
                .await
                .unwrap_or_else(|e| panic!("cannot start the test cluster: {e}"));
            spawn_cleanup_watcher(&dir);
            let admin = cluster.connect_options("postgres");
            // The watcher owns the cluster's end; never stop it from here.
            std::mem::forget(cluster);
            Server { admin }
        })
        .await
}

/// Stops the cluster (immediate shutdown) and removes its directory once this process is gone.
fn spawn_cleanup_watcher(dir: &std::path::Path) {
    let script = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
        pid=$(head -n 1 "$2/pgdata/postmaster.pid" 2>/dev/null)
        if [ -n "$pid" ]; then
            kill -QUIT "$pid" 2>/dev/null
            i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        fi
        rm -rf "$2"
    "#;
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .arg("watcher")
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    // Detached on purpose: the watcher outlives this process to clean up after it.
    #[allow(clippy::zombie_processes)]
    command.spawn().expect("cleanup watcher");
}

/// A freshly migrated database of its own; dropped with the value.
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    pub options: PgConnectOptions,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let db = TestDb::unmigrated().await;
        stockx_sync::db::migrate(&db.pool)
            .await
            .expect("migrations");
        db
    }

    /// An empty database of its own, for tests that migrate it themselves.
    pub async fn unmigrated() -> TestDb {
        let server = server().await;
        let name = format!("stockx_sync_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = server
            .admin
            .connect()
            .await
            .expect("connect to the test server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let options = server
            .admin
            .clone()
            .database(&name)
            .application_name("stockx-sync-test");
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect_with(options.clone())
            .await
            .expect("connect to the test database");
        TestDb {
            pool,
            name,
            options,
        }
    }

    /// A single new connection to this database (e.g. for LISTEN or SET ROLE).
    pub async fn connect(&self) -> PgConnection {
        self.options.connect().await.expect("connect")
    }

    /// A `postgres://` URL for child processes (`DATABASE_URL`).
    pub fn url(&self) -> String {
        self.url_as(self.options.get_username())
    }

    /// The same URL for another login (trust authentication: no password).
    pub fn url_as(&self, user: &str) -> String {
        let o = &self.options;
        let host = o
            .get_socket()
            .map(|s| s.display().to_string())
            .unwrap_or_else(|| o.get_host().to_string());
        if host.starts_with('/') {
            format!(
                "postgres://{user}@localhost:{}/{}?host={}",
                o.get_port(),
                self.name,
                host
            )
        } else {
            match std::env::var("DATABASE_URL") {
                Ok(url) => {
                    let mut url = url::Url::parse(&url).expect("DATABASE_URL");
                    url.set_path(&self.name);
                    url.set_username(user).expect("a user name");
                    url.set_password(None).expect("no password");
                    url.to_string()
                }
                Err(_) => format!("postgres://{user}@{host}:{}/{}", o.get_port(), self.name),
            }
        }
    }

    /// Counts rows of a table (tests' shorthand).
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }
}

/// A LOGIN role in some of the project's groups, dropped with the value. Roles are global to
/// the server: the name is unique per test.
pub struct LoginRole {
    pub name: String,
    /// Connects as this role to the test database.
    pub options: PgConnectOptions,
    admin: PgConnectOptions,
}

impl TestDb {
    pub async fn login_role(&self, kind: &str, groups: &[&str]) -> LoginRole {
        let name = format!("t_{kind}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = self.connect().await;
        sqlx::query(&format!("CREATE ROLE {name} LOGIN"))
            .execute(&mut conn)
            .await
            .expect("create login role");
        for group in groups {
            sqlx::query(&format!("GRANT {group} TO {name}"))
                .execute(&mut conn)
                .await
                .expect("grant group");
        }
        conn.close().await.ok();
        LoginRole {
            options: self.options.clone().username(&name).application_name(&name),
            name,
            admin: self.options.clone(),
        }
    }
}

impl LoginRole {
    pub async fn connect(&self) -> PgConnection {
        self.options
            .connect()
            .await
            .expect("connect as the login role")
    }

    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(4)
            .connect_with(self.options.clone())
            .await
            .expect("pool as the login role")
    }
}

impl Drop for LoginRole {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = self.admin.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = admin.connect().await {
                    // Its sessions first: a role with open sessions cannot always be dropped.
                    let _ = sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                    )
                    .bind(&name)
                    .execute(&mut conn)
                    .await;
                    let _ = sqlx::query(&format!("DROP ROLE IF EXISTS {name}"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = match SERVER.get() {
            Some(server) => server.admin.clone(),
            None => return,
        };
        // Async drop does not exist: drop the database from a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = admin.connect().await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// The built `stockx-sync` binary, for tests that run it as a user would.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stockx-sync"))
}

/// A `stockx-sync` command with a clean environment: no settings leak in from the caller.
pub fn command() -> Command {
    let mut command = Command::new(binary());
    for (key, _) in std::env::vars() {
        if key.starts_with("STOCKX") || key.starts_with("NOTION") || key == "DATABASE_URL" {
            command.env_remove(key);
        }
    }
    command.env("RUST_LOG", "info").stdin(Stdio::null());
    command
}

/// One sale through the entry view, as Budibase inserts it.
pub struct Sale<'a> {
    pub order: &'a str,
    pub sku: &'a str,
    pub size: &'a str,
    pub supplier: &'a str,
    pub purchase_price: &'a str,
    pub purchase_date: Option<&'a str>,
    pub sale_price: Option<&'a str>,
    pub net_proceeds: &'a str,
    pub profit: Option<&'a str>,
    pub roi: Option<&'a str>,
    pub sold_at: &'a str,
}

impl<'a> Sale<'a> {
    pub fn new(order: &'a str) -> Self {
        Sale {
            order,
            sku: "DD1391-100",
            size: "10",
            supplier: "Nike Store",
            purchase_price: "110.00",
            purchase_date: Some("2024-03-01"),
            sale_price: Some("180.00"),
            net_proceeds: "160.00",
            profit: None,
            roi: None,
            sold_at: "2024-03-20",
        }
    }

    pub async fn insert(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO platforms.stockx_sale_entry
               (stockx_order_number, sku, size, supplier, purchase_price, purchase_date,
                sale_price, net_proceeds, profit, roi, sold_at)
             VALUES ($1, $2, $3, $4, $5::numeric, $6::date, $7::numeric, $8::numeric,
                     $9::numeric, $10::numeric, $11::date)",
        )
        .bind(self.order)
        .bind(self.sku)
        .bind(self.size)
        .bind(self.supplier)
        .bind(self.purchase_price)
        .bind(self.purchase_date)
        .bind(self.sale_price)
        .bind(self.net_proceeds)
        .bind(self.profit)
        .bind(self.roi)
        .bind(self.sold_at)
        .execute(pool)
        .await
        .map(|_| ())
    }
}
