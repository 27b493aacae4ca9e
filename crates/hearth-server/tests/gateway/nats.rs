//! NATS triggers against a real `nats-server -js` on loopback, with real instances: JetStream
//! messages acknowledged only after the function succeeded, retried by the function's async
//! settings, poison messages dead-lettered (and redriven), partial batch responses, a core
//! subject's burst queued as events, credentials never shown, and bad input refused with
//! stable codes.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use hearth_events::test_support::NatsServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Server, py, start_events};

/// Fails a message whose body says `poison`, and the first delivery of every tenth (`i`);
/// answers a partial batch response naming the messages whose body says `reject` on their
/// first delivery (on every one with `always`).
const CONSUMER: &str = r#"
import json

def handler(event, context):
    rejected = []
    # A batch holding a message delivered again does not fail whole: that message would
    # fail again for another's sake, and its third failure would dead-letter it.
    again = any(r.get("deliveryCount", 1) > 1 for r in event["Records"])
    for r in event["Records"]:
        body = json.loads(r["body"])
        if body.get("poison"):
            raise RuntimeError(f"poison message {body['i']}")
        if body.get("i", 1) % 10 == 0 and r.get("deliveryCount", 1) == 1 and not body.get("steady"):
            if not again:
                raise RuntimeError(f"first delivery of {body['i']} fails")
            rejected.append({"itemIdentifier": r["messageId"]})
            continue
        if body.get("reject") and (r["deliveryCount"] == 1 or body.get("always")):
            rejected.append({"itemIdentifier": r["messageId"]})
    if rejected:
        return {"batchItemFailures": rejected}
    return {"n": len(event["Records"])}
"#;

impl Server {
    async fn add_nats(&self, spec: Value) -> (StatusCode, Value) {
        self.post_json("/v1/nats-triggers", &spec).await
    }

    async fn nats_trigger(&self, id: &str) -> Value {
        let list = self.get_json("/v1/nats-triggers").await;
        list["triggers"].as_array().unwrap().iter().find(|t| t["id"] == id).cloned().unwrap_or(Value::Null)
    }

    /// Polls the trigger until `cond` holds, failing after `limit`.
    async fn wait_nats(&self, id: &str, limit: Duration, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let t = self.nats_trigger(id).await;
            if cond(&t) {
                return t;
            }
            assert!(Instant::now() < deadline, "NATS trigger never reached the expected state: {t}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn stream(nats: &NatsServer, name: &str, subjects: &[&str]) -> jetstream::Context {
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = jetstream::new(client);
    js.create_stream(jetstream::stream::Config {
        name: name.into(),
        subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    })
    .await
    .unwrap();
    js
}

/// Publishes each body to `subject`, waiting for every acknowledgement of the stream.
async fn publish_all(js: &jetstream::Context, subject: &str, bodies: impl IntoIterator<Item = Value>) {
    let mut acks = Vec::new();
    for body in bodies {
        acks.push(js.publish(subject.to_owned(), body.to_string().into()).await.unwrap());
        if acks.len() >= 256 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

/// The consumer as the stream sees it: (pending, unacknowledged, acknowledged floor).
async fn consumer_state(js: &jetstream::Context, stream: &str, consumer: &str) -> (u64, usize, u64) {
    let mut c: jetstream::consumer::PullConsumer =
        js.get_stream(stream).await.unwrap().get_consumer(consumer).await.unwrap();
    let info = c.info().await.unwrap();
    (info.num_pending, info.num_ack_pending, info.ack_floor.stream_sequence)
}

/// 2,000 JetStream messages, a tenth failing their first delivery, in batches of 5 with some
/// messages rejected through a partial batch response: every message is processed (the
/// stream's acknowledged floor reaches the last), failures were delivered again after the
/// retry wait, nothing went to the dead-letter list.
#[tokio::test]
async fn jetstream_messages_are_acknowledged_only_once_the_function_succeeded() {
    let nats = NatsServer::start();
    let js = stream(&nats, "ORDERS", &["orders.>"]).await;
    let s = start_events(|_| {}).await;
    s.deploy("orders", CONSUMER, py(json!({"max_instances": 4}))).await;
    let (status, t) = s
        .add_nats(json!({"function": "orders", "server": nats.url, "subject": "orders.>", "stream": "ORDERS",
            "consumer": "orders-fn", "batch": 5}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let id = t["id"].as_str().unwrap().to_owned();
    assert_eq!((t["batch"].as_u64(), t["consumer"].as_str()), (Some(5), Some("orders-fn")));
    s.wait_nats(&id, Duration::from_secs(20), |t| t["status"] == "consuming").await;

    const N: u64 = 2_000;
    publish_all(&js, "orders.eu", (1..=N).map(|i| json!({"i": i, "reject": i % 7 == 0}))).await;
    let t = s.wait_nats(&id, Duration::from_secs(120), |t| t["handled"].as_u64() >= Some(N)).await;
    assert_eq!(t["handled"], N, "each message handled once: {t}");
    assert_eq!(t["dead_lettered"], 0, "{t}");
    // A tenth failed their first delivery (with their whole batch, or alone in a batch of
    // messages delivered again); the rejected ones came back alone.
    let received = t["received"].as_u64().unwrap();
    assert!(received >= N + N / 10 + N / 7 - N / 70, "failures were delivered again: {t}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = consumer_state(&js, "ORDERS", "orders-fn").await;
        if state == (0, 0, N) {
            break;
        }
        assert!(Instant::now() < deadline, "every message acknowledged on the stream: {state:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let errors = s.get_json("/v1/functions/orders/invocations?limit=1000").await;
    let failed = errors["invocations"].as_array().unwrap().iter().filter(|r| r["outcome"] == "error").count();
    assert!(failed > 0, "the first deliveries' failures are recorded");
}

/// A message that always fails is delivered 1 + async_retries times, then kept in the
/// dead-letter list with its error and terminated on the stream; a redrive delivers it again
/// through the event queue. A message too large for an invocation is kept without its body.
#[tokio::test]
async fn poison_messages_go_to_the_dead_letter_list_and_can_be_redriven() {
    let nats = NatsServer::start();
    let js = stream(&nats, "POISON", &["poison.*"]).await;
    let s = start_events(|_| {}).await;
    s.deploy("poisoned", CONSUMER, py(json!({"async_retries": 1}))).await;
    let (status, t) = s
        .add_nats(json!({"function": "poisoned", "server": nats.url, "subject": "poison.*", "stream": "POISON"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let id = t["id"].as_str().unwrap().to_owned();
    s.wait_nats(&id, Duration::from_secs(20), |t| t["status"] == "consuming").await;
    let messages = [
        json!({"i": 1, "poison": true}),
        json!({"i": 2, "steady": true}),
        json!({"i": 3, "steady": true, "reject": true, "always": true}),
    ];
    publish_all(&js, "poison.a", messages).await;
    let t = s.wait_nats(&id, Duration::from_secs(30), |t| t["dead_lettered"] == 2 && t["handled"] == 1).await;
    assert_eq!(t["received"], 5, "the failing messages were delivered twice each (async_retries 1): {t}");
    let dead = s.get_json("/v1/functions/poisoned/dead-letters").await;
    let dead = dead["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let rejected = dead.iter().find(|d| d["payload"]["Records"][0]["sequence"] == 3).unwrap();
    assert_eq!(rejected["error"]["error_type"], "BatchItemFailures", "{rejected}");
    let d = dead.iter().find(|d| d["payload"]["Records"][0]["sequence"] == 1).unwrap();
    assert_eq!((d["source"].as_str(), d["attempts"].as_u64()), (Some("nats"), Some(2)), "{d}");
    assert!(d["error"]["message"].as_str().unwrap().contains("poison message 1"), "{d}");
    assert_eq!(d["payload"]["Records"][0]["subject"], "poison.a", "the message is kept as its record: {d}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while consumer_state(&js, "POISON", &format!("hearth-{id}")).await != (0, 0, 3) {
        assert!(Instant::now() < deadline, "the poison message is terminated on the stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Redriven, it runs from the event queue (and fails again: poison stays poison).
    let request_id = d["request_id"].as_str().unwrap();
    let r = s
        .http
        .post(format!("{}/v1/functions/poisoned/dead-letters/redrive", s.url))
        .bearer_auth(&s.token)
        .json(&json!({"request_ids": [request_id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let e = s.wait_event(request_id, "dead_lettered").await;
    assert_eq!(e["redrives"], 1, "{e}");
    assert!(e["attempts"].as_u64().unwrap() > 2, "the redrive ran it again: {e}");

    // Over the 6 MiB an invocation takes: too large even before it is sent. nats-server's
    // default max_payload is 1 MiB, so this trigger's subject is core NATS (1 MiB events).
    let core_id = {
        let (status, t) = s.add_nats(json!({"function": "poisoned", "server": nats.url, "subject": "big"})).await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        t["id"].as_str().unwrap().to_owned()
    };
    s.wait_nats(&core_id, Duration::from_secs(20), |t| t["status"] == "consuming").await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let big = "\u{1}".repeat(client.server_info().max_payload - 1024);
    client.publish("big", big.into()).await.unwrap();
    client.flush().await.unwrap();
    s.wait_nats(&core_id, Duration::from_secs(20), |t| t["dead_lettered"] == 1).await;
    let dead = s.get_json("/v1/functions/poisoned/dead-letters").await;
    let kept = dead["dead_letters"].as_array().unwrap().iter().find(|d| d["error"]["error_type"] == "MessageTooLarge");
    let kept = kept.unwrap_or_else(|| panic!("the large message is kept: {dead}"));
    let record = &kept["payload"]["Records"][0];
    assert_eq!((record["body"].as_str(), record["subject"].as_str()), (Some(""), Some("big")), "{kept}");
    assert!(kept["payload"].to_string().len() < 4096, "kept without its body: {kept}");
}

/// A burst of 1,000 messages on a plain subject: each is queued as an event and delivered.
#[tokio::test]
async fn a_core_subject_burst_is_queued_and_delivered() {
    let nats = NatsServer::start();
    let s = start_events(|_| {}).await;
    s.deploy("burst", CONSUMER, py(json!({"max_instances": 4}))).await;
    let (status, t) = s.add_nats(json!({"function": "burst", "server": nats.url, "subject": "burst.>"})).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let id = t["id"].as_str().unwrap().to_owned();
    s.wait_nats(&id, Duration::from_secs(20), |t| t["status"] == "consuming").await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    for i in 1..=1000u64 {
        client.publish(format!("burst.{}", i % 3), json!({"i": i, "steady": true}).to_string().into()).await.unwrap();
    }
    client.flush().await.unwrap();
    let t = s.wait_nats(&id, Duration::from_secs(30), |t| t["handled"].as_u64() >= Some(1000)).await;
    assert_eq!(t["handled"], 1000, "{t}");
    assert_eq!((t["received"].as_u64(), t["dropped"].as_u64()), (Some(1000), Some(0)), "{t}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let depths = s.get_json("/v1/node").await;
        let list = s.get_json("/v1/functions/burst/invocations?limit=1000").await;
        let ok = list["invocations"].as_array().unwrap().iter().filter(|r| r["outcome"] == "success").count();
        if ok == 1000 {
            break;
        }
        assert!(Instant::now() < deadline, "every queued message is delivered ({ok} so far): {depths}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Credentials are used and never shown; a stream that does not exist makes the trigger
/// `failing` with the reason; bad input is refused with stable codes; deleting the function
/// deletes its triggers.
#[tokio::test]
async fn credentials_stay_hidden_and_bad_triggers_are_refused() {
    let nats = NatsServer::start_with(&["--user", "hearth", "--pass", "s3cret-pass"]);
    let s = start_events(|_| {}).await;
    s.deploy("secured", CONSUMER, py(json!({}))).await;
    let with_creds = nats.url.replace("nats://", "nats://hearth:s3cret-pass@");
    let (status, t) = s.add_nats(json!({"function": "secured", "server": with_creds, "subject": "s"})).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    assert_eq!((t["server"].as_str(), t["authenticated"].as_bool()), (Some(nats.url.as_str()), Some(true)));
    let id = t["id"].as_str().unwrap().to_owned();
    s.wait_nats(&id, Duration::from_secs(20), |t| t["status"] == "consuming").await;
    let listed = s.http.get(format!("{}/v1/nats-triggers", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert!(!listed.text().await.unwrap().contains("s3cret"), "the password is never shown");

    let wrong = nats.url.replace("nats://", "nats://hearth:wrong@");
    let (_, t) = s.add_nats(json!({"function": "secured", "server": wrong, "subject": "s"})).await;
    let t = s.wait_nats(t["id"].as_str().unwrap(), Duration::from_secs(20), |t| t["error"].is_string()).await;
    assert_eq!(t["status"], "connecting", "{t}");
    assert!(t["error"].as_str().unwrap().contains("authorization"), "the reason is given: {t}");
    assert!(!t.to_string().contains("wrong"), "{t}");
    let (_, t) =
        s.add_nats(json!({"function": "secured", "server": with_creds, "subject": "s", "stream": "MISSING"})).await;
    let t = s.wait_nats(t["id"].as_str().unwrap(), Duration::from_secs(20), |t| t["status"] == "failing").await;
    assert!(t["error"].as_str().unwrap().contains("MISSING"), "the reason names the stream: {t}");

    let base = json!({"function": "secured", "server": nats.url, "subject": "a.b"});
    for (change, code) in [
        (json!({"server": "http://127.0.0.1:1"}), "InvalidNatsServer"),
        (json!({"server": "nats://h/path"}), "InvalidNatsServer"),
        (json!({"subject": "a..b"}), "InvalidSubject"),
        (json!({"subject": "a.>.b"}), "InvalidSubject"),
        (json!({"stream": "A.B"}), "InvalidNatsName"),
        (json!({"stream": "S", "consumer": "c d"}), "InvalidNatsName"),
        (json!({"consumer": "c"}), "InvalidNatsTrigger"),
        (json!({"batch": 0}), "InvalidBatchSize"),
        (json!({"batch": 101}), "InvalidBatchSize"),
        (json!({"function": "nope"}), "FunctionNotFound"),
        (json!({"function": "secured:nope"}), "AliasNotFound"),
        (json!({"extra": 1}), "InvalidRequestBody"),
    ] {
        let mut spec = base.clone();
        for (k, v) in change.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let (status, body) = s.add_nats(spec.clone()).await;
        assert_eq!(body["code"], code, "{spec} -> {status} {body}");
        assert!(status.is_client_error(), "{spec} -> {status}");
    }
    let r = s.http.delete(format!("{}/v1/nats-triggers/nope", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = s.http.delete(format!("{}/v1/functions/secured", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert!(r.status().is_success());
    let list = s.get_json("/v1/nats-triggers").await;
    assert_eq!(list["triggers"].as_array().unwrap().len(), 0, "a deleted function's triggers go: {list}");
}

/// A function has at most 100 NATS triggers; the 101st is refused with a stable code.
#[tokio::test]
async fn a_function_has_at_most_a_hundred_nats_triggers() {
    let nats = NatsServer::start();
    let s = start_events(|_| {}).await;
    s.deploy("many", CONSUMER, py(json!({}))).await;
    for i in 0..100 {
        // A whole number written with a fraction is a whole number (JSON Schema's integer).
        let spec = json!({"function": "many", "server": nats.url, "subject": format!("many.{i}"), "batch": 2.0});
        let (status, t) = s.add_nats(spec).await;
        assert_eq!((status, t["batch"].as_u64()), (StatusCode::CREATED, Some(2)), "trigger {i}: {t}");
    }
    let (status, body) = s.add_nats(json!({"function": "many", "server": nats.url, "subject": "many.last"})).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("NatsTriggerLimitExceeded")), "{body}");
    let list = s.get_json("/v1/nats-triggers").await;
    assert_eq!(list["triggers"].as_array().unwrap().len(), 100);
}
