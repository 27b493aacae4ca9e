//! OpenTelemetry traces from the real binary: with `HEARTH_OTLP_ENDPOINT` pointing at a small
//! OTLP/HTTP receiver on loopback (this test's), one cold invocation is one trace whose spans
//! are its life: the HTTP `request`, its `invocation` → `route`, `acquire` → `start` → `init`,
//! `invoke`, `response`.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::*;

/// Accepts OTLP/HTTP requests on loopback and keeps their bodies.
fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    if let Ok(doc) = serde_json::from_slice(&body) {
                        kept.lock().unwrap().push(doc);
                    }
                    let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if stream.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, bodies)
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"].as_array()?.iter().find(|a| a["key"] == key)?["value"]["stringValue"].as_str()
}

#[test]
fn one_invocation_is_one_trace_with_the_spans_of_its_life() {
    let (endpoint, bodies) = receiver();
    let home = Home::new();
    let server = home.up_with(&[("HEARTH_OTLP_ENDPOINT", &endpoint)]);
    home.deploy_python("traced", "def handler(event, context):\n    return 'ok'\n", &[]);
    let invoked = home.json(&["invoke", "traced"]);
    assert_eq!(invoked["cold_start"], true, "{invoked}");
    let request_id = invoked["request_id"].as_str().unwrap().to_owned();
    // A graceful stop exports what the batch still holds.
    server.terminate();
    let spans: Vec<Value> = bodies
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| b["resourceSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        .collect();
    let root = spans
        .iter()
        .find(|s| s["name"] == "invocation" && attribute(s, "request_id") == Some(&request_id))
        .unwrap_or_else(|| panic!("the invocation's span was exported: {spans:?}"));
    assert_eq!(attribute(root, "function"), Some("traced"));
    let trace: Vec<&Value> = spans.iter().filter(|s| s["traceId"] == root["traceId"]).collect();
    let by_name: HashMap<&str, &Value> = trace.iter().map(|s| (s["name"].as_str().unwrap(), *s)).collect();
    let parent = |name: &str| {
        by_name.get(name).map(|s| s["parentSpanId"].clone()).unwrap_or_else(|| panic!("no {name} span in {trace:?}"))
    };
    for child in ["route", "acquire", "invoke", "response"] {
        assert_eq!(parent(child), root["spanId"], "{child} is a child of the invocation: {trace:?}");
    }
    assert_eq!(parent("start"), by_name["acquire"]["spanId"], "the cold start is the acquire's: {trace:?}");
    assert_eq!(parent("init"), by_name["start"]["spanId"], "{trace:?}");
    // The invocation is in the span of the HTTP request that carried it, the trace's root.
    let request = by_name["request"];
    assert_eq!(parent("invocation"), request["spanId"], "{trace:?}");
    assert_eq!((request["parentSpanId"].as_str(), attribute(request, "method")), (Some(""), Some("POST")));
    assert_eq!(attribute(request, "path"), Some("/v1/functions/traced/invoke"));
    assert_eq!(trace.len(), 8, "one trace: the request and the spans of its invocation: {trace:?}");
}
