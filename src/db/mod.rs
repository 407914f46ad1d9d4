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
    /// This login may not change the schema (the worker's login has no DDL rights).
    #[error("this login may not migrate the database ({0}): run `stockx-sync migrate` as the database owner")]
    MigrateDenied(String),
    /// Migrations this binary carries are not applied yet.
    #[error("the database schema is behind: run `stockx-sync migrate` as the database owner ({missing} migration(s) not applied, the first {first})")]
    SchemaBehind { missing: usize, first: String },
    /// The login cannot read the migration table, so the schema version is unknown.
    #[error("cannot read the schema version from _sqlx_migrations ({0}): run `stockx-sync migrate` as the database owner, or grant the login membership of stockx_sync_worker")]
    SchemaUnknown(String),
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

    /// Whether this is the embedded cluster (which migrates itself at every start).
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// What every command but `migrate` does before its work: the embedded database is
    /// migrated (nobody else would); an external one is only checked, because the worker's
    /// login has no rights to change it and migrating is the owner's step.
    pub async fn ensure_schema(&self) -> Result<(), DbError> {
        if self.is_embedded() {
            migrate(&self.pool).await.map(|_| ())
        } else {
            check_schema(&self.pool).await
        }
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
    MIGRATOR.run(pool).await.map_err(|e| match denied(&e) {
        Some(message) => DbError::MigrateDenied(message),
        None => DbError::Migrate(e),
    })?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied_before.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect())
}

/// The message of a "permission denied" (SQLSTATE 42501) behind a migration error.
fn denied(error: &sqlx::migrate::MigrateError) -> Option<String> {
    use sqlx::migrate::MigrateError;
    let sql = match error {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => e,
        _ => return None,
    };
    let db = sql.as_database_error()?;
    (db.code().as_deref() == Some("42501")).then(|| db.message().to_string())
}

/// Read-only: succeeds when every migration this binary carries is applied. A database that
/// is ahead (a newer binary migrated it) is accepted with a warning.
pub async fn check_schema(pool: &PgPool) -> Result<(), DbError> {
    let applied: Vec<i64> = match sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(pool)
    .await
    {
        Ok(versions) => versions,
        Err(e) => {
            return match e.as_database_error().and_then(|d| d.code()).as_deref() {
                // No migration table: never migrated.
                Some("42P01") => Err(DbError::SchemaBehind {
                    missing: MIGRATOR
                        .iter()
                        .filter(|m| !m.migration_type.is_down_migration())
                        .count(),
                    first: MIGRATOR
                        .iter()
                        .next()
                        .map(|m| format!("{} {}", m.version, m.description))
                        .unwrap_or_default(),
                }),
                Some("42501") => Err(DbError::SchemaUnknown(e.to_string())),
                _ => Err(DbError::Sql(e)),
            };
        }
    };
    let missing: Vec<String> = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    if let Some(first) = missing.first() {
        return Err(DbError::SchemaBehind {
            missing: missing.len(),
            first: first.clone(),
        });
    }
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    let unknown = applied.iter().filter(|v| !known.contains(v)).count();
    if unknown > 0 {
        tracing::warn!(
            unknown,
            "the database has migrations this binary does not know (a newer version migrated it)"
        );
    }
    Ok(())
}
