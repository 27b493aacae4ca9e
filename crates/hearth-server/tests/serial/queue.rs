//! The activator's bounds through the real server (`HEARTH_QUEUE_LENGTH`,
//! `HEARTH_QUEUE_WAIT_MS`): past `queue_length` held requests a caller is refused at once
//! with 429 `TooManyRequests` (the Lambda API's `TooManyRequestsException`), and a held
//! request that gets no instance within `queue_wait` gets 503 `InstanceUnavailable`.

use super::*;

#[tokio::test]
async fn held_requests_are_bounded_in_number_and_wait() {
    let _turn = one_at_a_time().await;
    let s = Arc::new(
        start_with(|g| {
            g.queue_length = 1;
            g.queue_wait = Some(Duration::from_millis(500));
        })
        .await,
    );
    s.deploy("narrow", FUNCTION, py(json!({"max_instances": 1, "timeout_s": 60}))).await;
    assert_eq!(s.event("narrow", json!({})).await.status, StatusCode::OK);
    // The one instance it may have is busy for the rest of the test.
    let busy = {
        let s = s.clone();
        tokio::spawn(async move { s.event("narrow", json!({"sleep": 50})).await })
    };
    s.wait_instances("narrow", Duration::from_secs(20), |l| l.iter().any(|i| i["state"] == "busy")).await;
    // Two callers at once: one is held (the queue holds one) and gives up after 500 ms; the
    // other is refused at once.
    let started = Instant::now();
    let (a, b) = tokio::join!(s.event("narrow", json!({})), s.event("narrow", json!({})));
    let mut seen = [(a.status, a.body["code"].clone()), (b.status, b.body["code"].clone())];
    seen.sort_by_key(|(status, _)| *status);
    assert_eq!(
        seen,
        [
            (StatusCode::TOO_MANY_REQUESTS, json!("TooManyRequests")),
            (StatusCode::SERVICE_UNAVAILABLE, json!("InstanceUnavailable"))
        ]
    );
    assert!(started.elapsed() >= Duration::from_millis(500), "the held one waited for its queue_wait");
    // The Lambda Invoke API answers the same refusal the AWS way.
    let lambda = || {
        s.http
            .post(format!("{}/2015-03-31/functions/narrow/invocations", s.url))
            .bearer_auth(&s.token)
            .body("{}")
            .send()
    };
    let (a, b) = tokio::join!(lambda(), lambda());
    let throttled: Vec<_> = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .map(|r| r.headers()["x-amzn-errortype"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(throttled, ["TooManyRequestsException"]);
    busy.abort();
}
