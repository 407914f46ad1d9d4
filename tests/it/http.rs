//! The HTTP listener facing clients that are not Prometheus: authentication that an empty
//! setting cannot switch off, timeouts and body limits against slow or oversized requests,
//! field errors that name the field, one Notion rate limit for every request, and a batch
//! sync that stops with the worker. Raw TCP where the client's misbehaviour is the point.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stockx_sync::config::Settings;
use stockx_sync::http::notion::NotionBridge;
use stockx_sync::http::{self, AppState, ServeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::TestDb;
use crate::notion::{
    list, mount_database_with_data_source, mount_supplier, page_id, sale_page, DB, DS_QUERY,
};

const TOKEN: &str = "s3cret";

fn sync_url(addr: SocketAddr) -> String {
    format!("http://{addr}/api/v1/integration/notion-sale/sync")
}

fn batch_url(addr: SocketAddr) -> String {
    format!("http://{addr}/api/v1/integration/notion-sale/batch-sync?hours=2")
}

fn settings_for(notion: &MockServer, token: Option<&str>) -> Settings {
    let mut settings = Settings::default();
    settings.notion.api_url = notion.uri().parse().unwrap();
    settings.notion.token = Some(secrecy::SecretString::from("ntn_test_token"));
    settings.notion.database_id = Some(DB.into());
    settings.http.api_token = token.map(secrecy::SecretString::from);
    settings
}

/// The worker's router with the Notion endpoints, served with `options`.
async fn serve(
    db: &TestDb,
    settings: Settings,
    options: ServeOptions,
) -> (SocketAddr, Arc<NotionBridge>, CancellationToken) {
    let bridge = NotionBridge::new(db.pool.clone(), settings);
    let app = http::router(
        AppState {
            pool: db.pool.clone(),
            health: Default::default(),
            metrics: http::metrics_handle(),
            poll_only: true,
        },
        Some(bridge.clone()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    http::serve_listener_with(listener, app, stop.clone(), options);
    (addr, bridge, stop)
}

/// A local Notion serving sale pages 1..=50 by ID, the database and the supplier.
async fn notion_with_sale_pages() -> MockServer {
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    mount_supplier(&server, false).await;
    for n in 1..=50 {
        Mock::given(method("GET"))
            .and(path(format!("/v1/pages/{}", page_id(n))))
            .respond_with(ResponseTemplate::new(200).set_body_json(sale_page(
                n,
                "2025-01-01T10:00:00.000Z",
                Some("StockX"),
            )))
            .mount(&server)
            .await;
    }
    server
}

#[tokio::test]
async fn an_empty_token_disables_the_post_endpoints_and_any_bearer_case_works() {
    let db = TestDb::new().await;
    let notion = notion_with_sale_pages().await;
    let client = reqwest::Client::new();
    for empty in ["", "   "] {
        let (addr, _, _) = serve(
            &db,
            settings_for(&notion, Some(empty)),
            ServeOptions::default(),
        )
        .await;
        let r = client
            .post(sync_url(addr))
            .json(
                &json!({"stockx_order_number": "75000005-76000005", "notion_page_id": page_id(5)}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            503,
            "token {empty:?}: {}",
            r.text().await.unwrap()
        );
        let r = client.post(batch_url(addr)).send().await.unwrap();
        assert_eq!(r.status(), 503, "batch with token {empty:?}");
    }
    assert_eq!(db.count("platforms.stockx_orders").await, 0);

    let (addr, _, _) = serve(
        &db,
        settings_for(&notion, Some(TOKEN)),
        ServeOptions::default(),
    )
    .await;
    for (n, scheme) in [(5, "bearer"), (6, "BEARER")] {
        let r = client
            .post(sync_url(addr))
            .header("Authorization", format!("{scheme} {TOKEN}"))
            .json(&json!({"stockx_order_number": format!("7500{n:04}-7600{n:04}"), "notion_page_id": page_id(n)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}: {}", r.text().await.unwrap());
    }
    let r = client
        .post(sync_url(addr))
        .header("Authorization", format!("Basic {TOKEN}"))
        .json(&json!({"stockx_order_number": "75000007-76000007"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// Reads until the server closes the connection (or `deadline`); true when it closed.
async fn closed_by_server(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn slow_header_and_idle_connections_are_closed() {
    let db = TestDb::new().await;
    let notion = notion_with_sale_pages().await;
    let options = ServeOptions {
        read_timeout: Duration::from_secs(1),
    };
    let (addr, _, _) = serve(&db, settings_for(&notion, Some(TOKEN)), options).await;
    // Five clients trickling a header a byte every 200 ms, as a slowloris does, and one that
    // connects and says nothing.
    let mut slow = Vec::new();
    for _ in 0..5 {
        let stream = TcpStream::connect(addr).await.unwrap();
        slow.push(tokio::spawn(async move {
            let mut stream = stream;
            let deadline = Instant::now() + Duration::from_secs(15);
            let header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            for byte in header.iter() {
                if Instant::now() > deadline || stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
                let mut buf = [0u8; 256];
                match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => return true,
                    _ => {}
                }
            }
            closed_by_server(&mut stream, deadline).await
        }));
    }
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_by_server(&mut idle, Instant::now() + Duration::from_secs(15)).await,
        "an idle connection stays open"
    );
    for task in slow {
        assert!(task.await.unwrap(), "a slow-header connection stays open");
    }
    // A kept-alive connection is closed once idle, too.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 256];
    let n = kept.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_by_server(&mut kept, Instant::now() + Duration::from_secs(15)).await);
}

#[tokio::test]
async fn a_large_body_is_refused_before_it_is_read() {
    let db = TestDb::new().await;
    let notion = notion_with_sale_pages().await;
    let (addr, _, _) = serve(
        &db,
        settings_for(&notion, Some(TOKEN)),
        ServeOptions::default(),
    )
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/integration/notion-sale/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{{\"stockx_order_number\": \""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The rest of the 2 MB never comes: the answer must not wait for it.
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("no answer before the body was sent")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Chunked, so without a declared length: cut off at the limit.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let chunk = format!(
        "{{\"stockx_order_number\": \"1\", \"padding\": \"{}\"}}",
        "x".repeat(20_000)
    );
    let request = format!(
        "POST /api/v1/integration/notion-sale/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn bad_fields_are_named_and_the_database_text_never_shown() {
    let db = TestDb::new().await;
    let notion = notion_with_sale_pages().await;
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![], None)))
        .mount(&notion)
        .await;
    let (addr, _, _) = serve(
        &db,
        settings_for(&notion, Some(TOKEN)),
        ServeOptions::default(),
    )
    .await;
    let client = reqwest::Client::new();
    let cases = [
        (
            json!({"stockx_order_number": "7500\u{0}0005"}),
            "stockx_order_number",
        ),
        (
            json!({"stockx_order_number": "1".repeat(101)}),
            "stockx_order_number",
        ),
        (
            json!({"stockx_order_number": "75000005-76000005", "notion_page_id": "../users/me?x=1"}),
            "notion_page_id",
        ),
        (
            json!({"stockx_order_number": "75000005-76000005", "notion_page_id": "../../v1/users/me"}),
            "notion_page_id",
        ),
    ];
    for (body, field) in cases {
        let r = client
            .post(sync_url(addr))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(
            status == 400 || status == 422,
            "{status} for {body}: {text}"
        );
        assert!(text.contains(field), "{text}");
        for database_words in [
            "database",
            "PostgreSQL",
            "violates",
            "byte sequence",
            "value too long",
        ] {
            assert!(!text.contains(database_words), "{text}");
        }
    }
    let requests = notion.received_requests().await.unwrap();
    assert!(
        requests.is_empty(),
        "nothing reaches Notion from a refused body: {:?}",
        requests
            .iter()
            .map(|r| r.url.path().to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(db.count("integration.notion_sale_sync_log").await, 0);
}

#[tokio::test]
async fn the_page_of_another_order_is_refused_not_imported() {
    let db = TestDb::new().await;
    let notion = notion_with_sale_pages().await;
    let (addr, _, _) = serve(
        &db,
        settings_for(&notion, Some(TOKEN)),
        ServeOptions::default(),
    )
    .await;
    // Page 5 is order 75000005-76000005.
    let r = reqwest::Client::new()
        .post(sync_url(addr))
        .bearer_auth(TOKEN)
        .json(&json!({"stockx_order_number": "75000001-76000001", "notion_page_id": page_id(5)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("75000001-76000001") && message.contains("75000005-76000005"),
        "{message}"
    );
    assert_eq!(db.count("platforms.stockx_orders").await, 0);
    assert_eq!(db.count("integration.notion_sale_sync_log").await, 0);
}

/// Notion's limit as a server enforces it: at most `limit` requests per sliding second, else
/// 429 `rate_limited` with `Retry-After: 1`. Serves sale page N at `/v1/pages/<page_id(N)>`.
struct RateLimitedPages {
    limit: usize,
    recent: Mutex<VecDeque<Instant>>,
    refused: Arc<Mutex<u32>>,
}

impl Respond for RateLimitedPages {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            recent.pop_front();
        }
        if recent.len() >= self.limit {
            *self.refused.lock().unwrap() += 1;
            return ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"object": "error", "status": 429, "code": "rate_limited",
                                      "message": "You have been rate limited. Please try again in a few minutes."}));
        }
        recent.push_back(now);
        let n: u32 = request
            .url
            .path()
            .rsplit('-')
            .next()
            .and_then(|tail| tail.parse().ok())
            .unwrap_or(0);
        ResponseTemplate::new(200).set_body_json(sale_page(
            n,
            "2025-01-01T10:00:00.000Z",
            Some("StockX"),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_syncs_share_one_notion_limit_and_all_succeed() {
    let db = TestDb::new().await;
    let notion = MockServer::start().await;
    mount_database_with_data_source(&notion).await;
    mount_supplier(&notion, false).await;
    let refused = Arc::new(Mutex::new(0));
    Mock::given(method("GET"))
        .and(path_regex(r"^/v1/pages/00000000-0000-4000-8000-\d{12}$"))
        .respond_with(RateLimitedPages {
            limit: 3,
            recent: Mutex::new(VecDeque::new()),
            refused: refused.clone(),
        })
        .mount(&notion)
        .await;
    let (addr, _, _) = serve(
        &db,
        settings_for(&notion, Some(TOKEN)),
        ServeOptions::default(),
    )
    .await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let calls = (1..=50u32).map(|n| {
        let client = client.clone();
        async move {
            let r = client
                .post(sync_url(addr))
                .bearer_auth(TOKEN)
                .json(
                    &json!({"stockx_order_number": format!("7500{n:04}-7600{n:04}"),
                               "notion_page_id": page_id(n)}),
                )
                .send()
                .await
                .unwrap();
            (n, r.status(), r.text().await.unwrap())
        }
    });
    let results = futures::future::join_all(calls).await;
    let failed: Vec<_> = results.iter().filter(|(_, s, _)| *s != 200).collect();
    println!(
        "50 concurrent /sync against a 3 req/s Notion: {} failed, {} answered 429, {:.1} s",
        failed.len(),
        refused.lock().unwrap(),
        started.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(db.count("platforms.stockx_orders").await, 50);
}

#[tokio::test]
async fn a_batch_sync_stops_with_the_worker() {
    let db = TestDb::new().await;
    let notion = notion_with_sale_pages().await;
    // A read that takes far longer than the test.
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(list(vec![], None))
                .set_delay(Duration::from_secs(600)),
        )
        .mount(&notion)
        .await;
    let (addr, bridge, _) = serve(
        &db,
        settings_for(&notion, Some(TOKEN)),
        ServeOptions::default(),
    )
    .await;
    let client = reqwest::Client::new();
    let r = client
        .post(batch_url(addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !notion
        .received_requests()
        .await
        .unwrap()
        .iter()
        .any(|r| r.url.path() == DS_QUERY)
    {
        assert!(Instant::now() < deadline, "the batch never queried Notion");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(bridge.batch_running());
    tokio::time::timeout(
        Duration::from_secs(20),
        bridge.shutdown(Duration::from_secs(5)),
    )
    .await
    .expect("shutdown waits for the batch, within its grace");
    assert!(!bridge.batch_running(), "the batch ended with the worker");
    let r = client
        .post(batch_url(addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "no new batch while stopping");
}
