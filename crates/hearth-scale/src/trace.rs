//! The Azure Functions 2019 trace as sampled in `shared/traces/azure2019-sample100`:
//! invocations per function per minute, average durations and allocated memory.

use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: csv::Error },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
}

/// One function of the trace.
#[derive(Debug, Clone)]
pub struct TraceFunction {
    /// The first 8 characters of `HashFunction`.
    pub id: String,
    /// Invocations in each minute, from [`Trace::first_minute`].
    pub per_minute: Vec<u32>,
    /// Average execution time (without cold start), in ms.
    pub duration_ms: f64,
    /// Average allocated memory, in MB.
    pub memory_mb: f64,
}

#[derive(Debug, Clone)]
pub struct Trace {
    /// Minute of the day the first column stands for.
    pub first_minute: u32,
    pub functions: Vec<TraceFunction>,
}

/// Used when a function has no row in `durations.csv` / `memory.csv`.
const DEFAULT_DURATION_MS: f64 = 100.0;
const DEFAULT_MEMORY_MB: f64 = 128.0;

fn rows(path: &Path) -> Result<(csv::StringRecord, Vec<csv::StringRecord>), TraceError> {
    let read = |source| TraceError::Read { path: path.display().to_string(), source };
    let mut reader = csv::Reader::from_path(path).map_err(read)?;
    let header = reader.headers().map_err(read)?.clone();
    let records = reader.records().collect::<Result<Vec<_>, _>>().map_err(read)?;
    Ok((header, records))
}

fn column(header: &csv::StringRecord, name: &str, path: &Path) -> Result<usize, TraceError> {
    header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| TraceError::Format { path: path.display().to_string(), message: format!("no {name} column") })
}

/// `HashFunction` -> the value of `value` in each row of the file at `path`.
fn by_function(path: &Path, value: &str) -> Result<HashMap<String, f64>, TraceError> {
    let (header, records) = rows(path)?;
    let (f, v) = (column(&header, "HashFunction", path)?, column(&header, value, path)?);
    Ok(records.iter().filter_map(|r| Some((r.get(f)?.to_owned(), r.get(v)?.parse().ok()?))).collect())
}

impl Trace {
    /// Reads `invocations.csv`, `durations.csv` and `memory.csv` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, TraceError> {
        let path = dir.join("invocations.csv");
        let (header, records) = rows(&path)?;
        let id = column(&header, "HashFunction", &path)?;
        let first = column(&header, "Trigger", &path)? + 1;
        let format = |message: String| TraceError::Format { path: path.display().to_string(), message };
        let first_minute: u32 = header
            .get(first)
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| format("the first minute column is not a number".into()))?;
        let durations = by_function(&dir.join("durations.csv"), "Average")?;
        let memory = by_function(&dir.join("memory.csv"), "AverageAllocatedMb")?;
        let mut functions = vec![];
        for (line, r) in records.iter().enumerate() {
            let hash = r.get(id).unwrap_or_default();
            let per_minute = r
                .iter()
                .skip(first)
                .map(|c| c.parse::<u32>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format(format!("row {}: {e}", line + 2)))?;
            functions.push(TraceFunction {
                id: hash.chars().take(8).collect(),
                per_minute,
                duration_ms: durations.get(hash).copied().unwrap_or(DEFAULT_DURATION_MS),
                memory_mb: memory.get(hash).copied().unwrap_or(DEFAULT_MEMORY_MB),
            });
        }
        Ok(Self { first_minute, functions })
    }

    /// Minutes the trace covers.
    pub fn minutes(&self) -> usize {
        self.functions.iter().map(|f| f.per_minute.len()).max().unwrap_or(0)
    }

    pub fn invocations(&self) -> u64 {
        self.functions.iter().flat_map(|f| &f.per_minute).map(|&n| u64::from(n)).sum()
    }
}

impl TraceFunction {
    /// Arrival times in seconds from the trace's start: each minute's invocations spread
    /// uniformly at random over the minute (the trace gives no times within a minute),
    /// reproducibly for a given `seed`.
    pub fn arrivals(&self, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64(seed ^ self.id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into())));
        let mut out = Vec::with_capacity(self.per_minute.iter().map(|&n| n as usize).sum());
        for (minute, &n) in self.per_minute.iter().enumerate() {
            let start = out.len();
            out.extend((0..n).map(|_| minute as f64 * 60.0 + rng.unit() * 60.0));
            out[start..].sort_by(f64::total_cmp);
        }
        out
    }
}

/// A small, seedable generator (SplitMix64): reproducible arrivals (and benchmark loads)
/// without a dependency.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
