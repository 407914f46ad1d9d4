//! The Notion side of the backfill without a database: the API client against a local
//! wiremock server speaking Notion's documented JSON, and the export reader on fixture CSVs
//! and zips built in temporary directories.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{json, Value};
use stockx_sync::notion::client::{
    NotionClient, NotionConfig, NotionError, QueryEndpoint, QueryTarget,
};
use stockx_sync::notion::export::{read_export, ExportError, ExportTable};
use stockx_sync::notion::mapping::{
    check_columns, duplicate_order_numbers, map_row, Mapped, Mapping, MappingError, RecordSource,
    SaleRecord,
};
use stockx_sync::notion::query::NotionRecord;
use stockx_sync::sandbox::notion_export::write_sample_export;
use time::macros::{date, datetime};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

pub const DB: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const DB_DASHED: &str = "a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90";
pub const DS: &str = "11111111-2222-3333-4444-555555555555";
pub const SUPPLIER_PAGE: &str = "99999999-8888-7777-6666-555555555555";

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/notion")
        .join(name)
}

// ---------------------------------------------------------------- API: a local Notion

fn config(server: &MockServer) -> NotionConfig {
    let mut config = NotionConfig::new(SecretString::from("ntn_test_token"), DB);
    config.api_url = server.uri();
    config.initial_backoff = Duration::from_millis(10);
    config.requests_per_second = std::num::NonZeroU32::new(1000).unwrap();
    config
}

fn client(server: &MockServer) -> NotionClient {
    NotionClient::new(config(server), Mapping::default()).unwrap()
}

fn rich_text(text: &str) -> Value {
    json!([{ "type": "text", "text": { "content": text, "link": null },
             "annotations": { "bold": false, "italic": false, "strikethrough": false, "underline": false, "code": false, "color": "default" },
             "plain_text": text, "href": null }])
}

pub fn page_id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// A page of the sales data source as the API sends it.
pub fn sale_page(n: u32, edited: &str, platform: Option<&str>) -> Value {
    json!({
        "object": "page", "id": page_id(n), "created_time": edited, "last_edited_time": edited,
        "in_trash": false, "archived": false, "is_locked": false,
        "parent": { "type": "data_source_id", "data_source_id": DS, "database_id": DB_DASHED },
        "url": format!("https://www.notion.so/{}", page_id(n).replace('-', "")),
        "properties": {
            "Sale ID": { "id": "title", "type": "title", "title": rich_text(&format!("7500{n:04}-7600{n:04}")) },
            "Name": { "id": "n%3Am", "type": "rich_text", "rich_text": rich_text("Nike Dunk Low Panda") },
            "SKU": { "id": "s%3Ak", "type": "rich_text", "rich_text": rich_text("DD1391-100") },
            "Size": { "id": "sz", "type": "select", "select": { "id": "x", "name": "US 10", "color": "blue" } },
            "Supplier": { "id": "sp", "type": "relation", "relation": [{ "id": SUPPLIER_PAGE }], "has_more": false },
            "Net Buy": { "id": "nb", "type": "number", "number": 110.5 },
            "Net Sale": { "id": "ns", "type": "number", "number": 150 },
            "Sale Price": { "id": "sp2", "type": "number", "number": 165.0 },
            "Profit": { "id": "pr", "type": "formula", "formula": { "type": "number", "number": 39.5 } },
            "ROI": { "id": "roi", "type": "formula", "formula": { "type": "number", "number": 0.3575 } },
            "Purchase Date": { "id": "pd", "type": "date", "date": { "start": "2025-01-02", "end": null, "time_zone": null } },
            "Sale Date": { "id": "sd", "type": "date", "date": { "start": "2025-02-03T23:30:00.000+01:00", "end": null, "time_zone": null } },
            "Delivery Date": { "id": "dd", "type": "date", "date": null },
            "Sale Platform": { "id": "pl", "type": "select", "select": platform.map(|p| json!({ "id": "p", "name": p, "color": "green" })) },
            "Checked": { "id": "ch", "type": "verification", "verification": { "state": "verified" } }
        }
    })
}

pub fn list(results: Vec<Value>, next_cursor: Option<&str>) -> Value {
    json!({ "object": "list", "results": results, "next_cursor": next_cursor, "has_more": next_cursor.is_some(),
            "type": "page_or_data_source", "page_or_data_source": {} })
}

pub async fn mount_database_with_data_source(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(format!("/v1/databases/{DB_DASHED}")))
        .and(header("Notion-Version", "2025-09-03"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "database", "id": DB_DASHED, "title": rich_text("Sales"),
            "data_sources": [{ "id": DS, "name": "Sales" }]
        })))
        .mount(server)
        .await;
}

/// `once`: the client must fetch the supplier page once and cache it (one client per test);
/// otherwise any number of fetches (several clients, e.g. several runs).
pub async fn mount_supplier(server: &MockServer, once: bool) {
    let mock = Mock::given(method("GET"))
        .and(path(format!("/v1/pages/{SUPPLIER_PAGE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "page", "id": SUPPLIER_PAGE, "last_edited_time": "2024-01-01T00:00:00.000Z", "in_trash": false,
            "properties": { "Name": { "id": "title", "type": "title", "title": rich_text("Foot Locker") } }
        })))
        .named("supplier page, fetched once and cached");
    if once {
        mock.expect(1).mount(server).await;
    } else {
        mock.mount(server).await;
    }
}

pub const DS_QUERY: &str = "/v1/data_sources/11111111-2222-3333-4444-555555555555/query";

/// A query body without `start_cursor` (the first page of a query).
struct FirstPage;
impl Match for FirstPage {
    fn matches(&self, request: &Request) -> bool {
        serde_json::from_slice::<Value>(&request.body)
            .is_ok_and(|b| b.get("start_cursor").is_none())
    }
}

fn sale(record: &NotionRecord) -> &SaleRecord {
    match &record.result {
        Ok(Mapped::Sale(sale)) => sale,
        other => panic!("{} is not a sale: {other:?}", record.page_id),
    }
}

#[tokio::test]
async fn reads_every_page_over_three_requests_from_the_data_source() {
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    mount_supplier(&server, true).await;
    let edited = |n: u32| format!("2025-03-01T10:{:02}:00.000Z", n % 60);
    let pages = |range: std::ops::Range<u32>| {
        range
            .map(|n| sale_page(n, &edited(n), Some("StockX")))
            .collect::<Vec<_>>()
    };
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .and(header("Notion-Version", "2025-09-03"))
        .and(header("Authorization", "Bearer ntn_test_token"))
        .and(body_partial_json(json!({ "page_size": 100, "sorts": [{ "timestamp": "last_edited_time", "direction": "ascending" }] })))
        .and(FirstPage)
        .respond_with(ResponseTemplate::new(200).set_body_json(list(pages(0..100), Some("cursor-2"))))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .and(body_partial_json(
            json!({ "start_cursor": "cursor-2", "page_size": 100 }),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(list(pages(100..200), Some("cursor-3"))),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .and(body_partial_json(json!({ "start_cursor": "cursor-3" })))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(pages(200..250), None)))
        .expect(1)
        .mount(&server)
        .await;

    let client = client(&server);
    let (records, stats) = client.query_sales(None).collect_all().await.unwrap();
    assert_eq!(records.len(), 250);
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.windows, 1);
    assert_eq!(
        client.resolve_target().await.unwrap(),
        QueryTarget::DataSource { id: DS.into() }
    );

    let first = sale(&records[0]);
    assert_eq!(records[0].page_id, page_id(0));
    assert_eq!(records[0].last_edited_time, datetime!(2025-03-01 10:00 UTC));
    assert_eq!(first.stockx_order_number, "75000000-76000000");
    assert_eq!(first.sku, "DD1391-100");
    assert_eq!(
        (first.size.as_str(), first.size_region.as_deref()),
        ("10", Some("US"))
    );
    assert_eq!(first.supplier, "Foot Locker");
    assert_eq!(first.purchase_price, dec("110.5"));
    assert_eq!(first.net_proceeds, dec("150"));
    assert_eq!(first.sale_price, Some(dec("165.0")));
    assert_eq!(first.profit, Some(dec("39.5")));
    assert_eq!(first.roi, Some(dec("0.3575")));
    assert_eq!(first.purchase_date, Some(date!(2025 - 01 - 02)));
    assert_eq!(
        first.sold_at,
        date!(2025 - 02 - 03),
        "the date as written in its offset"
    );
    assert_eq!(first.delivered_at, None);
    assert!(matches!(first.source, RecordSource::NotionPage { .. }));
    let last = sale(&records[249]);
    assert_eq!(last.stockx_order_number, "75000249-76000249");
}

#[tokio::test]
async fn the_since_timestamp_is_sent_as_a_last_edited_time_filter() {
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    mount_supplier(&server, true).await;
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .and(body_partial_json(json!({
            "filter": { "timestamp": "last_edited_time", "last_edited_time": { "on_or_after": "2025-06-01T08:30:00Z" } },
            "sorts": [{ "timestamp": "last_edited_time", "direction": "ascending" }]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![sale_page(1, "2025-06-02T00:00:00.000Z", Some("StockX"))], None)))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let (records, _) = client
        .query_sales(Some(datetime!(2025-06-01 8:30 UTC)))
        .collect_all()
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
}

#[tokio::test]
async fn pages_in_the_trash_and_other_platforms_are_not_sales() {
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    mount_supplier(&server, true).await;
    let mut trashed = sale_page(2, "2025-03-01T10:02:00.000Z", Some("StockX"));
    trashed["in_trash"] = json!(true);
    let mut archived_old_style = sale_page(3, "2025-03-01T10:03:00.000Z", Some("StockX"));
    archived_old_style
        .as_object_mut()
        .unwrap()
        .remove("in_trash");
    archived_old_style["archived"] = json!(true);
    let results = vec![
        sale_page(1, "2025-03-01T10:01:00.000Z", Some("StockX")),
        trashed,
        archived_old_style,
        sale_page(4, "2025-03-01T10:04:00.000Z", Some("GOAT")),
        sale_page(5, "2025-03-01T10:05:00.000Z", None),
    ];
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(results, None)))
        .mount(&server)
        .await;
    let client = client(&server);
    let (records, stats) = client.query_sales(None).collect_all().await.unwrap();
    let ids: Vec<&str> = records.iter().map(|r| r.page_id.as_str()).collect();
    assert_eq!(ids, vec![page_id(1), page_id(4), page_id(5)]);
    assert_eq!(stats.trashed_skipped, 2);
    assert_eq!(
        records[1].result,
        Ok(Mapped::SkippedPlatform("GOAT".into()))
    );
    assert_eq!(
        records[2].result,
        Ok(Mapped::SkippedPlatform(String::new()))
    );
}

#[tokio::test]
async fn a_cap_that_cannot_move_forward_is_an_error_not_a_loop() {
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    mount_supplier(&server, true).await;
    let mut body = list(
        vec![sale_page(1, "2025-01-01T10:00:00.000Z", Some("StockX"))],
        None,
    );
    body["request_status"] =
        json!({ "type": "incomplete", "incomplete_reason": "query_result_limit_reached" });
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let client = client(&server);
    let e = client.query_sales(None).collect_all().await.unwrap_err();
    assert!(matches!(e, NotionError::ResultLimitStuck { .. }), "{e}");
}

#[tokio::test]
async fn a_data_source_id_is_accepted_in_place_of_the_database_id() {
    let server = MockServer::start().await;
    mount_supplier(&server, true).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/databases/{DB_DASHED}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "object": "error", "status": 404, "code": "object_not_found", "message": "Could not find database"
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/data_sources/{DB_DASHED}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({ "object": "data_source", "id": DB_DASHED, "properties": {} }),
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/data_sources/{DB_DASHED}/query")))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(
            vec![sale_page(1, "2025-01-01T10:00:00.000Z", Some("StockX"))],
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let (records, _) = client.query_sales(None).collect_all().await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        client.resolve_target().await.unwrap(),
        QueryTarget::DataSource {
            id: DB_DASHED.into()
        }
    );
}

#[tokio::test]
async fn a_database_without_data_sources_is_queried_through_the_legacy_endpoint() {
    let server = MockServer::start().await;
    mount_supplier(&server, true).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/databases/{DB_DASHED}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "object": "database", "id": DB_DASHED, "properties": {} })),
        )
        .mount(&server)
        .await;
    let mut legacy_page = sale_page(1, "2025-01-01T10:00:00.000Z", Some("StockX"));
    legacy_page["parent"] = json!({ "type": "database_id", "database_id": DB_DASHED });
    legacy_page.as_object_mut().unwrap().remove("in_trash");
    let mut legacy_list = list(vec![legacy_page], None);
    legacy_list["type"] = json!("page_or_database");
    Mock::given(method("POST"))
        .and(path(format!("/v1/databases/{DB_DASHED}/query")))
        .and(header("Notion-Version", "2022-06-28"))
        .respond_with(ResponseTemplate::new(200).set_body_json(legacy_list))
        .expect(1)
        .mount(&server)
        .await;
    // The URL form of NOTION_DATABASE_ID, as copied from the browser.
    let mut config = config(&server);
    config.database =
        format!("https://www.notion.so/acme/Sales-{DB}?v=0123456789abcdef0123456789abcdef");
    let client = NotionClient::new(config, Mapping::default()).unwrap();
    let (records, _) = client.query_sales(None).collect_all().await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(sale(&records[0]).supplier, "Foot Locker");
    assert_eq!(
        client.resolve_target().await.unwrap(),
        QueryTarget::LegacyDatabase {
            id: DB_DASHED.into()
        }
    );
}

#[tokio::test]
async fn the_legacy_endpoint_can_be_forced() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/databases/{DB_DASHED}/query")))
        .and(header("Notion-Version", "2022-06-28"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![], None)))
        .expect(1)
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.endpoint = QueryEndpoint::LegacyDatabase;
    let client = NotionClient::new(config, Mapping::default()).unwrap();
    let (records, _) = client.query_sales(None).collect_all().await.unwrap();
    assert!(records.is_empty());
}

#[tokio::test]
async fn several_data_sources_need_a_name() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/databases/{DB_DASHED}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "database", "id": DB_DASHED,
            "data_sources": [{ "id": DS, "name": "Sales" }, { "id": SUPPLIER_PAGE, "name": "Archive" }]
        })))
        .mount(&server)
        .await;
    let e = client(&server).resolve_target().await.unwrap_err();
    assert!(
        e.to_string().contains("Sales") && e.to_string().contains("Archive"),
        "{e}"
    );

    let mut config = config(&server);
    config.data_source_name = Some("archive".into());
    let client = NotionClient::new(config, Mapping::default()).unwrap();
    assert_eq!(
        client.resolve_target().await.unwrap(),
        QueryTarget::DataSource {
            id: SUPPLIER_PAGE.into()
        }
    );
}

#[tokio::test]
async fn a_server_error_is_retried() {
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    mount_supplier(&server, true).await;
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "object": "error", "status": 500, "code": "internal_server_error", "message": "Unexpected error"
        })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(
            vec![sale_page(1, "2025-01-01T10:00:00.000Z", Some("StockX"))],
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let (records, _) = client(&server)
        .query_sales(None)
        .collect_all()
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_a_few_attempts() {
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad gateway</html>"))
        .expect(3)
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.max_retries = 2;
    let client = NotionClient::new(config, Mapping::default()).unwrap();
    let e = client.query_sales(None).collect_all().await.unwrap_err();
    match e {
        NotionError::Server {
            status, attempts, ..
        } => assert_eq!((status, attempts), (502, 3)),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_refused_token_names_notion_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "object": "error", "status": 401, "code": "unauthorized", "message": "API token is invalid.", "request_id": "req-1"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let e = client(&server)
        .query_sales(None)
        .collect_all()
        .await
        .unwrap_err();
    assert!(matches!(e, NotionError::Unauthorized { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("NOTION_TOKEN") && text.contains("API token is invalid"),
        "{text}"
    );
    assert!(!text.contains("ntn_test_token"));
}

#[tokio::test]
async fn an_unshared_database_names_notion_database_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "object": "error", "status": 404, "code": "object_not_found",
            "message": "Could not find database with ID. Make sure the relevant pages and databases are shared with your integration."
        })))
        .mount(&server)
        .await;
    let e = client(&server).resolve_target().await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, NotionError::NotFound { .. }), "{text}");
    assert!(
        text.contains("NOTION_DATABASE_ID") && text.contains("shared with the integration"),
        "{text}"
    );

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "object": "error", "status": 403, "code": "restricted_resource", "message": "Insufficient permissions"
        })))
        .mount(&server)
        .await;
    let e = client(&server).resolve_target().await.unwrap_err();
    assert!(
        matches!(e, NotionError::Forbidden { .. }) && e.to_string().contains("NOTION_DATABASE_ID"),
        "{e}"
    );
}

#[tokio::test]
async fn a_page_is_found_by_its_order_number() {
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    mount_supplier(&server, true).await;
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .and(body_partial_json(json!({ "filter": { "property": "Sale ID", "title": { "equals": "75000007-76000007" } } })))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![sale_page(7, "2025-01-01T10:00:00.000Z", Some("StockX"))], None)))
        .expect(1)
        .mount(&server)
        .await;
    let found = client(&server)
        .find_by_order_number(" 75000007-76000007 ")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.page_id, page_id(7));
    assert_eq!(sale(&found).stockx_order_number, "75000007-76000007");
}

#[tokio::test]
async fn a_page_is_retrieved_by_id_or_url() {
    let server = MockServer::start().await;
    mount_supplier(&server, true).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/pages/{}", page_id(8))))
        .and(header("Notion-Version", "2025-09-03"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sale_page(
            8,
            "2025-01-01T10:00:00.000Z",
            Some("StockX"),
        )))
        .expect(2)
        .mount(&server)
        .await;
    let client = client(&server);
    let by_id = client.retrieve_page(&page_id(8)).await.unwrap().unwrap();
    let url = format!("https://www.notion.so/Sale-{}", page_id(8).replace('-', ""));
    let by_url = client.retrieve_page(&url).await.unwrap().unwrap();
    assert_eq!(by_id, by_url);
    assert_eq!(sale(&by_id).net_proceeds, dec("150"));
}

#[tokio::test]
async fn mapping_errors_name_the_page_and_column() {
    let server = MockServer::start().await;
    mount_database_with_data_source(&server).await;
    mount_supplier(&server, true).await;
    let mut page = sale_page(1, "2025-01-01T10:00:00.000Z", Some("StockX"));
    page["properties"]["Net Sale"]["number"] = Value::Null;
    Mock::given(method("POST"))
        .and(path(DS_QUERY))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![page], None)))
        .mount(&server)
        .await;
    let (records, _) = client(&server)
        .query_sales(None)
        .collect_all()
        .await
        .unwrap();
    let e = records[0].result.as_ref().unwrap_err();
    assert_eq!(e.column.as_deref(), Some("Net Sale"));
    assert!(
        e.to_string()
            .starts_with(&format!("Notion page {}", page_id(1))),
        "{e}"
    );
}

/// Runs `future` on a current-thread runtime with a Prometheus recorder installed for this
/// thread only, and returns its result with the rendered metrics.
fn with_metrics<F: std::future::Future>(future: F) -> (F::Output, String) {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let output = metrics::with_local_recorder(&recorder, || runtime.block_on(future));
    (output, handle.render())
}

#[test]
fn a_429_waits_for_retry_after_and_is_counted() {
    let ((records, waited), rendered) = with_metrics(async {
        let server = MockServer::start().await;
        mount_database_with_data_source(&server).await;
        mount_supplier(&server, true).await;
        Mock::given(method("POST"))
            .and(path(DS_QUERY))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_json(json!({
                "object": "error", "status": 429, "code": "rate_limited", "message": "You have been rate limited."
            })))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(DS_QUERY))
            .respond_with(ResponseTemplate::new(200).set_body_json(list(
                vec![sale_page(1, "2025-01-01T10:00:00.000Z", Some("StockX"))],
                None,
            )))
            .expect(1)
            .mount(&server)
            .await;
        let started = Instant::now();
        let (records, _) = client(&server)
            .query_sales(None)
            .collect_all()
            .await
            .unwrap();
        (records, started.elapsed())
    });
    assert_eq!(records.len(), 1);
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    let line = |needle: &str| {
        rendered
            .lines()
            .find(|l| !l.starts_with('#') && l.contains(needle))
            .map(str::to_string)
    };
    let throttled = line("stockx_sync_api_throttled_total{api=\"notion\"}")
        .unwrap_or_else(|| panic!("{rendered}"));
    assert!(throttled.ends_with(" 1"), "{throttled}");
    let query_429 = line("stockx_sync_api_requests_total{api=\"notion\",endpoint=\"/v1/data_sources/{id}/query\",status=\"429\"}")
        .unwrap_or_else(|| panic!("{rendered}"));
    assert!(query_429.ends_with(" 1"), "{query_429}");
    assert!(
        line("endpoint=\"/v1/databases/{id}\",status=\"200\"").is_some(),
        "{rendered}"
    );
    assert!(
        line("stockx_sync_api_request_duration_seconds").is_some(),
        "{rendered}"
    );
}

// ---------------------------------------------------------------- exports

fn sales(table: &ExportTable, mapping: &Mapping) -> Vec<SaleRecord> {
    table
        .rows
        .iter()
        .filter_map(|(n, row)| {
            let row = row.as_ref().ok()?;
            match map_row(mapping, &RecordSource::CsvRow { row: *n }, row) {
                Ok(Mapped::Sale(sale)) => Some(*sale),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn a_csv_with_bom_is_read_by_header_name() {
    let table = read_export(&fixture("sales_bom.csv")).unwrap();
    assert_eq!(
        table.headers[0], "Sale ID",
        "the BOM is not part of the first header"
    );
    check_columns(&Mapping::default(), &table.headers).unwrap();
    let mapping = Mapping::default();
    let results: Vec<_> = table
        .rows
        .iter()
        .map(|(n, row)| {
            map_row(
                &mapping,
                &RecordSource::CsvRow { row: *n },
                row.as_ref().unwrap(),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(results.len(), 5);
    assert_eq!(results[2], Mapped::SkippedPlatform("GOAT".into()));
    assert_eq!(
        results[4],
        Mapped::SkippedPlatform(String::new()),
        "empty platform is skipped by default"
    );

    let all = sales(&table, &mapping);
    assert_eq!(all.len(), 3);
    let chicago = &all[0];
    assert_eq!(chicago.source, RecordSource::CsvRow { row: 2 });
    assert_eq!(chicago.stockx_order_number, "75123456-75123457");
    assert_eq!(chicago.purchase_price, dec("1234.56"));
    assert_eq!(chicago.net_proceeds, dec("1500.00"));
    assert_eq!(chicago.roi, Some(dec("0.215")));
    assert_eq!(chicago.sold_at, date!(2023 - 11 - 05));
    assert_eq!(chicago.delivered_at, Some(date!(2023 - 11 - 09)));
    assert_eq!(chicago.supplier, "Foot Locker");
    let af1 = &all[1];
    assert_eq!(
        af1.supplier, "Solebox, Berlin",
        "commas inside a relation title survive"
    );
    assert_eq!(
        (af1.size.as_str(), af1.size_region.as_deref()),
        ("44", Some("EU"))
    );
    assert_eq!(af1.purchase_date, Some(date!(2023 - 09 - 30)));
    let yeezy = &all[2];
    assert_eq!(yeezy.profit, Some(dec("-30.00")));
    assert_eq!(
        yeezy.purchase_date,
        Some(date!(2023 - 08 - 15)),
        "a range gives its start"
    );
    assert_eq!(yeezy.sold_at, date!(2023 - 12 - 01));
    assert_eq!(
        (yeezy.size.as_str(), yeezy.size_region.as_deref()),
        ("8", Some("US W"))
    );
}

#[test]
fn european_numbers_and_us_dates() {
    let table = read_export(&fixture("sales_european.csv")).unwrap();
    let all = sales(&table, &Mapping::default());
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].purchase_price, dec("1234.56"));
    assert_eq!(all[0].net_proceeds, dec("1500.00"));
    assert_eq!(all[0].roi, Some(dec("0.215")));
    assert_eq!(
        all[0].sold_at,
        date!(2023 - 11 - 05),
        "11/05/2023 is November 5 (Month/Day/Year)"
    );
    assert_eq!(all[0].delivered_at, Some(date!(2023 - 11 - 25)));
    assert_eq!(all[1].purchase_price, dec("95.00"));
    assert_eq!(all[1].sale_price, Some(dec("132.00")));
    assert_eq!(all[1].purchase_date, Some(date!(2023 - 09 - 30)));
    assert_eq!(all[2].purchase_price, dec("-5.00"));
    assert_eq!(
        all[2].net_proceeds,
        dec("2000"),
        "a single separator before three digits groups thousands"
    );
    assert_eq!(all[2].roi, Some(dec("0.005")));

    let day_first = Mapping {
        date_order: stockx_sync::notion::values::DateOrder::DayFirst,
        ..Mapping::default()
    };
    let all = sales(
        &read_export(&fixture("sales_european.csv")).unwrap(),
        &day_first,
    );
    assert_eq!(
        all[0].sold_at,
        date!(2023 - 05 - 11),
        "the configured order decides ambiguous dates"
    );
}

#[test]
fn a_broken_row_is_reported_with_its_number_and_the_rest_is_read() {
    let table = read_export(&fixture("sales_broken.csv")).unwrap();
    let numbers: Vec<u64> = table.rows.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        numbers,
        vec![2, 4, 6, 7, 8],
        "blank rows 3 and 5 are skipped but counted"
    );
    let broken = table.rows[1].1.as_ref().unwrap_err();
    assert_eq!(broken.origin, RecordSource::CsvRow { row: 4 });
    assert!(
        broken
            .raw
            .as_deref()
            .is_some_and(|r| r.starts_with("75300003-75300004,")),
        "{broken:?}"
    );
    assert!(
        broken.to_string().starts_with("row 4:") && broken.message.contains("fields"),
        "{broken}"
    );

    let mapping = Mapping::default();
    let (_, row6) = &table.rows[2];
    let bad_value = map_row(
        &mapping,
        &RecordSource::CsvRow { row: 6 },
        row6.as_ref().unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        (bad_value.column.as_deref(), bad_value.raw.as_deref()),
        (Some("Net Sale"), Some("€twelve"))
    );
    assert!(
        bad_value
            .to_string()
            .starts_with("row 6, column \"Net Sale\""),
        "{bad_value}"
    );

    let all = sales(&table, &mapping);
    assert_eq!(all.len(), 3);
    let duplicates = duplicate_order_numbers(&all);
    assert_eq!(
        duplicates,
        vec![(
            "75300001-75300002".to_string(),
            vec![
                RecordSource::CsvRow { row: 2 },
                RecordSource::CsvRow { row: 7 }
            ]
        )]
    );
}

#[test]
fn a_missing_mapped_column_lists_the_columns_the_export_has() {
    let table = read_export(&fixture("sales_bom.csv")).unwrap();
    let mapping = Mapping {
        net_proceeds: "Payout".into(),
        ..Mapping::default()
    };
    let e = check_columns(&mapping, &table.headers).unwrap_err();
    let MappingError::MissingColumns { missing, available } = &e;
    assert_eq!(
        missing,
        &vec![("net_proceeds".to_string(), "Payout".to_string())]
    );
    assert_eq!(available, &table.headers);
    let text = e.to_string();
    assert!(
        text.contains("\"Payout\"") && text.contains("Sale ID, Delivery Date, Name, Net Buy"),
        "{text}"
    );
}

fn write_zip(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn zip_bytes(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inner.zip");
    write_zip(&path, entries);
    std::fs::read(path).unwrap()
}

/// What the view's CSV looks like: a filtered view with fewer columns and rows.
fn view_csv() -> Vec<u8> {
    b"Sale ID,Net Sale\n75123456-75123457,\xe2\x82\xac1.00\n".to_vec()
}

#[test]
fn a_zip_export_prefers_the_all_csv_and_skips_macos_junk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("1f2e_ExportBlock-3c4d.zip");
    let all = std::fs::read(fixture("sales_bom.csv")).unwrap();
    write_zip(
        &path,
        &[
            ("__MACOSX/._Sales 0123456789abcdef0123456789abcdef_all.csv", vec![0, 5, 22, 7, 0xff]),
            ("Sales 0123456789abcdef0123456789abcdef.csv", view_csv()),
            ("Sales 0123456789abcdef0123456789abcdef_all.csv", all),
            ("Sales 0123456789abcdef0123456789abcdef/75123456-75123457 fedcba9876543210fedcba9876543210.md", b"# 75123456-75123457\n".to_vec()),
            (".DS_Store", vec![0, 0, 0, 1]),
        ],
    );
    let table = read_export(&path).unwrap();
    assert!(
        table
            .csv_name
            .ends_with("Sales 0123456789abcdef0123456789abcdef_all.csv"),
        "{}",
        table.csv_name
    );
    assert_eq!(table.headers.len(), 14);
    assert_eq!(sales(&table, &Mapping::default()).len(), 3);
}

#[test]
fn a_zip_of_part_zips_is_unpacked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("1f2e_ExportBlock-3c4d.zip");
    let part1 = zip_bytes(&[(
        "Sales 0123456789abcdef0123456789abcdef_all.csv",
        std::fs::read(fixture("sales_european.csv")).unwrap(),
    )]);
    let part2 = zip_bytes(&[
        ("Sales 0123456789abcdef0123456789abcdef.csv", view_csv()),
        (
            "Sales 0123456789abcdef0123456789abcdef/Row fedcba9876543210fedcba9876543210.md",
            b"# Row\n".to_vec(),
        ),
    ]);
    write_zip(
        &path,
        &[
            ("__MACOSX/._1f2e_ExportBlock-3c4d-Part-1.zip", vec![1, 2, 3]),
            ("1f2e_ExportBlock-3c4d-Part-1.zip", part1),
            ("1f2e_ExportBlock-3c4d-Part-2.zip", part2),
        ],
    );
    let table = read_export(&path).unwrap();
    assert!(
        table.csv_name.contains("Part-1.zip!/Sales"),
        "{}",
        table.csv_name
    );
    let all = sales(&table, &Mapping::default());
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].purchase_price, dec("1234.56"));
}

#[test]
fn a_zip_without_a_csv_or_with_two_databases_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.zip");
    write_zip(&empty, &[("Notes abc.md", b"# Notes".to_vec())]);
    assert!(matches!(
        read_export(&empty),
        Err(ExportError::NoCsv { .. })
    ));

    let two = dir.path().join("two.zip");
    write_zip(
        &two,
        &[
            ("Sales 0123456789abcdef0123456789abcdef_all.csv", view_csv()),
            (
                "Suppliers fedcba9876543210fedcba9876543210_all.csv",
                view_csv(),
            ),
        ],
    );
    let e = read_export(&two).unwrap_err();
    assert!(
        matches!(e, ExportError::SeveralDatabases { .. }) && e.to_string().contains("Suppliers"),
        "{e}"
    );
}

#[test]
fn the_sample_export_reads_back_as_sales() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.csv");
    write_sample_export(&path, 2_000, 42).unwrap();
    let table = read_export(&path).unwrap();
    check_columns(&Mapping::default(), &table.headers).unwrap();
    assert_eq!(table.rows.len(), 2_000);
    let all = sales(&table, &Mapping::default());
    assert!(
        all.len() > 1_500 && all.len() < 2_000,
        "{} StockX sales of 2000 rows",
        all.len()
    );
    assert!(duplicate_order_numbers(&all).is_empty());
    assert!(all.iter().all(
        |s| s.purchase_price > Decimal::ZERO && s.purchase_date.is_some_and(|p| p < s.sold_at)
    ));
}
