//! `hearth alias set|list|delete`: names for versions, with weighted routing.

use anyhow::Result;
use hearth_types::api::AliasSpec;
use hearth_types::{AdditionalVersion, Alias};

use super::client;
use crate::cli::AliasCommand;
use crate::output::{print_json, print_table, time};

fn routing(a: &Alias) -> String {
    match a.additional_version {
        None => format!("{} (100%)", a.version),
        Some(extra) => {
            let share = (extra.weight * 100.0 * 100.0).round() / 100.0;
            format!("{} ({}%), {} ({share}%)", a.version, ((100.0 - share) * 100.0).round() / 100.0, extra.version)
        }
    }
}

pub async fn run(cmd: AliasCommand, json: bool) -> Result<()> {
    let c = client()?;
    match cmd {
        AliasCommand::Set { function, alias, version, weight, description } => {
            let additional_version = weight.map(|(version, weight)| AdditionalVersion { version, weight });
            let a = c.put_alias(&function, &alias, &AliasSpec { version, additional_version, description }).await?;
            if json {
                return print_json(&a);
            }
            println!("{}:{} -> {}", a.function, a.name, routing(&a));
        }
        AliasCommand::List { function } => {
            let list = c.list_aliases(&function).await?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|a| vec![a.name.to_string(), routing(a), a.description.clone(), time(&a.updated_at)])
                .collect();
            print_table(&["ALIAS", "VERSIONS", "DESCRIPTION", "UPDATED"], &rows);
        }
        AliasCommand::Delete { function, alias } => {
            c.delete_alias(&function, &alias).await?;
            if json {
                return print_json(&serde_json::json!({"deleted": format!("{function}:{alias}")}));
            }
            println!("Deleted alias {function}:{alias}.");
        }
    }
    Ok(())
}
