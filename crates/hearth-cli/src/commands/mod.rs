mod code_pull;
pub mod contexts;
pub mod functions;
pub mod invoke;
pub mod logs;
pub mod manifest_deploy;
pub mod node;
pub mod scaffold;
pub mod tokens;
pub mod triggers;

use std::sync::OnceLock;

use anyhow::Result;
use hearth_client::Client;

use crate::config::{ClientConfig, process_env};

/// The context `--context` named, if any (set once, before any command runs).
static SELECTED_CONTEXT: OnceLock<Option<String>> = OnceLock::new();

pub fn select_context(name: Option<String>) {
    let _ = SELECTED_CONTEXT.set(name);
}

/// A client of the selected context's server, with `HEARTH_URL` / `HEARTH_TOKEN` over it.
pub fn client() -> Result<Client> {
    let selected = SELECTED_CONTEXT.get().and_then(Option::as_deref);
    let cfg = ClientConfig::load(&process_env, selected)?;
    Ok(Client::new(cfg.url(), cfg.token.clone()))
}
