use anyhow::{Context, Result, bail};

use super::client;
use crate::cli::InvokeArgs;
use crate::output::print_json;

pub async fn run(args: InvokeArgs, json: bool) -> Result<()> {
    let payload = match args.data.as_deref() {
        None => b"{}".to_vec(),
        Some(d) if d.starts_with('@') => std::fs::read(&d[1..]).with_context(|| format!("cannot read {}", &d[1..]))?,
        Some(d) => d.as_bytes().to_vec(),
    };
    let c = client()?;
    let inv = c.invoke(&args.name, payload, args.version.as_deref()).await?;
    if args.log {
        let page = c.logs(&args.name, 0, Some(&inv.request_id)).await?;
        for line in &page.lines {
            eprintln!("{}", line.message);
        }
    }
    let body = String::from_utf8_lossy(&inv.body).into_owned();
    if json {
        let result = serde_json::from_str::<serde_json::Value>(&body).unwrap_or(serde_json::Value::String(body));
        let mut out = serde_json::to_value(&inv)?;
        out["result"] = result;
        print_json(&out)?;
    } else {
        println!("{body}");
    }
    if let Some(kind) = inv.function_error {
        bail!("function {} failed with {kind} (request {})", args.name, inv.request_id);
    }
    Ok(())
}
