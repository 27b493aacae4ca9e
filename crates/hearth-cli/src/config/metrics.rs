//! Prometheus metrics: `[metrics] listen, max_functions, series_ttl_s`, `--metrics-listen`,
//! `HEARTH_METRICS_LISTEN`, `HEARTH_METRICS_MAX_FUNCTIONS`, `HEARTH_METRICS_SERIES_TTL_S`.
//! `/metrics` is always on the API's listener (read scope); with a metrics listener it is
//! also served there, without a token.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::{EnvLookup, parse_listen};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetricsFile {
    listen: Option<String>,
    max_functions: Option<usize>,
    series_ttl_s: Option<u64>,
}

/// What the metrics settings come to.
pub(super) struct MetricsSettings {
    pub listen: Option<SocketAddr>,
    pub max_functions: usize,
    pub series_ttl: Duration,
}

pub(super) fn metrics(flag: Option<&str>, file: &MetricsFile, env: EnvLookup<'_>) -> Result<MetricsSettings> {
    let listen = match flag.map(str::to_owned).or_else(|| env("HEARTH_METRICS_LISTEN")).or(file.listen.clone()) {
        Some(s) => Some(parse_listen(&s).context("the metrics listener (--metrics-listen)")?),
        None => None,
    };
    let number = |name: &str, from_file: Option<u64>, default: u64| -> Result<u64> {
        match env(name) {
            Some(v) => v.parse().with_context(|| format!("{name}={v:?} is not a number")),
            None => Ok(from_file.unwrap_or(default)),
        }
    };
    let max_functions = number("HEARTH_METRICS_MAX_FUNCTIONS", file.max_functions.map(|n| n as u64), 1000)?;
    let ttl = number("HEARTH_METRICS_SERIES_TTL_S", file.series_ttl_s, 600)?;
    Ok(MetricsSettings {
        listen,
        max_functions: usize::try_from(max_functions).unwrap_or(usize::MAX),
        series_ttl: Duration::from_secs(ttl.max(1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_settings_come_from_the_flag_the_environment_then_the_file() {
        let file: MetricsFile = toml::from_str("listen = \"127.0.0.1:9100\"\nmax_functions = 5\n").unwrap();
        let none = |_: &str| None;
        let m = metrics(None, &file, &none).unwrap();
        assert_eq!((m.listen.unwrap().port(), m.max_functions, m.series_ttl.as_secs()), (9100, 5, 600));
        let env = |k: &str| match k {
            "HEARTH_METRICS_LISTEN" => Some("127.0.0.1:9200".to_owned()),
            "HEARTH_METRICS_MAX_FUNCTIONS" => Some("7".to_owned()),
            "HEARTH_METRICS_SERIES_TTL_S" => Some("30".to_owned()),
            _ => None,
        };
        let m = metrics(None, &file, &env).unwrap();
        assert_eq!((m.listen.unwrap().port(), m.max_functions, m.series_ttl.as_secs()), (9200, 7, 30));
        let m = metrics(Some("127.0.0.1:9300"), &file, &env).unwrap();
        assert_eq!(m.listen.unwrap().port(), 9300, "the flag wins");
        assert!(metrics(Some("nowhere"), &file, &none).is_err());
        let bad = |k: &str| (k == "HEARTH_METRICS_MAX_FUNCTIONS").then(|| "many".to_owned());
        assert!(metrics(None, &MetricsFile::default(), &bad).is_err());
    }
}
