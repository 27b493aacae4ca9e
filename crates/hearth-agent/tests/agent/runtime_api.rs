//! The Runtime API as runtimes see it: headers, state rules, limits, slots, streaming.

use super::*;

#[tokio::test]
async fn runtime_api_follows_the_spec() {
    let (api, base) = api().await;
    let http = reqwest::Client::new();
    let api = std::sync::Arc::new(api);
    let invoker = {
        let api = api.clone();
        tokio::spawn(async move { api.invoke(invocation("req-1", r#"{"a":1}"#)).await.unwrap() })
    };
    let next = http.get(format!("{base}/invocation/next")).send().await.unwrap();
    assert_eq!(next.status(), 200);
    let h = next.headers().clone();
    assert_eq!(h["lambda-runtime-aws-request-id"], "req-1");
    assert!(h["lambda-runtime-deadline-ms"].to_str().unwrap().parse::<u64>().unwrap() > epoch_ms());
    assert_eq!(h["lambda-runtime-invoked-function-arn"], "arn:aws:lambda:us-east-1:000000000000:function:t");
    assert_eq!(h["lambda-runtime-trace-id"], "Root=1-abc");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(next.text().await.unwrap(), r#"{"a":1}"#);

    // A second /next while an invocation is outstanding is a state error.
    let again = http.get(format!("{base}/invocation/next")).send().await.unwrap();
    assert_eq!(again.status(), 403);
    assert_eq!(again.json::<Value>().await.unwrap()["errorType"], "InvalidStateTransition");
    let wrong = http.post(format!("{base}/invocation/other/response")).body("x").send().await.unwrap();
    assert_eq!(wrong.status(), 400);
    assert_eq!(wrong.json::<Value>().await.unwrap()["errorType"], "InvalidRequestID");
    let bad_mode = http
        .post(format!("{base}/invocation/req-1/response"))
        .header("lambda-runtime-function-response-mode", "telepathy")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_mode.status(), 400);

    let ok = http
        .post(format!("{base}/invocation/req-1/response"))
        .header("content-type", "application/json")
        .body(r#"{"ok":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    assert_eq!(ok.text().await.unwrap(), r#"{"status":"OK"}"#);
    assert_eq!(
        invoker.await.unwrap(),
        Outcome::Response {
            body: Bytes::from_static(br#"{"ok":true}"#),
            content_type: Some("application/json".into())
        }
    );
    let twice = http.post(format!("{base}/invocation/req-1/response")).body("x").send().await.unwrap();
    assert_eq!(twice.status(), 403, "a second result for the same id is refused");

    // Errors pass through verbatim, error-cause documents lose their X-Ray part.
    for (ct, body, expected) in [
        (
            "application/json",
            r#"{"errorType":"TypeError","errorMessage":"boom","trace":["x"]}"#,
            json!({"errorType":"TypeError","errorMessage":"boom","trace":["x"]}),
        ),
        (
            "application/vnd.aws.lambda.error.cause+json",
            r#"{"errorType":"E","errorMessage":"m","stackTrace":[],"errorCause":{"paths":[]}}"#,
            json!({"errorType":"E","errorMessage":"m","stackTrace":[]}),
        ),
    ] {
        let api2 = api.clone();
        let waiter = tokio::spawn(async move { api2.invoke(invocation("req-e", "{}")).await.unwrap() });
        http.get(format!("{base}/invocation/next")).send().await.unwrap();
        let r = http
            .post(format!("{base}/invocation/req-e/error"))
            .header("content-type", ct)
            .header("lambda-runtime-function-error-type", "Function.Custom")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let Outcome::FunctionError { body, error_type } = waiter.await.unwrap() else { panic!("expected an error") };
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), expected);
        if ct == "application/json" {
            assert_eq!(&body[..], br#"{"errorType":"TypeError","errorMessage":"boom","trace":["x"]}"#, "verbatim");
        }
        assert_eq!(error_type.as_deref(), Some("Function.Custom"));
    }

    // Over 6 MiB + 100 B: 413 to the runtime, ResponseTooLarge to the caller.
    let api3 = api.clone();
    let waiter = tokio::spawn(async move { api3.invoke(invocation("req-big", "{}")).await.unwrap() });
    http.get(format!("{base}/invocation/next")).send().await.unwrap();
    let big = vec![b'x'; hearth_agent::MAX_PAYLOAD_BYTES + 1];
    let r = http.post(format!("{base}/invocation/req-big/response")).body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["errorType"], "RequestEntityTooLarge");
    assert_eq!(waiter.await.unwrap(), Outcome::ResponseTooLarge);
    // Init already completed (first /next): a late init error is a state error.
    let late = http.post(format!("{base}/init/error")).body("{}").send().await.unwrap();
    assert_eq!(late.status(), 403);
}

#[tokio::test]
async fn init_error_is_reported_once() {
    let (api, base) = api().await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/init/error"))
        .header("lambda-runtime-function-error-type", "Runtime.ImportModuleError")
        .body(r#"{"errorMessage":"no module","errorType":"Runtime.ImportModuleError"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let InitOutcome::Failed { body, error_type } = api.init().await.unwrap() else { panic!("expected failure") };
    assert_eq!(error_type.as_deref(), Some("Runtime.ImportModuleError"));
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["errorMessage"], "no module");
}

// ---- real instances ----

#[tokio::test]
async fn runtime_api_serves_as_many_invocations_as_it_has_slots() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = std::sync::Arc::new(RuntimeApi::serve(listener, 2).unwrap());
    let base = format!("http://{}/2018-06-01/runtime", api.address());
    let http = reqwest::Client::new();
    let waiters: Vec<_> = ["c-1", "c-2"]
        .into_iter()
        .map(|id| {
            let api = api.clone();
            tokio::spawn(async move { api.invoke(invocation(id, "{}")).await.unwrap() })
        })
        .collect();
    let mut ids = vec![];
    for _ in 0..2 {
        let r = http.get(format!("{base}/invocation/next")).send().await.unwrap();
        ids.push(r.headers()["lambda-runtime-aws-request-id"].to_str().unwrap().to_owned());
    }
    ids.sort();
    assert_eq!(ids, ["c-1", "c-2"]);
    let third = http.get(format!("{base}/invocation/next")).send().await.unwrap();
    assert_eq!(third.status(), 403, "no more than the slots outstanding");
    // Answer out of order: each caller gets its own answer.
    for id in ["c-2", "c-1"] {
        let r = http.post(format!("{base}/invocation/{id}/response")).body(format!("\"{id}\"")).send().await.unwrap();
        assert_eq!(r.status(), 202);
    }
    for (w, id) in waiters.into_iter().zip(["c-1", "c-2"]) {
        let Outcome::Response { body, .. } = w.await.unwrap() else { panic!("expected a response") };
        assert_eq!(body, Bytes::from(format!("\"{id}\"")));
    }
}

#[tokio::test]
async fn streamed_http_responses_and_error_trailers_are_understood() {
    let (api, base) = api().await;
    let api = std::sync::Arc::new(api);
    let http = reqwest::Client::new();
    // A streamed HTTP response: JSON prelude, 8 NUL bytes, body (as Node's HttpResponseStream sends).
    let a = api.clone();
    let waiter = tokio::spawn(async move { a.invoke(invocation("s-1", "{}")).await.unwrap() });
    http.get(format!("{base}/invocation/next")).send().await.unwrap();
    let mut body = br#"{"statusCode":201,"headers":{"x-a":"b"},"cookies":["c=d"]}"#.to_vec();
    body.extend_from_slice(&[0; 8]);
    body.extend_from_slice(b"streamed body");
    let r = http
        .post(format!("{base}/invocation/s-1/response"))
        .header("lambda-runtime-function-response-mode", "streaming")
        .header("content-type", "application/vnd.awslambda.http-integration-response")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let Outcome::Response { body, .. } = waiter.await.unwrap() else { panic!("expected a response") };
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["statusCode"].as_u64(), v["headers"]["x-a"].as_str(), v["cookies"][0].as_str()),
        (Some(201), Some("b"), Some("c=d"))
    );
    assert_eq!((v["body"].as_str(), v["isBase64Encoded"].as_bool()), (Some("c3RyZWFtZWQgYm9keQ=="), Some(true)));

    // A stream that fails midway reports the error in HTTP trailers (base64 error document).
    let a = api.clone();
    let waiter = tokio::spawn(async move { a.invoke(invocation("s-2", "{}")).await.unwrap() });
    http.get(format!("{base}/invocation/next")).send().await.unwrap();
    let doc = r#"{"errorType":"Error","errorMessage":"mid-stream failure"}"#;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(doc);
    let raw = format!(
        "POST /2018-06-01/runtime/invocation/s-2/response HTTP/1.1\r\nHost: runtime\r\n\
         Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\
         Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n\
         5\r\npart1\r\n0\r\nLambda-Runtime-Function-Error-Type: Error\r\n\
         Lambda-Runtime-Function-Error-Body: {b64}\r\n\r\n"
    );
    let mut conn = tokio::net::TcpStream::connect(api.address()).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(raw.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 202");
    let Outcome::FunctionError { body, error_type } = waiter.await.unwrap() else {
        panic!("expected the trailer's error")
    };
    assert_eq!((error_type.as_deref(), &body[..]), (Some("Error"), doc.as_bytes()));
}
