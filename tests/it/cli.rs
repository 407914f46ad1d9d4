//! The binary as a user runs it: settings errors, and the database commands.

use std::io::Write;

use crate::helpers::{command, Sale, TestDb};

fn run(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().expect("run stockx-sync");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_setting_stops_at_start_with_exit_2_naming_setting_and_source() {
    let cases = [
        (
            "STOCKX_REQUESTS_PER_SECOND",
            "-1",
            "STOCKX_REQUESTS_PER_SECOND",
        ),
        ("STOCKX_API_URL", "not a url", "STOCKX_API_URL"),
        ("STOCKX_SYNC_LOG_FORMAT", "xml", "STOCKX_SYNC_LOG_FORMAT"),
        ("STOCKX_CURRENCY", "euro", "STOCKX_CURRENCY"),
        (
            "STOCKX_SYNC_HTTP_ADDR",
            "localhost",
            "STOCKX_SYNC_HTTP_ADDR",
        ),
    ];
    for (var, value, named) in cases {
        let (code, _, stderr) = run(command().arg("status").env(var, value));
        assert_eq!(code, 2, "{var}={value}: {stderr}");
        assert!(stderr.contains(named), "{var}: {stderr}");
        assert!(
            stderr.contains("environment"),
            "{var} names the source: {stderr}"
        );
    }
}

#[test]
fn a_bad_value_in_the_settings_file_names_the_file() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "[stockx]\nrequests_per_second = -3").unwrap();
    let (code, _, stderr) = run(command().arg("status").arg("--config").arg(file.path()));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("requests_per_second"), "{stderr}");
    assert!(
        stderr.contains(&file.path().display().to_string()),
        "names the file: {stderr}"
    );

    let (code, _, stderr) = run(command()
        .arg("status")
        .arg("--config")
        .arg("/nonexistent.toml"));
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent.toml"), "{stderr}");
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "database_url = \"postgres://app:pw-7f3a@db/stockx\"\n[stockx]\nclient_secret = \"cs-91be\"\nrefresh_token = \"rt-55aa\"\napi_key = \"ak-11ff\"\n[notion]\ntoken = \"ntn_secret_77\"\n[http]\napi_token = \"tok-3c3c\""
    )
    .unwrap();
    let settings = stockx_sync::config::Settings::load(Some(file.path())).unwrap();
    let debug = format!("{settings:?}");
    for secret in [
        "pw-7f3a",
        "cs-91be",
        "rt-55aa",
        "ak-11ff",
        "ntn_secret_77",
        "tok-3c3c",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
    assert!(
        !settings.stockx_credentials_present(),
        "client_id is missing"
    );
}

#[tokio::test]
async fn migrate_status_and_verify_from_the_command_line() {
    let db = TestDb::new().await;
    let url = db.url();

    let (code, stdout, stderr) = run(command().arg("migrate").env("DATABASE_URL", &url));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("up to date"), "{stdout}");

    Sale::new("C-1").insert(&db.pool).await.unwrap();
    let (code, stdout, stderr) = run(command()
        .args(["status", "--json"])
        .env("DATABASE_URL", &url));
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["queue"][0]["state"], "available");
    assert_eq!(json["queue"][0]["jobs"], 2);

    let (code, stdout, _) = run(command().arg("verify").env("DATABASE_URL", &url));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("all 5 checks passed"), "{stdout}");

    let mut bad = Sale::new("C-2");
    bad.profit = Some("1.00");
    bad.insert(&db.pool).await.unwrap();
    let (code, stdout, _) = run(command().args(["verify"]).env("DATABASE_URL", &url));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAIL  profit_mismatch: 1"), "{stdout}");
    assert!(stdout.contains("C-2"), "{stdout}");
}

#[test]
fn every_command_has_a_one_line_help() {
    let (code, stdout, _) = run(command().arg("--help"));
    assert_eq!(code, 0);
    for name in ["migrate", "status", "verify"] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing from --help: {stdout}"));
        assert!(line.len() > name.len() + 10, "{name} has a description");
    }
}

#[test]
fn config_errors_speak_of_values_not_rust_types_and_name_the_toml_file() {
    let (code, _, stderr) = run(command()
        .arg("status")
        .env("STOCKX_SYNC_WORKER_CONCURRENCY", "four"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("expected a whole number"), "{stderr}");
    assert!(stderr.contains("\"four\""), "{stderr}");
    let (code, _, stderr) = run(command().arg("status").env("STOCKX_SYNC_LOG_FORMAT", "xml"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("expected one of: text, json"), "{stderr}");
    assert!(!stderr.contains("``"), "nested backticks: {stderr}");
    let (_, _, stderr) = run(command()
        .arg("status")
        .env("STOCKX_DAILY_REQUEST_BUDGET", "-5"));
    for rust in ["usize", "u32", "i64", "signed int"] {
        assert!(!stderr.contains(rust), "{rust}: {stderr}");
    }

    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "[stockx\nrequests_per_second = 2").unwrap();
    let (code, _, stderr) = run(command().arg("status").arg("--config").arg(file.path()));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} is not valid TOML (line 1",
            file.path().display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");

    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "[worker]\nconcurency = 3").unwrap();
    let (code, _, stderr) = run(command().arg("status").arg("--config").arg(file.path()));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("unknown setting \"concurency\"") && stderr.contains("concurrency"),
        "{stderr}"
    );
    assert!(!stderr.contains("``"), "nested backticks: {stderr}");
}

#[test]
fn a_database_url_that_is_not_postgresql_or_not_reachable_is_a_configuration_error() {
    let (code, _, stderr) = run(command()
        .arg("status")
        .env("DATABASE_URL", "mysql://app@127.0.0.1:3306/shop"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    assert!(stderr.contains("mysql://"), "{stderr}");

    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, stderr) = run(command().arg("status").env(
        "DATABASE_URL",
        format!("postgres://postgres@127.0.0.1:{port}/stockx"),
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("connection refused at 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(!stderr.contains("timed out"), "{stderr}");
}

#[test]
fn retry_without_arguments_names_all_failed() {
    let (code, _, stderr) = run(command().arg("retry"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--all-failed"), "{stderr}");
}

#[tokio::test]
async fn the_demo_never_recreates_a_database_holding_other_sales() {
    let db = TestDb::new().await;
    Sale::new("C-1").insert(&db.pool).await.unwrap();
    let (code, stdout, stderr) = run(command()
        .args(["--db", &db.name, "demo"])
        .env("DATABASE_URL", db.url()));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("1 sale(s) the demo did not enter")
            && stderr.contains("--db stockx_sync_demo"),
        "{stderr}"
    );
    assert_eq!(db.count("platforms.stockx_orders").await, 1);
}
