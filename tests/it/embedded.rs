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
