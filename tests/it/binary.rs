//! The `worker` and `sync-order` commands as an operator runs them: a real process with the
//! settings in its environment, the StockX sandbox as StockX, scraped over HTTP, stopped with
//! SIGTERM.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use stockx_sync::sandbox::{self, SandboxHandle, SandboxOptions};

use crate::helpers::{command, Sale, TestDb};

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn with_sandbox(cmd: &mut std::process::Command, sandbox: &SandboxHandle) {
    let o = SandboxOptions::default();
    cmd.env("STOCKX_API_URL", sandbox.base_url())
        .env("STOCKX_AUTH_URL", sandbox.auth_url())
        .env("STOCKX_API_KEY", o.api_key)
        .env("STOCKX_CLIENT_ID", o.client_id)
        .env("STOCKX_CLIENT_SECRET", o.client_secret)
        .env("STOCKX_REFRESH_TOKEN", o.refresh_token)
        .env("STOCKX_REQUESTS_PER_SECOND", "50");
}

pub(crate) struct Killer(pub(crate) Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_process_enriches_exports_metrics_and_stops_on_sigterm() {
    let db = TestDb::new().await;
    let sandbox = sandbox::spawn("127.0.0.1:0".parse().unwrap(), SandboxOptions::default())
        .await
        .unwrap();
    let port = free_port();
    let mut cmd = command();
    cmd.arg("worker")
        .env("DATABASE_URL", db.url())
        .env("STOCKX_SYNC_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("STOCKX_SYNC_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    with_sandbox(&mut cmd, &sandbox);
    let mut worker = Killer(cmd.spawn().unwrap());

    let mut sale = Sale::new("323314425-323214184");
    sale.net_proceeds = "119.60";
    sale.insert(&db.pool).await.unwrap();

    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        if let Some((200, body)) = get(&metrics_url).await {
            if body.contains(r#"stockx_sync_jobs_total{kind="order",outcome="enriched"} 1"#)
                && body.contains(r#"stockx_sync_jobs_total{kind="inventory",outcome="enriched"} 1"#)
            {
                break body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the worker never reported the jobs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for name in [
        "stockx_sync_job_duration_seconds_bucket",
        "stockx_sync_job_lag_seconds_bucket",
        r#"stockx_sync_api_requests_total{api="stockx",endpoint="/selling/orders/{orderNumber}",status="200"}"#,
        "stockx_sync_api_request_duration_seconds_bucket",
        "stockx_sync_listener_up 1",
        // Outcomes start at zero, so that rates and alerts see them before the first event.
        r#"stockx_sync_jobs_total{kind="order",outcome="superseded"} 0"#,
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    assert!(!metrics.contains("323314425"), "no IDs as label values");
    // Every metric the dashboard and the alert rules query is in a real scrape.
    let scraped: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .map(|n| {
            n.trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count")
        })
        .collect();
    for name in crate::deploy::queried_metric_names() {
        assert!(
            name == "up" || scraped.contains(name.as_str()),
            "{name} is queried but not in the scrape"
        );
    }
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/healthz"))
            .await
            .unwrap()
            .0,
        200
    );
    let (status, body) = get(&format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");

    let status: String =
        sqlx::query_scalar("SELECT enrichment_status FROM platforms.stockx_orders")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "enriched");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let stopping = Instant::now();
    let exit = loop {
        if let Some(status) = worker.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit 0 after SIGTERM: {exit:?}");
    let mut logs = String::new();
    use std::io::Read;
    worker
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let job_line = logs
        .lines()
        .find(|l| l.contains("job done"))
        .expect("a log line per job");
    let parsed: serde_json::Value = serde_json::from_str(job_line).expect("JSON logs");
    assert!(
        parsed.to_string().contains("\"outcome\":\"enriched\""),
        "{job_line}"
    );
    assert!(!logs.contains("sandbox-secret") && !logs.contains("sandbox-refresh-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_order_enriches_one_order_in_the_foreground() {
    let db = TestDb::new().await;
    let sandbox = sandbox::spawn("127.0.0.1:0".parse().unwrap(), SandboxOptions::default())
        .await
        .unwrap();
    let mut sale = Sale::new("02-L0QT6MRVSG");
    sale.sku = "DZ5485-612";
    sale.size = "11";
    sale.net_proceeds = "240.00";
    sale.insert(&db.pool).await.unwrap();

    let mut cmd = command();
    cmd.args(["sync-order", "02-L0QT6MRVSG"])
        .env("DATABASE_URL", db.url());
    with_sandbox(&mut cmd, &sandbox);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("order 02-L0QT6MRVSG: enriched"), "{stdout}");
    assert!(stdout.contains("payout 252.21"), "{stdout}");
    assert!(stdout.contains("payout_mismatch"), "{stdout}");

    let mut cmd = command();
    cmd.args(["sync-order", "NO-SUCH-ORDER"])
        .env("DATABASE_URL", db.url());
    with_sandbox(&mut cmd, &sandbox);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no such order"));
}

/// A real Prometheus (Debian's `prometheus` package) scraping a real worker on loopback ports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_worker_and_sees_the_jobs() {
    let Some(prometheus) = crate::deploy::which("prometheus") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must install Debian's prometheus package"
        );
        eprintln!("SKIPPED: the prometheus binary is not installed (apt-get install prometheus)");
        return;
    };
    let db = TestDb::new().await;
    let sandbox = sandbox::spawn("127.0.0.1:0".parse().unwrap(), SandboxOptions::default())
        .await
        .unwrap();
    let worker_port = free_port();
    let mut cmd = command();
    cmd.arg("worker")
        .env("DATABASE_URL", db.url())
        .env("STOCKX_SYNC_HTTP_ADDR", format!("127.0.0.1:{worker_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    with_sandbox(&mut cmd, &sandbox);
    let _worker = Killer(cmd.spawn().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: stockx-sync\n    static_configs:\n      - targets: ['127.0.0.1:{worker_port}']\n"
        ),
    )
    .unwrap();
    let prom_port = free_port();
    let _prometheus = Killer(
        std::process::Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let mut sale = Sale::new("323314425-323214184");
    sale.net_proceeds = "119.60";
    sale.insert(&db.pool).await.unwrap();

    let query = format!(
        "http://127.0.0.1:{prom_port}/api/v1/query?query=sum(stockx_sync_jobs_total%7Boutcome%3D%22enriched%22%7D)"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, body)) = get(&query).await {
            let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
            let value = parsed["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok());
            if value == Some(2.0) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw the two enriched jobs"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let up =
        format!("http://127.0.0.1:{prom_port}/api/v1/query?query=up%7Bjob%3D%22stockx-sync%22%7D");
    let (_, body) = get(&up).await.unwrap();
    assert!(
        body.contains(r#""value":["#) && body.contains(r#""1"]"#),
        "{body}"
    );
}
