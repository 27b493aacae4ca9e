//! Prices of usage (`[pricing]` or `HEARTH_PRICE_*`) and how often kept instances are
//! metered (`HEARTH_PROVISIONED_METER_MS`). The default prices are shaped like AWS Lambda's
//! public x86 prices: an example to start from, not a claim about anyone's bill.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use hearth_types::Prices;
use serde::Deserialize;

use super::EnvLookup;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PricingFile {
    per_million_requests: Option<f64>,
    per_gb_second: Option<f64>,
    per_provisioned_gb_second: Option<f64>,
    provisioned_meter_ms: Option<u64>,
}

/// The price table and the kept-instance metering interval: the file, then the environment.
pub(super) fn pricing(file: &PricingFile, env: EnvLookup<'_>) -> Result<(Prices, Duration)> {
    let mut prices = Prices::default();
    for (name, from_file, slot) in [
        ("HEARTH_PRICE_PER_MILLION_REQUESTS", file.per_million_requests, &mut prices.per_million_requests),
        ("HEARTH_PRICE_PER_GB_SECOND", file.per_gb_second, &mut prices.per_gb_second),
        (
            "HEARTH_PRICE_PER_PROVISIONED_GB_SECOND",
            file.per_provisioned_gb_second,
            &mut prices.per_provisioned_gb_second,
        ),
    ] {
        let value = match env(name) {
            Some(v) => v.parse::<f64>().with_context(|| format!("{name}={v:?} is not a number"))?,
            None => match from_file {
                Some(v) => v,
                None => continue,
            },
        };
        if !value.is_finite() || value < 0.0 {
            bail!("{name} must be a price of 0 or more, got {value}");
        }
        *slot = value;
    }
    let interval = match env("HEARTH_PROVISIONED_METER_MS") {
        Some(v) => {
            v.parse::<u64>().with_context(|| format!("HEARTH_PROVISIONED_METER_MS={v:?} is not a number of ms"))?
        }
        None => file.provisioned_meter_ms.unwrap_or(60_000),
    };
    Ok((prices, Duration::from_millis(interval.max(10))))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn prices_come_from_the_file_then_the_environment() {
        let file: PricingFile = toml::from_str("per_million_requests = 0.5\nprovisioned_meter_ms = 5000\n").unwrap();
        let none = |_: &str| None;
        let (p, every) = pricing(&file, &none).unwrap();
        assert_eq!(
            (p.per_million_requests, p.per_gb_second, every.as_millis()),
            (0.5, Prices::default().per_gb_second, 5000)
        );
        let env: HashMap<&str, &str> = HashMap::from([
            ("HEARTH_PRICE_PER_MILLION_REQUESTS", "0.25"),
            ("HEARTH_PRICE_PER_GB_SECOND", "0.00002"),
            ("HEARTH_PRICE_PER_PROVISIONED_GB_SECOND", "0"),
            ("HEARTH_PROVISIONED_METER_MS", "250"),
        ]);
        let lookup = |k: &str| env.get(k).map(|v| (*v).to_owned());
        let (p, every) = pricing(&file, &lookup).unwrap();
        assert_eq!((p.per_million_requests, p.per_gb_second, p.per_provisioned_gb_second), (0.25, 0.00002, 0.0));
        assert_eq!(every.as_millis(), 250);
        let bad = |k: &str| (k == "HEARTH_PRICE_PER_GB_SECOND").then(|| "-1".to_owned());
        assert!(pricing(&file, &bad).unwrap_err().to_string().contains("0 or more"));
        let bad = |k: &str| (k == "HEARTH_PRICE_PER_GB_SECOND").then(|| "cheap".to_owned());
        assert!(pricing(&file, &bad).unwrap_err().to_string().contains("not a number"));
    }
}
