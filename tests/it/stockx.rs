//! The StockX client against answers shaped exactly like StockX's (field names from its
//! published OpenAPI description, values from real products): women's and youth size charts,
//! multi-part style IDs, the looser shapes the schema allows, and bot-protection block pages.
//! wiremock serves the answers; the real client, worker and database do the rest.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stockx_sync::app::App;
use stockx_sync::config::Settings;
use stockx_sync::stockx::{ClientConfig, StockxClient, StockxError};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::enrich::wait_for_idle_queue;
use crate::helpers::TestDb;

const DUNK_W: &str = "5e6a1e57-1c7d-435a-82bd-5666a13560fe";
const NUPTSE: &str = "9c8a2b5e-0f1d-4d38-bb3c-2e1f5a7d9c41";
const NUPTSE_STYLE: &str = "NF0A3C8DLE41/NF0A3C8DJK3/NFOA3C8DLE4-M";

fn client_config(server: &MockServer) -> ClientConfig {
    ClientConfig {
        api_url: server.uri().parse().unwrap(),
        auth_url: format!("{}/oauth/token", server.uri()).parse().unwrap(),
        api_key: secrecy::SecretString::from("k".to_string()),
        client_id: "c".into(),
        client_secret: secrecy::SecretString::from("s".to_string()),
        refresh_token: secrecy::SecretString::from("r".to_string()),
        requests_per_second: 100.0,
        daily_budget: 1000,
        timeout: Duration::from_secs(5),
    }
}

/// A mock StockX whose token endpoint answers like Auth0.
async fn stockx() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "eyJhbGciOiJSUzI1NiJ9.e30.sig", "token_type": "Bearer",
            "expires_in": 43200, "scope": "offline_access openid", "id_token": "eyJ0eXAiOiJKV1QifQ.e30.sig"
        })))
        .mount(&server)
        .await;
    server
}

async fn api_requests(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().starts_with("/v2/"))
        .count()
}

fn product(id: &str, style_id: &str, title: &str, product_type: &str, gender: &str) -> Value {
    json!({
        "productId": id,
        "urlKey": title.to_lowercase().replace(' ', "-"),
        "styleId": style_id,
        "productType": product_type,
        "title": title,
        "brand": title.split(' ').next(),
        "productAttributes": {
            "gender": gender, "season": null, "releaseDate": "2021-03-10",
            "retailPrice": 110, "colorway": "White/Black", "color": "White"
        },
        "sizeChart": {
            "availableConversions": [
                {"name": "US W", "type": "us w"}, {"name": "US M", "type": "us m"},
                {"name": "UK", "type": "uk"}, {"name": "EU", "type": "eu"}, {"name": "CM", "type": "cm"}
            ],
            "defaultConversion": {"name": if gender == "women" { "US W" } else { "US M" },
                                  "type": if gender == "women" { "us w" } else { "us m" }}
        },
        "isFlexEligible": true,
        "isDirectEligible": false
    })
}

/// A women's variant as StockX answers it: `variantValue: "6.5W"`, default chart `us w`.
fn womens_variant(id: &str, w: &str, m: &str, uk: &str, eu: &str, cm: &str) -> Value {
    json!({
        "productId": DUNK_W,
        "variantId": id,
        "variantName": format!("nike-dunk-low-white-black-w:{w}W"),
        "variantValue": format!("{w}W"),
        "sizeChart": {
            "defaultConversion": {"size": format!("{w}W"), "type": "us w"},
            "availableConversions": [
                {"size": format!("US W {w}"), "type": "us w"},
                {"size": format!("US M {m}"), "type": "us m"},
                {"size": format!("UK {uk}"), "type": "uk"},
                {"size": format!("EU {eu}"), "type": "eu"},
                {"size": format!("CM {cm}"), "type": "cm"}
            ]
        },
        "gtins": [{"identifier": "19515403", "type": "UPC"}],
        "isFlexEligible": true,
        "isDirectEligible": false
    })
}

fn dunk_variants() -> Value {
    json!([
        womens_variant("w-6", "6", "4.5", "3.5", "36.5", "23"),
        womens_variant("w-6.5", "6.5", "5", "4", "37.5", "23.5"),
        womens_variant("w-7", "7", "5.5", "4.5", "38", "24"),
    ])
}

/// Apparel: text sizes, and `availableConversions: null` as the schema allows.
fn nuptse_variants() -> Value {
    let variant = |size: &str| {
        json!({
            "productId": NUPTSE, "variantId": format!("nuptse-{size}"),
            "variantName": format!("the-north-face-1996-retro-nuptse-jacket-black:{size}"),
            "variantValue": size,
            "sizeChart": {"defaultConversion": {"size": size, "type": "us m"}, "availableConversions": null},
            "gtins": null
        })
    };
    json!([variant("S"), variant("M"), variant("L")])
}

/// A search answer: the exact product among near matches, `count` as the float the schema allows.
fn search_answer(products: Vec<Value>) -> Value {
    json!({"count": products.len() as f64, "pageSize": 20, "pageNumber": 1,
           "hasNextPage": false, "products": products})
}

async fn mount_catalog(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/v2/catalog/search"))
        .and(query_param("query", "DD1503-101"))
        .respond_with(ResponseTemplate::new(200).set_body_json(search_answer(vec![
            product(
                "near-1",
                "DD1503-100",
                "Nike Dunk Low White (Women's)",
                "sneakers",
                "women",
            ),
            product(
                DUNK_W,
                "DD1503-101",
                "Nike Dunk Low White Black (Women's)",
                "sneakers",
                "women",
            ),
        ])))
        .mount(server)
        .await;
    // StockX's search ignores case and dashes: so does this one.
    Mock::given(method("GET"))
        .and(path("/v2/catalog/search"))
        .and(|request: &Request| {
            request.url.query_pairs().any(|(key, value)| {
                key == "query" && value.replace('-', "").eq_ignore_ascii_case("NF0A3C8DLE41")
            })
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(search_answer(vec![
            product(
                "near-2",
                "NF0A3C8DJK31",
                "The North Face 1996 Retro Nuptse Jacket Recycled Black",
                "apparel",
                "men",
            ),
            product(
                NUPTSE,
                NUPTSE_STYLE,
                "The North Face 1996 Retro Nuptse Jacket Black",
                "apparel",
                "men",
            ),
        ])))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/catalog/products/{DUNK_W}/variants")))
        .respond_with(ResponseTemplate::new(200).set_body_json(dunk_variants()))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/catalog/products/{NUPTSE}/variants")))
        .respond_with(ResponseTemplate::new(200).set_body_json(nuptse_variants()))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v2/catalog/products/[^/]+/market-data$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_sku_that_is_one_of_several_style_ids_finds_that_product() {
    let server = stockx().await;
    mount_catalog(&server).await;
    let client = StockxClient::new(client_config(&server)).unwrap();
    let found = client
        .search_product_by_sku("NF0A3C8DLE41")
        .await
        .unwrap()
        .expect("the multi-style-ID product");
    assert_eq!(found.product_id, NUPTSE);
    assert_eq!(found.style_id.as_deref(), Some(NUPTSE_STYLE));
    // Lower case and a dash change nothing; the near match ("...JK31") is never taken.
    let found = client.search_product_by_sku("nf0a3c8d-le41").await.unwrap();
    assert_eq!(found.map(|p| p.product_id).as_deref(), Some(NUPTSE));
}

#[tokio::test]
async fn shapes_the_schema_allows_are_read() {
    let server = stockx().await;
    mount_catalog(&server).await;
    Mock::given(method("GET"))
        .and(path("/v2/selling/orders/323314425-323214184"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "askId": "14087368920251127447", "orderNumber": "323314425-323214184",
            "listingId": null, "amount": "140", "currencyCode": "USD",
            "createdAt": "2021-08-25T13:51:47.000Z", "updatedAt": "2021-08-25T13:51:47.000Z",
            "variant": {"variantId": "w-6.5", "variantName": "nike-dunk-low-white-black-w:6.5W", "variantValue": "6.5W"},
            "product": {"productId": DUNK_W, "productName": "Nike Dunk Low White Black (Women's)", "styleId": "DD1503-101"},
            "status": null, "inventoryType": "CONSIGNMENT_V2",
            "shipment": null, "initiatedShipments": null, "authenticationDetails": null,
            "payout": {"totalPayout": "124.04", "salePrice": "140", "totalAdjustments": "-15.96",
                       "currencyCode": "USD", "adjustments": null}
        })))
        .mount(&server)
        .await;
    let client = StockxClient::new(client_config(&server)).unwrap();

    let product = client.search_product_by_sku("DD1503-101").await.unwrap();
    assert_eq!(product.map(|p| p.product_id).as_deref(), Some(DUNK_W));
    let variants = client.product_variants(NUPTSE).await.unwrap();
    assert_eq!(variants.len(), 3);
    assert!(variants.iter().all(|v| v
        .size_chart
        .as_ref()
        .unwrap()
        .available_conversions
        .is_empty()));
    let order = client
        .order("323314425-323214184")
        .await
        .unwrap()
        .expect("order");
    assert_eq!(order.status, "UNKNOWN");
    assert_eq!(order.inventory_type.as_deref(), Some("CONSIGNMENT_V2"));
    let payout = order.payout.unwrap();
    assert!(payout.adjustments.is_empty());
    assert_eq!(payout.total_payout, Some("124.04".parse().unwrap()));
}

/// Inserts one sale through the entry view with an explicit size region.
async fn sale(db: &TestDb, order: &str, sku: &str, size: &str, region: Option<&str>) {
    sqlx::query(
        "INSERT INTO platforms.stockx_sale_entry
           (stockx_order_number, sku, size, size_region, supplier, purchase_price,
            net_proceeds, sold_at)
         VALUES ($1, $2, $3, $4, 'Nike Store', 80, 120, '2024-03-20')",
    )
    .bind(order)
    .bind(sku)
    .bind(size)
    .bind(region)
    .execute(&db.pool)
    .await
    .unwrap();
}

fn settings_for(server: &MockServer) -> Settings {
    let mut settings = Settings::default();
    let config = client_config(server);
    let s = &mut settings.stockx;
    s.api_url = config.api_url;
    s.auth_url = config.auth_url;
    s.api_key = Some(config.api_key);
    s.client_id = Some(config.client_id);
    s.client_secret = Some(config.client_secret);
    s.refresh_token = Some(config.refresh_token);
    s.requests_per_second = 100.0;
    settings.http.addr = "127.0.0.1:0".parse().unwrap();
    settings.worker.concurrency = 2;
    settings.worker.poll_interval_ms = 200;
    settings.worker.shutdown_grace_secs = 5;
    settings
}

#[tokio::test]
async fn womens_sizes_typed_every_way_and_a_multi_part_sku_are_enriched() {
    let db = TestDb::new().await;
    let server = stockx().await;
    mount_catalog(&server).await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v2/selling/orders/"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"statusCode": 404, "message": "Not Found"})),
        )
        .mount(&server)
        .await;
    // (order, sku, size, region) → the variant it must find.
    let sales = [
        ("1-65W", "DD1503-101", "6.5W", None, "w-6.5"),
        ("2-65USW", "DD1503-101", "6.5", Some("US W"), "w-6.5"),
        ("3-W65", "DD1503-101", "W 6.5", Some("US"), "w-6.5"),
        ("4-EU38", "DD1503-101", "EU 38", None, "w-7"),
        ("5-M5", "DD1503-101", "5", Some("US M"), "w-6.5"),
        ("6-NUPTSE", "NF0A3C8DLE41", "M", None, "nuptse-M"),
    ];
    for (order, sku, size, region, _) in sales {
        sale(&db, order, sku, size, region).await;
    }
    let app = App::build(&settings_for(&server), db.pool.clone())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    wait_for_idle_queue(&db, Duration::from_secs(20)).await;
    stop.cancel();
    task.await.unwrap().unwrap();

    for (order, sku, size, region, expected) in sales {
        let variant: Option<String> = sqlx::query_scalar(
            "SELECT stockx_variant_id FROM products.inventory
             WHERE external_ids->>'stockx_order_number' = $1",
        )
        .bind(order)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(
            variant.as_deref(),
            Some(expected),
            "{sku} size {size:?} region {region:?}"
        );
    }
    let nuptse: Option<String> = sqlx::query_scalar(
        "SELECT stockx_product_id FROM products.products WHERE sku = 'NF0A3C8DLE41'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(nuptse.as_deref(), Some(NUPTSE));
    let not_found: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM integration.validation_warnings
         WHERE rule IN ('stockx_product_not_found', 'stockx_variant_not_found')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(not_found, 0);
}

/// StockX's Cloudflare block page, as clients of the API have reported it.
const CLOUDFLARE_BLOCK: &str = r#"<!DOCTYPE html>
<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->
<!--[if gt IE 8]><!--> <html class="no-js" lang="en-US"> <!--<![endif]-->
<head>
<title>Attention Required! | Cloudflare</title>
<meta charset="UTF-8" />
<meta name="robots" content="noindex, nofollow" />
<link rel="stylesheet" id="cf_styles-css" href="/cdn-cgi/styles/cf.errors.css" />
</head>
<body>
  <div id="cf-wrapper">
    <div id="cf-error-details" class="cf-error-details-wrapper">
      <div class="cf-wrapper cf-header cf-error-overview">
        <h1 data-translate="block_headline">Sorry, you have been blocked</h1>
        <h2 class="cf-subheadline"><span data-translate="unable_to_access">You are unable to access</span> stockx.com</h2>
      </div>
      <div class="cf-error-footer cf-wrapper">
        <p><span class="cf-footer-item">Cloudflare Ray ID: <strong class="font-semibold">8a1b2c3d4e5f6789</strong></span></p>
      </div>
    </div>
  </div>
</body>
</html>"#;

/// PerimeterX's block page ("Press & Hold" captcha).
const PERIMETERX_BLOCK: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Access to this page has been denied</title>
</head>
<body>
<div class="px-captcha-error-container">
  <div class="px-captcha-error-header">Access to this page has been denied</div>
  <div id="px-captcha"></div>
</div>
<script>
window._pxAppId = 'PXHYx10rg3';
window._pxJsClientSrc = '/HYx10rg3/init.js';
window._pxHostUrl = '/HYx10rg3/xhr';
</script>
<script src="https://captcha.px-cdn.net/PXHYx10rg3/captcha.js?a=c&m=0"></script>
</body>
</html>"#;

fn cloudflare_403() -> ResponseTemplate {
    ResponseTemplate::new(403)
        .insert_header("cf-ray", "8a1b2c3d4e5f6789-FRA")
        .insert_header("server", "cloudflare")
        .set_body_raw(CLOUDFLARE_BLOCK, "text/html; charset=UTF-8")
}

#[tokio::test]
async fn a_cloudflare_block_page_is_a_block_not_refused_credentials() {
    let server = stockx().await;
    Mock::given(method("GET"))
        .and(path("/v2/catalog/search"))
        .respond_with(cloudflare_403())
        .mount(&server)
        .await;
    let client = StockxClient::new(client_config(&server)).unwrap();
    let error = client
        .search_product_by_sku("DD1391-100")
        .await
        .unwrap_err();
    match &error {
        StockxError::Blocked {
            status: 403,
            vendor: "Cloudflare",
            endpoint: "/catalog/search",
            retry_after,
        } => assert_eq!(*retry_after, Duration::from_secs(30)),
        other => panic!("expected a block, got {other:?}"),
    }
    assert!(error.is_transient() && error.is_account_wide());
    assert!(!error.is_credentials_refused());
    assert!(
        error
            .to_string()
            .starts_with("StockX's bot protection blocked the request (403, Cloudflare)"),
        "{error}"
    );
    assert!(error.to_string().contains("backing off"), "{error}");

    // While the cool-down lasts, nothing is sent: every task gets the block at once.
    let again = client.product_variants("p").await.unwrap_err();
    assert!(again.is_blocked(), "{again:?}");
    assert!(again.retry_after().unwrap() <= Duration::from_secs(30));
    assert_eq!(api_requests(&server).await, 1);
}

#[tokio::test]
async fn a_perimeterx_captcha_is_a_block() {
    let server = stockx().await;
    Mock::given(method("GET"))
        .and(path("/v2/selling/orders/323314425-323214184"))
        .respond_with(ResponseTemplate::new(403).set_body_raw(PERIMETERX_BLOCK, "text/html"))
        .mount(&server)
        .await;
    let client = StockxClient::new(client_config(&server)).unwrap();
    match client.order("323314425-323214184").await {
        Err(StockxError::Blocked {
            vendor: "PerimeterX",
            status: 403,
            ..
        }) => {}
        other => panic!("expected a PerimeterX block, got {other:?}"),
    }
}

#[tokio::test]
async fn a_json_403_behind_cloudflare_is_still_refused_credentials() {
    let server = stockx().await;
    Mock::given(method("GET"))
        .and(path("/v2/catalog/search"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("cf-ray", "8a1b2c3d4e5f6789-FRA")
                .insert_header("server", "cloudflare")
                .set_body_json(json!({"statusCode": 403, "message": "Forbidden"})),
        )
        .mount(&server)
        .await;
    let client = StockxClient::new(client_config(&server)).unwrap();
    let error = client
        .search_product_by_sku("DD1391-100")
        .await
        .unwrap_err();
    assert!(error.is_credentials_refused(), "{error:?}");
    assert!(error.to_string().contains("Forbidden"), "{error}");
    // No cool-down: the next call is sent (and refused again).
    let again = client
        .search_product_by_sku("DD1391-100")
        .await
        .unwrap_err();
    assert!(again.is_credentials_refused());
    assert_eq!(api_requests(&server).await, 2);
}

#[tokio::test]
async fn a_block_on_the_token_endpoint_is_a_block() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(cloudflare_403())
        .mount(&server)
        .await;
    let client = StockxClient::new(client_config(&server)).unwrap();
    match client.order("1-2").await {
        Err(StockxError::Blocked {
            endpoint: "/oauth/token",
            vendor: "Cloudflare",
            ..
        }) => {}
        other => panic!("expected a block on the token endpoint, got {other:?}"),
    }
}

#[tokio::test]
async fn blocks_in_a_row_back_off_longer_and_stockx_answering_ends_the_block() {
    let server = stockx().await;
    Mock::given(method("GET"))
        .and(path("/v2/catalog/search"))
        .respond_with(cloudflare_403())
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/catalog/search"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(search_answer(vec![product(
                DUNK_W,
                "DD1503-101",
                "Nike Dunk Low White Black (Women's)",
                "sneakers",
                "women",
            )])),
        )
        .mount(&server)
        .await;
    let client = StockxClient::new(client_config(&server)).unwrap();
    client.set_block_backoff(Duration::from_millis(150));

    // Call until StockX answers, as the queue would after each announced wait.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut waits = Vec::new();
    let product = loop {
        match client.search_product_by_sku("DD1503-101").await {
            Ok(product) => break product,
            Err(StockxError::Blocked { retry_after, .. }) => {
                waits.push(retry_after);
                tokio::time::sleep(retry_after).await;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < deadline, "still blocked: {waits:?}");
    };
    assert_eq!(product.map(|p| p.product_id).as_deref(), Some(DUNK_W));
    assert_eq!(
        waits.first().copied(),
        Some(Duration::from_millis(150)),
        "{waits:?}"
    );
    assert!(
        waits.contains(&Duration::from_millis(300)),
        "the second block in a row doubles the wait: {waits:?}"
    );
    assert_eq!(
        api_requests(&server).await,
        3,
        "two blocked requests and one answered; none sent during the cool-downs"
    );

    // StockX answered: a later block starts again from the first wait.
    Mock::given(method("GET"))
        .and(path("/v2/catalog/products/p/variants"))
        .respond_with(cloudflare_403())
        .mount(&server)
        .await;
    match client.product_variants("p").await {
        Err(StockxError::Blocked { retry_after, .. }) => {
            assert_eq!(retry_after, Duration::from_millis(150))
        }
        other => panic!("expected a block, got {other:?}"),
    }
}

#[tokio::test]
async fn a_block_postpones_jobs_without_spending_attempts_and_readyz_says_why() {
    let db = TestDb::new().await;
    let server = stockx().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v2/"))
        .respond_with(cloudflare_403())
        .mount(&server)
        .await;
    sale(&db, "323314425-323214184", "DD1503-101", "6.5W", None).await;
    let app = App::build(&settings_for(&server), db.pool.clone())
        .await
        .unwrap();
    let addr = app.http_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));

    let deadline = Instant::now() + Duration::from_secs(15);
    let jobs = loop {
        let jobs: Vec<(String, i16, Option<String>)> = sqlx::query_as(
            "SELECT state, attempt, last_error FROM integration.enrichment_jobs ORDER BY kind",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        if jobs.len() == 2
            && jobs
                .iter()
                .all(|(state, _, error)| state == "available" && error.is_some())
        {
            break jobs;
        }
        assert!(Instant::now() < deadline, "jobs never postponed: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (_, attempt, last_error) in &jobs {
        assert_eq!(
            *attempt, 0,
            "a block is not the job's fault: no attempt spent"
        );
        let last_error = last_error.as_deref().unwrap_or_default();
        assert!(
            last_error.contains("StockX's bot protection blocked the request (403, Cloudflare)"),
            "{last_error}"
        );
    }
    let readyz: Value = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !readyz.to_string().contains("refused the credentials"),
        "{readyz}"
    );
    assert!(
        readyz.to_string().contains("bot protection blocked"),
        "readyz shows the block: {readyz}"
    );
    stop.cancel();
    task.await.unwrap().unwrap();
    let status: String =
        sqlx::query_scalar("SELECT enrichment_status FROM platforms.stockx_orders")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "pending", "a block does not fail the order");
}
