//! `hearth invocation get ID` and `hearth dead-letters list|redrive NAME`: following
//! asynchronous invocations.

use anyhow::Result;
use hearth_types::EventRecord;

use super::client;
use crate::cli::{DeadLetterCommand, InvocationCommand};
use crate::error::{CliError, usage};
use crate::output::{print_json, print_table, time};

pub async fn invocation(cmd: InvocationCommand, json: bool) -> Result<()> {
    let InvocationCommand::Get { id } = cmd;
    let e = client()?.get_invocation(&id).await?;
    if json {
        return print_json(&e);
    }
    let version = e.qualifier.clone().unwrap_or_else(|| "$LATEST".to_owned());
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| t.as_ref().map_or_else(|| "-".to_owned(), time);
    println!("request id      {}", e.request_id);
    println!("function        {} (version {version})", e.function);
    println!("status          {}", e.status);
    println!(
        "attempts        {} ({} function errors, {} redeliveries, {} redrives)",
        e.attempts, e.function_errors, e.redeliveries, e.redrives
    );
    println!("enqueued        {}", time(&e.enqueued_at));
    println!("last attempt    {}", when(e.last_attempt_at));
    if !e.status.is_final() && e.attempts > 0 {
        println!("next attempt    {}", time(&e.not_before));
    }
    println!("finished        {}", when(e.finished_at));
    if let Some(v) = e.executed_version {
        println!("executed        version {v}");
    }
    if let Some(to) = &e.destination {
        println!("sent to         {to}");
    }
    if let Some(err) = &e.error {
        println!("error           {}: {}", err.error_type, err.message);
    }
    if let Some(result) = &e.result {
        let cut = if e.result_truncated { " (cut at 256 KiB)" } else { "" };
        println!("result{cut}\n{result}");
    }
    Ok(())
}

pub async fn dead_letters(cmd: DeadLetterCommand, json: bool) -> Result<()> {
    let c = client()?;
    match cmd {
        DeadLetterCommand::List { name, limit } => {
            if !(1..=1000).contains(&limit) {
                usage!("UsageError", "--limit must be between 1 and 1000, got {limit}");
            }
            let page = c.dead_letters(&name, None, limit).await?;
            if json {
                return print_json(&page);
            }
            if page.dead_letters.is_empty() {
                eprintln!("No dead letters for {name}.");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = page.dead_letters.iter().map(|d| row(&d.event)).collect();
            print_table(&["REQUEST ID", "ENQUEUED", "ATTEMPTS", "ERROR"], &rows);
            if page.next.is_some() {
                eprintln!("(more: raise --limit, or use the API's `after`)");
            }
        }
        DeadLetterCommand::Redrive { name, ids } => {
            let named = !ids.is_empty();
            let result = c.redrive(&name, named.then_some(ids)).await?;
            if json {
                return print_json(&result);
            }
            if named && result.redriven == 0 {
                let message =
                    format!("none of those request ids is a dead letter of {name}: `hearth dead-letters list {name}`");
                return Err(CliError::failed("DeadLetterNotFound", message).into());
            }
            println!("Queued {} dead letters of {name} again.", result.redriven);
        }
    }
    Ok(())
}

fn row(e: &EventRecord) -> Vec<String> {
    let error = e.error.as_ref().map_or_else(String::new, |err| {
        let first = err.message.lines().next().unwrap_or_default();
        let first: String = first.chars().take(80).collect();
        format!("{}: {first}", err.error_type)
    });
    vec![e.request_id.clone(), time(&e.enqueued_at), e.attempts.to_string(), error]
}
