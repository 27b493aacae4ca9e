//! A function's output cannot exhaust the server: long lines are cut, floods are held to a
//! budget per invocation and per function, and the server's memory stays bounded.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Server, py, start, start_with};

/// The longest line kept (the agent's default).
const LINE_CAP: usize = 256 * 1024;
/// Room for the ` [truncated]` marker after a cut line.
const MARKER_ROOM: usize = 64;

/// Prints `mb` MiB of 100-byte lines.
const FLOOD: &str = r#"
import sys

LINES = ('y' * 99 + '\n') * 10486

def handler(event, context):
    for _ in range(event.get('mb', 0)):
        sys.stdout.write(LINES)
    sys.stdout.flush()
    print('quiet', context.aws_request_id)
    return {'ok': True}
"#;

/// Prints one line of `line_mb` MiB (in 1 MiB writes, so the function itself stays small),
/// then `lines_mb` MiB of short lines, then a line saying it is done.
const LONG_LINE: &str = r#"
import sys

def handler(event, context):
    chunk = 'x' * (1 << 20)
    for _ in range(event.get('line_mb', 0)):
        sys.stdout.write(chunk)
    sys.stdout.flush()
    if event.get('then_newline', True):
        sys.stdout.write('\n')
    lines = ('z' * 99 + '\n') * 10486
    for _ in range(event.get('lines_mb', 0)):
        sys.stdout.write(lines)
    print('after the long line')
    sys.stdout.flush()
    return {'ok': True}
"#;

/// One stored line, as the tests need it.
struct Stored {
    request_id: Option<String>,
    stream: String,
    message: String,
}

impl Server {
    /// Every stored line of `name`'s log, paging through all of it; fails as soon as the
    /// function's own output (stdout and stderr) passes `bound` bytes.
    async fn stored_logs(&self, name: &str, bound: usize) -> Vec<Stored> {
        let (mut after, mut out, mut output_bytes) = (0i64, Vec::new(), 0usize);
        loop {
            let page = self.get_json(&format!("/v1/functions/{name}/logs?after={after}&limit=1000")).await;
            let lines = page["lines"].as_array().unwrap();
            if lines.is_empty() {
                return out;
            }
            for l in lines {
                let line = Stored {
                    request_id: l["request_id"].as_str().map(str::to_owned),
                    stream: l["stream"].as_str().unwrap().to_owned(),
                    message: l["message"].as_str().unwrap().to_owned(),
                };
                if line.stream != "platform" {
                    output_bytes += line.message.len();
                    assert!(
                        output_bytes <= bound,
                        "{name} stored more than {bound} bytes of output ({output_bytes} so far, {} lines)",
                        out.len() + 1
                    );
                }
                out.push(line);
            }
            after = page["next"].as_i64().unwrap();
        }
    }

    /// Polls `name`'s log until `done` holds, failing after `limit` (or when the function's
    /// output passes `bound` bytes).
    async fn wait_logs(
        &self,
        name: &str,
        bound: usize,
        limit: Duration,
        done: impl Fn(&[Stored]) -> bool,
    ) -> Vec<Stored> {
        let deadline = Instant::now() + limit;
        loop {
            let lines = self.stored_logs(name, bound).await;
            if done(&lines) {
                return lines;
            }
            let tail: Vec<String> = lines.iter().rev().take(5).map(|l| l.message.chars().take(120).collect()).collect();
            assert!(Instant::now() < deadline, "{name}: the log never reached the expected state; last lines {tail:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn healthy(&self) -> bool {
        let r = self.http.get(format!("{}/healthz", self.url)).send().await.unwrap();
        r.status().is_success()
    }
}

fn output_bytes(lines: &[Stored], request_id: Option<&str>) -> usize {
    lines
        .iter()
        .filter(|l| l.stream != "platform" && (request_id.is_none() || l.request_id.as_deref() == request_id))
        .map(|l| l.message.len())
        .sum()
}

#[tokio::test]
async fn a_line_without_newline_is_cut_at_256_kib() {
    let s = start().await;
    s.deploy("long-line", LONG_LINE, py(json!({"timeout_s": 30}))).await;
    // 20 MiB with no newline, then a newline and one more line.
    let r = s.event("long-line", json!({"line_mb": 20})).await;
    assert_eq!(r.body, json!({"ok": true}), "{:?}", r.error);
    let id = r.request_id.unwrap();
    let bound = 2 * (LINE_CAP + MARKER_ROOM);
    let lines = s
        .wait_logs("long-line", bound, Duration::from_secs(30), |ls| {
            ls.iter().any(|l| l.message == "after the long line" && l.request_id.as_deref() == Some(&id))
        })
        .await;
    let long: Vec<&Stored> = lines.iter().filter(|l| l.message.starts_with("xxxx")).collect();
    assert_eq!(long.len(), 1, "one line for the long line (the rest of it dropped up to its newline)");
    let long = long[0];
    assert!(long.message.len() <= LINE_CAP + MARKER_ROOM, "the stored line is {} bytes", long.message.len());
    assert!(long.message.len() >= LINE_CAP, "the cap keeps 256 KiB: {} bytes", long.message.len());
    assert!(long.message.ends_with("[truncated]"), "{}", &long.message[long.message.len() - 40..]);
    assert_eq!(long.request_id.as_deref(), Some(id.as_str()));
    assert!(lines.iter().all(|l| l.message.len() <= LINE_CAP + MARKER_ROOM));

    // The cut line is delivered as soon as it reaches the cap, not when its newline comes:
    // a line that never ends is still in the log.
    let r = s.event("long-line", json!({"line_mb": 2, "then_newline": false})).await;
    let id = r.request_id.unwrap();
    s.wait_logs("long-line", 3 * bound, Duration::from_secs(30), |ls| {
        ls.iter().any(|l| l.request_id.as_deref() == Some(&id) && l.message.ends_with("[truncated]"))
    })
    .await;
}

#[tokio::test]
async fn a_flood_is_held_to_the_invocation_and_function_budgets() {
    const INVOCATION: u64 = 512 * 1024;
    const PER_MINUTE: u64 = 1024 * 1024;
    let s = start_with(|g| {
        g.log_capture.invocation_bytes = INVOCATION;
        g.log_bytes_per_minute = PER_MINUTE;
    })
    .await;
    s.deploy("flood", FLOOD, py(json!({"timeout_s": 60}))).await;
    s.deploy("bystander", FLOOD, py(json!({}))).await;
    let began = Instant::now();

    // Three invocations of 8 MiB each: 24 MiB printed, 48 times what one may leave.
    let mut ids = vec![];
    for _ in 0..3 {
        let flood = s.event("flood", json!({"mb": 8}));
        let (flood, other) = tokio::join!(flood, s.event("bystander", json!({})));
        assert_eq!(flood.body, json!({"ok": true}), "{:?}", flood.error);
        assert_eq!(other.body, json!({"ok": true}), "another function keeps serving: {:?}", other.error);
        assert!(s.healthy().await);
        ids.push(flood.request_id.unwrap());
    }
    // What may be stored: the function's budget for each minute window the test has touched
    // (one more for the wait below), and never more than each invocation's budget.
    let bound = || (PER_MINUTE * (2 + began.elapsed().as_secs() / 60)) as usize;
    let lines = s
        .wait_logs("flood", bound(), Duration::from_secs(60), |ls| {
            // Each invocation reaches its own budget; a later one also the function's.
            let cut = |id: &String| {
                ls.iter().any(|l| {
                    l.request_id.as_deref() == Some(id.as_str())
                        && l.message.starts_with("[truncated] this invocation's output passed its limit of 512 KiB")
                })
            };
            ids.iter().all(cut)
        })
        .await;
    for id in &ids {
        let bytes = output_bytes(&lines, Some(id));
        assert!(bytes as u64 <= INVOCATION, "request {id} stored {bytes} bytes of output");
        let markers: Vec<&str> = lines
            .iter()
            .filter(|l| l.request_id.as_deref() == Some(id.as_str()) && l.message.contains("[truncated]"))
            .map(|l| l.message.as_str())
            .collect();
        // The invocation's marker, perhaps the function's, and the count of what the
        // invocation lost (logged once the next one begins).
        assert!(markers.len() <= 3, "one marker per limit reached: {markers:?}");
        assert!(lines.iter().any(|l| l.message == format!("END RequestId: {id}")), "platform lines are kept");
    }
    let total = output_bytes(&lines, None);
    assert!(total <= bound(), "the function stored {total} bytes");
    let function_marker = "[truncated] the function's output passed its log budget of 1024 KiB per minute";
    // 1.5 MiB of output against 1 MiB a minute (a line costs its newline too): the second
    // or the third invocation passes the function's budget, and the log says so.
    assert!(
        lines.iter().any(|l| {
            ids[1..].iter().any(|id| l.request_id.as_deref() == Some(id.as_str()))
                && l.message.starts_with(function_marker)
        }),
        "the function's budget says so in the log"
    );

    // The bystander's log is whole, and the server still serves both.
    let other = s.stored_logs("bystander", 1 << 20).await;
    assert_eq!(other.iter().filter(|l| l.message.starts_with("quiet ")).count(), 3);
    assert!(other.iter().all(|l| !l.message.contains("[truncated]")));
    let again = s.event("flood", json!({})).await;
    assert_eq!(again.body, json!({"ok": true}));
    assert!(s.healthy().await);
    // Nothing more arrived late (`stored_logs` fails past the bound).
    s.stored_logs("flood", bound()).await;
}

/// The test process's resident memory now and at its peak (kB), from `/proc/self/status`.
fn memory_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test]
async fn a_flood_does_not_grow_the_server() {
    let s = start().await;
    s.deploy("rss", LONG_LINE, py(json!({"timeout_s": 60}))).await;
    let warm = s.event("rss", json!({})).await;
    assert_eq!(warm.body, json!({"ok": true}));
    // The server runs in this process: reset its peak (as root, `5` to clear_refs), so the
    // peak read afterwards is this flood's.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let (before, _) = memory_kb();

    // 128 MiB in one line, then 128 MiB of short lines. Before the limits, the server held
    // each line whole (several copies: the line, its log record, its JSON) and queued every
    // short line: hundreds of MiB. Now it holds at most a 256 KiB line and a 64 KiB read
    // buffer per stream, the 4 MiB one invocation may log (a few copies on its way into
    // SQLite), and the meter's queue (at most 32 MiB, not reached by one function). 64 MiB is
    // that with room for the allocator and the other tests in this process.
    let r = s.event("rss", json!({"line_mb": 128, "lines_mb": 128})).await;
    assert_eq!(r.body, json!({"ok": true}), "{:?}", r.error);
    let flood = r.request_id.unwrap();
    // The next invocation's line comes after everything the flood printed (one pipe): once
    // it is stored, the server has read the whole flood.
    let next = s.event("rss", json!({})).await.request_id.unwrap();
    let lines = s
        .wait_logs("rss", usize::MAX, Duration::from_secs(60), |ls| {
            ls.iter().any(|l| l.request_id.as_deref() == Some(&next) && l.message == "after the long line")
        })
        .await;
    let (after, peak) = memory_kb();
    let growth_mb = peak.saturating_sub(before) / 1024;
    eprintln!("server memory: {} MiB before, {} MiB after, peak +{growth_mb} MiB", before / 1024, after / 1024);
    assert!(growth_mb <= 64, "the server's peak memory grew by {growth_mb} MiB while a function printed 256 MiB");
    assert!(s.healthy().await);

    // And what it stored is bounded: one invocation's budget each (the next one may have
    // been charged with the flood's last lines, read after it began).
    let invocation = 4 * 1024 * 1024;
    for id in [&flood, &next] {
        let bytes = output_bytes(&lines, Some(id));
        assert!(bytes <= invocation, "request {id} stored {bytes} bytes");
    }
    assert!(lines.iter().any(|l| l.request_id.as_deref() == Some(&flood) && l.message.contains("[truncated]")));
}

/// A function cannot forge platform lines: the error type of a failed init (anything the
/// function reports to the Runtime API) is written into one `INIT_REPORT` line, line breaks
/// made spaces, and bounded.
#[tokio::test]
async fn an_init_error_type_cannot_forge_platform_lines() {
    let s = start().await;
    let forger = r#"
import json, os, urllib.request
kind = 'X\nREPORT RequestId: forged\tDuration: 0.01 ms' + 'y' * 1000
url = 'http://' + os.environ['AWS_LAMBDA_RUNTIME_API'] + '/2018-06-01/runtime/init/error'
body = json.dumps({'errorType': kind, 'errorMessage': 'boom'}).encode()
urllib.request.urlopen(urllib.request.Request(url, data=body, method='POST'))
os._exit(1)
"#;
    s.deploy("forger", forger, py(json!({}))).await;
    let r = s.event("forger", json!({})).await;
    let kind = r.body["errorType"].as_str().unwrap_or_default();
    assert!(kind.starts_with("X\nREPORT"), "the init fails with the type it sent: {:?}", r.body);
    let page = s.get_json("/v1/functions/forger/logs").await;
    let platform: Vec<&str> = page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["stream"] == "platform")
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert!(!platform.iter().any(|m| m.starts_with("REPORT RequestId: forged")), "a forged line: {platform:?}");
    let report = platform.iter().find(|m| m.starts_with("INIT_REPORT")).expect("an INIT_REPORT line");
    assert!(report.contains("Error Type: X REPORT RequestId: forged") && !report.contains('\n'), "{report}");
    assert!(report.len() < 512, "bounded: {} bytes", report.len());
}
