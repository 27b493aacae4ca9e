use std::time::Duration;

use anyhow::Result;

use super::client;
use crate::cli::LogsArgs;

/// How often `--follow` asks for new lines.
const POLL: Duration = Duration::from_millis(500);

pub async fn run(args: LogsArgs, json: bool) -> Result<()> {
    let c = client()?;
    let mut after = 0;
    loop {
        let page = c.logs(&args.name, after, args.request.as_deref()).await?;
        for line in &page.lines {
            if json {
                println!("{}", serde_json::to_string(line)?);
            } else {
                println!("{}  {}", line.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"), line.message);
            }
        }
        let caught_up = page.lines.is_empty();
        after = page.next;
        if !args.follow {
            if caught_up {
                return Ok(());
            }
            continue;
        }
        if caught_up {
            tokio::time::sleep(POLL).await;
        }
    }
}
