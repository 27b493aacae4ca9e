//! `hearth usage` on the real binary: invocations made through the CLI are summed and priced
//! at the server's configured prices.

use std::time::Instant;

use super::*;

#[test]
fn hearth_usage_sums_and_prices_what_ran() {
    let home = Home::new();
    // A dollar a request and nothing per GB-second: the cost is the request count.
    let server = home.up_with(&[
        ("HEARTH_PRICE_PER_MILLION_REQUESTS", "1000000"),
        ("HEARTH_PRICE_PER_GB_SECOND", "0"),
        ("HEARTH_PROVISIONED_METER_MS", "100"),
    ]);
    home.deploy_python("counted", "def handler(event, context):\n    return 'ok'\n", &[]);
    for _ in 0..3 {
        home.ok(&["invoke", "counted"]);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let report = home.json(&["usage", "--function", "counted", "--group-by", "function"]);
        if report["total"]["requests"] == 3 {
            break report;
        }
        assert!(Instant::now() < deadline, "the invocations are summed: {report}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(report["total"]["cost"]["total"], 3.0, "priced at the configured prices: {report}");
    assert_eq!(report["rows"][0]["function"], "counted");
    assert_eq!(report["total"]["cold_starts"], 1, "{report}");
    // A date is the start of its day, UTC.
    let today = chrono::Utc::now().date_naive();
    let tomorrow = today.succ_opt().unwrap();
    let (from, to) = (today.to_string(), tomorrow.to_string());
    let day = home.json(&["usage", "--from", &from, "--to", &to, "--function", "counted"]);
    assert_eq!(day["from"], format!("{today}T00:00:00Z"), "{day}");
    assert_eq!(day["total"]["requests"], 3, "{day}");
    let table = home.ok(&["usage", "--group-by", "function"]);
    assert!(table.contains("TOTAL") && table.contains("counted"), "{table}");
    let out = home.run(&["usage", "--group-by", "week"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses an unknown grouping");
    let out = home.run(&["usage", "--from", "yesterday"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidQuery"), "{}", String::from_utf8_lossy(&out.stderr));
    server.terminate();
}
