//! The binary's observability wiring: the OpenTelemetry meter provider exported for Prometheus
//! scraping, the OTLP trace exporter, and the slog logger (console or JSON).
//!
//! - Metrics: served on `GET /metrics` at `global.metrics.prometheus.listenAddress` (config) or
//!   `--metrics-port` (start-dev); none otherwise. Names and tags are Temporal's: counters have
//!   no `_total` suffix and no unit suffix is added, as Temporal's exporter is configured
//!   (`withoutCounterSuffix`, `withoutUnitSuffix`).
//! - Traces: exported over OTLP/gRPC to `otel.endpoint` (config) or
//!   `OTEL_EXPORTER_OTLP_ENDPOINT`; none otherwise. The exporter honours the standard
//!   `OTEL_BSP_*` batching variables.
//! - Logs: `console` (human lines) or `json` (one object per line, keys `ts`, `level`, `msg`
//!   and the record's fields).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use opentelemetry::InstrumentationScope;
use opentelemetry::global::{BoxedTracer, ObjectSafeTracerProvider as _};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use slog::{Drain, Logger, info, o, warn};
use sundial_actors::Telemetry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the process exports.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Where Prometheus scrapes; `None`: no metrics.
    pub metrics_address: Option<String>,
    /// OTLP/gRPC collector endpoint; `None`: no traces.
    pub otlp_endpoint: Option<String>,
}

/// The exporters of a running process; [`Exporters::shutdown`] flushes them.
pub struct Exporters {
    meter_provider: Option<SdkMeterProvider>,
    tracer_provider: Option<SdkTracerProvider>,
}

impl Exporters {
    /// Flushes pending spans and stops the exporters.
    pub fn shutdown(self) {
        if let Some(p) = self.tracer_provider {
            let _ = p.shutdown();
        }
        if let Some(p) = self.meter_provider {
            let _ = p.shutdown();
        }
    }
}

/// Starts the exporters `settings` asks for (binding the metrics listener) and returns the
/// node's telemetry handle. Must run inside the Tokio runtime.
pub async fn start(settings: &Settings, log: &Logger) -> Result<(Telemetry, Exporters)> {
    let resource = Resource::builder().with_service_name("sundial").build();
    let mut exporters = Exporters {
        meter_provider: None,
        tracer_provider: None,
    };
    let mut meter = None;
    if let Some(address) = &settings.metrics_address {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_counter_suffixes()
            .without_units()
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .context("building the Prometheus exporter")?;
        let provider = SdkMeterProvider::builder()
            .with_reader(exporter)
            .with_resource(resource.clone())
            .build();
        meter = Some(provider.meter("sundial"));
        exporters.meter_provider = Some(provider);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("binding the metrics listener {address}"))?;
        let local = listener.local_addr()?;
        info!(log, "serving Prometheus metrics"; "address" => %local, "path" => "/metrics");
        tokio::spawn(serve_metrics(listener, registry, log.clone()));
    }
    let mut tracer = None;
    if let Some(endpoint) = &settings.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .with_context(|| format!("building the OTLP exporter for {endpoint}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let scope = InstrumentationScope::builder("sundial").build();
        tracer = Some(BoxedTracer::new(provider.boxed_tracer(scope)));
        exporters.tracer_provider = Some(provider);
        info!(log, "exporting traces over OTLP"; "endpoint" => endpoint);
    }
    Ok((Telemetry::new(meter, tracer), exporters))
}

/// Serves `GET /metrics` (Prometheus text format) on `listener`, one request per connection.
async fn serve_metrics(listener: TcpListener, registry: prometheus::Registry, log: Logger) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let registry = registry.clone();
        let log = log.clone();
        tokio::spawn(async move {
            if let Err(e) = answer_scrape(stream, &registry).await {
                warn!(log, "metrics request failed"; "error" => %e);
            }
        });
    }
}

async fn answer_scrape(mut stream: TcpStream, registry: &prometheus::Registry) -> Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if path == "/metrics" || path.starts_with("/metrics?") {
        let mut body = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut body)
            .context("encoding metrics")?;
        ("200 OK", body)
    } else {
        ("404 Not Found", "not found\n".to_string())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// The address `--metrics-port` names on the frontend's IP.
pub fn metrics_address(ip: &str, port: u16) -> String {
    SocketAddr::new(
        ip.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        port,
    )
    .to_string()
}

/// The OTLP endpoint: the config's, else `OTEL_EXPORTER_OTLP_ENDPOINT`'s; `None` when neither
/// is set (no traces).
pub fn otlp_endpoint(configured: Option<&str>) -> Option<String> {
    configured
        .map(str::to_string)
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .filter(|e| !e.is_empty())
}

/// Where log lines go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LogOutput {
    /// Standard error (the default).
    #[default]
    Stderr,
    /// Standard output (`log.stdout: true`).
    Stdout,
    /// Appended to a file (`log.outputFile`).
    File(std::path::PathBuf),
}

impl LogOutput {
    /// Temporal's rule: stdout when `log.stdout` is true, else `log.outputFile` if set, else
    /// stderr.
    pub fn of(log: &sundial_config::Log) -> LogOutput {
        match (&log.output_file, log.stdout) {
            (_, true) => LogOutput::Stdout,
            (Some(file), false) => LogOutput::File(file.clone()),
            (None, false) => LogOutput::Stderr,
        }
    }
}

/// A logger writing to `output` at `level` (debug, info, warn, error) as `format` (console
/// or json).
pub fn logger(level: &str, format: &str, output: &LogOutput) -> Result<Logger> {
    let level = match level {
        "debug" => slog::Level::Debug,
        "info" => slog::Level::Info,
        "warn" => slog::Level::Warning,
        "error" => slog::Level::Error,
        other => anyhow::bail!("unknown log level {other:?} (debug, info, warn, error)"),
    };
    let writer: Box<dyn std::io::Write + Send> = match output {
        LogOutput::Stderr => Box::new(std::io::stderr()),
        LogOutput::Stdout => Box::new(std::io::stdout()),
        LogOutput::File(path) => Box::new(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("log.outputFile: cannot open {}", path.display()))?,
        ),
    };
    let drain: Box<dyn Drain<Ok = (), Err = slog::Never> + Send> = match (format, output) {
        ("console", LogOutput::Stderr) => {
            let decorator = slog_term::TermDecorator::new().stderr().build();
            Box::new(slog_term::FullFormat::new(decorator).build().fuse())
        }
        ("console", LogOutput::Stdout) => {
            let decorator = slog_term::TermDecorator::new().stdout().build();
            Box::new(slog_term::FullFormat::new(decorator).build().fuse())
        }
        ("console", LogOutput::File(_)) => {
            let decorator = slog_term::PlainDecorator::new(writer);
            Box::new(slog_term::FullFormat::new(decorator).build().fuse())
        }
        ("json", _) => Box::new(json_drain(writer).fuse()),
        (other, _) => anyhow::bail!("unknown log format {other:?} (console, json)"),
    };
    let drain = slog_async::Async::new(drain).build().fuse();
    Ok(Logger::root(drain.filter_level(level).fuse(), o!()))
}

fn json_drain<W: std::io::Write + Send + 'static>(w: W) -> slog_json::Json<W> {
    slog_json::Json::new(w)
        .set_newlines(true)
        .add_default_keys()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_logs_are_one_object_per_line_with_the_workflow_fields() {
        let buffer = Buffer::default();
        let drain = Mutex::new(json_drain(buffer.clone())).fuse();
        let log = Logger::root(drain, o!());
        let wf = log.new(o!("namespace" => "default", "workflow_id" => "wf-1", "run_id" => "r-1"));
        info!(wf, "workflow closed"; "status" => "COMPLETED");
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line = text.lines().next().expect("one line");
        for needle in [
            r#""msg":"workflow closed""#,
            r#""level":"INFO""#,
            r#""namespace":"default""#,
            r#""workflow_id":"wf-1""#,
            r#""run_id":"r-1""#,
            r#""status":"COMPLETED""#,
        ] {
            assert!(line.contains(needle), "{needle} missing from {line}");
        }
        assert!(line.starts_with('{') && line.ends_with('}'));
    }

    #[test]
    fn unknown_formats_and_levels_are_refused() {
        let stderr = LogOutput::Stderr;
        assert!(logger("info", "xml", &stderr).is_err());
        assert!(logger("loud", "json", &stderr).is_err());
        assert!(logger("debug", "json", &stderr).is_ok());
    }

    #[test]
    fn output_file_gets_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sundial.log");
        let log = logger("info", "console", &LogOutput::File(path.clone())).unwrap();
        info!(log, "to the file"; "key" => "value");
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("to the file") && text.contains("key: value"),
            "{text}"
        );
        let missing = LogOutput::File(dir.path().join("no/such/dir/x.log"));
        let err = logger("info", "json", &missing).unwrap_err().to_string();
        assert!(err.starts_with("log.outputFile: cannot open"), "{err}");
    }

    #[test]
    fn output_follows_temporals_rule() {
        let mut log = sundial_config::Log::default();
        assert_eq!(LogOutput::of(&log), LogOutput::Stderr);
        log.output_file = Some("x.log".into());
        assert_eq!(LogOutput::of(&log), LogOutput::File("x.log".into()));
        log.stdout = true;
        assert_eq!(LogOutput::of(&log), LogOutput::Stdout);
    }
}
