//! `stockx-sync`: see `stockx_sync::cli` for the commands.

use std::process::ExitCode;

use clap::Parser;
use stockx_sync::cli::{run, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("stockx-sync: {error}");
            error.exit_code()
        }
    }
}
