use anyhow::Result;
use hearth_types::api::TriggerSpec;

use super::client;
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
            println!("Added trigger {}: {}{} -> {}", t.id, c.base_url(), t.path, t.function);
        }
        TriggerCommand::List => {
            let list = c.list_triggers().await?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|t| {
                    let methods = if t.methods.is_empty() { "any".to_owned() } else { t.methods.join(",") };
                    let auth = format!("{:?}", t.auth).to_lowercase();
                    vec![
                        t.id.to_string(),
                        format!("{}{}", c.base_url(), t.path),
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
            c.delete_trigger(&id).await?;
            if json {
                return print_json(&serde_json::json!({"deleted": id}));
            }
            println!("Deleted trigger {id}.");
        }
    }
    Ok(())
}
