//! The function manifest, `hearth.toml` next to the code: the function's name, its whole
//! configuration (the API's field names) and its HTTP triggers. `hearth deploy` makes the
//! server match it; `hearth new` writes one.
//!
//! ```toml
//! name = "hello"
//! runtime = "python3"
//! handler = "main.handler"
//! memory_mb = 128
//! # code = "."                 # a folder or .zip, relative to this file (default: its folder)
//!
//! [environment]
//! GREETING = "Hello"
//!
//! [[triggers]]
//! path = "/hello"
//! methods = ["GET", "POST"]    # default: any
//! auth = "none"                # or "token"
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hearth_types::api::TriggerSpec;
use hearth_types::{FunctionName, FunctionSpec, TriggerAuth, TriggerPath, validate_methods};
use serde::Deserialize;

pub const MANIFEST_FILE: &str = "hearth.toml";
/// A manifest is a few hundred bytes; anything near this is not one.
const MAX_MANIFEST_BYTES: u64 = 256 * 1024;
/// More triggers than any function needs; keeps a typo'd loop from flooding the server.
const MAX_TRIGGERS: usize = 64;

/// A manifest, checked: every rule the server applies to its contents that can be checked
/// without the server has been.
#[derive(Debug)]
pub struct Manifest {
    /// The file it was read from.
    pub path: PathBuf,
    pub name: FunctionName,
    /// The code: a folder or a zip.
    pub code: PathBuf,
    pub spec: FunctionSpec,
    pub triggers: Vec<ManifestTrigger>,
}

/// One HTTP trigger of the manifest, normalised as the server stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestTrigger {
    pub path: TriggerPath,
    /// Upper case, without repeats; empty means any.
    pub methods: Vec<String>,
    pub auth: TriggerAuth,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerEntry {
    /// `http`, the only kind.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    path: String,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    auth: Option<TriggerAuth>,
}

impl Manifest {
    /// Reads `hearth.toml` from `dir` (or the file itself if `dir` is one).
    pub fn load(dir: &Path) -> Result<Self> {
        let path = if dir.is_dir() { dir.join(MANIFEST_FILE) } else { dir.to_path_buf() };
        let size = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no {MANIFEST_FILE} in {}: `hearth new NAME --runtime python3` makes a function with one, \
                 or deploy a folder without one with `hearth fn deploy`",
                dir.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if size > MAX_MANIFEST_BYTES {
            bail!("{} is {size} bytes: a manifest is at most {} KiB", path.display(), MAX_MANIFEST_BYTES / 1024);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let manifest = Self::parse(&text, &path).with_context(|| format!("in {}", path.display()))?;
        // Symlinks are resolved too: the code must really be inside the folder.
        let folder = path.parent().unwrap_or(Path::new(".")).canonicalize()?;
        let code =
            manifest.code.canonicalize().with_context(|| format!("cannot read `code` {}", manifest.code.display()))?;
        if !code.starts_with(&folder) {
            bail!(
                "in {}: `code` leads to {}, outside the manifest's folder {}",
                path.display(),
                code.display(),
                folder.display()
            );
        }
        Ok(manifest)
    }

    fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut table: toml::Table = toml::from_str(text)?;
        let name = match table.remove("name") {
            Some(toml::Value::String(s)) => s.parse::<FunctionName>()?,
            Some(_) => bail!("`name` must be a string"),
            None => bail!("`name` is missing: the function's name, e.g. name = \"hello\""),
        };
        let folder = path.parent().unwrap_or(Path::new("."));
        let code = match table.remove("code") {
            Some(toml::Value::String(s)) => {
                // Inside the manifest's folder only: a cloned project must not be able to
                // upload files from elsewhere on the machine.
                let relative = Path::new(&s);
                let inside = relative
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
                if !inside {
                    bail!("`code` {s:?} must be a folder or .zip inside the manifest's folder (no `..`, not absolute)");
                }
                folder.join(relative)
            }
            Some(_) => bail!("`code` must be a string: a folder or .zip relative to the manifest"),
            None => folder.to_path_buf(),
        };
        let triggers: Vec<TriggerEntry> = match table.remove("triggers") {
            Some(v) => v.try_into().context("`triggers` must be a list of [[triggers]] tables")?,
            None => Vec::new(),
        };
        if triggers.len() > MAX_TRIGGERS {
            bail!("{} triggers: a manifest may have at most {MAX_TRIGGERS}", triggers.len());
        }
        if table.contains_key("code_sha256") {
            bail!("`code_sha256` is not a manifest key: the code is `code` (a folder or .zip)");
        }
        // Through JSON, so the settings read exactly as the API reads them.
        let json = serde_json::to_value(&table)?;
        let spec: FunctionSpec = serde_json::from_value(json)?;
        spec.validate()?;
        let mut checked: Vec<ManifestTrigger> = Vec::new();
        for t in triggers {
            if t.kind.as_deref().is_some_and(|k| k != "http") {
                bail!("trigger type {:?}: only \"http\" triggers exist", t.kind.unwrap_or_default());
            }
            let trigger = ManifestTrigger {
                path: TriggerPath::try_from(t.path)?,
                methods: validate_methods(&t.methods)?,
                auth: t.auth.unwrap_or_default(),
            };
            if checked.iter().any(|c| c.path == trigger.path) {
                bail!("two triggers have the path {}", trigger.path);
            }
            checked.push(trigger);
        }
        Ok(Self { path: path.to_path_buf(), name, code, spec, triggers: checked })
    }
}

impl ManifestTrigger {
    /// Whether a trigger on the server is this one.
    pub fn is(&self, t: &hearth_types::HttpTrigger) -> bool {
        let mut a = self.methods.clone();
        let mut b = t.methods.clone();
        a.sort();
        b.sort();
        t.path == self.path && a == b && t.auth == self.auth
    }

    pub fn spec(&self, function: &FunctionName) -> TriggerSpec {
        let auth = match self.auth {
            TriggerAuth::None => "none",
            TriggerAuth::Token => "token",
        };
        TriggerSpec {
            kind: Some("http".into()),
            function: function.to_string(),
            path: self.path.to_string(),
            methods: self.methods.clone(),
            auth: Some(auth.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(text, Path::new("/src/hello/hearth.toml"))
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn a_full_manifest() {
        let m = parse(
            "name = \"hello\"\nruntime = \"python3\"\nhandler = \"main.handler\"\nmemory_mb = 256\ncode = \"build\"\n\
             [environment]\nA = \"1\"\n[[triggers]]\npath = \"/hello/\"\nmethods = [\"get\", \"POST\"]\n\
             [[triggers]]\ntype = \"http\"\npath = \"/admin\"\nauth = \"token\"\n",
        )
        .unwrap();
        assert_eq!(m.name.as_str(), "hello");
        assert_eq!(m.code, Path::new("/src/hello/build"));
        assert_eq!((m.spec.memory_mb, m.spec.environment["A"].as_str()), (Some(256), "1"));
        assert_eq!(m.triggers[0].path.as_str(), "/hello");
        assert_eq!(m.triggers[0].methods, ["GET", "POST"]);
        assert_eq!((m.triggers[0].auth, m.triggers[1].auth), (TriggerAuth::None, TriggerAuth::Token));
        let minimal = parse("name = \"n\"\nruntime = \"provided\"\n").unwrap();
        assert_eq!((minimal.code.as_path(), minimal.triggers.len()), (Path::new("/src/hello"), 0));
    }

    #[test]
    fn mistakes_are_named() {
        assert!(err("runtime = \"python3\"\n").contains("`name` is missing"));
        assert!(err("name = \"Bad Name\"\nruntime = \"python3\"\n").contains("Bad Name"));
        assert!(
            err("name = \"a\"\nruntime = \"python3\"\nhandler = \"m.h\"\nmemory = 256\n")
                .contains("unknown field `memory`")
        );
        assert!(err("name = \"a\"\nruntime = \"python3\"\nhandler = \"m.h\"\nmemory_mb = 1\n").contains("memory"));
        assert!(err("name = \"a\"\nruntime = \"cobol\"\n").contains("cobol"));
        assert!(err("name = \"a\"\nruntime = \"provided\"\n[[triggers]]\npath = \"/v1/x\"\n").contains("/v1"));
        assert!(
            err("name = \"a\"\nruntime = \"provided\"\n[[triggers]]\npath = \"/x\"\nmethods = [\"FETCH\"]\n")
                .contains("FETCH")
        );
        assert!(
            err("name = \"a\"\nruntime = \"provided\"\n[[triggers]]\npath = \"/x\"\n[[triggers]]\npath = \"/x/\"\n")
                .contains("two triggers")
        );
        assert!(
            err("name = \"a\"\nruntime = \"provided\"\n[[triggers]]\ntype = \"cron\"\npath = \"/x\"\n")
                .contains("only \"http\"")
        );
        assert!(
            err("name = \"a\"\nruntime = \"provided\"\n[[triggers]]\npath = \"/x\"\nauth = \"maybe\"\n")
                .contains("maybe")
        );
        assert!(err("name = \"a\"\nruntime = \"provided\"\ncode_sha256 = \"00\"\n").contains("code_sha256"));
        for outside in ["../secret", "/etc", "a/../../b"] {
            let e = err(&format!("name = \"a\"\nruntime = \"provided\"\ncode = \"{outside}\"\n"));
            assert!(e.contains("inside the manifest's folder"), "{outside}: {e}");
        }
        assert!(err("name = \"a\"\nruntime = [\n").contains("line 2"), "{}", err("name = \"a\"\nruntime = [\n"));
    }

    #[test]
    fn code_behind_a_symlink_out_of_the_folder_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("build")).unwrap();
        let manifest = |code: &str| format!("name = \"a\"\nruntime = \"provided\"\ncode = \"{code}\"\n");
        std::fs::write(dir.path().join(MANIFEST_FILE), manifest("link")).unwrap();
        let e = format!("{:#}", Manifest::load(dir.path()).unwrap_err());
        assert!(e.contains("outside the manifest's folder"), "{e}");
        std::fs::write(dir.path().join(MANIFEST_FILE), manifest("build")).unwrap();
        assert!(Manifest::load(dir.path()).is_ok());
    }

    #[test]
    fn a_missing_or_huge_manifest_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let e = format!("{:#}", Manifest::load(dir.path()).unwrap_err());
        assert!(e.contains("hearth new"), "{e}");
        std::fs::write(dir.path().join(MANIFEST_FILE), "#".repeat(300 * 1024)).unwrap();
        let e = format!("{:#}", Manifest::load(dir.path()).unwrap_err());
        assert!(e.contains("at most 256 KiB"), "{e}");
    }
}
