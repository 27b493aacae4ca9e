//! `hearth new NAME --runtime R`: a working function in a new folder, from templates built
//! into the binary: the handler and a `hearth.toml` with an HTTP trigger.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hearth_types::FunctionName;

use crate::manifest::MANIFEST_FILE;
use crate::output::print_json;

const MANIFEST: &str = include_str!("../../templates/manifest.toml");

/// One template: its files (name, contents, executable) and the manifest's handler line.
struct Template {
    files: &'static [(&'static str, &'static str, bool)],
    handler: Option<&'static str>,
}

fn template(runtime: &str) -> Result<Template> {
    Ok(match runtime {
        "python3" => Template {
            files: &[("main.py", include_str!("../../templates/python3/main.py"), false)],
            handler: Some("main.handler"),
        },
        "nodejs" => Template {
            files: &[("index.mjs", include_str!("../../templates/nodejs/index.mjs"), false)],
            handler: Some("index.handler"),
        },
        "provided" => Template {
            files: &[("bootstrap", include_str!("../../templates/provided/bootstrap"), true)],
            handler: None,
        },
        other => bail!("--runtime {other:?}: templates exist for python3, nodejs and provided"),
    })
}

pub fn run(name: &str, runtime: &str, dir: Option<PathBuf>, json: bool) -> Result<()> {
    let name: FunctionName = name.parse()?;
    let template = template(runtime)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name.as_str()));
    create_empty(&dir)?;
    let handler = template.handler.map(|h| format!("handler = \"{h}\"\n")).unwrap_or_default();
    let manifest =
        MANIFEST.replace("{name}", name.as_str()).replace("{runtime}", runtime).replace("{handler}", &handler);
    write(&dir.join(MANIFEST_FILE), &manifest, false)?;
    for (file, text, executable) in template.files {
        write(&dir.join(file), text, *executable)?;
    }
    if json {
        let files: Vec<&str> = std::iter::once(MANIFEST_FILE).chain(template.files.iter().map(|f| f.0)).collect();
        return print_json(&serde_json::json!({"name": name, "runtime": runtime, "dir": dir, "files": files}));
    }
    println!("Created {} ({runtime}) in {}:", name, dir.display());
    println!("    {MANIFEST_FILE}  (settings and the trigger /{name})");
    for (file, _, _) in template.files {
        println!("    {file}");
    }
    println!("\nDeploy it:  cd {} && hearth deploy", dir.display());
    println!("Call it:    curl <trigger address>/{name}   (hearth trigger list shows the URL)");
    Ok(())
}

/// Makes `dir`, refusing one that exists and is not empty (nothing of the user's is
/// overwritten).
fn create_empty(dir: &Path) -> Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        bail!("{} exists and is not empty: choose another folder with --dir", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn write(path: &Path, text: &str, executable: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    if executable {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}
