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
    (
        "STOCKX_BULK_ORDERS_THRESHOLD",
        "stockx.bulk_orders_threshold",
    ),
    ("NOTION_API_URL", "notion.api_url"),
    ("NOTION_TOKEN", "notion.token"),
    ("NOTION_DATABASE_ID", "notion.database_id"),
    ("STOCKX_SYNC_HTTP_ADDR", "http.addr"),
    ("STOCKX_SYNC_API_TOKEN", "http.api_token"),
    ("STOCKX_SYNC_LOG_FORMAT", "log.format"),
    ("STOCKX_SYNC_WORKER_CONCURRENCY", "worker.concurrency"),
    ("STOCKX_SYNC_SCHEDULE_ENABLED", "schedule.enabled"),
    ("STOCKX_SYNC_SCHEDULE_TIME_ZONE", "schedule.time_zone"),
    ("STOCKX_SYNC_RECONCILE_CRON", "schedule.reconcile"),
    ("STOCKX_SYNC_REFRESH_CRON", "schedule.refresh"),
    ("STOCKX_SYNC_NOTION_WRITEBACK", "notion.writeback"),
    ("STOCKX_SYNC_MARKET_REFRESH_CRON", "market.refresh"),
    ("STOCKX_SYNC_DEAD_STOCK_DAYS", "market.dead_stock_days"),
    ("STOCKX_SYNC_REPORT_CRON", "report.schedule"),
    (
        "STOCKX_SYNC_REPORT_SLACK_WEBHOOK_URL",
        "report.slack_webhook_url",
    ),
    (
        "STOCKX_SYNC_NOTION_STATUS_PROPERTY",
        "notion.status_property",
    ),
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
    pub schedule: ScheduleSettings,
    pub market: MarketSettings,
    pub report: ReportSettings,
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
    /// A product's variants are fetched again after this many seconds.
    pub variant_cache_secs: u64,
    /// A size missing from variants cached longer than this fetches them once more.
    pub variant_recheck_secs: u64,
    /// A product's market data is fetched again after this many seconds.
    pub market_data_cache_secs: u64,
    /// Products kept in each of those caches (least recently used dropped first).
    pub cache_products: usize,
    /// From this many order jobs waiting or running, order jobs read the seller's order
    /// lists (100 orders per call) instead of one call per order; 0 turns it off.
    pub bulk_orders_threshold: usize,
}

impl StockxSettings {
    /// The enricher's cache lifetimes and size.
    pub fn cache_config(&self) -> crate::enrich::cache::CacheConfig {
        crate::enrich::cache::CacheConfig {
            variants_ttl: Duration::from_secs(self.variant_cache_secs),
            variant_recheck: Duration::from_secs(self.variant_recheck_secs),
            market_data_ttl: Duration::from_secs(self.market_data_cache_secs),
            products: self.cache_products,
        }
    }
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
    /// Write each imported or enriched sale's status (and a comment per new validation
    /// warning) back to its Notion page. Off unless asked for: it needs an integration token
    /// with the "update content" and "insert comments" capabilities.
    pub writeback: bool,
    /// The page property the status is written to: a Text or Select property.
    pub status_property: String,
}

/// The worker's own timetable (`[schedule]`). Cron expressions have five fields (minute hour
/// day month weekday) or six with seconds first, read in `time_zone` (an IANA name).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSettings {
    /// Off: the worker runs no scheduled task.
    pub enabled: bool,
    pub time_zone: String,
    /// The incremental Notion import; only runs when a Notion source is configured.
    pub reconcile: String,
    /// Re-queues `not_found`/`failed` enrichments and re-checks sales with open warnings.
    pub refresh: String,
}

/// What the stock is worth (`[market]`): the daily market refresh of unsold inventory and the
/// valuation the reporting views compute. The valuation settings reach the views through
/// `integration.market_settings`, which the worker writes at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MarketSettings {
    /// Off: no market refresh (it is also off without StockX credentials or a schedule).
    pub enabled: bool,
    /// When the refresh runs (cron, in `schedule.time_zone`).
    pub refresh: String,
    /// The refresh stops while fewer requests than this are left of the daily budget, so
    /// new sales can still be enriched.
    pub budget_reserve: u32,
    /// Held longer than this many days: dead stock.
    pub dead_stock_days: u32,
    /// The seller's fee rate comes from enriched orders sold in this many days...
    pub fee_lookback_days: u32,
    /// ...when there are at least this many of them in the currency.
    pub fee_min_orders: u32,
    /// Otherwise: this share of the price (StockX: transaction 8 % + processing 3 %)...
    pub fallback_fee_rate: rust_decimal::Decimal,
    /// ...plus this fixed fee per item (shipping), in the market currency.
    pub fallback_fixed_fee: rust_decimal::Decimal,
}

/// The daily summary (`[report]`): what `stockx-sync report` prints, posted to Slack by the
/// scheduler when a webhook is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportSettings {
    /// When the scheduler posts the summary (cron, in `schedule.time_zone`).
    pub schedule: String,
    /// A Slack incoming-webhook URL; unset (the default): no post. A secret (the URL is the
    /// credential).
    pub slack_webhook_url: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Listener for `/metrics`, `/healthz`, `/readyz` and the POST endpoints.
    pub addr: SocketAddr,
    /// Bearer token for the POST endpoints; unset or empty means they answer 503.
    pub api_token: Option<SecretString>,
    /// Seconds a client may take to send a request's headers or body, and that an idle
    /// keep-alive connection stays open.
    pub read_timeout_secs: u64,
}

impl HttpSettings {
    /// The token, unless it is unset or blank (`STOCKX_SYNC_API_TOKEN=` as `.env.example`
    /// ships it): a blank token must never mean "no authentication".
    pub fn configured_api_token(&self) -> Option<&SecretString> {
        self.api_token
            .as_ref()
            .filter(|t| !t.expose_secret().trim().is_empty())
    }

    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout_secs)
    }
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
            schedule: ScheduleSettings::default(),
            market: MarketSettings::default(),
            report: ReportSettings::default(),
        }
    }
}

impl Default for MarketSettings {
    fn default() -> Self {
        MarketSettings {
            enabled: true,
            refresh: "0 5 * * *".into(),
            budget_reserve: 5_000,
            dead_stock_days: 90,
            fee_lookback_days: 180,
            fee_min_orders: 10,
            fallback_fee_rate: rust_decimal::Decimal::new(11, 2),
            fallback_fixed_fee: rust_decimal::Decimal::new(500, 2),
        }
    }
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            schedule: "0 7 * * *".into(),
            slack_webhook_url: None,
        }
    }
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings {
            enabled: true,
            time_zone: "UTC".into(),
            reconcile: "0 2 * * *".into(),
            refresh: "30 2 * * *".into(),
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
            variant_cache_secs: 3600,
            variant_recheck_secs: 300,
            market_data_cache_secs: 600,
            cache_products: 1000,
            bulk_orders_threshold: 20,
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
            writeback: false,
            status_property: "Sync Status".into(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            addr: "127.0.0.1:9464".parse().expect("static address"),
            api_token: None,
            read_timeout_secs: 10,
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
        let figment = figment.merge(environment());
        // Notion IDs are text even when all digits (the environment provider reads those as numbers).
        Ok(match std::env::var("NOTION_DATABASE_ID") {
            Ok(id) => figment.merge(figment::providers::Serialized::default(
                "notion.database_id",
                id,
            )),
            Err(_) => figment,
        })
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
        let m = &self.market;
        if m.dead_stock_days == 0 || m.fee_lookback_days == 0 || m.fee_min_orders == 0 {
            let key = if m.dead_stock_days == 0 {
                "market.dead_stock_days"
            } else if m.fee_lookback_days == 0 {
                "market.fee_lookback_days"
            } else {
                "market.fee_min_orders"
            };
            return fail(key, "must be at least 1".into());
        }
        if m.fallback_fee_rate < rust_decimal::Decimal::ZERO
            || m.fallback_fee_rate >= rust_decimal::Decimal::ONE
        {
            return fail(
                "market.fallback_fee_rate",
                format!(
                    "must be a share of the price from 0 to below 1 (0.11 = 11 %), got {}",
                    m.fallback_fee_rate
                ),
            );
        }
        if m.fallback_fixed_fee < rust_decimal::Decimal::ZERO {
            return fail("market.fallback_fixed_fee", "must not be negative".into());
        }
        if let Some(url) = &self.report.slack_webhook_url {
            if Url::parse(url.expose_secret()).is_err() {
                // The URL is a credential: the message does not repeat it.
                return fail("report.slack_webhook_url", "is not a URL".into());
            }
        }
        if self.http.read_timeout_secs == 0 {
            return fail("http.read_timeout_secs", "must be at least 1 second".into());
        }
        if self.stockx.cache_products == 0 {
            return fail("stockx.cache_products", "must be at least 1".into());
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
        for (key, expression) in [
            ("schedule.reconcile", &self.schedule.reconcile),
            ("schedule.refresh", &self.schedule.refresh),
            ("market.refresh", &self.market.refresh),
            ("report.schedule", &self.report.schedule),
        ] {
            if let Err(e) =
                crate::schedule::CronSchedule::parse(expression, &self.schedule.time_zone)
            {
                let key = match e {
                    crate::schedule::ScheduleError::TimeZone { .. } => "schedule.time_zone",
                    _ => key,
                };
                return fail(key, e.to_string());
            }
        }
        if self.notion.writeback {
            if self.notion.token.is_none() || self.notion.database_id.is_none() {
                return fail(
                    "notion.writeback",
                    "needs NOTION_TOKEN and NOTION_DATABASE_ID (the pages to write to)".into(),
                );
            }
            if self.notion.status_property.trim().is_empty() {
                return fail(
                    "notion.status_property",
                    "must name a Text or Select property of the Notion database".into(),
                );
            }
        }
        if let Some(url) = &self.database_url {
            match Url::parse(url.expose_secret()) {
                Err(e) => return fail("database_url", format!("is not a URL ({e})")),
                // Any other scheme would be handed to the PostgreSQL driver anyway and reach
                // whatever PostgreSQL answers on that host: refuse it instead.
                Ok(parsed) if !matches!(parsed.scheme(), "postgres" | "postgresql") => {
                    return fail(
                        "database_url",
                        format!(
                            "must be a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE), got a {}:// URL",
                            parsed.scheme()
                        ),
                    )
                }
                Ok(_) => {}
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

    /// True when the Notion API source is configured (token and database).
    pub fn notion_source_present(&self) -> bool {
        self.notion.token.is_some() && self.notion.database_id.is_some()
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
            if let figment::error::Kind::Message(message) = &e.kind {
                if let Some(syntax) = describe_toml_syntax_error(message, e.metadata.as_ref()) {
                    return syntax;
                }
            }
            let what = describe_kind(&e.kind);
            if key.is_empty() {
                what
            } else {
                format!("{}: {what}", origin(figment, &key))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// serde's wording names Rust types ("expected usize") and quotes in backticks; a person
/// editing a settings file needs the kind of value instead.
fn describe_kind(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    match kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => format!(
            "found {}, expected {}",
            describe_actual(actual),
            describe_expected(expected)
        ),
        Kind::UnknownVariant(found, expected) => {
            format!(
                "unknown value \"{found}\"; expected one of: {}",
                expected.join(", ")
            )
        }
        Kind::UnknownField(found, expected) => {
            format!(
                "unknown setting \"{found}\"; known here: {}",
                expected.join(", ")
            )
        }
        Kind::MissingField(name) => format!("missing setting \"{name}\""),
        Kind::DuplicateField(name) => format!("\"{name}\" is set twice"),
        Kind::InvalidLength(len, expected) => {
            format!(
                "found {len} items, expected {}",
                describe_expected(expected)
            )
        }
        Kind::ISizeOutOfRange(n) => format!("{n} is out of range"),
        Kind::USizeOutOfRange(n) => format!("{n} is out of range"),
        other => other.to_string().replace('`', ""),
    }
}

fn describe_actual(actual: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match actual {
        Actual::Bool(b) => b.to_string(),
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(n) => n.to_string(),
        Actual::Str(s) => format!("{s:?}"),
        Actual::Char(c) => format!("{:?}", c.to_string()),
        Actual::Seq => "a list".into(),
        Actual::Map => "a table".into(),
        other => other.to_string().replace('`', ""),
    }
}

fn describe_expected(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        other => other.replace('`', ""),
    }
}

/// toml's message for a file that is not TOML ("TOML parse error at line 1, column 8" and a
/// snippet), with the file it came from.
fn describe_toml_syntax_error(
    message: &str,
    metadata: Option<&figment::Metadata>,
) -> Option<String> {
    if !message.starts_with("TOML parse error") {
        return None;
    }
    let file = match metadata.and_then(|m| m.source.as_ref()) {
        Some(figment::Source::File(path)) => path.display().to_string(),
        _ => "the settings file".to_string(),
    };
    let mut lines = message.lines();
    let position = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("TOML parse error at ")
        .to_string();
    // What follows the position is a source snippet, then the explanation.
    let explanation: Vec<&str> = lines
        .filter(|l| {
            let t = l.trim_start();
            !(t.is_empty()
                || t.starts_with('|')
                || t.split('|')
                    .next()
                    .is_some_and(|n| n.trim().parse::<u64>().is_ok() && t.contains('|')))
        })
        .collect();
    Some(format!(
        "{file} is not valid TOML ({position}): {}",
        explanation.join(", ")
    ))
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
