use anyhow::{Context, Result};
use hearth_types::api::DeployResponse;
use std::path::Path;

use hearth_types::{CodeRef, Function, FunctionSpec};

use super::{client, code_pull};
use crate::cli::{CodeArgs, CodeCommand, DeployArgs, FnCommand, SettingArgs};
use crate::output::{print_json, print_table, size, time};
use crate::package::package;

pub async fn run(cmd: FnCommand, json: bool) -> Result<()> {
    match cmd {
        FnCommand::Deploy(args) => deploy(*args, json).await,
        FnCommand::Config { name, settings } => configure(&name, &settings, json).await,
        FnCommand::List => list(json).await,
        FnCommand::Get { name } => get(&name, json).await,
        FnCommand::Delete { name } => {
            client()?.delete_function(&name).await?;
            if json {
                print_json(&serde_json::json!({"deleted": name}))
            } else {
                println!("Deleted function {name} and all its versions.");
                Ok(())
            }
        }
        FnCommand::Versions { name } => versions(&name, json).await,
        FnCommand::Instances { name } => instances(&name, json).await,
        FnCommand::Code(CodeArgs { command: Some(CodeCommand::Pull { name, dir, version, force }), .. }) => {
            code_pull::pull(&name, dir, version.as_deref(), force, json).await
        }
        FnCommand::Code(CodeArgs { command: None, name: Some(name), path: Some(path) }) => {
            replace_code(&name, &path, json).await
        }
        FnCommand::Code(_) => usage_error("hearth fn code takes NAME PATH, or pull NAME"),
    }
}

/// A usage error, reported as clap reports its own (exit code 2).
fn usage_error(message: &str) -> ! {
    use clap::CommandFactory;
    crate::cli::Cli::command().error(clap::error::ErrorKind::MissingRequiredArgument, message).exit()
}

impl SettingArgs {
    /// The settings given, as a JSON merge patch: each flag given replaces that setting,
    /// `--env` sets variables and `--unset-env` removes them; the rest stays.
    fn patch(&self) -> serde_json::Value {
        let mut patch = serde_json::Map::new();
        let mut put = |key: &str, value: serde_json::Value| {
            patch.insert(key.to_owned(), value);
        };
        let text = |v: &Option<String>| v.as_ref().map(|s| serde_json::Value::from(s.as_str()));
        let number = |v: &Option<i64>| v.map(serde_json::Value::from);
        for (key, value) in [
            ("runtime", text(&self.runtime)),
            ("handler", text(&self.handler)),
            ("memory_mb", number(&self.memory)),
            ("timeout_s", number(&self.timeout)),
            ("concurrency", number(&self.concurrency)),
            ("min_instances", number(&self.min_instances)),
            ("max_instances", number(&self.max_instances)),
            ("keep_alive_s", number(&self.keep_alive)),
            ("ephemeral_storage_mb", number(&self.ephemeral_storage)),
            ("keep_alive_policy", text(&self.keep_alive_policy)),
            ("network", text(&self.network)),
            ("description", text(&self.description)),
        ] {
            if let Some(value) = value {
                put(key, value);
            }
        }
        let mut env = serde_json::Map::new();
        for k in &self.unset_env {
            env.insert(k.clone(), serde_json::Value::Null);
        }
        for (k, v) in &self.env {
            env.insert(k.clone(), v.as_str().into());
        }
        if !env.is_empty() {
            put("environment", env.into());
        }
        patch.into()
    }

    /// The whole configuration of a new function (or one replaced with `--replace`):
    /// settings not given take their defaults.
    fn spec(&self, name: &str) -> FunctionSpec {
        let Some(runtime) = self.runtime.clone() else {
            usage_error(&format!("--runtime is required to create {name}: python3, nodejs, provided or wasm"))
        };
        FunctionSpec {
            runtime,
            handler: self.handler.clone(),
            memory_mb: self.memory,
            timeout_s: self.timeout,
            environment: self.env.iter().cloned().collect(),
            concurrency: self.concurrency,
            min_instances: self.min_instances,
            max_instances: self.max_instances,
            keep_alive_s: self.keep_alive,
            ephemeral_storage_mb: self.ephemeral_storage,
            network: self.network.clone(),
            keep_alive_policy: self.keep_alive_policy.clone(),
            description: self.description.clone(),
            code_sha256: None,
        }
    }
}

/// Deploys code and settings: an existing function keeps every setting not given (unless
/// `--replace`), a new one takes defaults for them. Settings are checked before anything is
/// packaged or uploaded.
async fn deploy(args: DeployArgs, json: bool) -> Result<()> {
    let name = &args.name;
    name.parse::<hearth_types::FunctionName>()?;
    let c = client()?;
    let existing = if args.replace { None } else { c.find_function(name).await? };
    let resp = match existing {
        Some(current) => {
            let mut patch = args.settings.patch();
            FunctionSpec::patched(&current.config, &patch)?.validate()?;
            let code = upload(&c, &args.path, json).await?;
            patch["code_sha256"] = code.sha256.to_string().into();
            c.patch_function(name, &patch).await?
        }
        None => {
            let spec = args.settings.spec(name);
            spec.validate()?;
            let code = upload(&c, &args.path, json).await?;
            c.put_function(name, &FunctionSpec { code_sha256: Some(code.sha256.to_string()), ..spec }).await?
        }
    };
    print_deployed(&resp, json)
}

/// `hearth fn config`: only the settings given change.
async fn configure(name: &str, settings: &SettingArgs, json: bool) -> Result<()> {
    name.parse::<hearth_types::FunctionName>()?;
    let patch = settings.patch();
    if patch.as_object().is_some_and(|p| p.is_empty()) {
        usage_error("give at least one setting to change, e.g. --memory 256 or --env KEY=VALUE");
    }
    let c = client()?;
    let current = c.get_function(name).await?;
    FunctionSpec::patched(&current.config, &patch)?.validate()?;
    print_deployed(&c.patch_function(name, &patch).await?, json)
}

/// `hearth fn code NAME PATH`: new code, the same settings.
async fn replace_code(name: &str, path: &Path, json: bool) -> Result<()> {
    name.parse::<hearth_types::FunctionName>()?;
    let c = client()?;
    c.get_function(name).await?;
    let code = upload(&c, path, json).await?;
    print_deployed(&c.patch_function(name, &serde_json::json!({"code_sha256": code.sha256.to_string()})).await?, json)
}

/// Packages a folder or zip and uploads it, or has the server fetch an `s3://` object.
pub(crate) async fn upload(c: &hearth_client::Client, path: &Path, json: bool) -> Result<CodeRef> {
    let source = path.to_string_lossy();
    if source.starts_with("s3://") {
        return c.upload_package_object(&source).await.context("fetching the package from the object store failed");
    }
    let pkg = package(path)?;
    let files = pkg.files.map(|n| format!("{n} file{}, ", if n == 1 { "" } else { "s" })).unwrap_or_default();
    if !json {
        eprintln!("Packaged {}: {files}{} zipped", path.display(), size(pkg.bytes.len() as u64));
    }
    c.upload_package(pkg.bytes).await.context("uploading the package failed")
}

pub(crate) fn print_deployed(resp: &DeployResponse, json: bool) -> Result<()> {
    if json {
        return print_json(resp);
    }
    let f = &resp.function;
    match &resp.new_version {
        Some(v) => println!(
            "Deployed {}: version {} ({}, {}, {} MB, code {})",
            f.name,
            v.number,
            v.config.runtime,
            v.config.handler,
            v.config.memory_mb,
            v.code.sha256.short()
        ),
        None if f.code.is_none() => println!("Configured {}: it has no code yet, deploy some to run it", f.name),
        None => println!("{} is unchanged: version {} is current", f.name, f.latest_version.unwrap_or(0)),
    }
    Ok(())
}

async fn list(json: bool) -> Result<()> {
    let functions = client()?.list_functions().await?;
    if json {
        return print_json(&functions);
    }
    let rows: Vec<Vec<String>> = functions.iter().map(row).collect();
    print_table(&["NAME", "RUNTIME", "HANDLER", "MEMORY", "TIMEOUT", "VERSION", "CODE", "UPDATED"], &rows);
    Ok(())
}

fn row(f: &Function) -> Vec<String> {
    let c = &f.config;
    vec![
        f.name.to_string(),
        c.runtime.to_string(),
        c.handler.clone(),
        format!("{} MB", c.memory_mb),
        format!("{} s", c.timeout_s),
        f.latest_version.map_or("-".into(), |v| v.to_string()),
        f.code.as_ref().map_or("-".into(), |c| c.sha256.short().to_owned()),
        time(&f.updated_at),
    ]
}

async fn get(name: &str, json: bool) -> Result<()> {
    let f = client()?.get_function(name).await?;
    if json {
        return print_json(&f);
    }
    let c = &f.config;
    let fields = [
        ("name", f.name.to_string()),
        ("runtime", c.runtime.to_string()),
        ("handler", c.handler.clone()),
        ("memory", format!("{} MB", c.memory_mb)),
        ("timeout", format!("{} s", c.timeout_s)),
        ("concurrency", c.concurrency.to_string()),
        ("instances", format!("min {}, max {}", c.min_instances, c.max_instances)),
        ("keep-alive", format!("{} s", c.keep_alive_s)),
        ("version", f.latest_version.map_or("- (no code yet)".into(), |v| v.to_string())),
        ("code", f.code.as_ref().map_or("-".into(), |c| format!("sha256:{} ({})", c.sha256, size(c.size_bytes)))),
        ("created", time(&f.created_at)),
        ("updated", time(&f.updated_at)),
    ];
    for (k, v) in fields {
        println!("{:<12} {v}", format!("{k}:"));
    }
    if !c.description.is_empty() {
        println!("{:<12} {}", "description:", c.description);
    }
    for (k, v) in &c.environment {
        println!("{:<12} {k}={v}", "env:");
    }
    Ok(())
}

async fn versions(name: &str, json: bool) -> Result<()> {
    let versions = client()?.list_versions(name).await?;
    if json {
        return print_json(&versions);
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.number.to_string(),
                time(&v.created_at),
                v.config.runtime.to_string(),
                v.config.handler.clone(),
                format!("{} MB", v.config.memory_mb),
                v.code.sha256.short().to_owned(),
                size(v.code.size_bytes),
            ]
        })
        .collect();
    print_table(&["VERSION", "CREATED", "RUNTIME", "HANDLER", "MEMORY", "CODE", "SIZE"], &rows);
    Ok(())
}

async fn instances(name: &str, json: bool) -> Result<()> {
    let list = client()?.instances(name).await?;
    if json {
        return print_json(&list);
    }
    let time = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|i| {
            vec![
                i.id.clone(),
                i.version.to_string(),
                i.state.to_string(),
                time(&i.started_at),
                i.requests_served.to_string(),
                time(&i.last_used),
            ]
        })
        .collect();
    print_table(&["ID", "VERSION", "STATE", "STARTED", "REQUESTS", "LAST USED"], &rows);
    Ok(())
}
