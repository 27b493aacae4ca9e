//! The client's file: named contexts, each a server's URL and a token, one of them current
//! (like kubectl's). `hearth up` adds a context for its server and never changes another's;
//! `hearth context` lists, adds, switches and deletes them.
//!
//! ```toml
//! current = "local"
//!
//! [contexts.local]
//! url = "http://127.0.0.1:8080"
//! token = "hth_…"
//! ```
//!
//! A file from before contexts (top-level `url` and `token`) reads as one context named
//! `default`, and is written in this shape the next time it changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use super::{EnvLookup, config_home};

/// The name `hearth up` gives its server's context (then `local-2`, `local-3`, … when taken).
pub const LOCAL_CONTEXT: &str = "local";
/// The name a file from before contexts reads as.
const LEGACY_CONTEXT: &str = "default";
const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Where the CLI's own configuration lives.
pub fn client_config_path(env: EnvLookup) -> PathBuf {
    env("HEARTH_CLIENT_CONFIG").map(PathBuf::from).unwrap_or_else(|| config_home(env).join("config.toml"))
}

/// A context name: 1-64 letters, digits, '-', '_' or '.'; `what` names where it came from
/// (`--context`, `HEARTH_CONTEXT`, `context name`). Anything else is a usage error.
pub fn check_context_name(name: &str, what: &str) -> std::result::Result<(), crate::error::CliError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        return Ok(());
    }
    Err(crate::error::CliError::usage(
        "InvalidContextName",
        format!("{what} {name:?} is not a context name: use 1-64 letters, digits, '-', '_' or '.'"),
    ))
}

/// One server as the CLI reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerContext {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The client file.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, ServerContext>,
    /// Before contexts: the one server's URL and token (read, never written).
    #[serde(default, skip_serializing)]
    url: Option<String>,
    #[serde(default, skip_serializing)]
    token: Option<String>,
}

impl ClientFile {
    /// The file at `path`; empty if there is none.
    pub fn read(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read client config {}", path.display())),
        };
        let mut file: Self =
            toml::from_str(&text).with_context(|| format!("invalid client config {}", path.display()))?;
        if file.contexts.is_empty() && (file.url.is_some() || file.token.is_some()) {
            let url = file.url.take().unwrap_or_else(|| DEFAULT_URL.to_owned());
            file.contexts.insert(LEGACY_CONTEXT.to_owned(), ServerContext { url, token: file.token.take() });
            file.current = Some(LEGACY_CONTEXT.to_owned());
        }
        Ok(file)
    }

    /// Writes the file readable by its owner only (it holds secrets), atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = toml::to_string(self)?;
        let tmp = path.with_extension("toml.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// Adds a context under the first free name of `base`, `base-2`, `base-3`, …; returns it.
    pub fn add_unique(&mut self, base: &str, context: ServerContext) -> String {
        let name = std::iter::once(base.to_owned())
            .chain((2..).map(|n| format!("{base}-{n}")))
            .find(|n| !self.contexts.contains_key(n))
            .expect("some name is free");
        self.contexts.insert(name.clone(), context);
        name
    }

    /// The context `name`, or an error that lists the others.
    pub fn get(&self, name: &str) -> Result<&ServerContext> {
        match self.contexts.get(name) {
            Some(c) => Ok(c),
            None => bail!("{}", self.no_such(name)),
        }
    }

    pub fn no_such(&self, name: &str) -> String {
        let known: Vec<&str> = self.contexts.keys().map(String::as_str).collect();
        if known.is_empty() {
            format!("no context named {name:?}: there are none yet (`hearth up` or `hearth context add` makes one)")
        } else {
            format!("no context named {name:?}; the contexts are {} (`hearth context list`)", known.join(", "))
        }
    }
}

/// What a client command talks to: the selected context, then `HEARTH_URL` / `HEARTH_TOKEN`
/// over it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub url: Option<String>,
    pub token: Option<String>,
}

impl ClientConfig {
    /// The context named by `selected` (the `--context` flag), else by `HEARTH_CONTEXT`, else
    /// the file's current one; then the environment's URL and token over it.
    pub fn load(env: EnvLookup, selected: Option<&str>) -> Result<Self> {
        let file = ClientFile::read(&client_config_path(env))?;
        if let Some(name) = selected {
            check_context_name(name, "--context")?;
        }
        let from_env = env("HEARTH_CONTEXT");
        if let (None, Some(name)) = (selected, &from_env) {
            check_context_name(name, "HEARTH_CONTEXT")?;
        }
        let name = selected.map(str::to_owned).or(from_env).or(file.current.clone());
        let mut cfg = match name {
            Some(name) => {
                let c = file.get(&name)?;
                Self { url: Some(c.url.clone()), token: c.token.clone() }
            }
            None => Self::default(),
        };
        if let Some(url) = env("HEARTH_URL") {
            cfg.url = Some(url);
        }
        if let Some(token) = env("HEARTH_TOKEN") {
            cfg.token = Some(token);
        }
        Ok(cfg)
    }

    pub fn url(&self) -> &str {
        self.url.as_deref().unwrap_or(DEFAULT_URL)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn context(url: &str, token: &str) -> ServerContext {
        ServerContext { url: url.into(), token: Some(token.into()) }
    }

    #[test]
    fn flag_then_env_then_current_then_url_and_token_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let mut file = ClientFile::default();
        file.contexts.insert("a".into(), context("http://127.0.0.1:1", "hth_a"));
        file.contexts.insert("b".into(), context("http://127.0.0.1:2", "hth_b"));
        file.current = Some("a".into());
        file.write(&path).unwrap();
        let p = path.to_str().unwrap();

        let c = ClientConfig::load(&env_of(&[("HEARTH_CLIENT_CONFIG", p)]), None).unwrap();
        assert_eq!(c.token.as_deref(), Some("hth_a"));
        let env = env_of(&[("HEARTH_CLIENT_CONFIG", p), ("HEARTH_CONTEXT", "b")]);
        assert_eq!(ClientConfig::load(&env, None).unwrap().token.as_deref(), Some("hth_b"));
        let env = env_of(&[("HEARTH_CLIENT_CONFIG", p), ("HEARTH_CONTEXT", "nosuch")]);
        assert_eq!(ClientConfig::load(&env, Some("a")).unwrap().url(), "http://127.0.0.1:1");
        let err = ClientConfig::load(&env, None).unwrap_err().to_string();
        assert!(err.contains("\"nosuch\"") && err.contains("a, b"), "{err}");
        // A current context the file does not hold is an error, not the default server.
        let mut dangling = ClientFile::read(&path).unwrap();
        dangling.current = Some("gone".into());
        dangling.write(&path).unwrap();
        let err = ClientConfig::load(&env_of(&[("HEARTH_CLIENT_CONFIG", p)]), None).unwrap_err().to_string();
        assert!(err.contains("\"gone\""), "{err}");

        let env = env_of(&[("HEARTH_CLIENT_CONFIG", p), ("HEARTH_TOKEN", "hth_env"), ("HEARTH_URL", "http://x")]);
        let c = ClientConfig::load(&env, Some("b")).unwrap();
        assert_eq!((c.url(), c.token.as_deref()), ("http://x", Some("hth_env")));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_file_from_before_contexts_is_the_default_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "url = \"http://127.0.0.1:9\"\ntoken = \"hth_old\"\n").unwrap();
        let mut file = ClientFile::read(&path).unwrap();
        assert_eq!(file.current.as_deref(), Some("default"));
        assert_eq!(file.get("default").unwrap(), &context("http://127.0.0.1:9", "hth_old"));
        // Adding keeps it, and the rewritten file has only contexts.
        assert_eq!(file.add_unique("default", context("http://127.0.0.1:10", "hth_new")), "default-2");
        file.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.starts_with("url") && text.contains("[contexts.default]"), "{text}");
        let again = ClientFile::read(&path).unwrap();
        assert_eq!(again.contexts.len(), 2);
        assert_eq!(again.get("default").unwrap().token.as_deref(), Some("hth_old"));
    }

    #[test]
    fn no_file_means_the_default_url_and_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("none.toml");
        let c = ClientConfig::load(&env_of(&[("HEARTH_CLIENT_CONFIG", p.to_str().unwrap())]), None).unwrap();
        assert_eq!((c.url(), c.token.as_deref()), (DEFAULT_URL, None));
    }
}
