use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use hearth_api::mint_token;
use hearth_store::{MetadataStore, SqliteStore};
use hearth_types::Scope;

use super::{client, resolve_id};
use crate::cli::TokenCommand;
use crate::config::{ClientFile, LOCAL_CONTEXT, ServerConfig, ServerContext, ServerFlags, local_url, process_env};
use crate::output::{print_json, print_table, time};

pub async fn run(cmd: TokenCommand, json: bool) -> Result<()> {
    if let TokenCommand::Recover { data_dir, config, url } = cmd {
        return recover(data_dir, config, url, json).await;
    }
    let c = client()?;
    match cmd {
        TokenCommand::Create { scopes, name } => {
            let t = c.create_token(name, scopes).await?;
            if json {
                return print_json(&t);
            }
            let scopes: Vec<&str> = t.info.scopes.iter().map(|s| s.as_str()).collect();
            println!(
                "Created token {} ({}) with scopes [{}]. Its secret, shown only now:\n",
                t.info.name,
                t.info.id,
                scopes.join(", ")
            );
            println!("    {}", t.token);
        }
        TokenCommand::List => {
            let tokens = c.list_tokens().await?;
            if json {
                return print_json(&tokens);
            }
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
                    vec![t.id.to_string(), t.name.clone(), scopes.join(","), time(&t.created_at)]
                })
                .collect();
            print_table(&["ID", "NAME", "SCOPES", "CREATED"], &rows);
        }
        TokenCommand::Delete { id } => {
            let ids: Vec<String> = c.list_tokens().await?.iter().map(|t| t.id.to_string()).collect();
            let id = resolve_id("token", "TokenNotFound", &id, &ids)?;
            c.delete_token(&id).await?;
            if json {
                return print_json(&serde_json::json!({"deleted": id}));
            }
            println!("Deleted token {id}.");
        }
        TokenCommand::Recover { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// Mints an admin token in the metadata store of the server's data directory (whoever may
/// write that directory owns the server anyway) and adds it as a context: the context with
/// the server's URL gets the new token, or a new context is added.
async fn recover(data_dir: Option<PathBuf>, config: Option<PathBuf>, url: Option<String>, json: bool) -> Result<()> {
    let flags = ServerFlags { config, data_dir, ..Default::default() };
    let cfg = ServerConfig::load(&flags, &process_env)?;
    let db = cfg.data_dir.join("metadata.db");
    // `hearth up` makes its lock file before anything else: without it, this is not a
    // Hearth data directory, whatever database it holds.
    if !db.exists() || !cfg.data_dir.join("hearth.lock").exists() {
        bail!(
            "no Hearth server data in {} (no metadata.db and hearth.lock, which `hearth up` makes): pass the server's --data-dir, or --config with its data_dir",
            cfg.data_dir.display()
        );
    }
    let store = SqliteStore::open(&db).with_context(|| format!("cannot open {}", db.display()))?;
    let (record, secret) = mint_token("admin (recovered)", vec![Scope::Admin]).map_err(|e| anyhow!("{}", e.message))?;
    store.insert_token(&record).await.context("cannot store the new token")?;
    let url = url.unwrap_or_else(|| local_url(cfg.listen, cfg.tls.is_some()));
    let mut file = ClientFile::read(&cfg.client_config)?;
    let existing = file.contexts.iter().find(|(_, c)| c.url == url).map(|(n, _)| n.clone());
    let name = match existing {
        Some(name) => {
            file.contexts.get_mut(&name).expect("found above").token = Some(secret.clone());
            name
        }
        None => file.add_unique(LOCAL_CONTEXT, ServerContext { url: url.clone(), token: Some(secret.clone()) }),
    };
    // The current context changes only when there is none: recovering must not redirect
    // the commands of whoever uses another server.
    let current = file.current.get_or_insert_with(|| name.clone()) == &name;
    file.write(&cfg.client_config)?;
    if json {
        return print_json(&serde_json::json!({"id": record.id, "token": secret, "context": name, "url": url}));
    }
    println!("Minted admin token {} in {}. Its secret, shown only now:\n", record.id, cfg.data_dir.display());
    println!("    {secret}\n");
    let how =
        if current { "and is current".to_owned() } else { format!("(`hearth context use {name}` makes it current)") };
    println!("Context {name:?} ({url}) now holds it {how} ({}).", cfg.client_config.display());
    Ok(())
}
