//! NATS triggers under attack, against a real loopback `nats-server`: an API caller whose
//! credentials must never come back, hostile bodies; a publisher replaying message ids,
//! flooding a core subject, sending headers the client library cannot parse or records over
//! 6 MiB; a function answering absurd partial batch responses or outliving a short
//! acknowledgement wait; a server that goes away and comes back.

use std::io::{BufRead as _, BufReader, Write as _};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::PullConsumer, consumer::pull};
use hearth_events::test_support::NatsServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Server, py, start_events};

/// Raises for `doomed*` bodies, naps on `nap`, sleeps 3 s on `slow`, and rejects `reject*`
/// on their first delivery with a partial batch response padded with 5,000 ids it never got
/// and malformed entries.
const HANDLER: &str = r#"
import time

def handler(event, context):
    failures = []
    for r in event.get("Records", []):
        body = r["body"]
        if body.startswith("doomed"):
            raise RuntimeError("doomed")
        if body == "nap":
            time.sleep(0.2)
        if body == "slow":
            time.sleep(6)
        if body.startswith("reject") and r.get("deliveryCount") == 1:
            failures.append({"itemIdentifier": r["messageId"]})
    if failures:
        bogus = [{"itemIdentifier": f"HOST:{n}"} for n in range(1000, 6000)]
        return {"batchItemFailures": bogus + failures + [{"itemIdentifier": None}, {}, "x"]}
    return {"n": len(event.get("Records", []))}
"#;

async fn add(s: &Server, spec: Value) -> (StatusCode, Value) {
    s.post_json("/v1/nats-triggers", &spec).await
}

/// Adds a trigger, asserting 201, and waits until it consumes; returns its id.
async fn consuming(s: &Server, spec: Value) -> String {
    let (status, t) = add(s, spec).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let id = t["id"].as_str().unwrap().to_owned();
    wait(s, &id, 20, |t| t["status"] == "consuming").await;
    id
}

/// Polls the trigger until `cond` holds, failing after `secs` seconds.
async fn wait(s: &Server, id: &str, secs: u64, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let list = s.get_json("/v1/nats-triggers").await;
        let t = list["triggers"].as_array().unwrap().iter().find(|t| t["id"] == id).cloned().unwrap_or_default();
        if cond(&t) {
            return t;
        }
        assert!(Instant::now() < deadline, "NATS trigger never reached the expected state: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn n(t: &Value, field: &str) -> u64 {
    t[field].as_u64().unwrap_or(0)
}

async fn js_stream(nats: &NatsServer, name: &str, subjects: &[&str]) -> jetstream::Context {
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let config = jetstream::stream::Config {
        name: name.into(),
        subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    js.create_stream(config).await.unwrap();
    js
}

/// Publishes with a raw header block, as any client may (nats-server relays header bytes as
/// they are), waiting for the server's PONG.
fn raw_hpub(nats: &NatsServer, subject: &str, header: &[u8], payload: &[u8]) {
    let mut out = std::net::TcpStream::connect(("127.0.0.1", nats.port())).unwrap();
    out.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut input = BufReader::new(out.try_clone().unwrap());
    let mut line = String::new();
    input.read_line(&mut line).unwrap();
    assert!(line.starts_with("INFO"), "{line}");
    let mut bytes = b"CONNECT {\"verbose\":false,\"headers\":true,\"protocol\":1}\r\n".to_vec();
    bytes.extend(format!("HPUB {subject} {} {}\r\n", header.len(), header.len() + payload.len()).into_bytes());
    bytes.extend([header, payload, b"\r\nPING\r\n"].concat());
    out.write_all(&bytes).unwrap();
    while !line.starts_with("PONG") {
        line.clear();
        input.read_line(&mut line).unwrap();
        assert!(!line.starts_with("-ERR"), "{line}");
    }
}

/// Credentials (user:password or a token) never come back: not in a listing, not in the
/// reason of a trigger that cannot connect, not in the error about an invalid address.
/// Bodies of the wrong shape or size are refused with a bounded answer; a Unicode subject works.
#[tokio::test]
async fn credentials_are_never_echoed_and_hostile_bodies_are_refused() {
    let nats = NatsServer::start_with(&["--auth", "tok3n-SECRET"]);
    let s = start_events(|_| {}).await;
    s.deploy("api", HANDLER, py(json!({}))).await;
    let good = nats.url.replace("nats://", "nats://tok3n-SECRET@");
    let (status, t) = add(&s, json!({"function": "api", "server": good, "subject": "заказы.*"})).await;
    assert_eq!((status, t["authenticated"].as_bool()), (StatusCode::CREATED, Some(true)), "{t}");
    let id = t["id"].as_str().unwrap().to_owned();
    wait(&s, &id, 20, |t| t["status"] == "consuming").await;
    let client = async_nats::ConnectOptions::with_token("tok3n-SECRET".into()).connect(&nats.url).await.unwrap();
    client.publish("заказы.eu", "привет".into()).await.unwrap();
    client.flush().await.unwrap();
    wait(&s, &id, 20, |t| n(t, "received") == 1).await;

    let wrong = nats.url.replace("nats://", "nats://wr0ng-TOKEN@");
    let (_, t) = add(&s, json!({"function": "api", "server": wrong, "subject": "s"})).await;
    wait(&s, t["id"].as_str().unwrap(), 20, |t| t["error"].is_string()).await;
    let listed = s.http.get(format!("{}/v1/nats-triggers", s.url)).bearer_auth(&s.token).send().await.unwrap();
    let listed = listed.text().await.unwrap();
    assert!(!listed.contains("tok3n-SECRET") && !listed.contains("wr0ng-TOKEN"), "{listed}");

    let post = |body: Vec<u8>, json: bool| {
        let r = s.http.post(format!("{}/v1/nats-triggers", s.url)).bearer_auth(&s.token).body(body);
        if json { r.header("content-type", "application/json") } else { r }.send()
    };
    let r = post(b"{\"function\": ".to_vec(), true).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "InvalidJson");
    assert_eq!(post(b"{}".to_vec(), false).await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let base = json!({"function": "api", "server": nats.url, "subject": "a"});
    for change in [
        json!({"batch": "5"}),
        json!({"batch": -1}),
        json!({"batch": 1.5}),
        json!({"batch": 1e30}),
        json!({"subject": 5}),
        json!({"server": ["x"]}),
        json!({"stream": {"name": "S"}}),
        json!({"function": null}),
        json!({"subject": "a\u{0}b"}),
        json!({"subject": "x".repeat(1_900_000)}),
        json!({"stream": "S".repeat(1_900_000)}),
    ] {
        let mut spec = base.clone();
        spec.as_object_mut().unwrap().extend(change.as_object().unwrap().clone());
        let r = post(serde_json::to_vec(&spec).unwrap(), true).await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}", &text[..text.len().min(300)]);
        assert!(text.len() < 300 * 1024, "an answer of {} bytes", text.len());
    }
    let list = s.get_json("/v1/nats-triggers").await;
    assert_eq!(list["triggers"].as_array().unwrap().len(), 2, "nothing hostile was added");
    for server in [
        "nats://alice:pa55-SECRET@127.0.0.1:4222/path",
        "nats://pa55-SECRET@127.0.0.1:4222?x=1",
        "nats://alice:pa55-SECRET@127.0.0.1:99999",
        "nats://alice:pa55-SECRET@",
    ] {
        let (status, body) = add(&s, json!({"function": "api", "server": server, "subject": "s"})).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidNatsServer")), "{body}");
        assert!(!body.to_string().contains("pa55-SECRET"), "the refusal echoes the password: {body}");
    }
}

/// A publisher replaying a `Nats-Msg-Id` (deduplicated, as promised) must not make the
/// distinct messages batched behind it vanish: every one of them reaches the function (here
/// it fails them all, so each batch ends in the dead-letter list with its records).
#[tokio::test]
async fn a_replayed_message_id_does_not_swallow_the_messages_batched_behind_it() {
    let nats = NatsServer::start();
    let s = start_events(|_| {}).await;
    s.deploy("dedup", HANDLER, py(json!({"async_retries": 0}))).await;
    let id = consuming(&s, json!({"function": "dedup", "server": nats.url, "subject": "dedup", "batch": 100})).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let mut same = async_nats::HeaderMap::new();
    same.insert("Nats-Msg-Id", "same");
    client.publish_with_headers("dedup", same.clone(), "doomed-first".into()).await.unwrap();
    client.flush().await.unwrap();
    wait(&s, &id, 20, |t| n(t, "handled") == 1).await;
    // The replay, then 50 distinct messages in the same burst (so in the same batch).
    client.publish_with_headers("dedup", same, "doomed-replay".into()).await.unwrap();
    for i in 0..50 {
        client.publish("dedup", format!("doomed-{i}").into()).await.unwrap();
    }
    client.flush().await.unwrap();
    let t = wait(&s, &id, 20, |t| n(t, "received") == 52 && n(t, "handled") + n(t, "dropped") == 52).await;
    assert_eq!(t["dropped"], 0, "{t}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let dead = s.get_json("/v1/functions/dedup/dead-letters?limit=1000").await;
        let bodies: Vec<String> = dead["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["payload"]["Records"].as_array().cloned().unwrap_or_default())
            .filter_map(|r| r["body"].as_str().map(str::to_owned))
            .collect();
        let missing: Vec<usize> = (0..50).filter(|i| !bodies.contains(&format!("doomed-{i}"))).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "distinct messages batched behind a replayed Nats-Msg-Id were never delivered ({} of 50 missing; \
             delivered: {bodies:?}; trigger: {t})",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A core flood past `max_queued_events`: every message is counted (queued or dropped),
/// some are dropped, and synchronous calls of the same function are still served.
#[tokio::test]
async fn a_core_flood_is_dropped_and_counted_while_sync_calls_are_served() {
    let nats = NatsServer::start();
    let s = start_events(|_| {}).await;
    s.deploy("flood", HANDLER, py(json!({"max_queued_events": 5, "max_instances": 2}))).await;
    let id = consuming(&s, json!({"function": "flood", "server": nats.url, "subject": "flood.>"})).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    for i in 0..300 {
        client.publish(format!("flood.{}", i % 7), "nap".into()).await.unwrap();
    }
    client.flush().await.unwrap();
    let t = wait(&s, &id, 30, |t| n(t, "received") == 300 && n(t, "handled") + n(t, "dropped") == 300).await;
    assert!(n(&t, "dropped") > 0 && n(&t, "handled") >= 5, "{t}");
    let started = Instant::now();
    let r = s.event("flood", json!({})).await;
    assert_eq!((r.status, r.body["n"].as_u64()), (StatusCode::OK, Some(0)), "{:?}", r.body);
    assert!(started.elapsed() < Duration::from_secs(10), "the sync call waited {:?}", started.elapsed());
}

/// A publisher storing a message whose header is not UTF-8 in a stream (nats-server takes
/// it): async-nats cannot read it and drops its connection each time it is pulled (a known
/// limitation, README). The damage stays with that trigger: it has a connection of its own,
/// so a core trigger on the same server keeps consuming; its good messages still get
/// through; and the consumer Hearth made stops redelivering after `max_deliver`.
#[tokio::test]
async fn a_message_with_unparsable_headers_does_not_wedge_a_jetstream_trigger() {
    let nats = NatsServer::start();
    let js = js_stream(&nats, "HDR", &["hdr.>"]).await;
    let s = start_events(|_| {}).await;
    s.deploy("hdr", HANDLER, py(json!({}))).await;
    let spec = json!({"function": "hdr", "server": nats.url, "subject": "hdr.>", "stream": "HDR"});
    let id = consuming(&s, spec).await;
    let core = consuming(&s, json!({"function": "hdr", "server": nats.url, "subject": "plain"})).await;
    raw_hpub(&nats, "hdr.bad", b"NATS/1.0\r\nX-Bad: \xff\xfe\r\n\r\n", b"bad");
    js.publish("hdr.good", "good".into()).await.unwrap().await.unwrap();
    wait(&s, &id, 20, |t| n(t, "handled") >= 1).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    for _ in 0..20 {
        client.publish("plain", "nap".into()).await.unwrap();
    }
    client.flush().await.unwrap();
    let t = wait(&s, &core, 20, |t| n(t, "handled") == 20).await;
    assert_eq!(t["received"], 20, "the core trigger lost nothing to the other's trouble: {t}");
    let mut c: PullConsumer = js.get_stream("HDR").await.unwrap().get_consumer(&format!("hearth-{id}")).await.unwrap();
    assert_eq!(c.info().await.unwrap().config.max_deliver, 200, "redelivery of such a message ends");
}

/// A consumer given with `--consumer` whose acknowledgement wait (1 s) is shorter than the
/// function's run (3 s): the message must not be delivered again while it runs.
#[tokio::test]
async fn a_short_ack_wait_consumer_does_not_run_a_message_twice_at_once() {
    let nats = NatsServer::start();
    let js = js_stream(&nats, "SLOW", &["slow.>"]).await;
    let config = pull::Config {
        durable_name: Some("brief".into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(3),
        filter_subject: "slow.>".into(),
        ..Default::default()
    };
    let _: PullConsumer = js.get_stream("SLOW").await.unwrap().create_consumer(config).await.unwrap();
    let s = start_events(|_| {}).await;
    s.deploy("slowfn", HANDLER, py(json!({"max_instances": 4, "timeout_s": 10}))).await;
    let spec = json!({"function": "slowfn", "server": nats.url, "subject": "slow.>", "stream": "SLOW",
        "consumer": "brief"});
    let id = consuming(&s, spec).await;
    js.publish("slow.a", "slow".into()).await.unwrap().await.unwrap();
    wait(&s, &id, 30, |t| n(t, "handled") >= 1).await;
    // A delivery made again during the 6 s run (ack wait 3 s) would have been pulled by now;
    // wait until the stream has the acknowledgement, then nothing may have come back.
    let mut c: PullConsumer = js.get_stream("SLOW").await.unwrap().get_consumer("brief").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let info = loop {
        let info = c.info().await.unwrap().clone();
        if info.ack_floor.stream_sequence == 1 && info.num_ack_pending == 0 {
            break info;
        }
        assert!(Instant::now() < deadline, "the message is acknowledged: {info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let t = wait(&s, &id, 1, |_| true).await;
    assert_eq!(t["received"], 1, "the message was delivered again while the function ran: {t}");
    assert_eq!((info.num_redelivered, info.num_ack_pending, info.ack_floor.stream_sequence), (0, 0, 1), "{info:?}");
}

/// Partial batch responses naming 5,000 ids never delivered (and malformed entries) fail the
/// whole batch, as on Lambda, which then succeeds on its next delivery; a record over 6 MiB is dead-lettered without its body and
/// terminated on the stream; nothing is lost or delivered forever.
#[tokio::test]
async fn absurd_batch_answers_and_oversized_records_neither_lose_nor_loop() {
    let nats = NatsServer::start();
    let js = js_stream(&nats, "HOST", &["host.>"]).await;
    let s = start_events(|_| {}).await;
    s.deploy("host", HANDLER, py(json!({"max_instances": 2}))).await;
    let spec = json!({"function": "host", "server": nats.url, "subject": "host.>", "stream": "HOST", "batch": 10});
    let id = consuming(&s, spec).await;
    let max_payload = async_nats::connect(&nats.url).await.unwrap().server_info().max_payload;
    let mut bodies: Vec<String> = (0..20).map(|i| format!("ok-{i}")).collect();
    bodies.extend(["reject-1".into(), "\u{1}".repeat(max_payload), "reject-2".into()]);
    for body in bodies {
        js.publish("host.x", body.into()).await.unwrap().await.unwrap();
    }
    let t = wait(&s, &id, 30, |t| n(t, "handled") == 22 && n(t, "dead_lettered") == 1).await;
    assert!(n(&t, "received") >= 25, "the batches answered with bogus ids came back whole: {t}");
    let dead = s.get_json("/v1/functions/host/dead-letters").await;
    let dead = dead["dead_letters"].as_array().unwrap();
    assert_eq!((dead.len(), dead[0]["error"]["error_type"].as_str()), (1, Some("MessageTooLarge")), "{dead:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut c: PullConsumer =
            js.get_stream("HOST").await.unwrap().get_consumer(&format!("hearth-{id}")).await.unwrap();
        let info = c.info().await.unwrap();
        if (info.num_pending, info.num_ack_pending, info.ack_floor.stream_sequence) == (0, 0, 23) {
            break;
        }
        assert!(Instant::now() < deadline, "every message acknowledged or terminated: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A core and a JetStream trigger sharing a connection: while their server is down they say
/// `connecting` with a reason; once it is back (same port and store) both consume again.
#[tokio::test]
async fn triggers_say_connecting_while_their_server_is_down_and_resume_after() {
    let store = tempfile::tempdir().unwrap();
    let sd = store.path().to_str().unwrap().to_owned();
    let nats = NatsServer::start_with(&["-sd", &sd]);
    let (url, port) = (nats.url.clone(), nats.port().to_string());
    let _ = js_stream(&nats, "BACK", &["back.js"]).await;
    let s = start_events(|_| {}).await;
    s.deploy("back", HANDLER, py(json!({}))).await;
    let core = consuming(&s, json!({"function": "back", "server": url, "subject": "back.core"})).await;
    let spec = json!({"function": "back", "server": url, "subject": "back.js", "stream": "BACK"});
    let stream = consuming(&s, spec).await;
    drop(nats);
    for id in [&core, &stream] {
        let t = wait(&s, id, 20, |t| t["status"] == "connecting").await;
        assert!(t["error"].is_string(), "the reason is given: {t}");
    }
    let nats = NatsServer::start_with(&["-sd", &sd, "-p", &port]);
    assert_eq!(nats.url, url);
    wait(&s, &core, 20, |t| t["status"] == "consuming").await;
    wait(&s, &stream, 20, |t| t["status"] == "consuming").await;
    let client = async_nats::connect(&url).await.unwrap();
    jetstream::new(client.clone()).publish("back.js", "after".into()).await.unwrap().await.unwrap();
    // The client subscribes again a little after it is back: a core message published
    // before that is lost (core NATS keeps nothing), so publish until one gets through.
    let deadline = Instant::now() + Duration::from_secs(20);
    while n(&wait(&s, &core, 1, |_| true).await, "handled") == 0 {
        assert!(Instant::now() < deadline, "the core trigger consumes again");
        client.publish("back.core", "after".into()).await.unwrap();
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait(&s, &stream, 30, |t| n(t, "handled") >= 1).await;
}

/// A stream deleted and made again (its sequences start over at 1): a poison message of the
/// new stream is kept in the dead-letter list, not taken for the old stream's message with
/// the same sequence (same request id) and terminated without a trace.
#[tokio::test]
async fn a_recreated_stream_keeps_its_own_dead_letters() {
    let nats = NatsServer::start();
    let js = js_stream(&nats, "RE", &["re.>"]).await;
    let s = start_events(|_| {}).await;
    s.deploy("re", HANDLER, py(json!({"async_retries": 0}))).await;
    let id = consuming(&s, json!({"function": "re", "server": nats.url, "subject": "re.>", "stream": "RE"})).await;
    js.publish("re.a", "doomed-old".into()).await.unwrap().await.unwrap();
    wait(&s, &id, 20, |t| n(t, "dead_lettered") == 1).await;
    js.delete_stream("RE").await.unwrap();
    let _ = js_stream(&nats, "RE", &["re.>"]).await;
    js.publish("re.a", "doomed-new".into()).await.unwrap().await.unwrap();
    let t = wait(&s, &id, 30, |t| n(t, "dead_lettered") == 2).await;
    let dead = s.get_json("/v1/functions/re/dead-letters").await;
    let bodies: Vec<&str> = dead["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["payload"]["Records"][0]["body"].as_str())
        .collect();
    assert_eq!(bodies, ["doomed-old", "doomed-new"], "counted {} dead letters: {t}", t["dead_lettered"]);
}

/// A message published twice with the same `Nats-Msg-Id` on a core subject is queued once.
#[tokio::test]
async fn a_message_published_twice_with_one_id_is_queued_once() {
    let nats = NatsServer::start();
    let s = start_events(|_| {}).await;
    s.deploy("once", HANDLER, py(json!({"async_retries": 0}))).await;
    let id = consuming(&s, json!({"function": "once", "server": nats.url, "subject": "once"})).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    for _ in 0..2 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "same-id-1");
        client.publish_with_headers("once", headers, "doomed-twice".into()).await.unwrap();
        client.flush().await.unwrap();
        wait(&s, &id, 20, |t| n(t, "received") >= 1).await;
    }
    wait(&s, &id, 20, |t| n(t, "received") == 2 && n(t, "handled") == 2).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let dead = s.get_json("/v1/functions/once/dead-letters").await;
        let dead = dead["dead_letters"].as_array().unwrap().clone();
        if !dead.is_empty() {
            assert_eq!(dead.len(), 1, "queued once, dead-lettered once: {dead:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the message is delivered (and fails) once");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let records = s.get_json("/v1/functions/once/invocations?limit=100").await;
    assert_eq!(records["invocations"].as_array().unwrap().len(), 1, "one delivery: {records}");
}
