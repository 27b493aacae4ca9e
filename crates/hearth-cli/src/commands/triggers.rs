use anyhow::Result;
use hearth_types::api::{NatsTriggerSpec, ScheduleSpec, TriggerSpec};
use hearth_types::{NatsTriggerState, NatsTriggerStatus};

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
            println!("Added trigger {}: {url} -> {}", t.trigger.id, target(&t.trigger.function, &t.trigger.qualifier));
        }
        TriggerCommand::Add(TriggerKind::Cron { function, schedule, time_zone, missed_runs }) => {
            let spec = ScheduleSpec { function, schedule, time_zone, missed_runs };
            let s = c.create_schedule(&spec).await?;
            if json {
                return print_json(&s);
            }
            let next = s.next_fire_at.as_ref().map_or("never".to_owned(), time);
            println!(
                "Added cron trigger {}: \"{}\" ({}) -> {}; next at {next} UTC",
                s.trigger.id,
                s.trigger.schedule,
                s.trigger.time_zone,
                target(&s.trigger.function, &s.trigger.qualifier)
            );
        }
        TriggerCommand::Add(TriggerKind::Nats { function, server, subject, stream, consumer, batch }) => {
            let spec = NatsTriggerSpec { function, server, subject, stream, consumer, batch };
            let created = c.create_nats_trigger(&spec).await?;
            // The consumer starts in the background: wait briefly to say how it went.
            let id = created.trigger.id;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let mut t = created;
            while t.status == NatsTriggerStatus::Connecting && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                match c.list_nats_triggers().await?.into_iter().find(|n| n.trigger.id == id) {
                    Some(now) => t = now,
                    None => break,
                }
            }
            if json {
                return print_json(&t);
            }
            println!(
                "Added NATS trigger {}: {} -> {}",
                t.trigger.id,
                nats_source(&t),
                target(&t.trigger.function, &t.trigger.qualifier)
            );
            match (t.status, &t.error) {
                (NatsTriggerStatus::Consuming, _) => println!("Consuming."),
                (_, Some(e)) => {
                    eprintln!("warning: not consuming yet: {e} (it keeps trying; see `hearth trigger list`)")
                }
                (_, None) => eprintln!("warning: still connecting to {} (see `hearth trigger list`)", t.trigger.server),
            }
        }
        TriggerCommand::List => {
            let list = c.list_triggers().await?;
            let schedules = c.list_schedules().await?;
            let nats = c.list_nats_triggers().await?;
            if json {
                // One array: each entry's `type` says which kind it is.
                let mut all = Vec::new();
                for (kind, value) in list
                    .iter()
                    .map(|t| ("http", serde_json::to_value(t)))
                    .chain(schedules.iter().map(|s| ("cron", serde_json::to_value(s))))
                    .chain(nats.iter().map(|n| ("nats", serde_json::to_value(n))))
                {
                    let mut value = value?;
                    value["type"] = kind.into();
                    all.push(value);
                }
                return print_json(&all);
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
                        target(&t.function, &t.qualifier),
                        methods,
                        auth,
                        time(&t.created_at),
                    ]
                })
                .collect();
            if !rows.is_empty() || (schedules.is_empty() && nats.is_empty()) {
                print_table(&["ID", "URL", "FUNCTION", "METHODS", "AUTH", "CREATED"], &rows);
            }
            if !schedules.is_empty() {
                if !rows.is_empty() {
                    println!();
                }
                let rows: Vec<Vec<String>> = schedules
                    .iter()
                    .map(|s| {
                        let t = &s.trigger;
                        vec![
                            t.id.to_string(),
                            format!("cron \"{}\" {}", t.schedule, t.time_zone),
                            target(&t.function, &t.qualifier),
                            s.next_fire_at.as_ref().map_or("never".to_owned(), time),
                            s.fired.to_string(),
                            time(&t.created_at),
                        ]
                    })
                    .collect();
                print_table(&["ID", "SCHEDULE", "FUNCTION", "NEXT (UTC)", "FIRED", "CREATED"], &rows);
            }
            if !nats.is_empty() {
                if !rows.is_empty() || !schedules.is_empty() {
                    println!();
                }
                let rows: Vec<Vec<String>> = nats
                    .iter()
                    .map(|n| {
                        let status = match &n.error {
                            Some(e) if n.status != NatsTriggerStatus::Consuming => {
                                format!("{}: {e}", status_name(n.status))
                            }
                            _ => status_name(n.status).to_owned(),
                        };
                        vec![
                            n.trigger.id.to_string(),
                            nats_source(n),
                            target(&n.trigger.function, &n.trigger.qualifier),
                            n.received.to_string(),
                            n.handled.to_string(),
                            n.dead_lettered.to_string(),
                            status,
                        ]
                    })
                    .collect();
                print_table(&["ID", "NATS", "FUNCTION", "RECEIVED", "HANDLED", "DEAD", "STATUS"], &rows);
            }
        }
        TriggerCommand::Delete { id } => {
            let http: Vec<String> = c.list_triggers().await?.iter().map(|t| t.trigger.id.to_string()).collect();
            let cron: Vec<String> = c.list_schedules().await?.iter().map(|s| s.trigger.id.to_string()).collect();
            let nats: Vec<String> = c.list_nats_triggers().await?.iter().map(|n| n.trigger.id.to_string()).collect();
            let all: Vec<String> = http.iter().chain(&cron).chain(&nats).cloned().collect();
            let id = resolve_id("trigger", "TriggerNotFound", &id, &all)?;
            if cron.contains(&id) {
                c.delete_schedule(&id).await?;
            } else if nats.contains(&id) {
                c.delete_nats_trigger(&id).await?;
            } else {
                c.delete_trigger(&id).await?;
            }
            if json {
                return print_json(&serde_json::json!({"deleted": id}));
            }
            println!("Deleted trigger {id}.");
        }
    }
    Ok(())
}

/// `NAME` or `NAME:QUALIFIER`, as the trigger was given.
fn target(function: &hearth_types::FunctionName, qualifier: &Option<String>) -> String {
    match qualifier {
        Some(q) => format!("{function}:{q}"),
        None => function.to_string(),
    }
}

/// `nats://host:4222 orders.> (stream ORDERS, consumer C)`.
fn nats_source(n: &NatsTriggerState) -> String {
    let t = &n.trigger;
    match &t.stream {
        Some(stream) => format!("{} {} (stream {stream}, consumer {})", t.server, t.subject, t.consumer_name()),
        None => format!("{} {}", t.server, t.subject),
    }
}

fn status_name(s: NatsTriggerStatus) -> &'static str {
    match s {
        NatsTriggerStatus::Connecting => "connecting",
        NatsTriggerStatus::Consuming => "consuming",
        NatsTriggerStatus::Failing => "failing",
    }
}
