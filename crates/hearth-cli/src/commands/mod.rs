mod code_pull;
pub mod functions;
pub mod invoke;
pub mod logs;
pub mod node;
pub mod tokens;
pub mod triggers;

use anyhow::Result;
use hearth_client::Client;

use crate::config::{ClientConfig, process_env};

/// A client configured from the client config file and `HEARTH_URL` / `HEARTH_TOKEN`.
pub fn client() -> Result<Client> {
    let cfg = ClientConfig::load(&process_env)?;
    Ok(Client::new(cfg.url(), cfg.token.clone()))
}
