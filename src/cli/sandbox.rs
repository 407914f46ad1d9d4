//! `stockx-sync sandbox`: the local StockX API sandbox on its own, for trying the worker by hand.

use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::sandbox::{self, Faults, SandboxOptions};

/// Serves until `stop` is cancelled.
pub async fn run(
    addr: SocketAddr,
    throttle_every: Option<u64>,
    fail_every: Option<u64>,
    delay_ms: u64,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let options = SandboxOptions {
        faults: Faults {
            throttle_every_nth: throttle_every,
            retry_after_secs: 1,
            server_error_every_nth: fail_every,
            delay: Duration::from_millis(delay_ms),
            malformed_json: false,
            ..Faults::default()
        },
        ..Default::default()
    };
    sandbox::serve_until(addr, options, stop)
        .await
        .map_err(|e| anyhow::anyhow!("sandbox on {addr}: {e}"))
}
