//! NATS triggers on the real binary, added with `hearth trigger add nats`, against a real
//! `nats-server -js`: 10,000 messages published to a JetStream stream are all processed (the
//! function fails the first delivery of a tenth of them; those are delivered again after the
//! retry wait), none lost, each acknowledged on the stream; a plain subject's burst of 1,000
//! messages is queued and delivered.

use std::time::Instant;

use async_nats::jetstream;
use hearth_events::test_support::NatsServer;

use super::*;

/// Fails the first delivery of every tenth JetStream message (a core message's record has no
/// delivery count).
const HANDLER: &str = r#"import json


def handler(event, context):
    for r in event["Records"]:
        i = json.loads(r["body"])["i"]
        if i % 10 == 0 and r.get("deliveryCount") == 1:
            raise RuntimeError(f"first delivery of {i} fails")
    return len(event["Records"])
"#;

/// The trigger `id` as `hearth trigger list --json` shows it.
fn listed(home: &Home, id: &str) -> Value {
    let all = home.json(&["trigger", "list"]);
    all.as_array().unwrap().iter().find(|t| t["id"] == id).cloned().unwrap_or(Value::Null)
}

/// Polls `GET /v1/nats-triggers` until trigger `id` satisfies `cond`.
fn wait_trigger(
    api: &(reqwest::blocking::Client, String, String),
    id: &str,
    limit: Duration,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let (http, url, token) = api;
    let deadline = Instant::now() + limit;
    loop {
        let list: Value =
            http.get(format!("{url}/v1/nats-triggers")).bearer_auth(token).send().unwrap().json().unwrap();
        let t = list["triggers"].as_array().unwrap().iter().find(|t| t["id"] == id).cloned().unwrap_or(Value::Null);
        if cond(&t) {
            return t;
        }
        assert!(Instant::now() < deadline, "NATS trigger never reached the expected state: {t}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn nats_triggers_process_every_message_on_the_real_binary() {
    let _alone = heavy_or_timed();
    let nats = NatsServer::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let js = rt.block_on(async {
        let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
        js.create_stream(jetstream::stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        js
    });
    let home = Home::new();
    let server = home.up_with(&[("HEARTH_EVENT_RETRY_DELAY_MS", "300")]);
    for name in ["orders", "burst"] {
        home.deploy_python(name, HANDLER, &["--max-instances", "4"]);
    }
    let added = home.ok(&[
        "trigger",
        "add",
        "nats",
        "orders",
        "--server",
        &nats.url,
        "--subject",
        "orders.>",
        "--stream",
        "ORDERS",
    ]);
    assert!(added.contains("Consuming."), "the CLI says the trigger consumes: {added}");
    let id = added.split_whitespace().nth(3).unwrap().trim_end_matches(':').to_owned();
    let t = listed(&home, &id);
    assert_eq!(
        (t["type"].as_str(), t["stream"].as_str(), t["batch"].as_u64()),
        (Some("nats"), Some("ORDERS"), Some(1)),
        "{t}"
    );
    let api = (reqwest::blocking::Client::new(), server.url.clone(), admin_token(&home));

    const N: u64 = 10_000;
    let started = Instant::now();
    rt.block_on(async {
        let mut acks = Vec::new();
        for i in 1..=N {
            let body = json!({"i": i}).to_string();
            acks.push(js.publish(format!("orders.{}", i % 4), body.into()).await.unwrap());
            if acks.len() >= 512 {
                for ack in acks.drain(..) {
                    ack.await.unwrap();
                }
            }
        }
        for ack in acks {
            ack.await.unwrap();
        }
    });
    let published = started.elapsed();
    let t = wait_trigger(&api, &id, Duration::from_secs(300), |t| t["handled"].as_u64() >= Some(N));
    assert_eq!(t["handled"], N, "each message handled once: {t}");
    let processed = started.elapsed();
    assert_eq!(t["dead_lettered"], 0, "{t}");
    let received = t["received"].as_u64().unwrap();
    assert!(received >= N + N / 10, "the failed tenth was delivered again: {t}");
    assert!(received < N + N / 10 + N / 100, "only the failed tenth was delivered again: {t}");
    let state = rt.block_on(async {
        let mut c: jetstream::consumer::PullConsumer =
            js.get_stream("ORDERS").await.unwrap().get_consumer(&format!("hearth-{id}")).await.unwrap();
        let info = c.info().await.unwrap();
        (info.num_pending, info.num_ack_pending, info.ack_floor.stream_sequence)
    });
    assert_eq!(state, (0, 0, N), "every message acknowledged on the stream (pending, unacknowledged, floor)");
    eprintln!(
        "nats: {N} JetStream messages published in {published:?}, all processed in {processed:?} \
         ({:.0} messages/s); {} deliveries (the failed tenth delivered again)",
        N as f64 / processed.as_secs_f64(),
        received
    );

    let added = home.ok(&["trigger", "add", "nats", "burst", "--server", &nats.url, "--subject", "burst"]);
    assert!(added.contains("Consuming."), "{added}");
    let burst_id = added.split_whitespace().nth(3).unwrap().trim_end_matches(':').to_owned();
    rt.block_on(async {
        let client = async_nats::connect(&nats.url).await.unwrap();
        for i in 1..=1000u64 {
            client.publish("burst", json!({"i": i}).to_string().into()).await.unwrap();
        }
        client.flush().await.unwrap();
    });
    let t = wait_trigger(&api, &burst_id, Duration::from_secs(60), |t| t["handled"].as_u64() >= Some(1000));
    assert_eq!(t["handled"], 1000, "{t}");
    assert_eq!((t["received"].as_u64(), t["dropped"].as_u64()), (Some(1000), Some(0)), "{t}");
    let (http, url, token) = &api;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list: Value = http
            .get(format!("{url}/v1/functions/burst/invocations?limit=1000"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let ok = list["invocations"].as_array().unwrap().iter().filter(|r| r["outcome"] == "success").count();
        if ok == 1000 {
            break;
        }
        assert!(Instant::now() < deadline, "every message of the burst is delivered ({ok} so far)");
        std::thread::sleep(Duration::from_millis(200));
    }
    let deleted = home.ok(&["trigger", "delete", &burst_id]);
    assert!(deleted.contains("Deleted"), "{deleted}");
    server.terminate();
}
