use anyhow::{Context, Result};
use hearth_types::api::DeployResponse;
use std::path::Path;

use hearth_types::{CodeRef, Function, FunctionSpec};

use super::{client, code_pull};
use crate::cli::{CodeArgs, CodeCommand, DeployArgs, FnCommand, SettingArgs};
use crate::error::{CliError, usage};
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
        FnCommand::Code(_) => usage!("UsageError", "hearth fn code takes NAME PATH, or pull NAME"),
    }
}

/// The flag that sets an API field of the configuration.
fn flag_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "memory_mb" => "--memory",
        "timeout_s" => "--timeout",
        "concurrency" => "--concurrency",
        "min_instances" => "--min-instances",
        "max_instances" => "--max-instances",
        "keep_alive_s" => "--keep-alive",
        "ephemeral_storage_mb" => "--ephemeral-storage",
        "async_retries" => "--async-retries",
        "max_event_age_s" => "--max-event-age",
        "max_queued_events" => "--max-queued-events",
        _ => return None,
    })
}

/// Checks settings given as flags before anything is sent: a refusal names the flag, not
/// the API field, and keeps the API's code (a usage error, exit 2).
fn check_flags(spec: &FunctionSpec) -> Result<()> {
    use hearth_types::ValidationError as V;
    let Err(e) = spec.validate() else { return Ok(()) };
    let message = match &e {
        V::OutOfRange { field, min, max, got } => match flag_of(field) {
            Some(flag) => format!("{flag} must be between {min} and {max}, got {got}"),
            None => e.to_string(),
        },
        V::MinAboveMax { min, max } => format!("--min-instances ({min}) must not exceed --max-instances ({max})"),
        V::DescriptionTooLong { got, max } => format!("--description is {got} characters long, more than {max}"),
        V::InvalidRuntime(_) | V::InvalidNetwork(_) | V::InvalidKeepAlivePolicy(_) | V::InvalidHandler(..) => {
            let flag = match &e {
                V::InvalidRuntime(_) => "--runtime",
                V::InvalidNetwork(_) => "--network",
                V::InvalidKeepAlivePolicy(_) => "--keep-alive-policy",
                _ => "--handler",
            };
            format!("{flag}: {e}")
        }
        V::InvalidEnvName(_) | V::ReservedEnvName(_) | V::EnvironmentTooLarge { .. } => format!("--env: {e}"),
        _ => e.to_string(),
    };
    Err(CliError::usage(e.code(), message).into())
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
        // An empty destination removes it.
        let destination = |v: &Option<String>| {
            v.as_ref().map(|s| if s.is_empty() { serde_json::Value::Null } else { s.as_str().into() })
        };
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
            ("async_retries", number(&self.async_retries)),
            ("max_event_age_s", number(&self.max_event_age)),
            ("max_queued_events", number(&self.max_queued_events)),
            ("on_success", destination(&self.on_success)),
            ("on_failure", destination(&self.on_failure)),
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
    fn spec(&self, name: &str) -> Result<FunctionSpec> {
        let Some(runtime) = self.runtime.clone() else {
            usage!("UsageError", "--runtime is required to create {name}: python3, nodejs, provided or wasm")
        };
        Ok(FunctionSpec {
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
            async_retries: self.async_retries,
            max_event_age_s: self.max_event_age,
            max_queued_events: self.max_queued_events,
            on_success: self.on_success.clone().filter(|s| !s.is_empty()),
            on_failure: self.on_failure.clone().filter(|s| !s.is_empty()),
            code_sha256: None,
        })
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
            check_flags(&FunctionSpec::patched(&current.config, &patch)?)?;
            let code = upload(&c, &args.path, json).await?;
            patch["code_sha256"] = code.sha256.to_string().into();
            c.patch_function(name, &patch).await?
        }
        None => {
            if !args.settings.unset_env.is_empty() {
                let why = if args.replace { "--replace starts from no variables" } else { "the function is new" };
                usage!("UsageError", "--unset-env has nothing to remove: {why}; leave it out");
            }
            let spec = args.settings.spec(name)?;
            check_flags(&spec)?;
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
        usage!("UsageError", "give at least one setting to change, e.g. --memory 256 or --env KEY=VALUE");
    }
    let c = client()?;
    let current = c.get_function(name).await?;
    check_flags(&FunctionSpec::patched(&current.config, &patch)?)?;
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
    for (_, label, value) in describe(&f) {
        println!("{:<19} {value}", format!("{label}:"));
    }
    Ok(())
}

/// Every field `hearth fn get --json` shows, for people: (its JSON path, label, value).
/// Environment variables are shown with their values (whoever holds a read token may read
/// them through the API anyway).
fn describe(f: &Function) -> Vec<(&'static str, &'static str, String)> {
    let c = &f.config;
    let mut rows = vec![
        ("name", "name", f.name.to_string()),
        ("id", "id", f.id.to_string()),
        (
            "config.description",
            "description",
            if c.description.is_empty() { "-".into() } else { c.description.clone() },
        ),
        ("config.runtime", "runtime", c.runtime.to_string()),
        ("config.handler", "handler", c.handler.clone()),
        ("config.memory_mb", "memory", format!("{} MB", c.memory_mb)),
        ("config.timeout_s", "timeout", format!("{} s", c.timeout_s)),
        ("config.concurrency", "concurrency", format!("{} per instance", c.concurrency)),
        ("config.min_instances", "min instances", c.min_instances.to_string()),
        ("config.max_instances", "max instances", c.max_instances.to_string()),
        ("config.keep_alive_s", "keep-alive", format!("{} s", c.keep_alive_s)),
        (
            "config.keep_alive_policy",
            "keep-alive policy",
            c.keep_alive_policy.map_or("the server's default".into(), |p| format!("{p:?}").to_lowercase()),
        ),
        ("config.ephemeral_storage_mb", "ephemeral storage", format!("{} MB", c.ephemeral_storage_mb)),
        ("config.network", "network", c.network.to_string()),
        ("config.async_retries", "async retries", c.events.async_retries.to_string()),
        ("config.max_event_age_s", "max event age", format!("{} s", c.events.max_event_age_s)),
        ("config.max_queued_events", "max queued events", c.events.max_queued_events.to_string()),
        ("config.on_success", "on success", c.events.on_success.as_ref().map_or("-".into(), |f| f.to_string())),
        (
            "config.on_failure",
            "on failure",
            c.events.on_failure.as_ref().map_or("- (the dead-letter list)".into(), |f| f.to_string()),
        ),
    ];
    if c.environment.is_empty() {
        rows.push(("config.environment", "environment", "-".into()));
    }
    for (k, v) in &c.environment {
        rows.push(("config.environment", "env", format!("{k}={v}")));
    }
    let code = f.code.as_ref();
    rows.extend([
        ("code.sha256", "code", code.map_or("- (no code yet)".into(), |c| format!("sha256:{}", c.sha256))),
        ("code.size_bytes", "code size", code.map_or("-".into(), |c| size(c.size_bytes))),
        ("latest_version", "latest version", f.latest_version.map_or("-".into(), |v| v.to_string())),
        ("revision", "revision", f.revision.to_string()),
        ("created_at", "created", time(&f.created_at)),
        ("updated_at", "updated", time(&f.updated_at)),
    ]);
    rows
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// The paths of a JSON document's leaves (`environment` is one leaf: its keys vary).
    fn leaves(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) if !prefix.ends_with("environment") => {
                for (k, v) in m {
                    let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    leaves(v, &path, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }

    #[test]
    fn fn_get_shows_every_field_the_json_shows() {
        let f: Function = serde_json::from_value(json!({
            "id": "0f6b2c1e-8a1d-4c55-9e0b-3d1c2b7a9f10", "name": "hello", "revision": 7,
            "config": {"runtime": "python3", "handler": "main.handler", "memory_mb": 256, "timeout_s": 9,
                "environment": {"GREETING": "hi, there"}, "concurrency": 4, "min_instances": 1, "max_instances": 7,
                "keep_alive_s": 30, "ephemeral_storage_mb": 1024, "network": "egress",
                "keep_alive_policy": "adaptive", "description": "says hello", "async_retries": 1,
                "max_event_age_s": 600, "max_queued_events": 50, "on_success": "audit", "on_failure": "errors"},
            "code": {"sha256": "a".repeat(64), "size_bytes": 2048}, "latest_version": 3,
            "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:06Z",
        }))
        .unwrap();
        let mut paths = Vec::new();
        leaves(&serde_json::to_value(&f).unwrap(), "", &mut paths);
        let rows = describe(&f);
        for path in &paths {
            assert!(rows.iter().any(|(p, _, _)| p == path), "fn get does not show {path}");
        }
        let text: Vec<String> = rows.iter().map(|(_, label, value)| format!("{label}: {value}")).collect();
        for expected in [
            "env: GREETING=hi, there",
            "concurrency: 4 per instance",
            "min instances: 1",
            "max instances: 7",
            "keep-alive: 30 s",
            "keep-alive policy: adaptive",
            "ephemeral storage: 1024 MB",
            "network: egress",
            "description: says hello",
            "async retries: 1",
            "max event age: 600 s",
            "max queued events: 50",
            "on success: audit",
            "on failure: errors",
            "code size: 2.0 KiB",
            "latest version: 3",
            "created: 2026-01-02 03:04:05",
        ] {
            assert!(text.iter().any(|t| t == expected), "missing {expected:?} in {text:#?}");
        }
    }

    #[test]
    fn refusals_of_flags_name_the_flags() {
        let spec = |patch: Value| {
            let mut base = json!({"runtime": "python3", "handler": "main.handler"});
            base.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
            serde_json::from_value::<FunctionSpec>(base).unwrap()
        };
        for (patch, flag, code) in [
            (json!({"memory_mb": 5}), "--memory must be between 64 and 10240, got 5", "InvalidMemorySize"),
            (json!({"timeout_s": 0}), "--timeout must be", "InvalidTimeout"),
            (json!({"keep_alive_s": 0}), "--keep-alive must be", "InvalidKeepAlive"),
            (json!({"ephemeral_storage_mb": 1}), "--ephemeral-storage must be", "InvalidEphemeralStorage"),
            (json!({"min_instances": 5000}), "--min-instances must be", "InvalidInstanceCount"),
            (json!({"max_instances": 0}), "--max-instances must be", "InvalidInstanceCount"),
            (json!({"concurrency": 0}), "--concurrency must be", "InvalidConcurrency"),
            (
                json!({"min_instances": 5, "max_instances": 2}),
                "--min-instances (5) must not exceed --max-instances",
                "InvalidInstanceCount",
            ),
        ] {
            let err = check_flags(&spec(patch.clone())).unwrap_err();
            let e = err.downcast_ref::<CliError>().unwrap();
            assert!(e.message.starts_with(flag), "{patch}: {}", e.message);
            assert!(!e.message.contains("_mb") && !e.message.contains("_s "), "{}", e.message);
            assert_eq!((e.code, e.usage), (code, true));
        }
    }
}
