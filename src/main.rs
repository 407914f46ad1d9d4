//! `stockx-sync`: see `stockx_sync::cli` for the commands.

use std::process::ExitCode;

use clap::Parser;
use stockx_sync::cli::{error_json, run, wants_json, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json = wants_json(&args);
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        // `--help` and `--version` are not errors; a usage error asked for as JSON is one.
        Err(e) if json && e.use_stderr() => {
            let message = e.render().to_string();
            eprint!("{message}");
            println!("{}", error_json(message.trim(), "usage", 2));
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("stockx-sync: {error}");
            if json && !error.report_printed() {
                let (kind, code) = error.kind();
                println!("{}", error_json(&error.to_string(), kind, code));
            }
            error.exit_code()
        }
    }
}
