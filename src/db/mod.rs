//! The database: a pool on `DATABASE_URL`, or on the embedded cluster when it is unset, and the
//! embedded migrations (`migrations/`, sqlx format).

pub mod embedded;

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::config::{redact_url, Settings};
use embedded::{ClusterOptions, EmbeddedCluster, EmbeddedError};

/// The schema: everything under `migrations/`, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    /// Nothing answers where `DATABASE_URL` points: a setting to fix, not a failure of the work.
    #[error("cannot connect to PostgreSQL: {reason} at {at} (DATABASE_URL {url})")]
    Unreachable {
        reason: String,
        at: String,
        url: String,
    },
    /// The server answered but refused the login or the database.
    #[error("PostgreSQL at {url} refused the connection: {reason}")]
    Rejected { url: String, reason: String },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// A pool, and the embedded cluster behind it when there is one.
pub struct Database {
    pub pool: PgPool,
    embedded: Option<EmbeddedCluster>,
    /// Where we connect, for messages (password redacted).
    pub location: String,
    /// How to open more connections to the same server (scratch databases, LISTEN).
    pub connect_options: PgConnectOptions,
}

impl Database {
    /// Connects to `DATABASE_URL`, or starts (or reuses) the embedded cluster.
    pub async fn open(settings: &Settings, max_connections: u32) -> Result<Database, DbError> {
        Self::open_named(settings, None, max_connections).await
    }

    /// Like [`Database::open`], on the database `name` of the same server when given (created
    /// when missing on the embedded cluster).
    pub async fn open_named(
        settings: &Settings,
        name: Option<&str>,
        max_connections: u32,
    ) -> Result<Database, DbError> {
        let pool_options = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10));
        let (options, embedded, location) = match &settings.database_url {
            Some(url) => {
                let url = url.expose_secret();
                let location = redact_url(url);
                let options = PgConnectOptions::from_str(url)
                    .map_err(|source| DbError::Connect {
                        url: location.clone(),
                        source,
                    })?
                    .application_name("stockx-sync");
                let options = match name {
                    Some(name) => options.database(name),
                    None => options,
                };
                check_reachable(&options, &location).await?;
                (options, None, location)
            }
            None => {
                let cluster =
                    EmbeddedCluster::start(&settings.data_dir, &ClusterOptions::default()).await?;
                let database = name.unwrap_or(embedded::DATABASE);
                cluster.ensure_database(database).await?;
                let location = format!(
                    "embedded cluster in {} (database {database})",
                    cluster.data_dir().display(),
                );
                (cluster.connect_options(database), Some(cluster), location)
            }
        };
        let pool = pool_options
            .connect_with(options.clone())
            .await
            .map_err(|source| DbError::Connect {
                url: location.clone(),
                source,
            })?;
        Ok(Database {
            pool,
            embedded,
            location,
            connect_options: options,
        })
    }

    /// True on the embedded cluster (no `DATABASE_URL`).
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Closes the pool and stops the embedded cluster when no other client uses it.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(cluster) = self.embedded {
            if let Err(e) = cluster.stop_if_unused().await {
                tracing::warn!(error = %e, "could not stop the embedded PostgreSQL cluster");
            }
        }
    }
}

/// One connection before the pool is built: the pool retries a refused connection until its
/// acquire timeout and then only says "pool timed out", which hides the reason.
async fn check_reachable(options: &PgConnectOptions, url: &str) -> Result<(), DbError> {
    use sqlx::{ConnectOptions, Connection};
    let at = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    let unreachable = |reason: String| DbError::Unreachable {
        reason,
        at: at.clone(),
        url: url.to_string(),
    };
    let attempt = tokio::time::timeout(Duration::from_secs(10), options.connect()).await;
    match attempt {
        Err(_) => Err(unreachable("no answer within 10 s".into())),
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(sqlx::Error::Io(e))) => Err(unreachable(match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::NotFound => "no server socket".into(),
            _ => e.to_string(),
        })),
        Ok(Err(sqlx::Error::Database(e)))
            if e.code()
                .is_some_and(|c| c.starts_with("28") || c == "3D000") =>
        {
            Err(DbError::Rejected {
                url: url.to_string(),
                reason: e.message().to_string(),
            })
        }
        Ok(Err(source)) => Err(DbError::Connect {
            url: url.to_string(),
            source,
        }),
    }
}

/// Applies pending migrations; returns the descriptions of those it applied, in order.
pub async fn migrate(pool: &PgPool) -> Result<Vec<String>, DbError> {
    let applied_before: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    MIGRATOR.run(pool).await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied_before.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect())
}
