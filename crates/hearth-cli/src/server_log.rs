//! The server's own log and traces: `tracing` events to stderr, as text or JSON lines (each
//! with the fields of the span it was written in: an invocation's request id), and, when an
//! OTLP endpoint is configured, the spans of every invocation (`invocation` → `route`,
//! `acquire` → `start` → `init`, `invoke`, `response`) exported over OTLP/HTTP (JSON) by
//! OpenTelemetry's batch exporter.

use anyhow::{Context, Result};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// What must be flushed before the server exits.
pub struct ServerLog {
    traces: Option<SdkTracerProvider>,
}

/// Installs the log (`json` or text) and, with `otlp_endpoint` (a base URL such as
/// `http://127.0.0.1:4318`), the trace exporter to `<endpoint>/v1/traces`.
pub fn install(json: bool, otlp_endpoint: Option<&str>) -> Result<ServerLog> {
    let filter = EnvFilter::try_from_env("HEARTH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (otel, traces) = match otlp_endpoint {
        Some(base) => {
            let endpoint = format!("{}/v1/traces", base.trim_end_matches('/'));
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .with_endpoint(endpoint.clone())
                .build()
                .with_context(|| format!("cannot export traces to {endpoint}"))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(Resource::builder().with_service_name("hearth").build())
                .build();
            // Spans are exported whatever HEARTH_LOG lets through to the log.
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("hearth"))
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    let registry = tracing_subscriber::registry().with(otel);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match json {
        true => registry.with(fmt.json().with_current_span(true).with_span_list(true).with_filter(filter)).init(),
        false => registry.with(fmt.with_filter(filter)).init(),
    }
    Ok(ServerLog { traces })
}

impl ServerLog {
    /// Sends the spans not yet exported (on the blocking pool: the exporter's client blocks).
    pub async fn flush(self) {
        if let Some(provider) = self.traces {
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = provider.shutdown() {
                    eprintln!("warning: traces not all exported: {e}");
                }
            })
            .await;
        }
    }
}
