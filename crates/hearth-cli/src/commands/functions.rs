use anyhow::{Context, Result};
use hearth_types::api::DeployResponse;
use hearth_types::{Function, FunctionSpec};

use super::{client, code_pull};
use crate::cli::{CodeCommand, DeployArgs, FnCommand};
use crate::output::{print_json, print_table, size, time};
use crate::package::package;

pub async fn run(cmd: FnCommand, json: bool) -> Result<()> {
    match cmd {
        FnCommand::Deploy(args) => deploy(*args, json).await,
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
        FnCommand::Code(CodeCommand::Pull { name, dir, version, force }) => {
            code_pull::pull(&name, dir, version.as_deref(), force, json).await
        }
    }
}

async fn deploy(args: DeployArgs, json: bool) -> Result<()> {
    let spec = FunctionSpec {
        runtime: args.runtime,
        handler: args.handler,
        memory_mb: args.memory,
        timeout_s: args.timeout,
        environment: args.env.into_iter().collect(),
        concurrency: args.concurrency,
        min_instances: args.min_instances,
        max_instances: args.max_instances,
        keep_alive_s: args.keep_alive,
        ephemeral_storage_mb: args.ephemeral_storage,
        network: args.network,
        keep_alive_policy: args.keep_alive_policy,
        description: args.description,
        code_sha256: None,
    };
    // Check the configuration locally before packaging and uploading anything.
    spec.validate()?;
    args.name.parse::<hearth_types::FunctionName>()?;

    let c = client()?;
    let source = args.path.to_string_lossy();
    let code = if source.starts_with("s3://") {
        c.upload_package_object(&source).await.context("fetching the package from the object store failed")?
    } else {
        let pkg = package(&args.path)?;
        let files = pkg.files.map(|n| format!("{n} file{}, ", if n == 1 { "" } else { "s" })).unwrap_or_default();
        if !json {
            eprintln!("Packaged {}: {files}{} zipped", args.path.display(), size(pkg.bytes.len() as u64));
        }
        c.upload_package(pkg.bytes).await.context("uploading the package failed")?
    };
    let spec = FunctionSpec { code_sha256: Some(code.sha256.to_string()), ..spec };
    let resp: DeployResponse = c.put_function(&args.name, &spec).await?;
    if json {
        return print_json(&resp);
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
