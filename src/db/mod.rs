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
                (options, None, location)
            }
            None => {
                let cluster =
                    EmbeddedCluster::start(&settings.data_dir, &ClusterOptions::default()).await?;
                let location = format!(
                    "embedded cluster in {} (database {})",
                    cluster.data_dir().display(),
                    embedded::DATABASE
                );
                (
                    cluster.connect_options(embedded::DATABASE),
                    Some(cluster),
                    location,
                )
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
