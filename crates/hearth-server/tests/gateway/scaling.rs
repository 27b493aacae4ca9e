//! Scaling on a real server: node memory admission. The autoscaler and the adaptive
//! keep-alive, whose tests follow a rhythm, are in the `serial` binary.

use super::*;

const SLEEPER: &str = r#"
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"ok": True}
"#;

/// A full node evicts an idle instance of another function before it refuses, and refuses
/// with a clear 429 only when nothing idle is left.
#[tokio::test]
async fn a_full_node_evicts_idle_instances_and_refuses_only_when_all_are_busy() {
    let s = start_with(|g| g.node_memory_mb = 200).await;
    // (A function bigger than the whole node is refused at deploy: `admission.rs`.)
    // One 128 MB instance fits, not two.
    s.deploy("small", SLEEPER, py(json!({"memory_mb": 128, "keep_alive_s": 600}))).await;
    assert_eq!(s.event("small", json!({})).await.status, StatusCode::OK);
    let node = s.node().await;
    assert_eq!((node["memory_limit_mb"].as_u64(), node["memory_committed_mb"].as_u64()), (Some(200), Some(128)));
    // Another function's call: the idle instance of the first makes room.
    s.deploy("other", SLEEPER, py(json!({"memory_mb": 128, "keep_alive_s": 600}))).await;
    let r = s.event("other", json!({})).await;
    assert_eq!((r.status, r.cold), (StatusCode::OK, Some(true)), "{:?}", r.body);
    assert!(s.instances("small").await.is_empty(), "the idle instance was evicted");
    let metrics = s.http.get(format!("{}/metrics", s.url)).bearer_auth(&s.token).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(text.contains("hearth_instances_evicted_total 1"), "{text}");
    // While that instance is busy, nothing can go: the first function is refused.
    let busy = s.event("other", json!({"sleep": 5}));
    let refused = async {
        s.wait_instances("other", Duration::from_secs(10), |l| l.iter().any(|i| i["state"] == "busy")).await;
        s.event("small", json!({})).await
    };
    let (busy, r) = tokio::join!(busy, refused);
    assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("NodeMemoryFull")));
    assert!(r.body["message"].as_str().unwrap().contains("memory_mb"), "says what to do: {:?}", r.body);
    assert_eq!(busy.status, StatusCode::OK, "{:?}", busy.body);
    // Idle again, it makes room.
    let r = s.event("small", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(s.instances("other").await.is_empty());
}
