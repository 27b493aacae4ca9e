//! The per-instance Runtime API (`hearth_agent::RuntimeApi`), as a function's runtime
//! would talk to it: arbitrary HTTP requests over loopback to a fresh API, while the
//! platform side keeps one invocation queued.
//!
//! Input: an optional `slots=N` line (1 to 4), then requests separated by 0x1E bytes, each
//! `METHOD TARGET [chunked] [truncate] [big]`, header lines (`~name: value` is a trailer,
//! sent when chunked), a blank line and the body. `{id}` in the target, headers or body
//! stands for the request id the runtime was last handed. `truncate` hangs up the sending
//! half before the body ends; `big` sends a body of 6 MiB + 101 bytes instead.
//!
//! - every request is answered, within 10 s (a truncated one may be hung up on);
//! - `/next` hands out the queued invocations in order, with their payload, until as many
//!   are outstanding as the instance has slots, then answers 403;
//! - `/response` and `/error` are accepted (202) once, for an outstanding id only, and
//!   refused with 400 (another id is outstanding) or 403 (none is) otherwise;
//! - `/init/error` is accepted before the first `/next` only.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use hearth_agent::{Invocation, MAX_PAYLOAD_BYTES, RuntimeApi};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

static RT: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"));

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
const MAX_REQUESTS: usize = 12;
/// Between requests: ASCII's record separator (bodies may hold NUL bytes).
const SEPARATOR: u8 = 0x1e;
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// Headers the harness sets itself, so that the request's framing stays its own.
const FRAMING: [&str; 6] = ["content-length", "transfer-encoding", "connection", "expect", "upgrade", "te"];

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    trailers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    chunked: bool,
    truncate: bool,
    big: bool,
}

fn token(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(*c)).collect()
}

fn parse(block: &[u8]) -> Request {
    let (head, body) = match block.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&block[..i], &block[i + 2..]),
        None => (block, &b""[..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let first = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut words = first.split(' ');
    let method = Some(token(words.next().unwrap_or_default())).filter(|m| !m.is_empty()).unwrap_or("GET".into());
    let target: String = words.next().unwrap_or_default().chars().filter(|c| ('!'..='~').contains(c)).collect();
    let target = if target.starts_with('/') { target } else { format!("/{target}") };
    let flags: Vec<&str> = words.collect();
    let (mut headers, mut trailers) = (Vec::new(), Vec::new());
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let name = String::from_utf8_lossy(&line[..colon]).into_owned();
        // Bytes a header value may hold (HTAB, visible, obs-text): the request stays HTTP.
        let value: Vec<u8> =
            line[colon + 1..].iter().copied().filter(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f)).collect();
        let value = value.trim_ascii().to_vec();
        let (list, name) = match name.strip_prefix('~') {
            Some(n) => (&mut trailers, token(n)),
            None => (&mut headers, token(&name)),
        };
        if !name.is_empty() && !FRAMING.contains(&name.to_ascii_lowercase().as_str()) {
            list.push((name, value));
        }
    }
    Request {
        method,
        target,
        headers,
        trailers,
        body: body.to_vec(),
        chunked: flags.contains(&"chunked"),
        truncate: flags.contains(&"truncate"),
        big: flags.contains(&"big"),
    }
}

fn with_id(s: &[u8], id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.windows(4).position(|w| w == b"{id}") {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(id.as_bytes());
        rest = &rest[i + 4..];
    }
    out.extend_from_slice(rest);
    out
}

/// What came back: status, headers (names lower-case) and body; `None` if the server hung
/// up without answering.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn error_type(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["errorType"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

async fn read_answer(stream: &mut tokio::net::tcp::OwnedReadHalf, head_only: bool) -> Option<Answer> {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        if (100..200).contains(&status) {
            continue;
        }
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut answer = Answer { status, headers, body: Vec::new() };
        let length: usize = answer.header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
        if !head_only {
            while buf.len() < length {
                let mut chunk = [0u8; 8192];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            buf.truncate(length);
            answer.body = buf;
        }
        return Some(answer);
    }
}

/// Sends `req` on a fresh connection and reads the answer. Panics if none comes in time.
async fn send(addr: SocketAddr, req: &Request, id: &str) -> Option<Answer> {
    let stream = TcpStream::connect(addr).await.expect("connect to the Runtime API");
    // Reset on close: no TIME_WAIT left behind by thousands of runs.
    stream.set_zero_linger().expect("linger");
    stream.set_nodelay(true).expect("nodelay");
    let (mut read, mut write) = stream.into_split();
    let body = if req.big { vec![b'x'; MAX_PAYLOAD_BYTES + 1] } else { with_id(&req.body, id) };
    let mut head =
        format!("{} {} HTTP/1.1\r\n", req.method, String::from_utf8_lossy(&with_id(req.target.as_bytes(), id)))
            .into_bytes();
    for (name, value) in &req.headers {
        head.extend_from_slice(format!("{name}: ").as_bytes());
        head.extend_from_slice(&with_id(value, id));
        head.extend_from_slice(b"\r\n");
    }
    let (chunked, truncate) = (req.chunked, req.truncate);
    if chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
    } else {
        let declared = body.len() + usize::from(truncate);
        head.extend_from_slice(format!("content-length: {declared}\r\n\r\n").as_bytes());
    }
    let trailers: Vec<u8> = req
        .trailers
        .iter()
        .flat_map(|(n, v)| [format!("{n}: ").into_bytes(), with_id(v, id), b"\r\n".to_vec()].concat())
        .collect();
    // Written on its own task: the server may answer before reading the whole body.
    let writer = tokio::spawn(async move {
        write.write_all(&head).await?;
        if chunked {
            for chunk in body.chunks(64 * 1024) {
                write.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                write.write_all(chunk).await?;
                write.write_all(b"\r\n").await?;
            }
            if !truncate {
                write.write_all(b"0\r\n").await?;
                write.write_all(&trailers).await?;
                write.write_all(b"\r\n").await?;
            }
        } else {
            write.write_all(&body).await?;
        }
        if truncate {
            write.shutdown().await?;
        }
        // Keep the sending half open (dropping it would hang up) until aborted.
        std::future::pending::<()>().await;
        Ok::<(), std::io::Error>(())
    });
    let head_only = req.method == "HEAD";
    let answer = tokio::time::timeout(ANSWER_WITHIN, read_answer(&mut read, head_only)).await;
    writer.abort();
    let answer =
        answer.unwrap_or_else(|_| panic!("no answer within {ANSWER_WITHIN:?} to {} {}", req.method, req.target));
    assert!(answer.is_some() || truncate, "hung up on {} {} without answering", req.method, req.target);
    answer
}

/// What the harness knows of the API's state.
struct Model {
    slots: usize,
    /// Ids handed out by `/next` and not answered yet.
    outstanding: Vec<String>,
    init_taken: bool,
    /// False once a request the model does not follow may have changed the state.
    sure: bool,
}

fn invocation(n: u64) -> Invocation {
    Invocation {
        request_id: format!("{n:08x}-0000-4000-8000-000000000000"),
        payload: Bytes::from(format!("{{\"n\":{n}}}")),
        content_type: None,
        deadline_ms: 4_102_444_800_000,
        invoked_function_arn: "arn:aws:lambda:local:000000000000:function:f".into(),
        trace_id: Some("Root=1-00000000-000000000000000000000000".into()),
        client_context: None,
    }
}

/// The response mode header as the API reads it: the first value, if it is text.
fn response_mode(req: &Request) -> Option<String> {
    let (_, v) = req.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("lambda-runtime-function-response-mode"))?;
    let v = std::str::from_utf8(v).ok()?;
    v.chars().all(|c| c == '\t' || (' '..='~').contains(&c)).then(|| v.to_owned())
}

async fn scenario(slots: usize, requests: Vec<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let api = Arc::new(RuntimeApi::serve(listener, slots).expect("serve"));
    let addr = api.address();
    let mut tasks: Vec<JoinHandle<()>> = vec![];
    let a = api.clone();
    tasks.push(tokio::spawn(async move {
        let _ = a.init().await;
    }));
    let mut model = Model { slots, outstanding: vec![], init_taken: false, sure: true };
    let (mut queued, mut handed): (Option<u64>, u64) = (None, 0);
    let mut big_sent = false;
    for mut req in requests {
        if req.big && std::mem::replace(&mut big_sent, true) {
            req.big = false;
        }
        let n = *queued.get_or_insert_with(|| {
            let n = handed;
            let a = api.clone();
            tasks.push(tokio::spawn(async move {
                let _ = a.invoke(invocation(n)).await;
            }));
            n
        });
        let id = model.outstanding.last().cloned().unwrap_or_else(|| invocation(n.saturating_sub(1)).request_id);
        let target = String::from_utf8_lossy(&with_id(req.target.as_bytes(), &id)).into_owned();
        let Some(answer) = send(addr, &req, &id).await else {
            model.sure = false;
            continue;
        };
        let what = format!("{} {target} -> {} {}", req.method, answer.status, answer.error_type());
        if let Some(given) = answer.header("lambda-runtime-aws-request-id") {
            let expected = invocation(n);
            assert_eq!(given, expected.request_id, "{what}: handed out out of order");
            assert!(answer.header("lambda-runtime-deadline-ms").is_some(), "{what}: no deadline");
            assert!(answer.header("lambda-runtime-invoked-function-arn").is_some(), "{what}: no ARN");
            if req.method == "GET" {
                assert_eq!(answer.body, expected.payload, "{what}: payload");
            }
            model.outstanding.push(given.to_owned());
            model.init_taken = true;
            assert!(model.outstanding.len() <= slots, "{what}: more outstanding than slots");
            handed += 1;
            queued = None;
            continue;
        }
        let consumed = answer.status == 202
            || matches!(answer.error_type().as_str(), "TruncatedHTTPRequest" | "RequestEntityTooLarge");
        // Routing sees the path only; a target the URI parser refuses is answered 400 before
        // any handler sees it.
        let uri = axum::http::Uri::try_from(target.as_str()).ok();
        let (method, sure) = (req.method.as_str(), model.sure && uri.is_some());
        let target = uri.map(|u| u.path().to_owned()).unwrap_or_default();
        if method == "GET" && target == NEXT {
            assert!(!sure || (model.outstanding.len() >= model.slots && answer.status == 403), "{what}");
        } else if method == "POST" && target == INIT_ERROR {
            assert!(!sure || answer.status == if model.init_taken { 403 } else { 202 }, "{what}");
            model.init_taken = true;
        } else if let Some((id, kind)) =
            target.strip_prefix(INVOCATION).and_then(|rest| rest.split_once('/')).filter(|(id, kind)| {
                method == "POST" && !id.is_empty() && !id.contains('%') && ["response", "error"].contains(kind)
            })
        {
            let Some(at) = model.outstanding.iter().position(|o| o == id) else {
                let refusal = if model.outstanding.is_empty() { 403 } else { 400 };
                assert!(!sure || answer.status == refusal, "{what}: an id not outstanding");
                continue;
            };
            let bad_mode =
                kind == "response" && response_mode(&req).is_some_and(|m| m != "streaming" && m != "buffered");
            let status = match () {
                _ if bad_mode => 400,
                _ if req.truncate && kind == "response" => 400,
                _ if req.truncate || req.big => 413,
                _ => 202,
            };
            assert!(!sure || answer.status == status, "{what}: expected {status}");
            if consumed && !bad_mode {
                model.outstanding.remove(at);
            }
        } else if consumed {
            // A request the model does not follow (a query string, an escaped id, HEAD)
            // changed the state: from here on, only answers are checked.
            model.sure = false;
        }
    }
    for t in tasks {
        t.abort();
    }
}

fuzz_target!(|data: &[u8]| {
    let (slots, rest) = match data.strip_prefix(b"slots=") {
        Some(rest) => (
            usize::from(rest.first().copied().unwrap_or(b'1').saturating_sub(b'0')).clamp(1, 4),
            rest.get(2..).unwrap_or_default(),
        ),
        None => (1, data),
    };
    let requests: Vec<Request> = rest.split(|b| *b == SEPARATOR).take(MAX_REQUESTS).map(parse).collect();
    RT.block_on(scenario(slots, requests));
});
