//! The embedded cluster: started by the binary when DATABASE_URL is unset, reused by a second
//! process, stopped by the last one to leave.

use std::path::Path;

use sqlx::{ConnectOptions, Connection};
use stockx_sync::db::embedded::{ClusterOptions, EmbeddedCluster};

use crate::helpers::command;

fn short_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sxs-")
        .tempdir_in("/tmp")
        .unwrap()
}

fn postmaster_running(dir: &Path) -> bool {
    dir.join("pgdata/postmaster.pid").exists()
}

#[test]
fn the_binary_starts_the_cluster_migrates_and_stops_it_again() {
    let dir = short_tempdir();
    let out = command()
        .arg("migrate")
        .env("STOCKX_SYNC_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let applied = stdout.lines().filter(|l| l.starts_with("applied ")).count();
    assert_eq!(
        applied,
        stockx_sync::db::MIGRATOR.iter().count(),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{applied} migration(s) applied")),
        "{stdout}"
    );
    assert!(
        stderr.contains("psql -h"),
        "one log line says how to connect: {stderr}"
    );
    assert!(dir.path().join("pgdata/PG_VERSION").exists());
    assert!(!postmaster_running(dir.path()), "stopped on exit: {stderr}");

    // Second run: initdb is not repeated, the schema is already there.
    let out = command()
        .arg("migrate")
        .env("STOCKX_SYNC_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
}

#[tokio::test]
async fn a_second_process_reuses_the_running_cluster_and_leaves_it_running() {
    let dir = short_tempdir();
    let cluster = EmbeddedCluster::start(dir.path(), &ClusterOptions { ephemeral: true })
        .await
        .unwrap();
    assert!(cluster.started_here());
    let mut conn = cluster
        .connect_options("stockx_sync")
        .connect()
        .await
        .unwrap();

    let out = command()
        .args(["status", "--json"])
        .env("STOCKX_SYNC_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("already running"), "{stderr}");
    assert!(postmaster_running(dir.path()), "left running for us");

    // The other process migrated the database we are connected to.
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM integration.enrichment_jobs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    conn.close().await.unwrap();

    cluster.stop_if_unused().await.unwrap();
    assert!(!postmaster_running(dir.path()), "the last one out stops it");
}

/// Removes a directory the binary created outside the test's own temporary directory.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn as_root_a_data_dir_postgres_cannot_reach_moves_to_one_it_can() {
    use std::os::unix::fs::PermissionsExt;
    use stockx_sync::db::embedded::{fallback_data_dir, FALLBACK_PARENTS};
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!(
            "SKIPPED: only root hands the cluster to another user (running as uid {})",
            nix::unistd::Uid::effective()
        );
        return;
    }
    // Like a clone under /root or a `mktemp -d`: mode 0700, owned by root.
    let outer = short_tempdir();
    std::fs::set_permissions(outer.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let data_dir = outer.path().join(".stockx-sync");
    let fallbacks: Vec<_> = FALLBACK_PARENTS
        .iter()
        .map(|parent| fallback_data_dir(Path::new(parent), &data_dir))
        .collect();
    let _cleanup: Vec<RemoveOnDrop> = fallbacks.iter().cloned().map(RemoveOnDrop).collect();

    let migrate = || {
        command()
            .arg("migrate")
            .env("STOCKX_SYNC_DATA_DIR", &data_dir)
            .output()
            .unwrap()
    };
    let out = migrate();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("migration(s) applied"), "{stdout}");
    let used = fallbacks
        .iter()
        .find(|dir| dir.join("pgdata/PG_VERSION").exists())
        .unwrap_or_else(|| panic!("no cluster in {fallbacks:?}: {stderr}"));
    let notice: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cannot reach"))
        .collect();
    assert_eq!(notice.len(), 1, "one line says so: {stderr}");
    assert!(
        notice[0].contains(&data_dir.display().to_string())
            && notice[0].contains(&used.display().to_string()),
        "{stderr}"
    );
    assert!(!postmaster_running(used), "stopped on exit: {stderr}");

    // The same project finds the same cluster again.
    let out = migrate();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("up to date"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newcomer's path: `demo`, then `status` and `verify` on the same embedded cluster, with
/// no flags, see the demo's sales.
#[test]
fn demo_then_status_and_verify_look_at_the_same_database() {
    let dir = short_tempdir();
    let out = command()
        .arg("demo")
        .env("STOCKX_SYNC_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("1. Database stockx_sync on the embedded cluster"),
        "{first}"
    );
    assert_eq!(first.matches("stockx_sync ").count(), 1, "{first}");

    let out = command()
        .args(["status", "--json"])
        .env("STOCKX_SYNC_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let completed = status["queue"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["state"] == "completed")
        .map(|q| q["jobs"].as_i64().unwrap())
        .unwrap_or(0);
    assert!(completed >= 6, "{status}");

    let out = command()
        .arg("verify")
        .env("STOCKX_SYNC_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("02-L0QT6MRVSG"),
        "the demo's wrong profit: {stdout}"
    );
}
