//! `GET /v1/functions/{name}/logs/stream`: a function's log as Server-Sent Events, read as
//! the console reads it (`fetch` with a bearer token, the body as it comes). Lines arrive
//! once stored, woken by the meter rather than by polling; `Last-Event-ID` resumes without
//! repeats; the streams are bounded in number and time and end with their function.

use std::sync::Arc;

use hearth_store::{CountingStore, MetadataStore};

use super::*;

/// Prints `n` lines (default 1) saying what the event asks, then returns.
const SAYS: &str = r#"
def handler(event, context):
    for i in range(event.get("n", 1)):
        print("says", event.get("say"), i, flush=True)
    print("done", event.get("say"), flush=True)
    return {"ok": True}
"#;

/// One event of the stream.
#[derive(Debug, Clone)]
struct Sse {
    id: Option<i64>,
    event: String,
    data: Value,
}

/// A stream being read, and what it has sent so far.
struct Stream {
    response: reqwest::Response,
    buffer: String,
    /// Comment lines received (keep-alives).
    comments: usize,
}

impl Stream {
    /// Opens `name`'s stream with `query` (and `Last-Event-ID` when given), asserting 200 and
    /// the headers an event stream needs.
    async fn open(s: &Server, name: &str, query: &str, last_event_id: Option<i64>) -> Stream {
        let response = open(s, name, query, last_event_id).await;
        assert_eq!(response.status(), StatusCode::OK);
        let header = |k: &str| response.headers().get(k).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
        assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
        assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
        Stream { response, buffer: String::new(), comments: 0 }
    }

    /// The next event (comments counted and skipped), or `None` once the stream closed;
    /// fails after `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Sse> {
        let deadline = Instant::now() + limit;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), String::new());
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "" => self.comments += 1,
                        "id" => id = Some(value.parse().unwrap()),
                        "event" => event = value.to_owned(),
                        "data" => data.push_str(value),
                        other => panic!("unexpected field {other:?} in {block:?}"),
                    }
                }
                if !event.is_empty() {
                    return Some(Sse { id, event, data: serde_json::from_str(&data).unwrap() });
                }
            }
            let left = deadline.checked_duration_since(Instant::now()).expect("no event in time");
            match tokio::time::timeout(left, self.response.chunk()).await.expect("no event in time").unwrap() {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => return None,
            }
        }
    }

    /// Line events until one whose message is `last` (included), failing after 30 s or on
    /// any other event.
    async fn lines_until(&mut self, last: &str) -> Vec<Sse> {
        let mut out = Vec::new();
        loop {
            let e = self.next(Duration::from_secs(30)).await.unwrap_or_else(|| panic!("closed before {last:?}"));
            assert_eq!(e.event, "line", "{e:?}");
            // The lines of one entry (an invocation's START, END and REPORT) share its
            // position, which only the entry's last line carries as its id.
            assert!(e.id.is_none_or(|id| Some(id) == e.data["seq"].as_i64()), "the id is the line's position: {e:?}");
            let done = e.data["message"] == last;
            out.push(e);
            if done {
                return out;
            }
        }
    }
}

async fn open(s: &Server, name: &str, query: &str, last_event_id: Option<i64>) -> reqwest::Response {
    let url = format!("{}/v1/functions/{name}/logs/stream{query}", s.url);
    let mut r = s.http.get(url).bearer_auth(&s.token);
    if let Some(id) = last_event_id {
        r = r.header("last-event-id", id.to_string());
    }
    r.send().await.unwrap()
}

fn messages(events: &[Sse]) -> Vec<String> {
    events.iter().map(|e| e.data["message"].as_str().unwrap().to_owned()).collect()
}

/// Every stored line of `name`, paging through the log.
async fn all_lines(s: &Server, name: &str) -> Vec<Value> {
    let (mut after, mut out) = (0, Vec::new());
    loop {
        let page = s.get_json(&format!("/v1/functions/{name}/logs?after={after}")).await;
        let lines = page["lines"].as_array().unwrap();
        if lines.is_empty() {
            return out;
        }
        out.extend(lines.iter().cloned());
        after = page["next"].as_i64().unwrap();
    }
}

#[tokio::test]
async fn lines_arrive_as_they_are_stored_without_polling() {
    let mut counted = None;
    let s = start_with_store(
        |_| {},
        |sqlite| {
            let c = Arc::new(CountingStore::new(sqlite));
            counted = Some(c.clone());
            c as Arc<dyn MetadataStore>
        },
    )
    .await;
    let counted = counted.unwrap();
    s.deploy("tail", SAYS, py(json!({}))).await;
    let before = s.event("tail", json!({"say": "before"})).await;
    assert_eq!(before.error, None);
    let report = format!("REPORT RequestId: {}", before.request_id.unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !all_lines(&s, "tail").await.iter().any(|l| l["message"].as_str().unwrap().starts_with(&report)) {
        assert!(Instant::now() < deadline, "the first invocation's lines were never stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // From the log's end: the earlier invocation's lines are not sent.
    let mut stream = Stream::open(&s, "tail", "", None).await;
    let opened = counted.calls();
    // Idle until the first keep-alive comment (15 s): the store is not read meanwhile.
    let started = Instant::now();
    while stream.comments == 0 {
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.response.chunk()).await.unwrap().unwrap();
        stream.buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(end) = stream.buffer.find("\n\n") {
            let block: String = stream.buffer.drain(..end + 2).collect();
            assert!(block.starts_with(':'), "only a comment while idle: {block:?}");
            stream.comments += 1;
        }
    }
    assert!(started.elapsed() >= Duration::from_secs(10), "keep-alive after {:?}", started.elapsed());
    let idle = counted.calls_since(&opened);
    let count = |calls: &std::collections::BTreeMap<&str, u64>, method: &str| calls.get(method).copied().unwrap_or(0);
    assert_eq!(count(&idle, "append_telemetry"), 0, "nothing was logged meanwhile: {idle:?}");
    assert!(count(&idle, "read_logs") <= 1, "an idle stream reads the log once, when it starts: {idle:?}");

    let r = s.event("tail", json!({"say": "live"})).await;
    let id = r.request_id.unwrap();
    let lines = stream.lines_until(&format!("END RequestId: {id}")).await;
    assert_eq!(
        messages(&lines[..3]),
        [format!("START RequestId: {id} Version: 1"), "says live 0".into(), "done live".into()]
    );
    assert!(lines.iter().all(|l| l.data["function"] == "tail" && l.data["request_id"] == id.as_str()));
    let seqs: Vec<i64> = lines.iter().map(|l| l.data["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, each its own entry: {seqs:?}");
    // One read per batch the meter stored (at most: batches stored close together wake the
    // stream once), besides the first.
    let calls = counted.calls_since(&opened);
    assert!(count(&calls, "read_logs") <= count(&calls, "append_telemetry") + 1, "{calls:?}");
}

#[tokio::test]
async fn last_event_id_resumes_without_repeats() {
    let s = start().await;
    s.deploy("resume", SAYS, py(json!({}))).await;
    // More than one read's worth (1,000 lines) before the stream opens.
    let r = s.event("resume", json!({"say": "many", "n": 1500})).await;
    assert_eq!(r.error, None);
    let stored = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines = all_lines(&s, "resume").await;
            if lines.iter().any(|l| l["message"].as_str().unwrap_or("").starts_with("REPORT")) {
                break lines;
            }
            assert!(Instant::now() < deadline, "the invocation's lines were never stored");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(stored.len() > 1500);

    let mut first = Stream::open(&s, "resume", "?after=0", None).await;
    let mut seen = Vec::new();
    for _ in 0..1200 {
        seen.push(first.next(Duration::from_secs(30)).await.unwrap());
    }
    drop(first);
    let last = seen.iter().rev().find_map(|e| e.id).unwrap();
    seen.truncate(seen.iter().rposition(|e| e.id.is_some()).unwrap() + 1);
    // The header wins over `after`.
    let mut resumed = Stream::open(&s, "resume", "?after=0", Some(last)).await;
    let report = stored.iter().rev().find(|l| l["message"].as_str().unwrap().starts_with("REPORT")).unwrap();
    seen.extend(resumed.lines_until(report["message"].as_str().unwrap()).await);
    let ids: Vec<i64> = seen.iter().map(|e| e.data["seq"].as_i64().unwrap()).collect();
    let expected: Vec<i64> = stored.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert_eq!(ids, expected, "every stored line once, in order, across the reconnection");
    assert_eq!(seen.iter().map(|e| e.data.clone()).collect::<Vec<_>>(), stored, "the lines as the page shows them");

    // And it goes on with new lines.
    let id = s.event("resume", json!({"say": "later"})).await.request_id.unwrap();
    let later = resumed.lines_until(&format!("END RequestId: {id}")).await;
    assert_eq!(later[1].data["message"], "says later 0");
    assert!(later[0].data["seq"].as_i64() > ids.last().copied());
}

/// `tail=N` from the log's end: the last N lines first (one request's, with a filter), then
/// new ones; never again on a resumed stream.
#[tokio::test]
async fn a_tail_sends_the_recent_past_first() {
    let s = start().await;
    s.deploy("tailed", SAYS, py(json!({}))).await;
    let first = s.event("tailed", json!({"say": "first", "n": 3})).await.request_id.unwrap();
    let second = s.event("tailed", json!({"say": "second", "n": 2})).await.request_id.unwrap();
    let stored = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines = all_lines(&s, "tailed").await;
            let report = format!("REPORT RequestId: {second}");
            if lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.starts_with(&report))) {
                break lines;
            }
            assert!(Instant::now() < deadline, "the invocations' lines were never stored: {lines:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let mut stream = Stream::open(&s, "tailed", "?tail=4", None).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(stream.next(Duration::from_secs(10)).await.unwrap());
    }
    let last4: Vec<Value> = stored[stored.len() - 4..].to_vec();
    assert_eq!(
        got.iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
        last4,
        "the last four stored lines, oldest first"
    );
    let id = s.event("tailed", json!({"say": "new"})).await.request_id.unwrap();
    let later = stream.lines_until(&format!("END RequestId: {id}")).await;
    assert_eq!(later[0].data["message"], format!("START RequestId: {id} Version: 1"), "then only new lines");

    // With a request filter: that request's last lines.
    let mut filtered = Stream::open(&s, "tailed", &format!("?tail=100&request_id={first}"), None).await;
    let lines = filtered.lines_until(&format!("END RequestId: {first}")).await;
    assert!(lines.iter().all(|l| l.data["request_id"] == first.as_str()), "{lines:?}");
    assert!(messages(&lines).contains(&"says first 2".to_string()), "{lines:?}");
    // A resumed stream gets no tail: it has those lines.
    let end = stored.last().unwrap()["seq"].as_i64().unwrap();
    let mut resumed = Stream::open(&s, "tailed", "?tail=4", Some(end)).await;
    s.event("tailed", json!({"say": "resumed"})).await;
    let next = resumed.next(Duration::from_secs(10)).await.unwrap();
    assert!(next.data["seq"].as_i64() > Some(end), "after the Last-Event-ID, not the tail: {next:?}");
}

#[tokio::test]
async fn a_request_id_filter_sends_only_that_invocations_lines() {
    let s = start().await;
    s.deploy("filtered", SAYS, py(json!({"max_instances": 2}))).await;
    let other = s.event("filtered", json!({"say": "other"})).await.request_id.unwrap();
    // Queued: its id is known before it runs. Another invocation logs as much at the same
    // time (two instances), so their lines may interleave; `other`'s come before in any case.
    let id = s.queue_event("filtered", None, &json!({"say": "mine", "n": 200})).await;
    let mut stream = Stream::open(&s, "filtered", &format!("?after=0&request_id={id}"), None).await;
    let meanwhile = s.event("filtered", json!({"say": "meanwhile", "n": 200})).await.request_id.unwrap();
    let lines = stream.lines_until(&format!("END RequestId: {id}")).await;
    assert!(
        lines.iter().all(|l| l.data["request_id"] == id.as_str()),
        "only {id}'s lines, not {other}'s or {meanwhile}'s: {lines:?}"
    );
    let expected: Vec<String> = std::iter::once(format!("START RequestId: {id} Version: 1"))
        .chain((0..200).map(|i| format!("says mine {i}")))
        .chain(["done mine".to_string(), format!("END RequestId: {id}")])
        .collect();
    assert_eq!(messages(&lines), expected, "all of its lines, in order");
}

#[tokio::test]
async fn streams_are_bounded_and_refusals_have_codes() {
    let s = start().await;
    s.deploy("crowded", SAYS, py(json!({}))).await;
    let mut open_streams = Vec::new();
    for _ in 0..64 {
        open_streams.push(Stream::open(&s, "crowded", "", None).await);
    }
    let r = open(&s, "crowded", "", None).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "TooManyLogStreams");
    assert!(body["message"].as_str().unwrap().contains("close other consoles"), "{body}");

    // Every open stream still gets new lines.
    let id = s.event("crowded", json!({"say": "all"})).await.request_id.unwrap();
    for stream in open_streams.iter_mut().take(3) {
        stream.lines_until(&format!("END RequestId: {id}")).await;
    }
    // A closed stream gives its place back.
    drop(open_streams.pop());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = open(&s, "crowded", "?timeout_s=0", None).await;
        if r.status() == StatusCode::OK {
            break;
        }
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "the closed stream's place was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(open_streams);

    for (name, query, last_event_id, status, code) in [
        ("absent", "", None, StatusCode::NOT_FOUND, "FunctionNotFound"),
        ("Bad_Name", "", None, StatusCode::BAD_REQUEST, "InvalidFunctionName"),
        ("crowded", "?timeout_s=3601", None, StatusCode::BAD_REQUEST, "InvalidQuery"),
        ("crowded", "?after=x", None, StatusCode::BAD_REQUEST, "InvalidQuery"),
        ("crowded", "?tail=1001", None, StatusCode::BAD_REQUEST, "InvalidQuery"),
        ("crowded", "", Some(-1), StatusCode::BAD_REQUEST, "InvalidQuery"),
    ] {
        let r = open(&s, name, query, last_event_id).await;
        assert_eq!(r.status(), status, "{name}{query}");
        assert_eq!(r.json::<Value>().await.unwrap()["code"], code, "{name}{query}");
    }
    let r = s.http.get(format!("{}/v1/functions/crowded/logs/stream", s.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a bearer token is needed, as on every route");
}

#[tokio::test]
async fn a_stream_ends_when_its_time_is_up_or_its_function_is_deleted() {
    let s = start().await;
    s.deploy("brief", SAYS, py(json!({}))).await;
    let mut expiring = Stream::open(&s, "brief", "?timeout_s=1", None).await;
    let mut following = Stream::open(&s, "brief", "", None).await;
    let end = expiring.next(Duration::from_secs(30)).await.unwrap();
    assert_eq!((end.event.as_str(), &end.data), ("end", &json!({"reason": "expired"})));
    assert!(expiring.next(Duration::from_secs(30)).await.is_none(), "then the stream closes");

    let r = s.http.delete(format!("{}/v1/functions/brief", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert!(r.status().is_success());
    let end = following.next(Duration::from_secs(30)).await.unwrap();
    assert_eq!((end.event.as_str(), &end.data), ("end", &json!({"reason": "deleted"})));
    assert!(following.next(Duration::from_secs(30)).await.is_none());
}

/// A stream outlives no revocation: once its token is deleted, it ends with `revoked` at its
/// next check (every 30 s), and a reconnection is refused.
#[tokio::test]
async fn a_stream_ends_when_its_token_is_deleted() {
    let s = start().await;
    s.deploy("revoked", SAYS, py(json!({}))).await;
    let (status, token) = s.post_json("/v1/tokens", &json!({"name": "viewer", "scopes": ["read"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let (secret, id) = (token["token"].as_str().unwrap().to_owned(), token["id"].as_str().unwrap().to_owned());
    let url = format!("{}/v1/functions/revoked/logs/stream", s.url);
    let response = s.http.get(&url).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = Stream { response, buffer: String::new(), comments: 0 };
    // It serves while the token holds.
    let rid = s.event("revoked", json!({"say": "before"})).await.request_id.unwrap();
    stream.lines_until(&format!("END RequestId: {rid}")).await;

    let r = s.http.delete(format!("{}/v1/tokens/{id}", s.url)).bearer_auth(&s.token).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let end = loop {
        let e = stream.next(Duration::from_secs(45)).await.expect("an end event before the stream closes");
        if e.event == "end" {
            break e;
        }
    };
    assert_eq!(end.data["reason"], "revoked", "{end:?}");
    assert!(stream.next(Duration::from_secs(5)).await.is_none(), "the stream closes after its end event");
    let again = s.http.get(&url).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
}
