//! The shipped n8n workflow (`deploy/n8n/notion-sale-sync.json`): its shape as n8n imports it,
//! and the request its HTTP node makes, built from the node's own method, URL path, credential
//! type and body expressions (evaluated on a Notion page as the trigger emits it), sent to the
//! real router with a real database behind it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::TestDb;
use crate::notion::{mount_database_with_data_source, mount_supplier, page_id, sale_page, DB};

fn workflow() -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/n8n/notion-sale-sync.json");
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).expect("the workflow is JSON")
}

fn nodes_by_name(workflow: &Value) -> BTreeMap<String, Value> {
    workflow["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| (n["name"].as_str().expect("name").to_string(), n.clone()))
        .collect()
}

/// The node `from`'s output `output` leads to.
fn next(workflow: &Value, from: &str, output: usize) -> Vec<String> {
    workflow["connections"][from]["main"][output]
        .as_array()
        .map(|targets| {
            targets
                .iter()
                .map(|t| t["node"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A parameter value as n8n computes it: plain text, or `={{ expression }}`. Only the
/// expressions this workflow uses are understood: `$json` paths with `.key`, `['key']` and
/// `[n]` (each also as `?.`), and `?? fallback`.
fn render(value: &str, item: &Value) -> Value {
    let Some(template) = value.strip_prefix('=') else {
        return Value::String(value.to_string());
    };
    let inner = template
        .trim()
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .unwrap_or_else(|| panic!("unsupported template {value}"));
    assert!(!inner.contains("{{"), "one expression per value: {value}");
    evaluate(inner.trim(), item)
}

fn evaluate(expression: &str, item: &Value) -> Value {
    let (primary, fallback) = match expression.split_once("??") {
        Some((p, f)) => (p.trim(), Some(f.trim())),
        None => (expression.trim(), None),
    };
    match lookup(primary, item) {
        Some(v) if !v.is_null() => v,
        _ => match fallback {
            Some(f) if f.starts_with('\'') || f.starts_with('"') => {
                Value::String(f[1..f.len() - 1].to_string())
            }
            Some(f) => evaluate(f, item),
            None => Value::Null,
        },
    }
}

fn lookup(path: &str, item: &Value) -> Option<Value> {
    let rest = path
        .strip_prefix("$json")
        .unwrap_or_else(|| panic!("unsupported expression {path}"));
    let chars: Vec<char> = rest.chars().collect();
    let mut current = item;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '?' && chars.get(i + 1) == Some(&'.') {
            i += 2;
            if chars.get(i) != Some(&'[') {
                i -= 1; // `?.key`: read the key below as after a `.`
            }
        }
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let key: String = chars[start..i].iter().collect();
                current = current.get(&key)?;
            }
            '[' => {
                let end = i + chars[i..].iter().position(|&c| c == ']').expect("]");
                let index: String = chars[i + 1..end].iter().collect();
                current = if index.starts_with('\'') || index.starts_with('"') {
                    current.get(&index[1..index.len() - 1])?
                } else {
                    current.get(index.parse::<usize>().expect("an index"))?
                };
                i = end + 1;
            }
            other => panic!("unsupported expression {path} at {other:?}"),
        }
    }
    Some(current.clone())
}

/// Whether the filter node lets `item` through.
fn passes(filter: &Value, item: &Value) -> bool {
    let conditions = &filter["parameters"]["conditions"];
    assert_eq!(conditions["combinator"], "and");
    conditions["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| {
            let left = render(c["leftValue"].as_str().unwrap(), item);
            let left = left.as_str().unwrap_or_default();
            match c["operator"]["operation"].as_str().unwrap() {
                "equals" => left == c["rightValue"].as_str().unwrap(),
                "notEmpty" => !left.is_empty(),
                other => panic!("unsupported filter operation {other}"),
            }
        })
}

#[test]
fn the_workflow_is_an_importable_n8n_export_wired_as_designed() {
    let workflow = workflow();
    let nodes = nodes_by_name(&workflow);
    let of_type = |t: &str| {
        nodes
            .values()
            .find(|n| n["type"] == t)
            .unwrap_or_else(|| panic!("no {t} node"))
            .clone()
    };
    let trigger = of_type("n8n-nodes-base.notionTrigger");
    let filter = of_type("n8n-nodes-base.filter");
    let http = of_type("n8n-nodes-base.httpRequest");
    let slack = of_type("n8n-nodes-base.slack");
    for node in nodes.values() {
        assert!(node["id"].is_string() && node["typeVersion"].is_number());
        assert_eq!(node["position"].as_array().map(Vec::len), Some(2));
    }
    let name = |n: &Value| n["name"].as_str().unwrap().to_string();
    assert_eq!(next(&workflow, &name(&trigger), 0), vec![name(&filter)]);
    assert_eq!(next(&workflow, &name(&filter), 0), vec![name(&http)]);
    // The HTTP node's second output is its error output, and it goes to Slack.
    assert_eq!(http["onError"], "continueErrorOutput");
    assert!(next(&workflow, &name(&http), 0).is_empty());
    assert_eq!(next(&workflow, &name(&http), 1), vec![name(&slack)]);
    assert_eq!(
        slack["parameters"]["channelId"]["value"], "#stockx-alerts",
        "{slack}"
    );
    let text = slack["parameters"]["text"].as_str().unwrap();
    assert!(
        text.contains("['Sale ID']") && text.contains("$json.error"),
        "{text}"
    );
    // The expressions below read raw Notion pages, not n8n's simplified ones.
    assert_eq!(trigger["parameters"]["simple"], false);
    assert!(trigger["credentials"]["notionApi"].is_object());
    assert!(slack["credentials"]["slackApi"].is_object());

    let stockx = sale_page(5, "2025-01-01T10:00:00.000Z", Some("StockX"));
    let goat = sale_page(6, "2025-01-01T10:00:00.000Z", Some("GOAT"));
    let no_platform = sale_page(7, "2025-01-01T10:00:00.000Z", None);
    let mut untitled = stockx.clone();
    untitled["properties"]["Sale ID"]["title"] = json!([]);
    assert!(passes(&filter, &stockx));
    assert!(!passes(&filter, &goat));
    assert!(!passes(&filter, &no_platform));
    assert!(
        !passes(&filter, &untitled),
        "a page without its Sale ID yet"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_node_s_request_syncs_the_sale_through_the_real_endpoint() {
    let workflow = workflow();
    let http = workflow["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == "n8n-nodes-base.httpRequest")
        .unwrap()
        .clone();
    let p = &http["parameters"];
    // The credential: n8n's Header Auth, created as the README says (Authorization: Bearer …).
    assert_eq!(p["authentication"], "genericCredentialType");
    assert_eq!(p["genericAuthType"], "httpHeaderAuth");
    assert!(http["credentials"]["httpHeaderAuth"]["name"].is_string());
    assert_eq!(p["sendBody"], true);
    assert_eq!(p["specifyBody"], "keypair");
    assert!(p["contentType"].is_null() || p["contentType"] == "json");

    // What the trigger emits for a new StockX sale, through the node's expressions.
    let page = sale_page(5, "2025-01-01T10:00:00.000Z", Some("StockX"));
    let body: serde_json::Map<String, Value> = p["bodyParameters"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_string(),
                render(b["value"].as_str().unwrap(), &page),
            )
        })
        .collect();
    assert_eq!(body["stockx_order_number"], "75000005-76000005");
    assert_eq!(body["notion_page_id"], page_id(5).as_str());

    let db = TestDb::new().await;
    let notion = MockServer::start().await;
    mount_database_with_data_source(&notion).await;
    mount_supplier(&notion, false).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/pages/{}", page_id(5))))
        .respond_with(ResponseTemplate::new(200).set_body_json(page.clone()))
        .mount(&notion)
        .await;
    let mut settings = stockx_sync::config::Settings::default();
    settings.notion.api_url = notion.uri().parse().unwrap();
    settings.notion.token = Some(secrecy::SecretString::from("ntn_test_token"));
    settings.notion.database_id = Some(DB.into());
    settings.http.api_token = Some(secrecy::SecretString::from("n8n-token"));
    let bridge = stockx_sync::http::notion::NotionBridge::new(db.pool.clone(), settings);
    let router = stockx_sync::http::router(
        stockx_sync::http::AppState {
            pool: db.pool.clone(),
            health: Default::default(),
            metrics: stockx_sync::http::metrics_handle(),
            poll_only: true,
        },
        Some(bridge),
    );
    let (addr, _) =
        stockx_sync::http::serve("127.0.0.1:0".parse().unwrap(), router, Default::default())
            .await
            .unwrap();

    let configured = url::Url::parse(p["url"].as_str().unwrap()).unwrap();
    let url = format!("http://{addr}{}", configured.path());
    let method: reqwest::Method = p["method"].as_str().unwrap().parse().unwrap();
    let client = reqwest::Client::new();
    let send = |authorization: Option<&str>| {
        let mut request = client
            .request(method.clone(), &url)
            .timeout(std::time::Duration::from_millis(
                p["options"]["timeout"].as_u64().unwrap(),
            ))
            .json(&body);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        request.send()
    };

    let refused = send(None).await.unwrap();
    assert_eq!(refused.status(), 401, "the credential is required");
    let answer = send(Some("Bearer n8n-token")).await.unwrap();
    let status = answer.status();
    let entry: Value = answer.json().await.unwrap();
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["outcome"], "created", "{entry}");
    assert_eq!(entry["trigger_type"], "webhook", "{entry}");
    let logged: Option<String> = sqlx::query_scalar(
        "SELECT notion_page_id FROM integration.notion_sale_sync_log
         WHERE stockx_order_number = '75000005-76000005'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(logged, Some(page_id(5)));
    assert_eq!(db.count("platforms.stockx_orders").await, 1);
}
