//! Metrics: named counters and gauges (with optional labels), served as upstream's JSON on a
//! Unix socket and, when an address is given, as Prometheus text on HTTP `/metrics` with a
//! `/health` probe beside it.
//!
//! Handles are cheap `Arc<AtomicU64>` clones: look a metric up once, then bump it on the hot path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;

/// A monotonically increasing count.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (stored as an integer).
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Raise it to `v` if `v` is higher (a maximum that several tasks update).
    pub fn raise_to(&self, v: u64) {
        self.0.fetch_max(v, Ordering::Relaxed);
    }
}

/// A monotonically increasing amount that is not a whole number (a cost in dollars); the
/// `f64` is kept as its bits.
#[derive(Clone, Debug, Default)]
pub struct FloatCounter(Arc<AtomicU64>);

impl FloatCounter {
    pub fn add(&self, x: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + x).to_bits())
            });
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    /// A counter whose value is `f64` bits.
    FloatCounter,
}

impl Kind {
    fn render(self, value: u64) -> serde_json::Value {
        match self {
            Kind::FloatCounter => f64::from_bits(value).into(),
            Kind::Counter | Kind::Gauge => value.into(),
        }
    }
}

type Key = (String, Vec<(String, String)>);

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[derive(Default)]
struct Inner {
    metrics: BTreeMap<Key, (Kind, Arc<AtomicU64>)>,
    help: BTreeMap<String, String>,
}

/// The metrics of one connector process.
#[derive(Clone)]
pub struct Metrics {
    prefix: String,
    inner: Arc<Mutex<Inner>>,
    healthy: Arc<AtomicBool>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Metrics {
    /// `prefix` starts every Prometheus name (e.g. `twitter_source`).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.replace('-', "_"),
            inner: Default::default(),
            healthy: Arc::new(AtomicBool::new(true)),
        }
    }

    fn get(&self, name: &str, labels: &[(&str, &str)], kind: Kind, help: &str) -> Arc<AtomicU64> {
        let key = key(name, labels);
        let mut inner = self.inner.lock().expect("metrics lock");
        inner
            .help
            .entry(name.to_string())
            .or_insert_with(|| help.to_string());
        inner
            .metrics
            .entry(key)
            .or_insert_with(|| (kind, Arc::default()))
            .1
            .clone()
    }

    pub fn counter(&self, name: &str, help: &str) -> Counter {
        Counter(self.get(name, &[], Kind::Counter, help))
    }

    pub fn counter_with(&self, name: &str, labels: &[(&str, &str)], help: &str) -> Counter {
        Counter(self.get(name, labels, Kind::Counter, help))
    }

    pub fn float_counter(&self, name: &str, help: &str) -> FloatCounter {
        self.float_counter_with(name, &[], help)
    }

    pub fn float_counter_with(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        help: &str,
    ) -> FloatCounter {
        FloatCounter(self.get(name, labels, Kind::FloatCounter, help))
    }

    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        Gauge(self.get(name, &[], Kind::Gauge, help))
    }

    pub fn gauge_with(&self, name: &str, labels: &[(&str, &str)], help: &str) -> Gauge {
        Gauge(self.get(name, labels, Kind::Gauge, help))
    }

    /// Mark the process unhealthy (the `/health` probe then answers 503).
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Current value of a metric (0 when it does not exist); for tests and progress lines.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let key = key(name, labels);
        let inner = self.inner.lock().expect("metrics lock");
        inner
            .metrics
            .get(&key)
            .map(|(_, v)| v.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Prometheus text exposition format.
    pub fn render_prometheus(&self) -> String {
        let inner = self.inner.lock().expect("metrics lock");
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), (kind, value)) in &inner.metrics {
            let full = format!("{}_{}", self.prefix, name);
            if name != last {
                let help = inner.help.get(name).map(String::as_str).unwrap_or("");
                let kind = match kind {
                    Kind::Counter | Kind::FloatCounter => "counter",
                    Kind::Gauge => "gauge",
                };
                out.push_str(&format!("# HELP {full} {help}\n# TYPE {full} {kind}\n"));
                last = name;
            }
            out.push_str(&full);
            if !labels.is_empty() {
                let parts: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| {
                        format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                    })
                    .collect();
                out.push_str(&format!("{{{}}}", parts.join(",")));
            }
            out.push_str(&format!(
                " {}\n",
                kind.render(value.load(Ordering::Relaxed))
            ));
        }
        out
    }

    /// Upstream-style JSON: `{"name": value, "name{label=v}": value, ...}`.
    pub fn render_json(&self) -> serde_json::Value {
        let inner = self.inner.lock().expect("metrics lock");
        let mut map = serde_json::Map::new();
        for ((name, labels), (kind, value)) in &inner.metrics {
            let key = if labels.is_empty() {
                name.clone()
            } else {
                let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{name}{{{}}}", parts.join(","))
            };
            map.insert(key, kind.render(value.load(Ordering::Relaxed)));
        }
        serde_json::Value::Object(map)
    }
}

/// The Unix socket path: `$FLUVIO_METRIC_CONNECTOR`, else one per connector name (so two
/// connectors on one host do not collide, unlike upstream's fixed path).
pub fn socket_path(connector_name: &str) -> PathBuf {
    match std::env::var_os("FLUVIO_METRIC_CONNECTOR") {
        Some(p) => PathBuf::from(p),
        None => std::env::temp_dir().join(format!("fluvio-connector-{connector_name}.sock")),
    }
}

/// Serve the JSON counters to anyone who connects to the Unix socket, until the process ends.
pub fn serve_unix_socket(metrics: Metrics, path: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    tracing::info!(socket = %path.display(), "monitoring started");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((mut stream, _)) => {
                    let body = metrics.render_json().to_string();
                    tokio::spawn(async move {
                        let _ = stream.write_all(body.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

/// Serve `/metrics` (Prometheus text) and `/health` on `addr`; returns the bound address.
pub async fn serve_http(metrics: Metrics, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    use axum::http::StatusCode;
    use axum::routing::get;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let m1 = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = m1.clone();
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        m.render_prometheus(),
                    )
                }
            }),
        )
        .route(
            "/health",
            get(move || {
                let m = metrics.clone();
                async move {
                    if m.is_healthy() {
                        (StatusCode::OK, "ok\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n")
                    }
                }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics HTTP server stopped");
        }
    });
    tracing::info!(addr = %bound, "metrics on http://{bound}/metrics, health on /health");
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_and_json() {
        let m = Metrics::new("my-conn");
        m.counter("records_total", "records").add(3);
        m.counter_with("errors_total", &[("kind", "json")], "errors")
            .inc();
        m.gauge("connected", "1 when connected").set(1);
        let text = m.render_prometheus();
        assert!(
            text.contains("# TYPE my_conn_records_total counter\nmy_conn_records_total 3\n"),
            "{text}"
        );
        assert!(
            text.contains("my_conn_errors_total{kind=\"json\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE my_conn_connected gauge"), "{text}");
        let json = m.render_json();
        assert_eq!(json["records_total"], 3);
        assert_eq!(json["errors_total{kind=json}"], 1);
        assert_eq!(m.value("errors_total", &[("kind", "json")]), 1);
        assert_eq!(m.value("absent", &[]), 0);
    }

    #[test]
    fn float_counters_add_fractions() {
        let m = Metrics::new("c");
        let cost = m.float_counter("cost_usd_total", "dollars");
        for _ in 0..3 {
            cost.add(0.25);
        }
        assert_eq!(cost.get(), 0.75);
        let text = m.render_prometheus();
        assert!(
            text.contains("# TYPE c_cost_usd_total counter\nc_cost_usd_total 0.75\n"),
            "{text}"
        );
        assert_eq!(m.render_json()["cost_usd_total"], 0.75);
    }

    #[tokio::test]
    async fn serves_http_and_unix_socket() {
        let m = Metrics::new("t");
        m.counter("x_total", "x").add(7);
        let addr = serve_http(m.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("m.sock");
        serve_unix_socket(m.clone(), &sock).unwrap();

        let body = http_get(addr, "/metrics").await;
        assert!(body.contains("t_x_total 7"), "{body}");
        assert!(http_get(addr, "/health").await.contains("200 OK"));
        m.set_healthy(false);
        assert!(http_get(addr, "/health").await.contains("503"));

        let mut s = tokio::net::UnixStream::connect(&sock).await.unwrap();
        let mut buf = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut s, &mut buf)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&buf).unwrap();
        assert_eq!(json["x_total"], 7);
    }

    async fn http_get(addr: SocketAddr, path: &str) -> String {
        use tokio::io::AsyncReadExt;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }
}
