//! `hearth context`: the servers the CLI talks to, in the client file (no server is called).

use std::io::BufRead;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::cli::ContextCommand;
use crate::config::{ClientFile, ServerContext, check_context_name, client_config_path, process_env};
use crate::output::{print_json, print_table};

/// A context as listed: never its token.
#[derive(Serialize)]
struct Listed<'a> {
    name: &'a str,
    url: &'a str,
    current: bool,
    has_token: bool,
}

pub fn run(cmd: ContextCommand, json: bool) -> Result<()> {
    let path = client_config_path(&process_env);
    let mut file = ClientFile::read(&path)?;
    match cmd {
        ContextCommand::List => {
            let listed: Vec<Listed> = file
                .contexts
                .iter()
                .map(|(name, c)| Listed {
                    name,
                    url: &c.url,
                    current: file.current.as_deref() == Some(name.as_str()),
                    has_token: c.token.is_some(),
                })
                .collect();
            if json {
                return print_json(&listed);
            }
            let rows: Vec<Vec<String>> = listed
                .iter()
                .map(|l| {
                    let mark = if l.current { "*" } else { "" };
                    let token = if l.has_token { "yes" } else { "no" };
                    vec![mark.to_owned(), l.name.to_owned(), l.url.to_owned(), token.to_owned()]
                })
                .collect();
            print_table(&["CURRENT", "NAME", "URL", "TOKEN"], &rows);
        }
        ContextCommand::Use { name } => {
            file.get(&name)?;
            file.current = Some(name.clone());
            file.write(&path)?;
            done(json, &name, "current", format!("Switched to context {name:?}."))?;
        }
        ContextCommand::Add { name, url, token, token_stdin, replace, make_current } => {
            check_context_name(&name, "context name")?;
            check_url(&url)?;
            if file.contexts.contains_key(&name) && !replace {
                bail!(
                    "a context named {name:?} exists: pass --replace to replace it, or choose another name (`hearth context list`)"
                );
            }
            let token = if token_stdin { Some(read_token()?) } else { token };
            file.contexts.insert(name.clone(), ServerContext { url, token });
            let current = make_current || file.current.is_none();
            if current {
                file.current = Some(name.clone());
            }
            file.write(&path)?;
            let note = if current { " and made it current" } else { "; `hearth context use` switches to it" };
            done(json, &name, "added", format!("Added context {name:?}{note}."))?;
        }
        ContextCommand::Delete { name } => {
            if file.contexts.remove(&name).is_none() {
                bail!("{}", file.no_such(&name));
            }
            if file.current.as_deref() == Some(name.as_str()) {
                file.current = None;
            }
            file.write(&path)?;
            done(json, &name, "deleted", format!("Deleted context {name:?}."))?;
        }
    }
    Ok(())
}

fn done(json: bool, name: &str, what: &str, text: String) -> Result<()> {
    if json {
        return print_json(&serde_json::json!({ what: name }));
    }
    println!("{text}");
    Ok(())
}

fn check_url(url: &str) -> Result<()> {
    hearth_client::Client::check_url(url).context("--url")?;
    Ok(())
}

fn read_token() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the token from stdin")?;
    let token = line.trim();
    if token.is_empty() {
        bail!("--token-stdin: stdin had no token on its first line");
    }
    Ok(token.to_owned())
}
