//! Settings: one typed tree, read once at start.
//!
//! Layers, later wins: built-in defaults → `stockx-sync.toml` (or `--config FILE`) → the
//! environment, with fixed variable names that deployments rely on (the README's table). A value
//! that cannot be used stops the program before it does anything, with a message naming the
//! setting, the environment variable and the source the bad value came from (exit code 2).
//!
//! Secrets (`STOCKX_CLIENT_SECRET`, tokens, the password in `DATABASE_URL`) are `SecretString`s:
//! their `Debug` prints `[REDACTED]`, so a settings dump in a log never shows them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// The settings file read from the working directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "stockx-sync.toml";

/// Environment variables the program reads, and the setting each one sets.
/// Listed once so that loading, error messages and the README cannot disagree.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("DATABASE_URL", "database_url"),
    ("STOCKX_SYNC_DATA_DIR", "data_dir"),
    ("STOCKX_API_URL", "stockx.api_url"),
    ("STOCKX_AUTH_URL", "stockx.auth_url"),
    ("STOCKX_API_KEY", "stockx.api_key"),
    ("STOCKX_CLIENT_ID", "stockx.client_id"),
    ("STOCKX_CLIENT_SECRET", "stockx.client_secret"),
    ("STOCKX_REFRESH_TOKEN", "stockx.refresh_token"),
    ("STOCKX_REQUESTS_PER_SECOND", "stockx.requests_per_second"),
    ("STOCKX_DAILY_REQUEST_BUDGET", "stockx.daily_request_budget"),
    ("STOCKX_CURRENCY", "stockx.currency"),
    ("NOTION_API_URL", "notion.api_url"),
    ("NOTION_TOKEN", "notion.token"),
    ("NOTION_DATABASE_ID", "notion.database_id"),
    ("STOCKX_SYNC_HTTP_ADDR", "http.addr"),
    ("STOCKX_SYNC_API_TOKEN", "http.api_token"),
    ("STOCKX_SYNC_LOG_FORMAT", "log.format"),
    ("STOCKX_SYNC_WORKER_CONCURRENCY", "worker.concurrency"),
    (
        "STOCKX_SYNC_QUEUE_SYNCHRONOUS_COMMIT",
        "worker.queue_synchronous_commit",
    ),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// PostgreSQL to use; unset means the embedded cluster under `data_dir`.
    pub database_url: Option<SecretString>,
    /// Where the embedded cluster lives.
    pub data_dir: PathBuf,
    pub stockx: StockxSettings,
    pub notion: NotionSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub worker: WorkerSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StockxSettings {
    /// API base; the client appends `/v2`.
    pub api_url: Url,
    /// OAuth token endpoint.
    pub auth_url: Url,
    pub api_key: Option<SecretString>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    /// Client-side rate limit. StockX expects about one request per second.
    pub requests_per_second: f64,
    /// StockX's daily quota (25,000 requests per 24 h).
    pub daily_request_budget: u32,
    /// Currency of market data (ISO code).
    pub currency: String,
    /// Timeout of one HTTP request, in seconds.
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotionSettings {
    pub api_url: Url,
    pub token: Option<SecretString>,
    /// A database ID, a data source ID, or the database's URL.
    pub database_id: Option<String>,
    /// Notion's documented average rate.
    pub requests_per_second: f64,
    /// `[notion.mapping]`: Notion property names for each field (see `notion::Mapping`).
    pub mapping: Option<toml::Table>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Listener for `/metrics`, `/healthz`, `/readyz` and the POST endpoints.
    pub addr: SocketAddr,
    /// Bearer token for the POST endpoints; unset means they answer 503.
    pub api_token: Option<SecretString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Jobs run at once by one worker process.
    pub concurrency: usize,
    /// A claimed job belongs to its worker this long; the heartbeat renews it.
    pub lease_secs: u64,
    /// Safety-net poll when no NOTIFY arrives (jittered by up to 10 %).
    pub poll_interval_ms: u64,
    /// Attempts before a job is dead-lettered (default 3).
    pub max_attempts: i16,
    /// Finished jobs are deleted after this many days.
    pub retention_days: u32,
    /// Time running jobs get to finish on SIGINT/SIGTERM before they are released.
    pub shutdown_grace_secs: u64,
    /// Never LISTEN; poll only (for PgBouncer in transaction mode). `worker --poll-only` sets it.
    pub poll_only: bool,
    /// How the queue's own statements (claim, complete, heartbeat, release) commit.
    pub queue_synchronous_commit: QueueCommit,
}

/// `synchronous_commit` for the queue's own connections. The enrichment writes are not
/// affected: they commit as the server (or `DATABASE_URL`'s `options`) says.
///
/// `off`, the default, does not wait for the WAL flush: a claim or completion lost in a server
/// crash only means the job runs again after its lease, which at-least-once delivery allows,
/// and WAL order still keeps a completion from surviving without the writes before it. The
/// other values are PostgreSQL's; `server` leaves the setting to the server and the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueCommit {
    #[default]
    Off,
    Local,
    RemoteWrite,
    On,
    RemoteApply,
    Server,
}

impl QueueCommit {
    /// The `synchronous_commit` value to set; `None` for `server`.
    pub fn setting(self) -> Option<&'static str> {
        match self {
            QueueCommit::Off => Some("off"),
            QueueCommit::Local => Some("local"),
            QueueCommit::RemoteWrite => Some("remote_write"),
            QueueCommit::On => Some("on"),
            QueueCommit::RemoteApply => Some("remote_apply"),
            QueueCommit::Server => None,
        }
    }
}

impl std::fmt::Display for QueueCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.setting().unwrap_or("server"))
    }
}

impl std::str::FromStr for QueueCommit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(QueueCommit::Off),
            "local" => Ok(QueueCommit::Local),
            "remote_write" => Ok(QueueCommit::RemoteWrite),
            "on" => Ok(QueueCommit::On),
            "remote_apply" => Ok(QueueCommit::RemoteApply),
            "server" => Ok(QueueCommit::Server),
            other => Err(format!(
                "{other:?} is not one of off, local, remote_write, on, remote_apply, server"
            )),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: None,
            data_dir: PathBuf::from("./.stockx-sync"),
            stockx: StockxSettings::default(),
            notion: NotionSettings::default(),
            http: HttpSettings::default(),
            log: LogSettings::default(),
            worker: WorkerSettings::default(),
        }
    }
}

impl Default for StockxSettings {
    fn default() -> Self {
        StockxSettings {
            api_url: Url::parse("https://api.stockx.com").expect("static URL"),
            auth_url: Url::parse("https://accounts.stockx.com/oauth/token").expect("static URL"),
            api_key: None,
            client_id: None,
            client_secret: None,
            refresh_token: None,
            requests_per_second: 1.0,
            daily_request_budget: 25_000,
            currency: "EUR".into(),
            timeout_secs: 15,
        }
    }
}

impl Default for NotionSettings {
    fn default() -> Self {
        NotionSettings {
            api_url: Url::parse("https://api.notion.com").expect("static URL"),
            token: None,
            database_id: None,
            requests_per_second: 3.0,
            mapping: None,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            addr: "127.0.0.1:9464".parse().expect("static address"),
            api_token: None,
        }
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            concurrency: 8,
            lease_secs: 30,
            poll_interval_ms: 1000,
            max_attempts: 3,
            retention_days: 7,
            shutdown_grace_secs: 10,
            poll_only: false,
            queue_synchronous_commit: QueueCommit::Off,
        }
    }
}

/// A setting that cannot be used. The message names the setting, its environment variable
/// and where the value came from.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Defaults → the settings file → the environment.
    ///
    /// `file` is `--config`: it must exist. Without it, `stockx-sync.toml` in the working
    /// directory is read when present.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let figment = Self::figment(file)?;
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError(describe_figment_error(&figment, e)))?;
        settings.check(&figment)?;
        Ok(settings)
    }

    fn figment(file: Option<&Path>) -> Result<Figment, ConfigError> {
        let mut figment = Figment::new();
        match file {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError(format!(
                        "--config {}: no such file",
                        path.display()
                    )));
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE))
            }
            None => {}
        }
        Ok(figment.merge(environment()))
    }

    /// Checks what types cannot: ranges and formats.
    fn check(&self, figment: &Figment) -> Result<(), ConfigError> {
        let fail =
            |key: &str, why: String| Err(ConfigError(format!("{} {why}", origin(figment, key))));
        let rate = self.stockx.requests_per_second;
        if !(rate.is_finite() && rate > 0.0) {
            return fail(
                "stockx.requests_per_second",
                format!("must be a positive number of requests per second, got {rate}"),
            );
        }
        let rate = self.notion.requests_per_second;
        if !(rate.is_finite() && rate > 0.0) {
            return fail(
                "notion.requests_per_second",
                format!("must be a positive number of requests per second, got {rate}"),
            );
        }
        if self.stockx.daily_request_budget == 0 {
            return fail("stockx.daily_request_budget", "must be at least 1".into());
        }
        let currency = &self.stockx.currency;
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return fail(
                "stockx.currency",
                format!("must be a three-letter ISO code such as EUR or USD, got {currency:?}"),
            );
        }
        if self.worker.concurrency == 0 {
            return fail("worker.concurrency", "must be at least 1".into());
        }
        if self.worker.max_attempts < 1 {
            return fail("worker.max_attempts", "must be at least 1".into());
        }
        if self.worker.lease_secs < 2 {
            return fail("worker.lease_secs", "must be at least 2 seconds".into());
        }
        if let Some(url) = &self.database_url {
            let url = url.expose_secret();
            if let Err(e) = Url::parse(url) {
                return fail("database_url", format!("is not a URL ({e})"));
            }
        }
        Ok(())
    }

    /// True when all four StockX credentials are set.
    pub fn stockx_credentials_present(&self) -> bool {
        let s = &self.stockx;
        s.api_key.is_some()
            && s.client_id.is_some()
            && s.client_secret.is_some()
            && s.refresh_token.is_some()
    }

    pub fn stockx_timeout(&self) -> Duration {
        Duration::from_secs(self.stockx.timeout_secs)
    }
}

/// The fixed environment variable names (README, "Configuration"), mapped onto the settings tree.
fn environment() -> Env {
    let names: Vec<&'static str> = ENV_VARS.iter().map(|(env, _)| *env).collect();
    Env::raw().only(&names).map(|env| {
        let key = ENV_VARS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(env.as_str()))
            .map(|(_, key)| *key)
            .unwrap_or("unknown");
        key.into()
    })
}

/// "`stockx.requests_per_second` (STOCKX_REQUESTS_PER_SECOND) from the environment"
fn origin(figment: &Figment, key: &str) -> String {
    let env = ENV_VARS
        .iter()
        .find(|(_, k)| *k == key)
        .map(|(env, _)| format!(" ({env})"))
        .unwrap_or_default();
    let source = match figment.find_metadata(key) {
        Some(meta) => match &meta.source {
            Some(figment::Source::File(path)) => format!("from file {}", path.display()),
            _ if meta.name.contains("environment") => "from the environment".to_string(),
            _ => format!("from {}", meta.name),
        },
        None => "from the defaults".to_string(),
    };
    format!("`{key}`{env} {source}")
}

fn describe_figment_error(figment: &Figment, error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let what = e.kind.to_string();
            if key.is_empty() {
                what
            } else {
                format!("{}: {what}", origin(figment, &key))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `DATABASE_URL` with its password replaced, for log lines.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("REDACTED"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_password() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/stockx"),
            "postgres://app:REDACTED@db:5432/stockx"
        );
        assert_eq!(redact_url("postgres://db/stockx"), "postgres://db/stockx");
    }
}
