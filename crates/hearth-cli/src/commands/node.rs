//! `hearth node`: the node's memory for instances and its pre-warmed sandboxes.

use anyhow::Result;

use super::client;
use crate::output::{print_json, print_table};

pub async fn run(json: bool) -> Result<()> {
    let node = client()?.node().await?;
    if json {
        return print_json(&node);
    }
    println!(
        "Instance memory: {} of {} MB committed; pre-warm budget {} MB",
        node.memory_committed_mb, node.memory_limit_mb, node.prewarm_budget_mb
    );
    let rows: Vec<Vec<String>> =
        node.prewarmed.iter().map(|p| vec![p.runtime.clone(), p.memory_mb.to_string(), p.ready.to_string()]).collect();
    print_table(&["RUNTIME", "MEMORY (MB)", "PRE-WARMED"], &rows);
    Ok(())
}
