//! Alerts reach people: Debian's `prometheus` scrapes a real worker and evaluates the shipped
//! rules, Debian's `prometheus-alertmanager` routes what fires with the shipped configuration
//! and templates, and a local HTTP server in Slack's place receives the incoming-webhook POST.
//!
//! Only timings (rule `for`, scrape, evaluation and grouping intervals) and addresses (the
//! worker, the webhook, an SMTP port nobody answers on) differ from the files in `deploy/`.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

use crate::binary::{free_port, Killer};
use crate::deploy::which;
use crate::helpers::{command, Sale, TestDb};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read_yaml(path: &str) -> Yaml {
    serde_yaml_ng::from_str(&std::fs::read_to_string(repo(path)).unwrap()).unwrap()
}

fn write_yaml(path: &Path, value: &Yaml) {
    std::fs::write(path, serde_yaml_ng::to_string(value).unwrap()).unwrap();
}

fn set(map: &mut Yaml, key: &str, value: impl Into<Yaml>) {
    map.as_mapping_mut()
        .unwrap()
        .insert(Yaml::from(key), value.into());
}

fn remove(map: &mut Yaml, key: &str) {
    map.as_mapping_mut().unwrap().remove(key);
}

/// Records the bodies POSTed to `/slack`, answering as Slack does.
async fn slack_receiver() -> (String, Arc<Mutex<Vec<Json>>>) {
    let received: Arc<Mutex<Vec<Json>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/slack",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let parsed = serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&body).into()));
                sink.lock().unwrap().push(parsed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/slack", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_rule_reaches_slack_through_a_real_alertmanager() {
    let (Some(prometheus), Some(alertmanager)) = (
        which("prometheus"),
        which("prometheus-alertmanager").or_else(|| which("alertmanager")),
    ) else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must install Debian's prometheus and prometheus-alertmanager packages"
        );
        eprintln!(
            "SKIPPED: prometheus or prometheus-alertmanager is not installed (apt-get install prometheus prometheus-alertmanager)"
        );
        return;
    };
    let db = TestDb::new().await;
    // 51 sales recorded a day ago and still pending: without StockX credentials the worker
    // only validates them, and `stockx_sync_orders_pending_over_24h` reads 51.
    for i in 0..51 {
        Sale::new(&format!("ALERT-{i:03}"))
            .insert(&db.pool)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE platforms.stockx_orders SET created_at = now() - interval '25 hours'")
        .execute(&db.pool)
        .await
        .unwrap();

    let worker_port = free_port();
    let mut cmd = command();
    cmd.arg("worker")
        .env("DATABASE_URL", db.url())
        .env("STOCKX_SYNC_HTTP_ADDR", format!("127.0.0.1:{worker_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _worker = Killer(cmd.spawn().unwrap());

    let (webhook, received) = slack_receiver().await;
    let dir = tempfile::tempdir().unwrap();

    // The shipped Alertmanager configuration: webhook URL and SMTP server of the test, groups
    // sent after a second instead of half a minute.
    let mut am_config = read_yaml("deploy/alertmanager/alertmanager.yml");
    let global = &mut am_config["global"];
    remove(global, "slack_api_url_file");
    set(global, "slack_api_url", webhook.as_str());
    remove(global, "smtp_auth_password_file");
    remove(global, "smtp_auth_username");
    set(
        global,
        "smtp_smarthost",
        format!("127.0.0.1:{}", free_port()).as_str(),
    );
    set(global, "smtp_require_tls", false);
    let templates = repo("deploy/alertmanager/templates/*.tmpl");
    set(
        &mut am_config,
        "templates",
        Yaml::Sequence(vec![Yaml::from(templates.to_str().unwrap())]),
    );
    let route = &mut am_config["route"];
    set(route, "group_wait", "1s");
    set(route, "group_interval", "1s");
    let am_config_path = dir.path().join("alertmanager.yml");
    write_yaml(&am_config_path, &am_config);
    let am_port = free_port();
    let _alertmanager = Killer(
        std::process::Command::new(alertmanager)
            .arg(format!("--config.file={}", am_config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            // No high-availability gossip port.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // The shipped rules, each firing at its first evaluation instead of after minutes.
    let mut rules = read_yaml("deploy/prometheus/alerts.yml");
    for group in rules["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            remove(rule, "for");
        }
    }
    write_yaml(&dir.path().join("alerts.yml"), &rules);
    let mut prom_config = read_yaml("deploy/prometheus/prometheus.yml");
    set(&mut prom_config["global"], "scrape_interval", "1s");
    set(&mut prom_config["global"], "evaluation_interval", "1s");
    set(
        &mut prom_config["scrape_configs"][0]["static_configs"][0],
        "targets",
        Yaml::Sequence(vec![Yaml::from(format!("127.0.0.1:{worker_port}"))]),
    );
    set(
        &mut prom_config["alerting"]["alertmanagers"][0]["static_configs"][0],
        "targets",
        Yaml::Sequence(vec![Yaml::from(format!("127.0.0.1:{am_port}"))]),
    );
    let prom_config_path = dir.path().join("prometheus.yml");
    write_yaml(&prom_config_path, &prom_config);
    let _prometheus = Killer(
        std::process::Command::new(prometheus)
            .arg(format!("--config.file={}", prom_config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    let message = loop {
        let found = received
            .lock()
            .unwrap()
            .iter()
            .find(|m| m.to_string().contains("StockxSalesPendingOver24h"))
            .cloned();
        if let Some(message) = found {
            break message;
        }
        assert!(
            Instant::now() < deadline,
            "no Slack message for StockxSalesPendingOver24h; received: {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Slack's incoming-webhook format, with the figure that fired the rule.
    assert_eq!(message["channel"], "#stockx-alerts", "{message}");
    let attachment = &message["attachments"][0];
    let title = attachment["title"].as_str().unwrap_or_default();
    assert!(
        title.contains("[FIRING: 1] stockx-sync StockxSalesPendingOver24h (critical)"),
        "{message}"
    );
    let text = attachment["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("51 sales have waited over 24 h for enrichment"),
        "{message}"
    );
    assert!(text.contains("stockx-sync verify"), "{message}");
    assert_eq!(attachment["color"], "danger", "{message}");
}
