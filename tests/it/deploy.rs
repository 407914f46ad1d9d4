//! The deployment files, checked without a Docker engine: the compose file's shape, that every
//! setting it passes is one the program reads, that paths and ports agree; and that every
//! metric the dashboard and the alert rules query is one the worker exports.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml_ng::Value;
use stockx_sync::config::ENV_VARS;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn compose() -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(repo("docker-compose.yml")).unwrap()).unwrap()
}

/// Variables that belong to the images, not to stockx-sync.
fn image_variable(name: &str) -> bool {
    name.starts_with("POSTGRES_") || name.starts_with("GF_") || name.starts_with("GRAFANA_DB_")
}

fn env_example() -> Vec<String> {
    std::fs::read_to_string(repo(".env.example"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| l.split('=').next().unwrap().trim().to_string())
        .collect()
}

#[test]
fn every_service_has_an_image_or_a_build_and_its_mounts_exist() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    for name in [
        "postgres",
        "migrate",
        "worker",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(services.contains_key(name), "service {name}");
    }
    for (name, service) in services {
        let name = name.as_str().unwrap();
        match (&service["image"], &service["build"]) {
            (Value::String(image), _) => assert!(image.contains(':'), "{name}: pin a tag: {image}"),
            (_, Value::String(context)) => {
                assert!(
                    repo(context).join("Dockerfile").is_file(),
                    "{name}: no Dockerfile in {context}"
                )
            }
            _ => panic!("{name} has neither image nor build"),
        }
        if let Some(volumes) = service["volumes"].as_sequence() {
            for volume in volumes {
                let host = volume.as_str().unwrap().split(':').next().unwrap();
                if host.starts_with("./") {
                    assert!(
                        repo(host).exists(),
                        "{name} mounts {host}, which does not exist"
                    );
                }
            }
        }
    }
    assert_eq!(services["migrate"]["command"][0], "migrate");
    assert_eq!(services["worker"]["command"][0], "worker");
    let depends = &services["worker"]["depends_on"];
    assert_eq!(depends["postgres"]["condition"], "service_healthy");
    assert_eq!(
        depends["migrate"]["condition"],
        "service_completed_successfully"
    );
    assert_eq!(
        services["migrate"]["depends_on"]["postgres"]["condition"],
        "service_healthy"
    );
    assert!(services["postgres"]["healthcheck"]["test"].is_sequence());
}

#[test]
fn every_variable_is_one_the_program_reads_and_each_reference_is_defined() {
    let known: BTreeSet<&str> = ENV_VARS.iter().map(|(name, _)| *name).collect();
    let compose = compose();
    for (name, service) in compose["services"].as_mapping().unwrap() {
        let is_ours = service["build"].is_string();
        if let Some(env) = service["environment"].as_mapping() {
            for key in env.keys() {
                let key = key.as_str().unwrap();
                assert!(
                    known.contains(key) || (!is_ours && image_variable(key)),
                    "{}: {key} is not a setting stockx-sync reads",
                    name.as_str().unwrap()
                );
            }
        }
    }
    let defined = env_example();
    for name in &defined {
        assert!(
            known.contains(name.as_str()) || image_variable(name),
            ".env.example: {name} is read by nothing"
        );
    }
    let text = std::fs::read_to_string(repo("docker-compose.yml")).unwrap();
    let example = std::fs::read_to_string(repo(".env.example")).unwrap();
    for reference in text.split("${").skip(1) {
        let reference = reference.split('}').next().unwrap();
        match reference.split_once(":-") {
            // With a default it may stay unset, but .env.example must mention it.
            Some((name, _)) => assert!(
                example.contains(name),
                "docker-compose.yml uses ${{{reference}}}; .env.example does not mention {name}"
            ),
            None => assert!(
                defined.iter().any(|d| d == reference),
                "docker-compose.yml uses ${{{reference}}}, not in .env.example"
            ),
        }
    }
    let secrets = [
        "STOCKX_CLIENT_SECRET",
        "STOCKX_REFRESH_TOKEN",
        "STOCKX_API_KEY",
        "NOTION_TOKEN",
        "POSTGRES_PASSWORD",
        "STOCKX_SYNC_API_TOKEN",
    ];
    for line in std::fs::read_to_string(repo(".env.example"))
        .unwrap()
        .lines()
    {
        if let Some((key, value)) = line.split_once('=') {
            if secrets.contains(&key) {
                assert!(
                    value.trim().is_empty(),
                    ".env.example must not hold a value for {key}"
                );
            }
        }
    }
}

#[test]
fn the_worker_port_agrees_everywhere() {
    let compose = compose();
    let worker = &compose["services"]["worker"];
    let addr = worker["environment"]["STOCKX_SYNC_HTTP_ADDR"]
        .as_str()
        .unwrap();
    let port = addr.rsplit(':').next().unwrap();
    assert_eq!(
        worker["ports"][0].as_str().unwrap(),
        format!("{LOOPBACK_UNLESS_OPTED_IN}:{port}:{port}")
    );
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert!(dockerfile.contains(&format!("EXPOSE {port}")));
    assert!(dockerfile.contains(&format!("127.0.0.1:{port}/healthz")));
    let prometheus = std::fs::read_to_string(repo("deploy/prometheus/prometheus.yml")).unwrap();
    assert!(prometheus.contains(&format!("worker:{port}")));
}

/// Published ports bind to loopback unless `.env` sets `STOCKX_SYNC_BIND`.
const LOOPBACK_UNLESS_OPTED_IN: &str = "${STOCKX_SYNC_BIND:-127.0.0.1}";

#[test]
fn every_published_port_is_on_loopback_unless_the_user_opts_in() {
    let compose = compose();
    let mut published = 0;
    for (name, service) in compose["services"].as_mapping().unwrap() {
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().unwrap();
            assert!(
                port.starts_with(&format!("{LOOPBACK_UNLESS_OPTED_IN}:")),
                "{}: {port} is published on every interface",
                name.as_str().unwrap()
            );
            published += 1;
        }
    }
    assert!(published >= 5, "{published} ports");
}

#[test]
fn prometheus_sends_alerts_to_the_alertmanager_service_which_routes_by_severity() {
    let compose = compose();
    let alertmanager = &compose["services"]["alertmanager"];
    assert_eq!(
        alertmanager["volumes"][0].as_str().unwrap(),
        "./deploy/alertmanager:/etc/alertmanager:ro"
    );
    let published = alertmanager["ports"][0].as_str().unwrap();
    let port = published.rsplit(':').next().unwrap();
    let prometheus: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo("deploy/prometheus/prometheus.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0],
        format!("alertmanager:{port}").as_str()
    );

    let config: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo("deploy/alertmanager/alertmanager.yml")).unwrap(),
    )
    .unwrap();
    // Secrets come from files under the mounted directory, never from the file itself.
    for key in ["slack_api_url_file", "smtp_auth_password_file"] {
        let path = config["global"][key].as_str().unwrap();
        assert!(
            path.starts_with("/etc/alertmanager/secrets/"),
            "{key}: {path}"
        );
    }
    assert!(repo("deploy/alertmanager/secrets").is_dir());
    let text = std::fs::read_to_string(repo("deploy/alertmanager/alertmanager.yml")).unwrap();
    assert!(
        !text.contains("hooks.slack.com"),
        "no webhook URL in the file"
    );
    let receivers = config["receivers"].as_sequence().unwrap();
    let receiver = |name: &str| {
        receivers
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no receiver {name}"))
    };
    assert_eq!(config["route"]["receiver"], "slack");
    assert_eq!(
        receiver("slack")["slack_configs"][0]["channel"],
        "#stockx-alerts"
    );
    let critical = config["route"]["routes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["matchers"][0] == "severity=\"critical\"")
        .expect("a route for critical alerts");
    let critical = receiver(critical["receiver"].as_str().unwrap());
    assert!(critical["email_configs"][0]["to"].is_string());
    assert_eq!(critical["slack_configs"][0]["channel"], "#stockx-alerts");

    // Every rule has a severity the routes know.
    let rules: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
            assert!(
                ["warning", "critical"].contains(&severity),
                "{:?}: severity {severity:?}",
                rule["alert"]
            );
        }
    }
}

/// Metric names in a PromQL expression: identifiers that are not functions, keywords, label
/// names inside `{}` or `by (...)`, and with histogram suffixes removed.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    const WORDS: &[&str] = &[
        "sum",
        "rate",
        "increase",
        "histogram_quantile",
        "by",
        "without",
        "max",
        "min",
        "avg",
        "count",
        "and",
        "or",
        "unless",
        "absent",
        "vector",
        "le",
        "on",
        "ignoring",
        "irate",
        "abs",
        "time",
    ];
    let mut names = BTreeSet::new();
    let mut depth_braces = 0;
    let mut paren_after_by = false;
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            depth_braces += 1;
        } else if c == '}' {
            depth_braces -= 1;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
        } else if c == ')' {
            paren_after_by = false;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word == "by" || word == "without" {
                paren_after_by = true;
            } else if depth_braces == 0 && !paren_after_by && !WORDS.contains(&word.as_str()) {
                let base = word
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count")
                    .to_string();
                names.insert(base);
            }
            continue;
        }
        i += 1;
    }
    names
}

/// Every metric name the dashboard and the alert rules query.
pub fn queried_metric_names() -> BTreeSet<String> {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("grafana/dashboards/stockx-sync.json")).unwrap(),
    )
    .unwrap();
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            if let Some(expr) = target["expr"].as_str() {
                names.extend(metric_names(expr));
            }
        }
    }
    let rules: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            names.extend(metric_names(rule["expr"].as_str().unwrap()));
        }
    }
    names
}

#[test]
fn metric_names_are_extracted_from_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, kind) (rate(stockx_sync_job_lag_seconds_bucket{api="stockx",status=~"5..|error"}[5m]))) or vector(0)"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["stockx_sync_job_lag_seconds"]
    );
}

#[test]
fn dashboard_and_alerts_query_only_metrics_of_the_contract() {
    let exported: BTreeSet<&str> = [
        stockx_sync::metrics::JOBS_TOTAL,
        stockx_sync::metrics::JOB_DURATION_SECONDS,
        stockx_sync::metrics::JOB_LAG_SECONDS,
        stockx_sync::metrics::QUEUE_JOBS,
        stockx_sync::metrics::API_REQUESTS_TOTAL,
        stockx_sync::metrics::API_REQUEST_DURATION_SECONDS,
        stockx_sync::metrics::API_THROTTLED_TOTAL,
        stockx_sync::metrics::VALIDATION_WARNINGS_TOTAL,
        stockx_sync::metrics::BACKFILL_ROWS_TOTAL,
        stockx_sync::metrics::LISTENER_RECONNECTS_TOTAL,
        stockx_sync::metrics::QUEUE_OLDEST_AVAILABLE_AGE_SECONDS,
        stockx_sync::metrics::ORDERS_PENDING_OVER_24H,
        stockx_sync::metrics::LISTENER_UP,
        stockx_sync::metrics::SCHEDULED_RUNS_TOTAL,
        stockx_sync::metrics::SCHEDULED_LAST_SUCCESS_TIMESTAMP_SECONDS,
        stockx_sync::metrics::SCHEDULED_CONSECUTIVE_FAILURES,
        stockx_sync::metrics::DEAD_STOCK_ITEMS,
        stockx_sync::metrics::MARKET_REFRESH_PRODUCTS_TOTAL,
    ]
    .into_iter()
    .collect();
    let queried = queried_metric_names();
    assert!(queried.len() >= 12, "{queried:?}");
    for name in &queried {
        assert!(
            name == "up" || exported.contains(name.as_str()),
            "{name} is queried but not exported"
        );
    }
}

#[test]
fn promtool_and_amtool_accept_the_configs_and_the_rules_pass_their_unit_tests() {
    // check.sh skips (with a line saying so) a tool that is missing, except in CI.
    if which("promtool").is_none() && which("amtool").is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must install promtool and amtool"
        );
        eprintln!(
            "SKIPPED: promtool and amtool not found (apt-get install prometheus prometheus-alertmanager)"
        );
        return;
    }
    let out = std::process::Command::new("bash")
        .arg(repo("deploy/check.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn which(binary: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}
