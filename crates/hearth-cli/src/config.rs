//! All of Hearth's configuration is read here, in one order: built-in defaults, then a
//! TOML file, then `HEARTH_*` environment variables, then command-line flags.
//!
//! Server (`hearth up`): file from `--config`, `HEARTH_CONFIG`, or `~/.config/hearth/server.toml`
//! if present. Keys: `data_dir`, `listen` (the API, default 127.0.0.1:8080), `trigger_listen`
//! (HTTP triggers, default the API's address with the next port), `[tls] cert, key` (PEM
//! files, both listeners; reloaded when they change), `[listener] max_connections,
//! header_timeout_s, body_timeout_s, buffered_body_mb, shutdown_grace_s` (per listener;
//! environment `HEARTH_TRIGGER_LISTEN`, `HEARTH_TLS_CERT`, `HEARTH_TLS_KEY`,
//! `HEARTH_MAX_CONNECTIONS`, `HEARTH_HEADER_TIMEOUT_S`, `HEARTH_BODY_TIMEOUT_S`,
//! `HEARTH_BUFFERED_BODY_MB`, `HEARTH_SHUTDOWN_GRACE_S`), `[s3] endpoint, region, access_key_id,
//! secret_access_key, allow_http, instance_metadata, buckets`. Environment: `HEARTH_DATA_DIR`,
//! `HEARTH_LISTEN`, `HEARTH_S3_ENDPOINT`, `HEARTH_S3_REGION`, `HEARTH_S3_ACCESS_KEY_ID`,
//! `HEARTH_S3_SECRET_ACCESS_KEY`, `HEARTH_S3_ALLOW_HTTP`, `HEARTH_S3_INSTANCE_METADATA`,
//! `HEARTH_S3_BUCKETS` (e.g. `code,more-code`); with no keys configured,
//! `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`) are the keys, and
//! `AWS_REGION` / `AWS_DEFAULT_REGION` the region if none is set (no other `AWS_*` variable
//! is read unless `instance_metadata` lets the AWS credential chain run); gateway limits
//! `[gateway] queue_length, queue_wait_ms, log_retention_hours, prewarm, prewarm_budget_mb` or
//! `HEARTH_QUEUE_LENGTH`, `HEARTH_QUEUE_WAIT_MS`, `HEARTH_LOG_RETENTION_HOURS`,
//! `HEARTH_PREWARM` (pre-warmed sandboxes kept from the start, e.g.
//! `python3:128,nodejs:128`, the default; empty for none) and `HEARTH_PREWARM_BUDGET_MB`
//! (memory the pool may hold, default 2048; 0 turns pre-warming off),
//! `HEARTH_KEEP_ALIVE_POLICY` (`fixed` or `adaptive`, for functions that choose none) and
//! `HEARTH_NODE_MEMORY_MB` (memory admitted for instances, default 90% of RAM) and
//! `HEARTH_EVICTION_POLICY` (which idle instances go when that memory is full and a request
//! needs an instance: `greedy-dual`, the default, `lru`, or `off` to refuse); file keys
//! `keep_alive_policy`, `node_memory_mb`, `eviction_policy`. What a function's output may leave in its log:
//! `HEARTH_LOG_KB_PER_INVOCATION` (`log_kb_per_invocation`, default 4096) and
//! `HEARTH_LOG_MB_PER_MINUTE` (`log_mb_per_minute`, per function, default 16); past them,
//! one `[truncated]` line, then lines are dropped (lines are cut at 256 KiB). Asynchronous
//! invocations: `[events] retry_delay_ms, backoff_ms, concurrency, schedule_grace_ms` or
//! `HEARTH_EVENT_RETRY_DELAY_MS` (the wait before the first retry after a function error,
//! default 60000; the second waits twice that), `HEARTH_EVENT_BACKOFF_MS` (the first wait
//! after the platform could not run an event, default 1000, doubled per attempt) and
//! `HEARTH_EVENT_CONCURRENCY` (deliveries in flight on the node, default 32); cron triggers:
//! `schedule_grace_ms` or `HEARTH_EVENT_SCHEDULE_GRACE_MS` (how late an instant may still
//! fire; older ones were missed, default 10000). Usage prices: `[pricing] per_million_requests,
//! per_gb_second, per_provisioned_gb_second, provisioned_meter_ms` or `HEARTH_PRICE_*` and
//! `HEARTH_PROVISIONED_METER_MS` (see [`pricing`]). Metrics: `[metrics]` or
//! `HEARTH_METRICS_*` (see [`metrics`]).
//!
//! Client (every other command): file from `HEARTH_CLIENT_CONFIG` or
//! `~/.config/hearth/config.toml`, named contexts (see [`client`]); the context from
//! `--context`, `HEARTH_CONTEXT` or the file's current one, then `HEARTH_URL` and
//! `HEARTH_TOKEN` over it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hearth_blob::S3Settings;
use hearth_events::EventSettings;
use hearth_gateway::GatewaySettings;
use hearth_server::{ListenerLimits, TlsFiles};
use serde::Deserialize;

mod client;
mod metrics;
mod pricing;
pub use client::{ClientConfig, ClientFile, LOCAL_CONTEXT, ServerContext, check_context_name, client_config_path};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Reads one environment variable; injectable for tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn process_env(name: &str) -> Option<String> {
    env_value(name, std::env::var(name).ok())
}

/// Variables whose empty value means something: `HEARTH_PREWARM=` keeps no pre-warmed
/// sandboxes (as `[gateway] prewarm = ""` does).
const EMPTY_MEANS_NONE: &[&str] = &["HEARTH_PREWARM"];

/// A variable's value as configuration reads it: set but empty is unset, except for the
/// variables in [`EMPTY_MEANS_NONE`].
fn env_value(name: &str, raw: Option<String>) -> Option<String> {
    raw.filter(|v| !v.is_empty() || EMPTY_MEANS_NONE.contains(&name))
}

/// Flags of `hearth up` that override configuration.
#[derive(Debug, Default, Clone)]
pub struct ServerFlags {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub trigger_listen: Option<String>,
    pub metrics_listen: Option<String>,
    pub log_format: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// The API's listener.
    pub listen: SocketAddr,
    /// The HTTP triggers' listener (another origin).
    pub trigger_listen: SocketAddr,
    /// HTTPS on both listeners.
    pub tls: Option<TlsFiles>,
    /// Limits of each listener.
    pub limits: ListenerLimits,
    pub s3: S3Settings,
    /// Where `hearth up` writes the client configuration on first start.
    pub client_config: PathBuf,
    pub gateway: GatewaySettings,
    pub events: EventSettings,
    /// Size of the instance volume made on first start, in GiB (sparse).
    pub volume_gb: u32,
    /// What usage costs (`GET /v1/usage`).
    pub prices: hearth_types::Prices,
    /// How often the time of instances kept by `min_instances` is added to usage.
    pub provisioned_meter_interval: std::time::Duration,
    /// A listener of its own for `GET /metrics`, without a token.
    pub metrics_listen: Option<SocketAddr>,
    /// The server's log lines as JSON objects (`--log-format json`), not text.
    pub json_logs: bool,
    /// Where invocations' traces are exported (OTLP over HTTP), if anywhere.
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    data_dir: Option<PathBuf>,
    log_format: Option<String>,
    otlp_endpoint: Option<String>,
    listen: Option<String>,
    trigger_listen: Option<String>,
    volume_gb: Option<u32>,
    #[serde(default)]
    tls: TlsFile,
    #[serde(default)]
    listener: ListenerFile,
    #[serde(default)]
    s3: S3File,
    #[serde(default)]
    gateway: GatewayFile,
    #[serde(default)]
    events: EventsFile,
    #[serde(default)]
    pricing: pricing::PricingFile,
    #[serde(default)]
    metrics: metrics::MetricsFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsFile {
    retry_delay_ms: Option<u64>,
    backoff_ms: Option<u64>,
    concurrency: Option<usize>,
    schedule_grace_ms: Option<u64>,
}

/// How asynchronous invocations are delivered: `[events]`, then `HEARTH_EVENT_*`.
fn event_settings(file: &EventsFile, region: &str, env: EnvLookup<'_>) -> Result<EventSettings> {
    let mut events = EventSettings { region: region.to_owned(), ..EventSettings::default() };
    let ms = |name: &str, file: Option<u64>| -> Result<Option<std::time::Duration>> {
        match env(name).or(file.map(|n| n.to_string())) {
            None => Ok(None),
            Some(v) => {
                let ms: u64 = v.parse().with_context(|| format!("{name}={v:?} is not a number of milliseconds"))?;
                Ok(Some(std::time::Duration::from_millis(ms.max(1))))
            }
        }
    };
    if let Some(d) = ms("HEARTH_EVENT_RETRY_DELAY_MS", file.retry_delay_ms)? {
        events.retry_delay = d;
    }
    if let Some(d) = ms("HEARTH_EVENT_BACKOFF_MS", file.backoff_ms)? {
        events.backoff_min = d;
        events.backoff_max = events.backoff_max.max(d);
    }
    if let Some(d) = ms("HEARTH_EVENT_SCHEDULE_GRACE_MS", file.schedule_grace_ms)? {
        events.schedule_grace = d;
    }
    if let Some(v) = env("HEARTH_EVENT_CONCURRENCY").or(file.concurrency.map(|n| n.to_string())) {
        let n: usize = v.parse().with_context(|| format!("HEARTH_EVENT_CONCURRENCY={v:?} is not a number"))?;
        events.max_in_flight = n.max(1);
    }
    Ok(events)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayFile {
    queue_length: Option<usize>,
    queue_wait_ms: Option<u64>,
    log_retention_hours: Option<u64>,
    prewarm: Option<String>,
    prewarm_budget_mb: Option<u32>,
    keep_alive_policy: Option<String>,
    node_memory_mb: Option<u64>,
    eviction_policy: Option<String>,
    log_kb_per_invocation: Option<u64>,
    log_mb_per_minute: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerFile {
    max_connections: Option<usize>,
    header_timeout_s: Option<u64>,
    body_timeout_s: Option<u64>,
    buffered_body_mb: Option<u64>,
    shutdown_grace_s: Option<u64>,
}

/// The instance volume's size when first made (GiB, sparse: it takes the disk its files take).
pub const DEFAULT_VOLUME_GB: u32 = 64;

/// Pre-warmed sandboxes kept ready from the start.
pub const DEFAULT_PREWARM: &str = "python3:128,nodejs:128";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct S3File {
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    allow_http: Option<bool>,
    instance_metadata: Option<bool>,
    buckets: Option<Vec<String>>,
}

fn config_home(env: EnvLookup) -> PathBuf {
    env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")))
        .or_else(dirs::config_dir)
        .unwrap_or_else(|| PathBuf::from("."))
        .join("hearth")
}

fn data_home(env: EnvLookup) -> PathBuf {
    env("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".local/share")))
        .or_else(dirs::data_dir)
        .unwrap_or_else(|| PathBuf::from("."))
        .join("hearth")
}

fn parse_listen(s: &str) -> Result<SocketAddr> {
    s.parse().with_context(|| format!("invalid listen address {s:?}: expected IP:PORT, e.g. {DEFAULT_LISTEN}"))
}

fn parse_bool(name: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("{name}={v:?} is not a boolean: use true or false"),
    }
}

/// The default trigger listener: the API's address with the next port (any free port when
/// the API's is 0).
fn next_port(listen: SocketAddr) -> SocketAddr {
    let port = if listen.port() == 0 { 0 } else { listen.port().wrapping_add(1).max(1) };
    SocketAddr::new(listen.ip(), port)
}

/// `[listener]` and its `HEARTH_*` variables over the defaults.
fn listener_limits(file: &ListenerFile, env: EnvLookup) -> Result<ListenerLimits> {
    let number = |name: &str, file: Option<u64>| -> Result<Option<u64>> {
        match env(name) {
            Some(v) => Ok(Some(v.parse().with_context(|| format!("{name}={v:?} is not a whole number"))?)),
            None => Ok(file),
        }
    };
    let secs = std::time::Duration::from_secs;
    let mut limits = ListenerLimits::default();
    if let Some(n) = number("HEARTH_MAX_CONNECTIONS", file.max_connections.map(|n| n as u64))? {
        limits.max_connections = usize::try_from(n.max(1)).unwrap_or(usize::MAX);
    }
    if let Some(n) = number("HEARTH_HEADER_TIMEOUT_S", file.header_timeout_s)? {
        limits.header_timeout = secs(n.max(1));
    }
    if let Some(n) = number("HEARTH_BODY_TIMEOUT_S", file.body_timeout_s)? {
        limits.body_timeout = secs(n.max(1));
    }
    if let Some(n) = number("HEARTH_BUFFERED_BODY_MB", file.buffered_body_mb)? {
        limits.buffered_body_bytes = n.max(1) << 20;
    }
    if let Some(n) = number("HEARTH_SHUTDOWN_GRACE_S", file.shutdown_grace_s)? {
        limits.grace = secs(n);
    }
    Ok(limits)
}

/// `[s3]` and `HEARTH_S3_*`, then the standard AWS keys and region when those are unset.
fn s3_settings(file: S3File, env: EnvLookup) -> Result<S3Settings> {
    let flag = |name: &str, file: Option<bool>| match env(name) {
        Some(v) => parse_bool(name, &v),
        None => Ok(file.unwrap_or(false)),
    };
    let mut s3 = S3Settings {
        endpoint: env("HEARTH_S3_ENDPOINT").or(file.endpoint),
        region: env("HEARTH_S3_REGION")
            .or(file.region)
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION")),
        access_key_id: env("HEARTH_S3_ACCESS_KEY_ID").or(file.access_key_id),
        secret_access_key: env("HEARTH_S3_SECRET_ACCESS_KEY").or(file.secret_access_key),
        session_token: None,
        allow_http: flag("HEARTH_S3_ALLOW_HTTP", file.allow_http)?,
        instance_metadata: flag("HEARTH_S3_INSTANCE_METADATA", file.instance_metadata)?,
        buckets: match env("HEARTH_S3_BUCKETS") {
            Some(v) => Some(v.split(',').map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned).collect()),
            None => file.buckets,
        },
    };
    match (&s3.access_key_id, &s3.secret_access_key) {
        (Some(_), Some(_)) => {}
        (None, None) => {
            if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                (s3.access_key_id, s3.secret_access_key) = (Some(id), Some(secret));
                s3.session_token = env("AWS_SESSION_TOKEN");
            }
        }
        _ => bail!(
            "S3 keys come in pairs: set both [s3] access_key_id and secret_access_key (or HEARTH_S3_ACCESS_KEY_ID and HEARTH_S3_SECRET_ACCESS_KEY)"
        ),
    }
    Ok(s3)
}

impl ServerConfig {
    pub fn load(flags: &ServerFlags, env: EnvLookup) -> Result<Self> {
        let explicit = flags.config.clone().or_else(|| env("HEARTH_CONFIG").map(PathBuf::from));
        let path = explicit.clone().unwrap_or_else(|| config_home(env).join("server.toml"));
        let file: ServerFile = if explicit.is_some() || path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?
        } else {
            ServerFile::default()
        };

        let data_dir = flags
            .data_dir
            .clone()
            .or_else(|| env("HEARTH_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| data_home(env));
        let listen = match flags.listen.clone().or_else(|| env("HEARTH_LISTEN")).or(file.listen) {
            Some(s) => parse_listen(&s)?,
            None => parse_listen(DEFAULT_LISTEN)?,
        };
        let trigger_listen =
            match flags.trigger_listen.clone().or_else(|| env("HEARTH_TRIGGER_LISTEN")).or(file.trigger_listen) {
                Some(s) => parse_listen(&s)?,
                None => next_port(listen),
            };
        if trigger_listen == listen && listen.port() != 0 {
            bail!("the API and HTTP triggers need two listeners: set trigger_listen to another address than {listen}");
        }
        let cert = flags.tls_cert.clone().or_else(|| env("HEARTH_TLS_CERT").map(PathBuf::from)).or(file.tls.cert);
        let key = flags.tls_key.clone().or_else(|| env("HEARTH_TLS_KEY").map(PathBuf::from)).or(file.tls.key);
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => bail!("TLS needs both a certificate and a key: set --tls-cert and --tls-key (or [tls] cert and key)"),
        };
        let volume_gb = match env("HEARTH_VOLUME_GB") {
            Some(v) => v.parse().with_context(|| format!("HEARTH_VOLUME_GB={v:?} is not a whole number of GiB"))?,
            None => file.volume_gb.unwrap_or(DEFAULT_VOLUME_GB),
        };
        let limits = listener_limits(&file.listener, env)?;
        let s3 = s3_settings(file.s3, env)?;
        let mut gateway = GatewaySettings::default();
        if let Some(v) = env("HEARTH_QUEUE_LENGTH").or(file.gateway.queue_length.map(|n| n.to_string())) {
            gateway.queue_length = v.parse().with_context(|| format!("queue length {v:?} is not a number"))?;
        }
        if let Some(v) = env("HEARTH_QUEUE_WAIT_MS").or(file.gateway.queue_wait_ms.map(|n| n.to_string())) {
            let ms: u64 = v.parse().with_context(|| format!("queue wait {v:?} is not a number of milliseconds"))?;
            gateway.queue_wait = Some(std::time::Duration::from_millis(ms));
        }
        if let Some(v) = env("HEARTH_LOG_RETENTION_HOURS").or(file.gateway.log_retention_hours.map(|n| n.to_string())) {
            let hours: u64 = v.parse().with_context(|| format!("log retention {v:?} is not a number of hours"))?;
            gateway.log_retention = std::time::Duration::from_secs(hours.max(1) * 3600);
        }
        let keys = env("HEARTH_PREWARM").or(file.gateway.prewarm).unwrap_or_else(|| DEFAULT_PREWARM.to_owned());
        let keys = keys
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| k.parse::<hearth_agent::CellKey>().map_err(|e| anyhow::anyhow!("HEARTH_PREWARM: {e}")))
            .collect::<Result<Vec<_>>>()?;
        let budget = match env("HEARTH_PREWARM_BUDGET_MB") {
            Some(v) => v.parse().with_context(|| format!("pre-warm budget {v:?} is not a number of MB"))?,
            None => file.gateway.prewarm_budget_mb.unwrap_or(hearth_agent::StemCellSettings::default().budget_mb),
        };
        gateway.stem_cells =
            (budget > 0).then(|| hearth_agent::StemCellSettings { keys, budget_mb: budget, ..Default::default() });
        if let Some(v) = env("HEARTH_KEEP_ALIVE_POLICY").or(file.gateway.keep_alive_policy) {
            gateway.keep_alive_policy = v.parse().map_err(|e| anyhow::anyhow!("HEARTH_KEEP_ALIVE_POLICY: {e}"))?;
        }
        if let Some(v) = env("HEARTH_NODE_MEMORY_MB").or(file.gateway.node_memory_mb.map(|n| n.to_string())) {
            gateway.node_memory_mb = v.parse().with_context(|| format!("node memory {v:?} is not a number of MB"))?;
        }
        if let Some(v) = env("HEARTH_EVICTION_POLICY").or(file.gateway.eviction_policy) {
            gateway.eviction_policy = v.parse().map_err(|e| anyhow::anyhow!("HEARTH_EVICTION_POLICY: {e}"))?;
        }
        if let Some(v) =
            env("HEARTH_LOG_KB_PER_INVOCATION").or(file.gateway.log_kb_per_invocation.map(|n| n.to_string()))
        {
            let kb: u64 = v.parse().with_context(|| format!("log per invocation {v:?} is not a number of KB"))?;
            gateway.log_capture.invocation_bytes = kb.max(1) * 1024;
        }
        if let Some(v) = env("HEARTH_LOG_MB_PER_MINUTE").or(file.gateway.log_mb_per_minute.map(|n| n.to_string())) {
            let mb: u64 = v.parse().with_context(|| format!("log per minute {v:?} is not a number of MB"))?;
            gateway.log_bytes_per_minute = mb.max(1) * 1024 * 1024;
        }
        let events = event_settings(&file.events, &gateway.region, env)?;
        let (prices, provisioned_meter_interval) = pricing::pricing(&file.pricing, env)?;
        let m = metrics::metrics(flags.metrics_listen.as_deref(), &file.metrics, env)?;
        let json_logs = match flags.log_format.clone().or_else(|| env("HEARTH_LOG_FORMAT")).or(file.log_format.clone())
        {
            None => false,
            Some(f) if f == "text" => false,
            Some(f) if f == "json" => true,
            Some(f) => bail!("log format {f:?}: expected text or json (--log-format, HEARTH_LOG_FORMAT)"),
        };
        gateway.metrics_max_functions = m.max_functions;
        gateway.metrics_series_ttl = m.series_ttl;
        Ok(Self {
            data_dir,
            listen,
            trigger_listen,
            tls,
            limits,
            s3,
            client_config: client_config_path(env),
            gateway,
            events,
            volume_gb,
            prices,
            provisioned_meter_interval,
            metrics_listen: m.listen,
            json_logs,
            otlp_endpoint: env("HEARTH_OTLP_ENDPOINT")
                .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
                .or(file.otlp_endpoint.clone()),
        })
    }
}

/// The URL a client on this machine uses to reach a server bound to `addr`.
pub fn local_url(addr: SocketAddr, tls: bool) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_then_file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let env = env_of(&[("HOME", home)]);
        let c = ServerConfig::load(&ServerFlags::default(), &env).unwrap();
        assert_eq!(c.data_dir, dir.path().join(".local/share/hearth"));
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.client_config, dir.path().join(".config/hearth/config.toml"));

        let file = dir.path().join("server.toml");
        std::fs::write(&file, "data_dir = \"/from/file\"\nlisten = \"127.0.0.1:9000\"\n[s3]\nendpoint = \"http://127.0.0.1:1\"\nallow_http = true\n[gateway]\nlog_kb_per_invocation = 64\nlog_mb_per_minute = 3\n").unwrap();
        let flags = ServerFlags { config: Some(file.clone()), ..Default::default() };
        let c = ServerConfig::load(&flags, &env).unwrap();
        assert_eq!((c.data_dir.to_str(), c.listen.port()), (Some("/from/file"), 9000));
        assert!(c.s3.allow_http);
        assert_eq!((c.gateway.log_capture.invocation_bytes, c.gateway.log_bytes_per_minute), (64 << 10, 3 << 20));
        // The same file named by HEARTH_CONFIG instead of --config.
        let by_env = env_of(&[("HOME", home), ("HEARTH_CONFIG", file.to_str().unwrap())]);
        let c = ServerConfig::load(&ServerFlags::default(), &by_env).unwrap();
        assert_eq!((c.data_dir.to_str(), c.listen.port()), (Some("/from/file"), 9000));

        let env = env_of(&[
            ("HOME", home),
            ("HEARTH_LISTEN", "127.0.0.1:9100"),
            ("HEARTH_DATA_DIR", "/from/env"),
            ("HEARTH_QUEUE_LENGTH", "5"),
            ("HEARTH_LOG_RETENTION_HOURS", "2"),
            ("HEARTH_PREWARM", "nodejs:512"),
            ("HEARTH_KEEP_ALIVE_POLICY", "adaptive"),
            ("HEARTH_NODE_MEMORY_MB", "4096"),
            ("HEARTH_EVICTION_POLICY", "lru"),
            ("HEARTH_LOG_KB_PER_INVOCATION", "512"),
            ("HEARTH_LOG_MB_PER_MINUTE", "2"),
        ]);
        let c = ServerConfig::load(&flags, &env).unwrap();
        assert_eq!((c.data_dir.to_str(), c.listen.port()), (Some("/from/env"), 9100));
        assert_eq!((c.gateway.queue_length, c.gateway.log_retention.as_secs()), (5, 7200));
        assert_eq!(c.gateway.keep_alive_policy, hearth_types::KeepAlivePolicyKind::Adaptive);
        assert_eq!(c.gateway.node_memory_mb, 4096);
        assert_eq!(c.gateway.eviction_policy, hearth_gateway::EvictionPolicy::Lru);
        assert_eq!((c.gateway.log_capture.invocation_bytes, c.gateway.log_bytes_per_minute), (512 << 10, 2 << 20));
        assert_eq!(c.gateway.stem_cells.unwrap().keys, ["nodejs:512".parse().unwrap()]);
        let off = env_of(&[("HOME", home), ("HEARTH_PREWARM_BUDGET_MB", "0")]);
        assert!(ServerConfig::load(&ServerFlags::default(), &off).unwrap().gateway.stem_cells.is_none());
        let bad = env_of(&[("HOME", home), ("HEARTH_PREWARM", "cobol:128")]);
        assert!(ServerConfig::load(&ServerFlags::default(), &bad).is_err());

        let flags = ServerFlags { listen: Some("127.0.0.1:9200".into()), ..flags };
        let c = ServerConfig::load(&flags, &env).unwrap();
        assert_eq!((c.data_dir.to_str(), c.listen.port()), (Some("/from/env"), 9200));
    }

    #[test]
    fn event_delivery_settings_from_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(
            &file,
            "[events]\nretry_delay_ms = 500\nbackoff_ms = 20\nconcurrency = 4\nschedule_grace_ms = 3000\n",
        )
        .unwrap();
        let flags = ServerFlags { config: Some(file), ..Default::default() };
        let defaults = ServerConfig::load(&ServerFlags::default(), &env_of(&[("HOME", home)])).unwrap().events;
        assert_eq!(
            (defaults.retry_delay.as_secs(), defaults.backoff_min.as_secs(), defaults.max_in_flight),
            (60, 1, 32)
        );
        let c = ServerConfig::load(&flags, &env_of(&[("HOME", home)])).unwrap().events;
        assert_eq!((c.retry_delay.as_millis(), c.backoff_min.as_millis(), c.max_in_flight), (500, 20, 4));
        assert_eq!((defaults.schedule_grace.as_secs(), c.schedule_grace.as_secs()), (10, 3));
        let env = env_of(&[
            ("HOME", home),
            ("HEARTH_EVENT_RETRY_DELAY_MS", "250"),
            ("HEARTH_EVENT_BACKOFF_MS", "400000"),
            ("HEARTH_EVENT_CONCURRENCY", "0"),
            ("HEARTH_EVENT_SCHEDULE_GRACE_MS", "1500"),
        ]);
        let c = ServerConfig::load(&flags, &env).unwrap().events;
        assert_eq!(c.schedule_grace.as_millis(), 1500);
        assert_eq!((c.retry_delay.as_millis(), c.backoff_min.as_millis()), (250, 400_000));
        assert!(c.backoff_max >= c.backoff_min, "the cap is never below the first wait");
        assert_eq!(c.max_in_flight, 1, "at least one delivery at a time");
        let bad = env_of(&[("HOME", home), ("HEARTH_EVENT_RETRY_DELAY_MS", "soon")]);
        let e = ServerConfig::load(&ServerFlags::default(), &bad).unwrap_err().to_string();
        assert!(e.contains("HEARTH_EVENT_RETRY_DELAY_MS"), "{e}");
    }

    #[test]
    fn an_empty_hearth_prewarm_keeps_no_sandboxes() {
        // As the process environment reads: a variable set but empty.
        let raw = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| env_value(k, pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
        };
        let keys = |env: &dyn Fn(&str) -> Option<String>| {
            ServerConfig::load(&ServerFlags::default(), env).unwrap().gateway.stem_cells.map(|s| s.keys)
        };
        let default = keys(&raw(&[("HOME", "/nonexistent")])).unwrap();
        assert!(!default.is_empty(), "pre-warmed sandboxes by default");
        assert_eq!(keys(&raw(&[("HOME", "/nonexistent"), ("HEARTH_PREWARM", "")])), Some(vec![]));
        // Other variables set but empty stay unset.
        let c = ServerConfig::load(&ServerFlags::default(), &raw(&[("HOME", "/nonexistent"), ("HEARTH_LISTEN", "")]));
        assert_eq!(c.unwrap().listen.to_string(), DEFAULT_LISTEN);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "[gateway]\nprewarm = \"\"\n").unwrap();
        let flags = ServerFlags { config: Some(file), ..Default::default() };
        let from_file = ServerConfig::load(&flags, &raw(&[("HOME", "/nonexistent")])).unwrap();
        assert_eq!(from_file.gateway.stem_cells.map(|s| s.keys), Some(vec![]), "as the file's empty value");
    }

    #[test]
    fn s3_settings_from_file_env_and_aws_keys() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let s3 = |pairs: &[(&str, &str)]| {
            let mut pairs = pairs.to_vec();
            pairs.push(("HOME", home));
            ServerConfig::load(&ServerFlags::default(), &env_of(&pairs)).map(|c| c.s3)
        };
        assert_eq!(s3(&[]).unwrap(), S3Settings::default(), "nothing configured, nothing assumed");
        let aws = [("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_SECRET_ACCESS_KEY", "SECRET"), ("AWS_SESSION_TOKEN", "TOKEN")];
        let c = s3(&aws).unwrap();
        assert_eq!(
            (c.access_key_id.as_deref(), c.secret_access_key.as_deref(), c.session_token.as_deref()),
            (Some("AKID"), Some("SECRET"), Some("TOKEN")),
        );
        let c = s3(&[aws[0], aws[2], ("AWS_REGION", "eu-west-1")]).unwrap();
        assert_eq!((c.access_key_id, c.session_token, c.region.as_deref()), (None, None, Some("eu-west-1")), "no pair");
        let mine = [("HEARTH_S3_ACCESS_KEY_ID", "mine"), ("HEARTH_S3_SECRET_ACCESS_KEY", "my-secret")];
        let c = s3(&[mine[0], mine[1], aws[0], aws[1], aws[2]]).unwrap();
        assert_eq!((c.access_key_id.as_deref(), c.session_token), (Some("mine"), None), "configured keys win");
        let err = s3(&[mine[0]]).unwrap_err();
        assert!(err.to_string().contains("pairs"), "{err}");

        let c = s3(&[("HEARTH_S3_INSTANCE_METADATA", "true"), ("HEARTH_S3_BUCKETS", "code, more-code,")]).unwrap();
        assert!(c.instance_metadata);
        assert_eq!(c.buckets, Some(vec!["code".to_owned(), "more-code".to_owned()]));
        assert!(s3(&[("HEARTH_S3_INSTANCE_METADATA", "perhaps")]).is_err());

        let file = dir.path().join("s3.toml");
        std::fs::write(
            &file,
            "[s3]\nendpoint = \"http://127.0.0.1:1\"\ninstance_metadata = true\nbuckets = [\"code\"]\n",
        )
        .unwrap();
        let flags = ServerFlags { config: Some(file), ..Default::default() };
        let c = ServerConfig::load(&flags, &env_of(&[("HOME", home)])).unwrap().s3;
        assert_eq!((c.instance_metadata, c.buckets), (true, Some(vec!["code".to_owned()])));
        let c = ServerConfig::load(&flags, &env_of(&[("HOME", home), ("HEARTH_S3_BUCKETS", "other")])).unwrap().s3;
        assert_eq!(c.buckets, Some(vec!["other".to_owned()]), "the environment overrides the file");
    }

    #[test]
    fn bad_values_are_explained() {
        let env = env_of(&[("HOME", "/nonexistent"), ("HEARTH_LISTEN", "localhost")]);
        let err = ServerConfig::load(&ServerFlags::default(), &env).unwrap_err();
        assert!(format!("{err:#}").contains("invalid listen address"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "listn = \"x\"").unwrap();
        let flags = ServerFlags { config: Some(file), ..Default::default() };
        assert!(format!("{:#}", ServerConfig::load(&flags, &env_of(&[])).unwrap_err()).contains("unknown field"));
    }

    #[test]
    fn listeners_tls_and_limits() {
        let env = env_of(&[("HOME", "/nonexistent")]);
        let c = ServerConfig::load(&ServerFlags::default(), &env).unwrap();
        assert_eq!(c.trigger_listen.to_string(), "127.0.0.1:8081", "the API's address, next port");
        assert_eq!((c.tls.clone(), c.limits.clone()), (None, ListenerLimits::default()));
        let flags = ServerFlags { listen: Some("127.0.0.1:0".into()), ..Default::default() };
        assert_eq!(ServerConfig::load(&flags, &env).unwrap().trigger_listen.port(), 0, "any free port");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(
            &file,
            "trigger_listen = \"127.0.0.1:9001\"\n[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n[listener]\nmax_connections = 7\nheader_timeout_s = 3\nbody_timeout_s = 4\nbuffered_body_mb = 5\nshutdown_grace_s = 6\n",
        )
        .unwrap();
        let flags = ServerFlags { config: Some(file.clone()), ..Default::default() };
        let c = ServerConfig::load(&flags, &env).unwrap();
        assert_eq!(c.trigger_listen.port(), 9001);
        assert_eq!(c.tls, Some(TlsFiles { cert: "/c.pem".into(), key: "/k.pem".into() }));
        let secs = std::time::Duration::from_secs;
        let l = &c.limits;
        assert_eq!((l.max_connections, l.header_timeout, l.body_timeout), (7, secs(3), secs(4)));
        assert_eq!((l.buffered_body_bytes, l.grace), (5 << 20, secs(6)));
        let env = env_of(&[
            ("HOME", "/nonexistent"),
            ("HEARTH_TRIGGER_LISTEN", "127.0.0.1:9002"),
            ("HEARTH_MAX_CONNECTIONS", "70"),
            ("HEARTH_TLS_CERT", "/e.pem"),
            ("HEARTH_TLS_KEY", "/ek.pem"),
        ]);
        let c = ServerConfig::load(&flags, &env).unwrap();
        assert_eq!((c.trigger_listen.port(), c.limits.max_connections), (9002, 70));
        assert_eq!(c.tls.unwrap().cert, std::path::PathBuf::from("/e.pem"));
        // Refusals that name what to do.
        let half = env_of(&[("HOME", "/nonexistent"), ("HEARTH_TLS_CERT", "/c.pem")]);
        let err = format!("{:#}", ServerConfig::load(&ServerFlags::default(), &half).unwrap_err());
        assert!(err.contains("both a certificate and a key"), "{err}");
        let same = env_of(&[("HOME", "/nonexistent"), ("HEARTH_TRIGGER_LISTEN", "127.0.0.1:8080")]);
        let err = format!("{:#}", ServerConfig::load(&ServerFlags::default(), &same).unwrap_err());
        assert!(err.contains("two listeners"), "{err}");
        let bad = env_of(&[("HOME", "/nonexistent"), ("HEARTH_HEADER_TIMEOUT_S", "soon")]);
        assert!(
            format!("{:#}", ServerConfig::load(&ServerFlags::default(), &bad).unwrap_err())
                .contains("HEARTH_HEADER_TIMEOUT_S")
        );
    }

    #[test]
    fn unspecified_listen_maps_to_loopback() {
        assert_eq!(local_url("0.0.0.0:8080".parse().unwrap(), false), "http://127.0.0.1:8080");
        assert_eq!(local_url("127.0.0.1:1".parse().unwrap(), true), "https://127.0.0.1:1");
    }

    #[test]
    fn the_log_format_is_text_or_json() {
        let home = tempfile::tempdir().unwrap();
        let home = home.path().to_str().unwrap();
        let load = |pairs: &[(&str, &str)], flag: Option<&str>| {
            let flags = ServerFlags { log_format: flag.map(str::to_owned), ..Default::default() };
            ServerConfig::load(&flags, &env_of(pairs))
        };
        assert!(!load(&[("HOME", home)], None).unwrap().json_logs, "text by default");
        assert!(load(&[("HOME", home), ("HEARTH_LOG_FORMAT", "json")], None).unwrap().json_logs);
        assert!(!load(&[("HOME", home), ("HEARTH_LOG_FORMAT", "json")], Some("text")).unwrap().json_logs);
        let e = load(&[("HOME", home), ("HEARTH_LOG_FORMAT", "xml")], None).unwrap_err();
        assert!(e.to_string().contains("text or json"), "{e}");
    }
}
