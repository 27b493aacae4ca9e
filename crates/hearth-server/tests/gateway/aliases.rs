//! Aliases over real HTTP: routing by weight, refusals, the qualifier in records, and the
//! Lambda API's `NAME:alias` and `Qualifier` forms.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Server, py, start};

/// Says which version it is (its code differs per version).
fn source(version: u32) -> String {
    format!("def handler(event, context):\n    return {{'v': {version}}}\n")
}

impl Server {
    async fn put_alias(&self, name: &str, alias: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .put(format!("{}/v1/functions/{name}/aliases/{alias}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    async fn invoke_qualified(&self, name: &str, qualifier: &str) -> (StatusCode, Value, Option<String>) {
        let r = self
            .http
            .post(format!("{}/v1/functions/{name}/invoke?version={qualifier}", self.url))
            .bearer_auth(&self.token)
            .body("{}")
            .send()
            .await
            .unwrap();
        let version = r.headers().get("x-hearth-version").map(|v| v.to_str().unwrap().to_owned());
        (r.status(), r.json().await.unwrap(), version)
    }
}

#[tokio::test]
async fn an_alias_splits_invocations_by_weight_and_is_in_the_records() {
    let s = start().await;
    let spec = py(json!({"max_instances": 2, "keep_alive_s": 600}));
    s.deploy("split", &source(1), spec.clone()).await;
    s.deploy("split", &source(2), spec).await;
    let (status, alias) =
        s.put_alias("split", "live", json!({"version": 1, "additional_version": {"version": 2, "weight": 0.1}})).await;
    assert_eq!(status, StatusCode::CREATED, "{alias}");
    assert_eq!((alias["revision"].as_u64(), alias["additional_version"]["weight"].as_f64()), (Some(1), Some(0.1)));

    // 2,000 invocations of split:live: 10% ± 3% land on version 2, and the function's
    // answer agrees with the version the header names.
    let mut second = 0;
    for _ in 0..2000 {
        let (status, body, version) = s.invoke_qualified("split", "live").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v = body["v"].as_u64().unwrap();
        assert_eq!(version.as_deref(), Some(v.to_string().as_str()));
        second += usize::from(v == 2);
    }
    let share = second as f64 / 2000.0;
    println!("alias split: {second} of 2000 invocations on the 10% version ({:.1}%)", share * 100.0);
    assert!((0.07..=0.13).contains(&share), "{second} of 2000 went to version 2");

    // The records name the alias; the version is the one that ran.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = s.get_json("/v1/functions/split/invocations?limit=1000").await;
        let records = list["invocations"].as_array().unwrap();
        if records.len() >= 1000 {
            assert!(records.iter().all(|r| r["qualifier"] == "live"), "every record names the alias");
            assert!(records.iter().any(|r| r["version"] == 2) && records.iter().any(|r| r["version"] == 1));
            break;
        }
        assert!(Instant::now() < deadline, "records: {}", records.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Moving the alias takes effect at once on this node; both versions keep their pools.
    let (status, moved) = s.put_alias("split", "live", json!({"version": 2})).await;
    assert_eq!((status, moved["revision"].as_u64()), (StatusCode::OK, Some(2)));
    for _ in 0..20 {
        assert_eq!(s.invoke_qualified("split", "live").await.1["v"], 2);
    }
    let list = s.get_json("/v1/functions/split/aliases").await;
    assert_eq!(list["aliases"].as_array().unwrap().len(), 1);

    // The Lambda Invoke API: NAME:alias in the path, or the Qualifier parameter.
    for path in ["split:live/invocations", "split/invocations?Qualifier=live"] {
        let r = s
            .http
            .post(format!("{}/2015-03-31/functions/{path}", s.url))
            .bearer_auth(&s.token)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["x-amz-executed-version"], "2", "{path}");
    }

    // An event to the alias keeps it as its qualifier.
    let r = s
        .http
        .post(format!("{}/v1/functions/split/invoke?version=live", s.url))
        .bearer_auth(&s.token)
        .header("x-hearth-invocation-type", "Event")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["request_id"].as_str().unwrap().to_owned();
    let e = s.wait_event(&id, "succeeded").await;
    assert_eq!((e["qualifier"].as_str(), e["executed_version"].as_u64()), (Some("live"), Some(2)), "{e}");
}

#[tokio::test]
async fn aliases_refuse_what_cannot_be_routed() {
    let s = start().await;
    s.deploy("al", &source(1), py(json!({}))).await;
    for (alias, body, status, code) in [
        ("9lives", json!({"version": 1}), StatusCode::BAD_REQUEST, "InvalidAliasName"),
        ("latest", json!({"version": 1}), StatusCode::BAD_REQUEST, "InvalidAliasName"),
        ("live", json!({"version": 7}), StatusCode::NOT_FOUND, "VersionNotFound"),
        (
            "live",
            json!({"version": 1, "additional_version": {"version": 1, "weight": 0.5}}),
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
        ),
        (
            "live",
            json!({"version": 1, "additional_version": {"version": 2, "weight": 1.0}}),
            StatusCode::BAD_REQUEST,
            "InvalidWeight",
        ),
        ("live", json!({"version": 1, "weight": 0.5}), StatusCode::BAD_REQUEST, "InvalidRequestBody"),
    ] {
        let (got, reply) = s.put_alias("al", alias, body.clone()).await;
        assert_eq!((got, reply["code"].as_str()), (status, Some(code)), "{alias} {body}: {reply}");
    }
    let (status, reply) = s.put_alias("nobody", "live", json!({"version": 1})).await;
    assert_eq!((status, reply["code"].as_str()), (StatusCode::NOT_FOUND, Some("FunctionNotFound")));
    let (status, reply, _) = s.invoke_qualified("al", "canary").await;
    assert_eq!((status, reply["code"].as_str()), (StatusCode::NOT_FOUND, Some("AliasNotFound")), "{reply}");
    let r =
        s.http.delete(format!("{}/v1/functions/al/aliases/canary", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Deleting an alias makes invocations naming it 404 at once.
    assert_eq!(s.put_alias("al", "live", json!({"version": 1})).await.0, StatusCode::CREATED);
    assert_eq!(s.invoke_qualified("al", "live").await.0, StatusCode::OK);
    let r =
        s.http.delete(format!("{}/v1/functions/al/aliases/live", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(s.invoke_qualified("al", "live").await.1["code"], "AliasNotFound");
    // The code of the version an alias names.
    assert_eq!(s.put_alias("al", "stable", json!({"version": 1})).await.0, StatusCode::CREATED);
    let r = s
        .http
        .get(format!("{}/v1/functions/al/code?version=stable", s.url))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!((r.status(), r.headers()["x-hearth-version"].to_str().unwrap()), (StatusCode::OK, "1"));
}

#[tokio::test]
async fn triggers_schedules_and_destinations_can_name_an_alias() {
    let s = start().await;
    s.deploy("tgt", &source(1), py(json!({}))).await;
    s.deploy("tgt", &source(2), py(json!({}))).await;
    assert_eq!(s.put_alias("tgt", "stable", json!({"version": 1})).await.0, StatusCode::CREATED);
    s.deploy("src", &source(9), py(json!({"on_success": "tgt:stable"}))).await;
    let post = |path: &'static str, body: Value| {
        let s = &s;
        async move {
            let r = s.http.post(format!("{}{path}", s.url)).bearer_auth(&s.token).json(&body).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    // A trigger naming an alias that does not exist is refused.
    let (status, reply) = post("/v1/triggers", json!({"function": "tgt:nope", "path": "/nope"})).await;
    assert_eq!((status, reply["code"].as_str()), (StatusCode::NOT_FOUND, Some("AliasNotFound")), "{reply}");
    let (status, reply) = post("/v1/triggers", json!({"function": "tgt:stable", "path": "/tgt"})).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["qualifier"], "stable");
    let (status, reply) = post("/v1/schedules", json!({"function": "tgt:stable", "schedule": "* * * * * *"})).await;
    assert_eq!((status, reply["qualifier"].as_str()), (StatusCode::CREATED, Some("stable")), "{reply}");

    // The HTTP trigger and the default URL run version 1, not $LATEST (2).
    let r = s.http.get(format!("{}/tgt", s.trigger_url)).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"v": 1}));
    let r = s.http.get(format!("{}/fn/tgt:stable/x", s.trigger_url)).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"v": 1}));
    // An event of `src` succeeds; its record goes to tgt:stable.
    let r = s
        .http
        .post(format!("{}/v1/functions/src/invoke", s.url))
        .bearer_auth(&s.token)
        .header("x-hearth-invocation-type", "Event")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // tgt's records: the trigger, the default URL, the schedule's instants and the
    // destination's record, each through the alias, each on version 1.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = s.get_json("/v1/functions/tgt/invocations?limit=1000").await;
        let records = list["invocations"].as_array().unwrap();
        assert!(records.iter().all(|r| r["qualifier"] == "stable" && r["version"] == 1), "{records:?}");
        let schedules = s.get_json("/v1/schedules").await;
        let fired = schedules["schedules"][0]["fired"].as_u64().unwrap();
        // 2 by HTTP, `fired` by the schedule, 1 by the destination.
        if fired >= 1 && records.len() as u64 >= 3 + fired.min(1) {
            break;
        }
        assert!(Instant::now() < deadline, "{} records, {fired} fired", records.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn aliases_and_cron_triggers_per_function_are_bounded() {
    let s = start().await;
    s.deploy("many", &source(1), py(json!({}))).await;
    for i in 0..100 {
        assert_eq!(s.put_alias("many", &format!("a{i}"), json!({"version": 1})).await.0, StatusCode::CREATED);
    }
    let (status, reply) = s.put_alias("many", "one-more", json!({"version": 1})).await;
    assert_eq!((status, reply["code"].as_str()), (StatusCode::CONFLICT, Some("AliasLimitExceeded")), "{reply}");
    assert_eq!(s.put_alias("many", "a7", json!({"version": 1})).await.0, StatusCode::OK, "moving one still works");
    let hourly = json!({"function": "many", "schedule": "0 0 * * * *"});
    let post = |body: Value| {
        let s = &s;
        async move {
            let r =
                s.http.post(format!("{}/v1/schedules", s.url)).bearer_auth(&s.token).json(&body).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    for _ in 0..100 {
        assert_eq!(post(hourly.clone()).await.0, StatusCode::CREATED);
    }
    let (status, reply) = post(hourly).await;
    assert_eq!((status, reply["code"].as_str()), (StatusCode::CONFLICT, Some("ScheduleLimitExceeded")), "{reply}");
}
