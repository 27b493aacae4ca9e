//! `hearth deploy [DIR]`: makes the server match the folder's `hearth.toml`: the function's
//! code and whole configuration (one new version when either changed), then its HTTP
//! triggers (the manifest's are added, the function's others deleted, equal ones kept).

use std::path::Path;

use anyhow::{Context, Result, bail};
use hearth_types::FunctionSpec;
use hearth_types::api::TriggerView;
use serde::Serialize;

use super::client;
use super::functions::{print_deployed, upload};
use crate::manifest::Manifest;
use crate::output::print_json;

#[derive(Serialize)]
struct Deployed {
    #[serde(flatten)]
    deploy: hearth_types::api::DeployResponse,
    triggers: TriggerChanges,
}

#[derive(Serialize, Default)]
struct TriggerChanges {
    added: Vec<TriggerView>,
    kept: Vec<TriggerView>,
    deleted: Vec<TriggerView>,
}

pub async fn run(dir: &Path, json: bool) -> Result<()> {
    let manifest = Manifest::load(dir)?;
    let c = client()?;
    // A path another function's trigger holds would fail half-way through: refuse first.
    let all = c.list_triggers().await?;
    if let Some((m, t)) = manifest.triggers.iter().find_map(|m| {
        all.iter().find(|t| t.trigger.path == m.path && t.trigger.function != manifest.name).map(|t| (m, t))
    }) {
        bail!(
            "the trigger path {} belongs to function {} (trigger {}): change the path in {}, or delete that trigger first; nothing was deployed",
            m.path,
            t.trigger.function,
            t.trigger.id,
            manifest.path.display()
        );
    }
    let code = upload(&c, &manifest.code, json).await?;
    let spec = FunctionSpec { code_sha256: Some(code.sha256.to_string()), ..manifest.spec.clone() };
    let deploy = c.put_function(manifest.name.as_str(), &spec).await?;
    if !json {
        print_deployed(&deploy, false)?;
    }
    let triggers = reconcile_triggers(&c, &manifest, all).await.with_context(|| {
        format!("the function is deployed, but its triggers are not all as {} says", manifest.path.display())
    })?;
    if json {
        return print_json(&Deployed { deploy, triggers });
    }
    for (what, list) in [("added", &triggers.added), ("kept", &triggers.kept), ("deleted", &triggers.deleted)] {
        for t in list {
            let url = t.url.clone().unwrap_or_else(|| t.trigger.path.to_string());
            println!("Trigger {url} {what}");
        }
    }
    Ok(())
}

/// The function's HTTP triggers become the manifest's: stale ones are deleted first (a
/// changed trigger keeps its path, which two triggers cannot share), then missing ones added.
async fn reconcile_triggers(
    c: &hearth_client::Client,
    manifest: &Manifest,
    all: Vec<TriggerView>,
) -> Result<TriggerChanges> {
    let ours: Vec<TriggerView> = all.into_iter().filter(|t| t.trigger.function == manifest.name).collect();
    let mut changes = TriggerChanges::default();
    for t in ours {
        if manifest.triggers.iter().any(|m| m.is(&t.trigger)) {
            changes.kept.push(t);
        } else {
            c.delete_trigger(&t.trigger.id.to_string()).await?;
            changes.deleted.push(t);
        }
    }
    for m in &manifest.triggers {
        if !changes.kept.iter().any(|t| m.is(&t.trigger)) {
            changes.added.push(c.create_trigger(&m.spec(&manifest.name)).await?);
        }
    }
    Ok(changes)
}
