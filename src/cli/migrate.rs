//! `stockx-sync migrate`: applies the embedded migrations and says which.

use std::process::ExitCode;

use super::CliError;
use crate::db::{self, Database};

pub async fn run(database: &Database) -> Result<ExitCode, CliError> {
    let applied = db::migrate(&database.pool).await?;
    if applied.is_empty() {
        println!("database is up to date ({})", database.location);
    } else {
        for migration in &applied {
            println!("applied {migration}");
        }
        println!(
            "{} migration(s) applied to {}",
            applied.len(),
            database.location
        );
    }
    Ok(ExitCode::SUCCESS)
}
