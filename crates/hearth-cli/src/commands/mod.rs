pub mod aliases;
mod code_pull;
pub mod contexts;
pub mod events;
pub mod functions;
pub mod invoke;
pub mod logs;
pub mod manifest_deploy;
pub mod node;
pub mod scaffold;
pub mod tokens;
pub mod triggers;
pub mod usage;

use std::sync::OnceLock;

use anyhow::{Context, Result};
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
    let source = if process_env("HEARTH_URL").is_some() { "HEARTH_URL" } else { "the context's url" };
    Client::check_url(cfg.url()).with_context(|| format!("{source} cannot be used"))?;
    Ok(Client::new(cfg.url(), cfg.token.clone()))
}

/// The id among `ids` that `given` names: the id itself or a unique prefix of it. Otherwise
/// an error: `not_found` (with the server's code for a missing one), or one listing the
/// candidates when the prefix is ambiguous.
pub(crate) fn resolve_id(kind: &str, not_found: &'static str, given: &str, ids: &[String]) -> Result<String> {
    use crate::error::CliError;
    let given_lower = given.to_ascii_lowercase();
    if let Some(id) = ids.iter().find(|id| id.eq_ignore_ascii_case(given)) {
        return Ok(id.clone());
    }
    let matches: Vec<&String> =
        ids.iter().filter(|id| !given.is_empty() && id.to_ascii_lowercase().starts_with(&given_lower)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(CliError::failed(
            not_found,
            format!("no {kind} has an id starting with {given:?} (`hearth {kind} list` lists them)"),
        )
        .into()),
        many => {
            let list: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
            let message = format!(
                "{given:?} is the start of {} {kind} ids: {}; type more of the id",
                many.len(),
                list.join(", ")
            );
            Err(CliError::failed("AmbiguousId", message).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CliError;

    #[test]
    fn ids_by_unique_prefix() {
        let ids: Vec<String> = ["6f0c11aa", "6f0d22bb", "1a2b33cc"].iter().map(|s| s.to_string()).collect();
        let resolve = |given: &str| resolve_id("trigger", "TriggerNotFound", given, &ids);
        assert_eq!(resolve("6f0c").unwrap(), "6f0c11aa");
        assert_eq!(resolve("1A2B").unwrap(), "1a2b33cc", "ids are hex: any case");
        assert_eq!(resolve("6f0d22bb").unwrap(), "6f0d22bb");
        let code = |given: &str| {
            let err = resolve(given).unwrap_err();
            let e = err.downcast_ref::<CliError>().unwrap().clone();
            (e.code, e.message)
        };
        let (c, m) = code("6f0");
        assert_eq!(c, "AmbiguousId");
        assert!(m.contains("6f0c11aa, 6f0d22bb"), "{m}");
        assert_eq!(code("ff").0, "TriggerNotFound");
        assert_eq!(code("").0, "TriggerNotFound");
    }
}
