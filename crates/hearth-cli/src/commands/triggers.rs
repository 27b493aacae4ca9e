use anyhow::Result;
use hearth_types::api::TriggerSpec;

use super::{client, resolve_id};
use crate::cli::{TriggerCommand, TriggerKind};
use crate::output::{print_json, print_table, time};

pub async fn run(cmd: TriggerCommand, json: bool) -> Result<()> {
    let c = client()?;
    match cmd {
        TriggerCommand::Add(TriggerKind::Http { function, path, methods, auth }) => {
            let spec = TriggerSpec { kind: Some("http".into()), function, path, methods, auth: Some(auth) };
            let t = c.create_trigger(&spec).await?;
            if json {
                return print_json(&t);
            }
            let url = t.url.clone().unwrap_or_else(|| t.trigger.path.to_string());
            println!("Added trigger {}: {url} -> {}", t.trigger.id, t.trigger.function);
        }
        TriggerCommand::List => {
            let list = c.list_triggers().await?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|view| {
                    let t = &view.trigger;
                    let methods = if t.methods.is_empty() { "any".to_owned() } else { t.methods.join(",") };
                    let auth = format!("{:?}", t.auth).to_lowercase();
                    vec![
                        t.id.to_string(),
                        view.url.clone().unwrap_or_else(|| t.path.to_string()),
                        t.function.to_string(),
                        methods,
                        auth,
                        time(&t.created_at),
                    ]
                })
                .collect();
            print_table(&["ID", "URL", "FUNCTION", "METHODS", "AUTH", "CREATED"], &rows);
        }
        TriggerCommand::Delete { id } => {
            let ids: Vec<String> = c.list_triggers().await?.iter().map(|t| t.trigger.id.to_string()).collect();
            let id = resolve_id("trigger", "TriggerNotFound", &id, &ids)?;
            c.delete_trigger(&id).await?;
            if json {
                return print_json(&serde_json::json!({"deleted": id}));
            }
            println!("Deleted trigger {id}.");
        }
    }
    Ok(())
}
