//! Scaling on a real server: node memory admission. The autoscaler and the adaptive
//! keep-alive, whose tests follow a rhythm, are in the `serial` binary.

use super::*;

const SLEEPER: &str = r#"
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"ok": True}
"#;

#[tokio::test]
async fn a_full_node_refuses_new_instances_with_a_clear_429() {
    let s = start_with(|g| g.node_memory_mb = 200).await;
    // (A function bigger than the whole node is refused at deploy: `admission.rs`.)
    // One 128 MB instance fits; a second function's does not while the first lives.
    s.deploy("small", SLEEPER, py(json!({"memory_mb": 128, "keep_alive_s": 1}))).await;
    assert_eq!(s.event("small", json!({})).await.status, StatusCode::OK);
    let node = s.node().await;
    assert_eq!((node["memory_limit_mb"].as_u64(), node["memory_committed_mb"].as_u64()), (Some(200), Some(128)));
    s.deploy("other", SLEEPER, py(json!({"memory_mb": 128}))).await;
    let r = s.event("other", json!({})).await;
    assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("NodeMemoryFull")));
    assert!(r.body["message"].as_str().unwrap().contains("memory_mb"), "says what to do: {:?}", r.body);
    // Once the first is reclaimed, its memory is free again.
    s.wait_instances("small", Duration::from_secs(10), |l| l.is_empty()).await;
    let r = s.event("other", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}
