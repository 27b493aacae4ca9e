//! `hearth usage`: what functions used and cost, from the server's usage aggregates.

use anyhow::Result;
use hearth_types::api::UsageLine;

use super::client;
use crate::cli::UsageArgs;
use crate::output::{print_json, print_table, time};

pub async fn run(args: UsageArgs, json: bool) -> Result<()> {
    let mut query = Vec::new();
    let (from, to) = (args.from.map(|t| rfc3339(&t)), args.to.map(|t| rfc3339(&t)));
    for (key, value) in [("from", from), ("to", to), ("function", args.function), ("group_by", args.group_by)] {
        if let Some(v) = value {
            query.push((key, v));
        }
    }
    let report = client()?.usage(&query).await?;
    if json {
        return print_json(&report);
    }
    println!("Usage from {} to {} UTC", time(&report.from), time(&report.to));
    let mut rows: Vec<Vec<String>> = report.rows.iter().map(|l| row(&label(l), l)).collect();
    rows.push(row("TOTAL", &report.total));
    print_table(&["GROUP", "REQUESTS", "ERRORS", "COLD", "BILLED (s)", "GB-s", "PROV GB-s", "COST"], &rows);
    let p = report.prices;
    println!(
        "Prices: {} per million requests, {} per GB-s, {} per provisioned GB-s (the server's [pricing])",
        p.per_million_requests, p.per_gb_second, p.per_provisioned_gb_second
    );
    Ok(())
}

/// A date (`2026-12-01`) as the start of its day in UTC; anything else as given (the server
/// checks it).
fn rfc3339(t: &str) -> String {
    match chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        Ok(d) => format!("{d}T00:00:00Z"),
        Err(_) => t.to_owned(),
    }
}

/// What a row sums: its hour or day, or its function (and version).
fn label(l: &UsageLine) -> String {
    let r = &l.row;
    match (&r.period_start, &r.function, r.version, &r.qualifier) {
        (Some(at), _, _, _) => time(at),
        (None, Some(f), Some(v), Some(q)) => format!("{f}:{q} (v{v})"),
        (None, Some(f), Some(v), None) => format!("{f} (v{v})"),
        (None, Some(f), None, _) => f.to_string(),
        _ => "-".into(),
    }
}

fn row(label: &str, l: &UsageLine) -> Vec<String> {
    let f = &l.row.figures;
    vec![
        label.to_owned(),
        f.requests.to_string(),
        f.errors.to_string(),
        f.cold_starts.to_string(),
        format!("{:.3}", f.billed_ms as f64 / 1000.0),
        format!("{:.6}", l.gb_seconds),
        format!("{:.3}", l.provisioned_gb_seconds),
        format!("{:.6}", l.cost.total),
    ]
}
