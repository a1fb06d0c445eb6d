//! Metrics: named counters and gauges (with optional labels), latency histograms and the
//! process's own figures (resident memory, CPU seconds, open files), served as upstream's JSON on
//! a Unix socket and, when an address is given, on HTTP: `/metrics` (Prometheus text, written by
//! the `prometheus` crate's encoder), `/health` (alive) and `/ready` (every readiness condition
//! the connector registered is met).
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

/// A value that goes up and down and is not a whole number (seconds); kept as `f64` bits.
#[derive(Clone, Debug, Default)]
pub struct FloatGauge(Arc<AtomicU64>);

impl FloatGauge {
    pub fn set(&self, x: f64) {
        self.0.store(x.to_bits(), Ordering::Relaxed);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    /// Raise it to `x` if `x` is higher (a maximum that several tasks update).
    pub fn raise_to(&self, x: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                (x > f64::from_bits(bits)).then_some(x.to_bits())
            });
    }
}

/// A distribution of durations, in seconds (a Prometheus histogram).
#[derive(Clone, Debug)]
pub struct Histogram(prometheus::Histogram);

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        self.0.observe(d.as_secs_f64());
    }
    /// Observe the time from `t_ms` (milliseconds since the Unix epoch) to now (0 if later).
    pub fn observe_since(&self, t_ms: i64) {
        let ms = crate::now_ms().saturating_sub(t_ms).max(0);
        self.0.observe(ms as f64 / 1000.0);
    }
    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0.get_sample_count()
    }
}

/// Latency buckets, in seconds: 1 ms to 5 min.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// One condition of readiness (connected to X, the Fluvio producer writing, ...): `/ready`
/// answers 200 only while every registered one is met.
#[derive(Clone, Debug)]
pub struct Ready(Arc<AtomicBool>);

impl Ready {
    pub fn set(&self, met: bool) {
        self.0.store(met, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    /// A counter whose value is `f64` bits.
    FloatCounter,
    /// A gauge whose value is `f64` bits.
    FloatGauge,
}

impl Kind {
    fn render(self, value: u64) -> serde_json::Value {
        match self {
            Kind::FloatCounter | Kind::FloatGauge => f64::from_bits(value).into(),
            Kind::Counter | Kind::Gauge => value.into(),
        }
    }

    fn as_f64(self, value: u64) -> f64 {
        match self {
            Kind::FloatCounter | Kind::FloatGauge => f64::from_bits(value),
            Kind::Counter | Kind::Gauge => value as f64,
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
    histograms: BTreeMap<String, Histogram>,
    ready: BTreeMap<String, Ready>,
}

/// The counters and gauges, handed to the `prometheus` registry at each scrape.
struct Collected {
    prefix: String,
    inner: Arc<Mutex<Inner>>,
}

impl prometheus::core::Collector for Collected {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use prometheus::proto::{self as pb, MetricType};
        let inner = self.inner.lock().expect("metrics lock");
        let mut families: Vec<pb::MetricFamily> = Vec::new();
        for ((name, labels), (kind, value)) in &inner.metrics {
            let full = format!("{}_{}", self.prefix, name);
            if families.last().is_none_or(|f| f.name() != full) {
                let mut f = pb::MetricFamily::default();
                f.set_name(full);
                f.set_help(inner.help.get(name).cloned().unwrap_or_default());
                f.set_field_type(match kind {
                    Kind::Counter | Kind::FloatCounter => MetricType::COUNTER,
                    Kind::Gauge | Kind::FloatGauge => MetricType::GAUGE,
                });
                families.push(f);
            }
            let value = kind.as_f64(value.load(Ordering::Relaxed));
            let mut m = pb::Metric::from_label(
                labels
                    .iter()
                    .map(|(k, v)| {
                        let mut pair = pb::LabelPair::default();
                        pair.set_name(k.clone());
                        pair.set_value(v.clone());
                        pair
                    })
                    .collect(),
            );
            if matches!(kind, Kind::Gauge | Kind::FloatGauge) {
                let mut g = pb::Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            } else {
                let mut c = pb::Counter::default();
                c.set_value(value);
                m.set_counter(c);
            }
            families.last_mut().expect("pushed").mut_metric().push(m);
        }
        families
    }
}

/// The metrics of one connector process.
#[derive(Clone)]
pub struct Metrics {
    prefix: String,
    inner: Arc<Mutex<Inner>>,
    registry: prometheus::Registry,
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
        let prefix = prefix.replace('-', "_");
        let inner: Arc<Mutex<Inner>> = Default::default();
        let registry = prometheus::Registry::new();
        let own = Collected {
            prefix: prefix.clone(),
            inner: inner.clone(),
        };
        registry
            .register(Box::new(own))
            .expect("the first collector registers");
        // process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds, ...
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        Self {
            prefix,
            inner,
            registry,
            healthy: Arc::new(AtomicBool::new(true)),
        }
    }

    /// A histogram of durations in seconds (`name` should end in `_seconds`); the same handle
    /// for the same name.
    pub fn histogram(&self, name: &str, help: &str) -> Histogram {
        let mut inner = self.inner.lock().expect("metrics lock");
        if let Some(h) = inner.histograms.get(name) {
            return h.clone();
        }
        let opts = prometheus::HistogramOpts::new(format!("{}_{name}", self.prefix), help)
            .buckets(LATENCY_BUCKETS.to_vec());
        let h = prometheus::Histogram::with_opts(opts).expect("valid histogram name");
        self.registry
            .register(Box::new(h.clone()))
            .expect("a histogram name registers once");
        let h = Histogram(h);
        inner.histograms.insert(name.to_string(), h.clone());
        h
    }

    /// Register a readiness condition, not met until set; `what` names it in `/ready`'s answer.
    pub fn readiness(&self, what: &str) -> Ready {
        let mut inner = self.inner.lock().expect("metrics lock");
        inner
            .ready
            .entry(what.to_string())
            .or_insert_with(|| Ready(Arc::default()))
            .clone()
    }

    /// The readiness conditions not met (empty: ready).
    pub fn unready(&self) -> Vec<String> {
        let inner = self.inner.lock().expect("metrics lock");
        inner
            .ready
            .iter()
            .filter(|(_, r)| !r.0.load(Ordering::Relaxed))
            .map(|(what, _)| what.clone())
            .collect()
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

    pub fn float_gauge(&self, name: &str, help: &str) -> FloatGauge {
        self.float_gauge_with(name, &[], help)
    }

    pub fn float_gauge_with(&self, name: &str, labels: &[(&str, &str)], help: &str) -> FloatGauge {
        FloatGauge(self.get(name, labels, Kind::FloatGauge, help))
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

    /// Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into memory");
        String::from_utf8(out).expect("the text format is UTF-8")
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
        for (name, h) in &inner.histograms {
            map.insert(format!("{name}_count"), h.0.get_sample_count().into());
            map.insert(format!("{name}_sum"), h.0.get_sample_sum().into());
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

/// Serve `/metrics` (Prometheus text), `/health` (200 while the process is not failing or
/// stopping) and `/ready` (200 while every readiness condition is met, else 503 naming those
/// that are not) on `addr`; returns the bound address.
pub async fn serve_http(metrics: Metrics, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    use axum::http::StatusCode;
    use axum::routing::get;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let m1 = metrics.clone();
    let m2 = metrics.clone();
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
        )
        .route(
            "/ready",
            get(move || {
                let m = m2.clone();
                async move {
                    let waiting = m.unready();
                    if waiting.is_empty() {
                        (StatusCode::OK, "ready\n".to_string())
                    } else {
                        let list = waiting.join(", ");
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready: {list}\n"),
                        )
                    }
                }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics HTTP server stopped");
        }
    });
    tracing::info!(addr = %bound, "metrics on http://{bound}/metrics, /health and /ready beside it");
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
    fn histograms_and_process_figures_are_exposed() {
        let m = Metrics::new("src");
        let h = m.histogram("x_to_fluvio_seconds", "from X to Fluvio");
        h.observe(std::time::Duration::from_millis(3));
        h.observe(std::time::Duration::from_millis(700));
        assert_eq!(m.histogram("x_to_fluvio_seconds", "again").count(), 2);
        let max = m.float_gauge("x_to_fluvio_seconds_max", "the longest");
        max.raise_to(0.7);
        max.raise_to(0.003);
        assert_eq!(max.get(), 0.7);
        let json = m.render_json();
        assert_eq!(json["x_to_fluvio_seconds_count"], 2);
        assert_eq!(json["x_to_fluvio_seconds_max"], 0.7);
        let text = m.render_prometheus();
        assert!(
            text.contains("# TYPE src_x_to_fluvio_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("src_x_to_fluvio_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("src_x_to_fluvio_seconds_bucket{le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("src_x_to_fluvio_seconds_count 2\n"), "{text}");
        assert!(
            text.contains(
                "# TYPE src_x_to_fluvio_seconds_max gauge\nsrc_x_to_fluvio_seconds_max 0.7\n"
            ),
            "{text}"
        );
        let rss = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .unwrap_or_else(|| panic!("no resident memory in {text}"));
        assert!(rss.parse::<f64>().unwrap() > 1e6, "{rss}");
        assert!(text.contains("process_open_fds "), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
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
        assert!(
            http_get(addr, "/ready").await.contains("200 OK"),
            "nothing to wait for"
        );
        let x = m.readiness("x stream");
        let fluvio = m.readiness("fluvio producer");
        let answer = http_get(addr, "/ready").await;
        assert!(
            answer.contains("503") && answer.contains("not ready: fluvio producer, x stream"),
            "{answer}"
        );
        x.set(true);
        let answer = http_get(addr, "/ready").await;
        assert!(
            answer.contains("503") && answer.contains("not ready: fluvio producer\n"),
            "{answer}"
        );
        fluvio.set(true);
        assert!(http_get(addr, "/ready").await.contains("200 OK"));
        x.set(false);
        assert!(http_get(addr, "/ready")
            .await
            .contains("not ready: x stream"));

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
