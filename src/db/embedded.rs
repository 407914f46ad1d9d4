//! The embedded PostgreSQL cluster: what runs when `DATABASE_URL` is unset.
//!
//! A newcomer with the `postgresql` package but no running server gets a private cluster under
//! `STOCKX_SYNC_DATA_DIR`: `initdb` once (UTF8, superuser `stockx_sync`, trust auth), then
//! `pg_ctl start` with no TCP port, only a Unix socket inside the data dir. A second process on
//! the same data dir finds the cluster running and reuses it. On exit the cluster is stopped by
//! whichever process leaves last (it checks `pg_stat_activity` for other clients first).
//!
//! PostgreSQL refuses to run as root, and servers and CI machines often run us as root: then
//! the server runs as the unprivileged `postgres` user (the package creates it) or `nobody`.
//! That user often cannot reach the configured data dir (a clone under `/root`, a `mktemp -d`):
//! then the cluster lives under `/var/lib/stockx-sync/<hash of the configured path>` (or
//! `/var/tmp/stockx-sync/...`) instead, and one log line says so.
//! Start and stop are serialised between processes with a lock file in the data dir.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::unistd::{Uid, User};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The superuser `initdb` creates; no password (trust on the private socket).
pub const SUPERUSER: &str = "stockx_sync";
/// The database the program uses inside the embedded cluster.
pub const DATABASE: &str = "stockx_sync";
/// Only names the socket file (`.s.PGSQL.5432`): no TCP port is opened.
const PORT: u16 = 5432;
/// Unix socket paths are limited to 107 bytes on Linux.
const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("PostgreSQL server binaries not found; install the postgresql package (e.g. apt-get install postgresql)")]
    BinariesNotFound,
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the data directory {path} is too long for a Unix socket path ({len} > {MAX_SOCKET_PATH} bytes); set STOCKX_SYNC_DATA_DIR to a shorter path")]
    PathTooLong { path: PathBuf, len: usize },
    #[error("running as root: PostgreSQL must run as the unprivileged user {user}, who cannot reach {path}; set STOCKX_SYNC_DATA_DIR to a directory under a path that others may traverse (e.g. /var/tmp/stockx-sync)")]
    Unreachable { user: String, path: PathBuf },
    #[error("running as root and neither a `postgres` nor a `nobody` user exists to run PostgreSQL; create one, or run stockx-sync as a normal user")]
    NoServiceUser,
    #[error("{command} failed: {detail}")]
    Command { command: String, detail: String },
    #[error("cannot connect to the embedded cluster: {0}")]
    Connect(#[from] sqlx::Error),
}

/// Options for a cluster that only tests use: no fsync, more connections.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Trade durability for speed (tests and benchmarks only).
    pub ephemeral: bool,
}

/// A running embedded cluster.
#[derive(Debug)]
pub struct EmbeddedCluster {
    data_dir: PathBuf,
    pgdata: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<User>,
    started_here: bool,
}

impl EmbeddedCluster {
    /// Initialises (first time) and starts the cluster under `data_dir`, or reuses it when
    /// another process already started it.
    pub async fn start(data_dir: &Path, options: &ClusterOptions) -> Result<Self, EmbeddedError> {
        let data_dir = data_dir.to_path_buf();
        let options = options.clone();
        let cluster =
            tokio::task::spawn_blocking(move || Self::start_blocking(&data_dir, &options))
                .await
                .map_err(|e| EmbeddedError::Command {
                    command: "start".into(),
                    detail: e.to_string(),
                })??;
        cluster.ensure_database(DATABASE).await?;
        tracing::info!(
            data_dir = %cluster.data_dir.display(),
            reused = !cluster.started_here,
            "embedded PostgreSQL {} at {}; connect with: psql -h {} -U {SUPERUSER} {DATABASE}",
            if cluster.started_here { "started" } else { "already running" },
            cluster.data_dir.display(),
            cluster.data_dir.display(),
        );
        Ok(cluster)
    }

    fn start_blocking(data_dir: &Path, options: &ClusterOptions) -> Result<Self, EmbeddedError> {
        let bin_dir = find_server_binaries().ok_or(EmbeddedError::BinariesNotFound)?;
        let dir_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| EmbeddedError::DataDir { path, source }
        };
        fs::create_dir_all(data_dir).map_err(dir_error(data_dir))?;
        let data_dir = fs::canonicalize(data_dir).map_err(dir_error(data_dir))?;
        let run_as = service_user()?;
        let data_dir = match &run_as {
            Some(user) => reachable_data_dir(data_dir, user)?,
            None => data_dir,
        };
        let socket_len = data_dir.join(format!(".s.PGSQL.{PORT}")).as_os_str().len();
        if socket_len > MAX_SOCKET_PATH {
            return Err(EmbeddedError::PathTooLong {
                path: data_dir,
                len: socket_len,
            });
        }
        let lock = lock_dir(&data_dir)?;
        let mut cluster = EmbeddedCluster {
            pgdata: data_dir.join("pgdata"),
            data_dir,
            bin_dir,
            run_as,
            started_here: false,
        };
        if !cluster.pgdata.join("PG_VERSION").exists() {
            cluster.initdb(options)?;
        }
        if !cluster.is_running() {
            cluster.pg_ctl(
                &["start", "-w", "-t", "60", "-l"],
                Some(&cluster.log_file()),
            )?;
            cluster.started_here = true;
        }
        drop(lock);
        Ok(cluster)
    }

    /// Connection options for a database of this cluster (through the socket).
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.data_dir)
            .port(PORT)
            .username(SUPERUSER)
            .database(database)
            .application_name(&application_name())
    }

    /// Where the cluster lives (its socket is in this directory).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// True when this process started the server (false when it reused a running one).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Stops the server unless another client is still connected to it. Call after the pool
    /// is closed.
    pub async fn stop_if_unused(self) -> Result<(), EmbeddedError> {
        // A backend that is still starting or exiting shows up for a moment: look a few times
        // before concluding that another client is really connected.
        let mut others = Vec::new();
        for _ in 0..10 {
            others = match self.other_clients().await {
                Ok(names) => names,
                // Already stopped by someone else.
                Err(_) => return Ok(()),
            };
            if others.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if !others.is_empty() {
            tracing::info!(
                clients = ?others,
                "embedded PostgreSQL left running: other clients are connected"
            );
            return Ok(());
        }
        tokio::task::spawn_blocking(move || self.stop_blocking())
            .await
            .map_err(|e| EmbeddedError::Command {
                command: "stop".into(),
                detail: e.to_string(),
            })?
    }

    /// Application names of the clients connected besides this process.
    async fn other_clients(&self) -> Result<Vec<String>, sqlx::Error> {
        let mut conn = self.connect_options("postgres").connect().await?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT coalesce(nullif(application_name, ''), '?') || ' (' || coalesce(state, 'starting') || ': ' || left(query, 40) || ')'
             FROM pg_stat_activity
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
               AND application_name <> $1",
        )
        .bind(application_name())
        .fetch_all(&mut conn)
        .await?;
        let _ = conn.close().await;
        Ok(names)
    }

    /// Stops the server now, whoever else is connected.
    pub fn stop_blocking(self) -> Result<(), EmbeddedError> {
        let lock = lock_dir(&self.data_dir)?;
        if self.is_running() {
            self.pg_ctl(&["stop", "-w", "-m", "fast"], None)?;
            tracing::info!(data_dir = %self.data_dir.display(), "embedded PostgreSQL stopped");
        }
        drop(lock);
        Ok(())
    }

    fn initdb(&self, options: &ClusterOptions) -> Result<(), EmbeddedError> {
        let mut args: Vec<&OsStr> = vec![
            "-D".as_ref(),
            self.pgdata.as_os_str(),
            "-U".as_ref(),
            SUPERUSER.as_ref(),
            "--auth=trust".as_ref(),
            "--encoding=UTF8".as_ref(),
            "--locale=C.UTF-8".as_ref(),
        ];
        if options.ephemeral {
            args.push("--no-sync".as_ref());
        }
        self.run(self.bin_dir.join("initdb"), &args)?;
        // The socket lives in the data dir and no TCP port is opened. Written to the config
        // file, not passed with `pg_ctl -o`, which goes through a shell and breaks on spaces.
        let socket_dir = self.data_dir.to_string_lossy().replace('\'', "''");
        let mut conf = format!(
            "\n# stockx-sync embedded cluster\nlisten_addresses = ''\nport = {PORT}\n\
             unix_socket_directories = '{socket_dir}'\nunix_socket_permissions = 0700\n"
        );
        if options.ephemeral {
            conf.push_str(
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\n",
            );
        }
        let path = self.pgdata.join("postgresql.conf");
        let mut text = fs::read_to_string(&path).map_err(|source| EmbeddedError::DataDir {
            path: path.clone(),
            source,
        })?;
        text.push_str(&conf);
        fs::write(&path, text).map_err(|source| EmbeddedError::DataDir { path, source })
    }

    fn is_running(&self) -> bool {
        self.command(self.bin_dir.join("pg_ctl"))
            .arg("status")
            .arg("-D")
            .arg(&self.pgdata)
            .output()
            .map(|out| out.status.success())
            .unwrap_or(false)
    }

    fn pg_ctl(&self, args: &[&str], log: Option<&Path>) -> Result<Output, EmbeddedError> {
        let mut all: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
        if let Some(log) = log {
            all.push(log.as_os_str());
        }
        all.push("-D".as_ref());
        all.push(self.pgdata.as_os_str());
        self.run(self.bin_dir.join("pg_ctl"), &all)
    }

    fn run(&self, program: PathBuf, args: &[&OsStr]) -> Result<Output, EmbeddedError> {
        let output =
            self.command(&program)
                .args(args)
                .output()
                .map_err(|e| EmbeddedError::Command {
                    command: program.display().to_string(),
                    detail: e.to_string(),
                })?;
        if !output.status.success() {
            let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_string();
            if let Ok(log) = fs::read_to_string(self.log_file()) {
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                detail.push_str("\nserver log (last lines):\n");
                detail.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
            return Err(EmbeddedError::Command {
                command: format!(
                    "{} {}",
                    program.display(),
                    args.first()
                        .map(|a| a.to_string_lossy())
                        .unwrap_or_default()
                ),
                detail,
            });
        }
        Ok(output)
    }

    /// A command that runs as the service user when we are root, from a directory it can read.
    fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        command.current_dir(&self.data_dir).env("LC_ALL", "C.UTF-8");
        if let Some(user) = &self.run_as {
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
            command.env("HOME", &self.data_dir);
        }
        command
    }

    fn log_file(&self) -> PathBuf {
        self.data_dir.join("postgres.log")
    }

    /// Creates the database `name` unless it exists. `name` must be a plain identifier.
    pub async fn ensure_database(&self, name: &str) -> Result<(), EmbeddedError> {
        let mut conn = self.connect_options("postgres").connect().await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            // Two processes may race here; the loser's duplicate_database error is harmless.
            if let Err(e) = sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut conn)
                .await
            {
                let duplicate = e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "42P04" || c == "23505");
                if !duplicate {
                    return Err(e.into());
                }
            }
        }
        conn.close().await?;
        Ok(())
    }
}

/// `stockx-sync/<pid>`: tells this process's connections from other clients when deciding
/// whether the cluster may be stopped.
fn application_name() -> String {
    format!("stockx-sync/{}", std::process::id())
}

/// `initdb` and `pg_ctl`: on PATH, else the highest version under `/usr/lib/postgresql/*/bin`.
pub fn find_server_binaries() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_both(&dir) {
                // Debian links only some binaries into PATH; resolve to the real directory so
                // that `postgres` is found beside them.
                let real = fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .filter(|d| has_both(d));
                return Some(real.unwrap_or(dir));
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The user the server runs as: ourselves, or an unprivileged user when we are root.
fn service_user() -> Result<Option<User>, EmbeddedError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Ok(Some(user)) = User::from_name(name) {
            return Ok(Some(user));
        }
    }
    Err(EmbeddedError::NoServiceUser)
}

/// Where the cluster for the configured `data_dir` lives when the service user cannot reach
/// `data_dir` (a clone under `/root`, a `mktemp -d`): one directory per configured path, so
/// the same project always finds its cluster again.
pub const FALLBACK_PARENTS: &[&str] = &["/var/lib/stockx-sync", "/var/tmp/stockx-sync"];

/// The directory the cluster for `data_dir` uses under `parent` when `data_dir` itself is out
/// of the service user's reach: keyed by a stable hash (FNV-1a) of the canonical path.
pub fn fallback_data_dir(parent: &Path, data_dir: &Path) -> PathBuf {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in data_dir.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    parent.join(format!("{hash:016x}"))
}

/// `data_dir` handed to `user` when `user` can reach it; otherwise a directory under one of
/// [`FALLBACK_PARENTS`] that it can, said once in the log.
fn reachable_data_dir(data_dir: PathBuf, user: &User) -> Result<PathBuf, EmbeddedError> {
    let hand_over = |dir: &Path| {
        nix::unistd::chown(dir, Some(user.uid), Some(user.gid)).map_err(|e| {
            EmbeddedError::DataDir {
                path: dir.to_path_buf(),
                source: e.into(),
            }
        })
    };
    if check_reachable(&data_dir, user).is_ok() {
        hand_over(&data_dir)?;
        return Ok(data_dir);
    }
    for parent in FALLBACK_PARENTS.iter().map(Path::new) {
        let dir = fallback_data_dir(parent, &data_dir);
        let prepared = (|| -> std::io::Result<()> {
            if !parent.is_dir() {
                fs::create_dir_all(parent)?;
                fs::set_permissions(parent, fs::Permissions::from_mode(0o755))?;
            }
            fs::create_dir_all(&dir)?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
            // Says which project the directory belongs to, for whoever finds it later.
            fs::write(dir.join("SOURCE"), format!("{}\n", data_dir.display()))
        })();
        if prepared.is_err() || check_reachable(&dir, user).is_err() {
            continue;
        }
        hand_over(&dir)?;
        tracing::warn!(
            "PostgreSQL runs as {}, who cannot reach {}: the embedded cluster lives in {} instead (always the same one for that path)",
            user.name,
            data_dir.display(),
            dir.display()
        );
        return Ok(dir);
    }
    Err(EmbeddedError::Unreachable {
        user: user.name.clone(),
        path: data_dir,
    })
}

/// Every ancestor of `dir` must be searchable by `user` (owner, or the `x` bit for others).
fn check_reachable(dir: &Path, user: &User) -> Result<(), EmbeddedError> {
    for ancestor in dir.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(ancestor) else {
            continue;
        };
        let mode = meta.permissions().mode();
        use std::os::unix::fs::MetadataExt;
        let ok = if meta.uid() == user.uid.as_raw() {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid.as_raw() {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(EmbeddedError::Unreachable {
                user: user.name.clone(),
                path: dir.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// An exclusive lock on `<data_dir>/.lock`, held while starting or stopping.
fn lock_dir(data_dir: &Path) -> Result<File, EmbeddedError> {
    let path = data_dir.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| EmbeddedError::DataDir {
            path: path.clone(),
            source,
        })?;
    file.lock()
        .map_err(|source| EmbeddedError::DataDir { path, source })?;
    Ok(file)
}
