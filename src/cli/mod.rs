//! The commands that talk to the running daemon (through
//! [`crate::client::DaemonClient`]) or, when it is down, to its database:
//! `status`, `alerts` (and silences), `camera reset`. Each returns the text
//! to print; `main.rs` prints it and decides the exit code.

pub mod access;
pub mod alerts;
pub mod backup;
pub mod status;
pub mod storage;

use anyhow::Context as _;

use crate::client::{ClientError, DaemonClient};
use crate::config::Config;

/// `vms-supervisor camera reset ID`.
pub async fn reset_camera(config: &Config, id: u32) -> anyhow::Result<String> {
    let client = DaemonClient::new(config);
    anyhow::ensure!(
        client.has_token(),
        "cannot read the API token {} (run as root or as the vms user)",
        config.api.token_file.display()
    );
    match client.reset(id).await {
        Ok(_) => Ok(format!("camera {id}: reset; it is supervised again\n")),
        Err(ClientError::Unreachable(why)) => Err(anyhow::anyhow!(why)).with_context(|| {
            format!(
                "the daemon does not answer at {} (is vms-supervisor running?)",
                client.base()
            )
        }),
        Err(e) => Err(e.into()),
    }
}
