//! Process plumbing shared by every Coffer binary: logs, traces, and the shutdown signal.
//!
//! - [`init`]: logs to stderr through `tracing`, as human-readable lines or as JSON (one object
//!   per line), filtered by `RUST_LOG` (default `info`); and, when an OTLP endpoint is given
//!   (`OTEL_EXPORTER_OTLP_ENDPOINT`), spans exported over OTLP/gRPC.
//! - [`propagation`]: W3C trace context (`traceparent`) carried in gRPC metadata, so one trace
//!   spans every service a request crosses.
//! - [`ShutdownSignal`]: Ctrl-C or SIGTERM.
//!
//! The server stack, the process main and `/metrics` live in `coffer-server`.
//!
//! Nothing here ever formats a secret: handlers record only the fields they list.

pub mod propagation;

use std::str::FromStr;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" | "text" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            _ => Err(Error::UnknownFormat),
        }
    }
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A log format other than `human` or `json`.
    #[error("log format must be `human` or `json`")]
    UnknownFormat,
    /// A global subscriber was already installed.
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled,
    /// The OTLP exporter could not be built.
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// An error and its causes on one line (`outer: cause: root cause`), for logs only: the full
/// chain goes to the log, never to a caller. A cause whose text its parent already carries
/// (many errors print their source in their own message) is not repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The standard variable naming the OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`.
pub const OTLP_ENDPOINT_VARIABLE: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] (or drop) flushes pending spans.
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exports_traces(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes pending spans and stops the exporter.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "trace exporter did not shut down cleanly");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Installs the global subscriber: logs in `format`, and spans exported to `otlp_endpoint`
/// (an `http://host:port` OTLP/gRPC collector) when given, under `service_name`. Call once,
/// early in `main`, inside the Tokio runtime.
///
/// # Errors
/// [`Error::AlreadyInstalled`] if a subscriber is already set; [`Error::Exporter`] if the
/// exporter cannot be built (for example a malformed endpoint).
pub fn init(
    service_name: &'static str,
    format: LogFormat,
    otlp_endpoint: Option<&str>,
) -> Result<Telemetry, Error> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = otlp_endpoint
        .map(|endpoint| tracer_provider(service_name, endpoint))
        .transpose()?;
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service_name)));
    // Colour only on a terminal: a pipe or a file gets plain text, not escape codes.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let human = (format == LogFormat::Human).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(colour)
            .with_writer(std::io::stderr)
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(human)
        .with(json)
        .with(otel)
        .try_init()
        .map_err(|_| Error::AlreadyInstalled)?;
    Ok(Telemetry { provider })
}

fn tracer_provider(service_name: &'static str, endpoint: &str) -> Result<SdkTracerProvider, Error> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| Error::Exporter(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The process's stop request: Ctrl-C (SIGINT) or SIGTERM.
///
/// The handlers are installed by [`ShutdownSignal::install`], not on first poll, so a signal
/// that arrives between start-up and the first `.await` is not lost (and does not kill the
/// process with the default action).
pub struct ShutdownSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Installs the handlers. Call inside the Tokio runtime, before announcing readiness.
    ///
    /// # Errors
    /// If a handler cannot be installed.
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves when a stop signal arrives.
    pub async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => tracing::info!("Ctrl-C received, shutting down"),
            _ = self.terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_unknown_ones_are_refused() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("human".parse::<LogFormat>().unwrap(), LogFormat::Human);
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
