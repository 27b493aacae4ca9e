//! `hearth node`: the node's memory for instances and its pre-warmed sandboxes.

use anyhow::Result;

use super::client;
use crate::output::{print_json, print_table};

pub async fn run(json: bool) -> Result<()> {
    let node = client()?.node().await?;
    if json {
        return print_json(&node);
    }
    let n = |k: &str| node[k].as_u64().unwrap_or(0);
    println!(
        "Instance memory: {} of {} MB committed; pre-warm budget {} MB",
        n("memory_committed_mb"),
        n("memory_limit_mb"),
        n("prewarm_budget_mb")
    );
    let rows: Vec<Vec<String>> = node["prewarmed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            vec![
                p["runtime"].as_str().unwrap_or_default().to_owned(),
                p["memory_mb"].to_string(),
                p["ready"].to_string(),
            ]
        })
        .collect();
    print_table(&["RUNTIME", "MEMORY (MB)", "PRE-WARMED"], &rows);
    Ok(())
}
