//! Asynchronous invocations over real HTTP with real instances: retries after function
//! errors, the dead-letter list and redrive, destinations, refusals, and the Lambda Invoke
//! API's `Event` type. Retry waits are scaled down (`events_settings`: 200 ms, then 400 ms).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Server, millis, py, start};

/// Counts its deliveries in its instance's `/tmp` (one instance, kept), and fails while the
/// count is at most `event["fail"]`.
const FLAKY: &str = r#"
import os

def handler(event, context):
    path = "/tmp/count"
    n = int(open(path).read()) if os.path.exists(path) else 0
    n += 1
    open(path, "w").write(str(n))
    if n <= event.get("fail", 0):
        raise RuntimeError(f"failing attempt {n}")
    if event.get("sleep"):
        import time
        time.sleep(event["sleep"])
    return {"ok": n}
"#;

/// One instance that keeps its `/tmp` between deliveries.
fn one_instance(extra: Value) -> Value {
    let mut spec = py(json!({"max_instances": 1, "keep_alive_s": 600}));
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

impl Server {
    /// Posts an asynchronous invocation; returns the status and body.
    async fn post_event(
        &self,
        name: &str,
        event: Vec<u8>,
        invocation_type: &str,
    ) -> (StatusCode, Value, Option<String>) {
        let r = self
            .http
            .post(format!("{}/v1/functions/{name}/invoke", self.url))
            .bearer_auth(&self.token)
            .header("x-hearth-invocation-type", invocation_type)
            .body(event)
            .send()
            .await
            .unwrap();
        let (status, location) = (r.status(), r.headers().get("location").map(|v| v.to_str().unwrap().to_owned()));
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), location)
    }

    async fn dead_letters(&self, name: &str) -> Vec<Value> {
        self.get_json(&format!("/v1/functions/{name}/dead-letters")).await["dead_letters"].as_array().unwrap().clone()
    }

    /// The attempt numbers of `id`'s invocation records.
    async fn attempts_recorded(&self, name: &str, id: &str) -> Vec<u64> {
        let list = self.get_json(&format!("/v1/functions/{name}/invocations?limit=1000")).await;
        let mut attempts: Vec<u64> = list["invocations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["request_id"] == id)
            .map(|r| r["attempt"].as_u64().unwrap())
            .collect();
        attempts.sort_unstable();
        attempts
    }
}

#[tokio::test]
async fn an_event_that_fails_twice_then_succeeds_is_delivered_three_times() {
    let s = start().await;
    s.deploy("flaky", FLAKY, one_instance(json!({}))).await;
    let id = s.queue_event("flaky", None, &json!({"fail": 2})).await;
    let e = s.wait_event(&id, "succeeded").await;
    assert_eq!((e["attempts"].as_u64(), e["function_errors"].as_u64()), (Some(3), Some(2)), "{e}");
    assert_eq!(serde_json::from_str::<Value>(e["result"].as_str().unwrap()).unwrap(), json!({"ok": 3}));
    assert_eq!((e["executed_version"].as_u64(), e["redeliveries"].as_u64()), (Some(1), Some(0)));
    assert!(e["error"].is_null(), "a success clears the error: {e}");
    // The retries waited 200 ms, then 400 ms (scaled down from Lambda's 1 and 2 minutes).
    let waited = millis(&e, "last_attempt_at") - millis(&e, "enqueued_at");
    assert!(waited >= 600, "the two retries came after {waited} ms, sooner than their waits");
    // Each delivery is an invocation of its own, under the event's request id.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.attempts_recorded("flaky", &id).await != [1, 2, 3] {
        assert!(Instant::now() < deadline, "records: {:?}", s.attempts_recorded("flaky", &id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_event_that_keeps_failing_is_dead_lettered_and_a_redrive_delivers_it_again() {
    let s = start().await;
    s.deploy("doomed", FLAKY, one_instance(json!({"async_retries": 1}))).await;
    let id = s.queue_event("doomed", None, &json!({"fail": 2, "n": 7})).await;
    let e = s.wait_event(&id, "dead_lettered").await;
    assert_eq!((e["attempts"].as_u64(), e["function_errors"].as_u64()), (Some(2), Some(2)), "{e}");
    assert_eq!(e["error"]["error_type"], "RuntimeError");
    assert_eq!(e["error"]["message"], "failing attempt 2");
    assert_eq!(e["error"]["function_error"], true);
    let dead = s.dead_letters("doomed").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0]["request_id"].as_str(), &dead[0]["payload"]), (Some(id.as_str()), &json!({"fail": 2, "n": 7})));
    assert_eq!(dead[0]["attempts"], 2);

    // A redrive of an id that is not a dead letter changes nothing; of this one, delivers it.
    let redrive = |ids: Value| {
        let s = &s;
        async move {
            let r = s
                .http
                .post(format!("{}/v1/functions/doomed/dead-letters/redrive", s.url))
                .bearer_auth(&s.token)
                .json(&ids)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()["redriven"].as_u64().unwrap()
        }
    };
    assert_eq!(redrive(json!({"request_ids": ["not-a-dead-letter"]})).await, 0);
    assert_eq!(redrive(json!({"request_ids": [id]})).await, 1);
    let e = s.wait_event(&id, "succeeded").await;
    assert_eq!((e["attempts"].as_u64(), e["redrives"].as_u64()), (Some(3), Some(1)), "{e}");
    assert!(s.dead_letters("doomed").await.is_empty());
    assert_eq!(redrive(json!({})).await, 0, "nothing left to redrive");
}

/// Always fails, without retries: its own events end in its dead-letter list, where the
/// test reads what destinations sent it.
const SINK: &str = r#"
def handler(event, context):
    raise RuntimeError("sink keeps what it gets")
"#;

#[tokio::test]
async fn outcomes_reach_their_destination_functions_as_lambda_records() {
    let s = start().await;
    s.deploy("sink", SINK, py(json!({"async_retries": 0}))).await;
    s.deploy("good", FLAKY, one_instance(json!({"on_success": "sink"}))).await;
    s.deploy("bad", FLAKY, one_instance(json!({"async_retries": 0, "on_failure": "sink"}))).await;
    let ok = s.queue_event("good", None, &json!({"which": "good"})).await;
    let failed = s.queue_event("bad", None, &json!({"which": "bad", "fail": 5})).await;
    let e = s.wait_event(&ok, "succeeded").await;
    assert_eq!(e["destination"], "sink");
    let e = s.wait_event(&failed, "failed").await;
    assert_eq!((e["destination"].as_str(), e["attempts"].as_u64()), (Some("sink"), Some(1)), "{e}");
    assert!(s.dead_letters("bad").await.is_empty(), "a failure sent to a function is not also a dead letter");

    let deadline = Instant::now() + Duration::from_secs(30);
    let records = loop {
        let dead = s.dead_letters("sink").await;
        if dead.len() == 2 {
            break dead;
        }
        assert!(Instant::now() < deadline, "the sink got {} records", dead.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let by_id = |id: &str| {
        records
            .iter()
            .map(|d| &d["payload"])
            .find(|p| p["requestContext"]["requestId"] == id)
            .unwrap_or_else(|| panic!("no record for {id}: {records:?}"))
            .clone()
    };
    let success = by_id(&ok);
    assert_eq!(success["requestContext"]["condition"], "Success");
    assert_eq!(success["requestContext"]["functionArn"], "arn:aws:lambda:us-east-1:000000000000:function:good:$LATEST");
    assert_eq!(success["requestPayload"], json!({"which": "good"}));
    assert_eq!(success["responsePayload"], json!({"ok": 1}));
    assert!(success["responseContext"].get("functionError").is_none());
    let failure = by_id(&failed);
    assert_eq!(failure["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(failure["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(failure["responseContext"]["functionError"], "RuntimeError");
    assert_eq!(failure["responsePayload"]["errorMessage"], "failing attempt 1");
    for d in &records {
        assert_eq!(d["source"], "destination");
    }
}

#[tokio::test]
async fn asynchronous_invocations_refuse_what_they_cannot_queue() {
    let s = start().await;
    s.deploy("slow", FLAKY, one_instance(json!({"max_queued_events": 1, "timeout_s": 10}))).await;
    let refused = |status: StatusCode, code: &str, reply: (StatusCode, Value, Option<String>)| {
        assert_eq!((reply.0, reply.1["code"].as_str()), (status, Some(code)), "{}", reply.1);
    };
    refused(StatusCode::NOT_FOUND, "FunctionNotFound", s.post_event("nobody", b"{}".to_vec(), "Event").await);
    refused(StatusCode::BAD_REQUEST, "InvalidInvocationType", s.post_event("slow", b"{}".to_vec(), "Later").await);
    refused(
        StatusCode::BAD_REQUEST,
        "InvalidRequestContent",
        s.post_event("slow", b"{not json".to_vec(), "Event").await,
    );
    let big = format!("\"{}\"", "x".repeat(hearth_types::EVENT_PAYLOAD_MAX_BYTES)).into_bytes();
    refused(StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLarge", s.post_event("slow", big, "Event").await);
    let r = s
        .http
        .post(format!("{}/v1/functions/slow/invoke?version=9", s.url))
        .bearer_auth(&s.token)
        .header("x-hearth-invocation-type", "Event")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "VersionNotFound");
    let r = s.http.put(format!("{}/v1/functions/draft", s.url)).bearer_auth(&s.token).json(&py(json!({}))).send().await;
    assert!(r.unwrap().status().is_success());
    refused(StatusCode::CONFLICT, "CodeNotFound", s.post_event("draft", b"{}".to_vec(), "Event").await);

    // The bound counts queued and running events: the first one runs (for a second), the
    // second is refused meanwhile, and accepted again once the first is done.
    let first = s.queue_event("slow", None, &json!({"sleep": 1})).await;
    s.wait_event(&first, "running").await;
    refused(StatusCode::TOO_MANY_REQUESTS, "EventQueueFull", s.post_event("slow", b"{}".to_vec(), "Event").await);
    s.wait_event(&first, "succeeded").await;
    let second = s.queue_event("slow", None, &json!({})).await;
    s.wait_event(&second, "succeeded").await;

    let r = s.http.get(format!("{}/v1/invocations/no-such-id", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "InvocationNotFound");
    let r = s.http.get(format!("{}/v1/functions/nobody/dead-letters", s.url)).bearer_auth(&s.token).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::NOT_FOUND);
    let r = s
        .http
        .post(format!("{}/v1/functions/slow/dead-letters/redrive", s.url))
        .bearer_auth(&s.token)
        .json(&json!({"request_ids": vec!["x"; 1001]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A function cannot be its own destination.
    let r = s
        .http
        .patch(format!("{}/v1/functions/slow", s.url))
        .bearer_auth(&s.token)
        .json(&json!({"on_failure": "slow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("on_failure names the function itself"));
}

#[tokio::test]
async fn the_lambda_invoke_api_queues_events() {
    let s = start().await;
    s.deploy("lam", FLAKY, one_instance(json!({}))).await;
    let r = s
        .http
        .post(format!("{}/2015-03-31/functions/lam/invocations", s.url))
        .bearer_auth(&s.token)
        .header("x-amz-invocation-type", "Event")
        .body(r#"{"fail": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.headers().get("x-amzn-requestid").unwrap().to_str().unwrap().to_owned();
    assert!(r.bytes().await.unwrap().is_empty(), "Lambda answers an Event with no body");
    let e = s.wait_event(&id, "succeeded").await;
    assert_eq!((e["source"].as_str(), e["attempts"].as_u64()), (Some("lambda"), Some(2)), "{e}");
    let r = s
        .http
        .post(format!("{}/2015-03-31/functions/nobody/invocations", s.url))
        .bearer_auth(&s.token)
        .header("x-amz-invocation-type", "Event")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["x-amzn-errortype"], "ResourceNotFoundException");
}

/// Returns the event it got.
const ECHO: &str = r#"
def handler(event, context):
    return event
"#;

#[tokio::test]
async fn cron_triggers_queue_scheduled_events_and_go_with_their_function() {
    let s = start().await;
    s.deploy("clock", ECHO, py(json!({}))).await;
    let post = |body: Value| {
        let s = &s;
        async move {
            let r =
                s.http.post(format!("{}/v1/schedules", s.url)).bearer_auth(&s.token).json(&body).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    for (body, status, code) in [
        (json!({"function": "clock", "schedule": "*/5 * * * *"}), StatusCode::BAD_REQUEST, "InvalidSchedule"),
        (json!({"function": "clock", "schedule": "0 0 0 30 2 *"}), StatusCode::BAD_REQUEST, "InvalidSchedule"),
        (
            json!({"function": "clock", "schedule": "* * * * * *", "time_zone": "Mars/Olympus"}),
            StatusCode::BAD_REQUEST,
            "InvalidTimeZone",
        ),
        (
            json!({"function": "clock", "schedule": "* * * * * *", "missed_runs": "sometimes"}),
            StatusCode::BAD_REQUEST,
            "InvalidMissedRuns",
        ),
        (json!({"function": "nobody", "schedule": "* * * * * *"}), StatusCode::NOT_FOUND, "FunctionNotFound"),
    ] {
        let (got, reply) = post(body.clone()).await;
        assert_eq!((got, reply["code"].as_str()), (status, Some(code)), "{body}: {reply}");
    }
    let (status, created) =
        post(json!({"function": "clock", "schedule": "* * * * * *", "time_zone": "Europe/Paris"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!((created["missed_runs"].as_str(), created["time_zone"].as_str()), (Some("skip"), Some("Europe/Paris")));
    let id = created["id"].as_str().unwrap().to_owned();

    // It fires every second; each occurrence is an EventBridge scheduled event, delivered.
    let deadline = Instant::now() + Duration::from_secs(20);
    let fired = loop {
        let list = s.get_json("/v1/schedules").await;
        let state = list["schedules"].as_array().unwrap().iter().find(|x| x["id"] == id.as_str()).unwrap().clone();
        if state["fired"].as_u64().unwrap() >= 2 {
            break state;
        }
        assert!(Instant::now() < deadline, "the schedule did not fire twice: {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(fired["next_fire_at"].as_str() > fired["last_fired_at"].as_str(), "{fired}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let delivered = loop {
        let list = s.get_json("/v1/functions/clock/invocations?limit=100").await;
        let ids: Vec<String> = list["invocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect();
        if ids.len() >= 2 {
            break ids;
        }
        assert!(Instant::now() < deadline, "no scheduled event was delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let e = s.wait_event(&delivered[0], "succeeded").await;
    assert_eq!(e["source"], "schedule");
    let event: Value = serde_json::from_str(e["result"].as_str().unwrap()).unwrap();
    assert_eq!(
        (event["detail-type"].as_str(), event["source"].as_str()),
        (Some("Scheduled Event"), Some("aws.events"))
    );
    assert_eq!(event["id"], delivered[0].as_str(), "the event's id is its request id");
    assert!(event["time"].as_str().unwrap().ends_with('Z'));

    // Deleted on its own...
    let (_, hourly) = post(json!({"function": "clock", "schedule": "0 0 * * * *"})).await;
    let hourly_id = hourly["id"].as_str().unwrap();
    let r = s.http.delete(format!("{}/v1/schedules/{hourly_id}", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let left = s.get_json("/v1/schedules").await;
    assert_eq!(left["schedules"].as_array().unwrap().len(), 1, "{left}");
    // ... and with its function; deleting it again is a 404.
    let r = s.http.delete(format!("{}/v1/functions/clock", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert!(r.status().is_success());
    assert_eq!(s.get_json("/v1/schedules").await["schedules"], json!([]));
    let r = s.http.delete(format!("{}/v1/schedules/{id}", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_page_of_dead_letters_is_bounded_in_bytes() {
    let s = start().await;
    s.deploy("heavy", SINK, py(json!({"async_retries": 0}))).await;
    // Twelve dead letters of almost 1 MiB each: a page holds 8 MiB of them, then `next`.
    let big = json!("x".repeat(1_000_000));
    let mut ids = vec![];
    for _ in 0..12 {
        ids.push(s.queue_event("heavy", None, &big.clone()).await);
    }
    for id in &ids {
        s.wait_event(id, "dead_lettered").await;
    }
    let first = s.get_json("/v1/functions/heavy/dead-letters?limit=100").await;
    let page = first["dead_letters"].as_array().unwrap();
    assert_eq!(page.len(), 8, "8 MiB of payloads");
    assert_eq!(page[0]["payload"], big);
    let next = first["next"].as_str().unwrap();
    assert_eq!(next, ids[7]);
    let second = s.get_json(&format!("/v1/functions/heavy/dead-letters?limit=100&after={next}")).await;
    let rest: Vec<&str> =
        second["dead_letters"].as_array().unwrap().iter().map(|d| d["request_id"].as_str().unwrap()).collect();
    assert_eq!(rest, ids[8..].iter().map(String::as_str).collect::<Vec<_>>());
    assert!(second["next"].is_null(), "the last page has no next");
}
