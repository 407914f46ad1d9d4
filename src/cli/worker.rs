//! `stockx-sync worker`: the program built from the settings (see `app`), run until SIGINT or
//! SIGTERM.

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::Settings;

/// Runs until `stop` is cancelled.
pub async fn run(
    settings: &Settings,
    pool: &PgPool,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let app = App::build(settings, pool.clone()).await?;
    app.run_until_stopped(stop).await?;
    Ok(())
}
