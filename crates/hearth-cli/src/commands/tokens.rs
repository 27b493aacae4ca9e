use anyhow::Result;

use super::client;
use crate::cli::TokenCommand;
use crate::output::{print_json, print_table, time};

pub async fn run(cmd: TokenCommand, json: bool) -> Result<()> {
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
            c.delete_token(&id).await?;
            if json {
                return print_json(&serde_json::json!({"deleted": id}));
            }
            println!("Deleted token {id}.");
        }
    }
    Ok(())
}
