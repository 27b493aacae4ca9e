//! Scaling on a real server, under a rhythm of calls that other tests must not slow down:
//! the autoscaler scaling ahead of the load, and the adaptive keep-alive policy unloading and
//! pre-warming around a regular caller.

use super::*;

use hearth_scale::AutoscalerConfig;

const SLEEPER: &str = r#"
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"ok": True}
"#;

#[tokio::test]
async fn the_autoscaler_scales_ahead_of_sustained_load() {
    let _turn = one_at_a_time().await;
    let fast = AutoscalerConfig {
        stable_window: Duration::from_secs(10),
        panic_window: Duration::from_secs(2),
        ..AutoscalerConfig::default()
    };
    let s = Arc::new(start_with(move |g| g.autoscaler = fast).await);
    s.deploy("steady", SLEEPER, py(json!({"max_instances": 20, "timeout_s": 10}))).await;
    // Four callers, each calling again as soon as answered: 4 in flight at all times.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (s, stop) = (s.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = s.event("steady", json!({"sleep": 0.2})).await;
                    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                }
            })
        })
        .collect();
    // 4 in flight at 70% target utilisation of one slot each: ceil(4 / 0.7) = 6 instances,
    // more than the 4 the held requests alone would have started.
    s.wait_instances("steady", Duration::from_secs(20), |l| l.len() >= 6).await;
    // And it holds them while the load lasts: sampled for 4 s (past the 2 s panic window),
    // the count stays within 6..=7 at every sample.
    let mut counts = vec![];
    let window = Instant::now() + Duration::from_secs(4);
    while Instant::now() < window {
        counts.push(s.instances("steady").await.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in callers {
        c.await.unwrap();
    }
    assert!(counts.len() >= 10, "sampled through the window: {counts:?}");
    assert!(counts.iter().all(|n| *n >= 6), "held at 6 or more under the load: {counts:?}");
    assert!(counts.iter().all(|n| *n <= 7), "not far beyond the target: {counts:?}");
}

#[tokio::test]
async fn adaptive_keep_alive_unloads_between_regular_calls_and_prewarms_before_them() {
    let _turn = one_at_a_time().await;
    // Bins of 250 ms instead of a minute, so that a caller every 2.5 s trains it in seconds.
    let s = start_with(|g| g.adaptive_bin = Duration::from_millis(250)).await;
    s.deploy("timer", SLEEPER, py(json!({"keep_alive_policy": "adaptive", "keep_alive_s": 60}))).await;
    let version = s.http.get(format!("{}/v1/functions/timer", s.url)).bearer_auth(&s.token).send().await.unwrap();
    let v: Value = version.json().await.unwrap();
    assert_eq!(v["config"]["keep_alive_policy"], "adaptive", "{v}");
    // The caller's schedule is the workload itself: one call every 2.5 s.
    let start = tokio::time::Instant::now();
    let gap = Duration::from_millis(2_500);
    let mut colds = vec![];
    let mut unloaded = 0;
    for i in 0..15u32 {
        tokio::time::sleep_until(start + gap * i).await;
        let r = s.event("timer", json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        colds.push(r.cold.unwrap());
        if i >= 11 {
            // Trained: the instance goes right after the call (the fixed 60 s would keep it).
            let deadline = Instant::now() + Duration::from_millis(1_500);
            while Instant::now() < deadline {
                if s.instances("timer").await.is_empty() {
                    unloaded += 1;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    // Before training: the fixed fallback keeps the instance, so calls after the first are
    // warm. After: unloaded between calls, yet pre-warmed in time for them.
    assert!(colds[0], "the first call is cold");
    assert!(colds[1..11].iter().all(|c| !c), "fallback keeps it warm: {colds:?}");
    assert!(unloaded >= 3, "unloaded between calls once trained: {unloaded}");
    let late_cold = colds[12..].iter().filter(|c| **c).count();
    assert!(late_cold <= 1, "pre-warmed before the next call: {colds:?}");

    // A new version keeps what the function's policy learned: right after its first call
    // its instance goes (the fixed fallback would keep it 60 s).
    let spec = json!({"keep_alive_policy": "adaptive", "keep_alive_s": 60, "description": "v2"});
    s.deploy("timer", SLEEPER, py(spec)).await;
    let restart = tokio::time::Instant::now();
    assert_eq!(s.event("timer", json!({})).await.status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_millis(1_500);
    while !s.instances("timer").await.is_empty() {
        assert!(Instant::now() < deadline, "the new version's instance was kept: the policy forgot");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep_until(restart + gap).await;
    assert_eq!(s.event("timer", json!({})).await.status, StatusCode::OK);
}
