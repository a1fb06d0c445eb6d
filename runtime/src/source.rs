//! The source driver: runs a connector's reading task, and pumps what it hands over through the
//! transforms into the producer, with back-pressure, progress and a clean, flushed shutdown.
//!
//! The connector gets a [`SourceContext`]: a bounded [`RecordSender`] (a full queue makes the
//! reader wait instead of growing memory), the shutdown token, and the metrics. When the token
//! is cancelled the connector stops reading and returns; every record it had already handed
//! over is still transformed, produced and flushed before the process exits 0.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{ConnectorConfig, Section};
use crate::launch::{self, ConnectorInfo, Launched};
use crate::metrics::{Counter, Gauge, Metrics};
use crate::output::RecordOutput;
use crate::produce::FluvioOutput;
use crate::transforms::{self, Applied, ChainPool, Rejection, TransformError, WorkerPanicked};
use crate::{cluster, Record};

/// How many records may wait between the reader and the producer.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;
/// How long a connector may take to stop reading after the shutdown signal.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Records waiting behind a full transform pool that make it add a worker.
const GROW_BACKLOG: usize = 1024;

/// The sending half of the bounded queue to the producer.
#[derive(Clone, Debug)]
pub struct RecordSender {
    tx: mpsc::Sender<Record>,
    accepted: Counter,
}

/// The producer side has gone away (the process is stopping).
#[derive(Debug, thiserror::Error)]
#[error("the record queue is closed")]
pub struct QueueClosed;

impl RecordSender {
    /// Hand a record to the producer, waiting while the queue is full.
    pub async fn send(&self, record: Record) -> Result<(), QueueClosed> {
        self.tx.send(record).await.map_err(|_| QueueClosed)?;
        self.accepted.inc();
        Ok(())
    }

    /// A sender not connected to any producer, with its receiving end (for tests).
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<Record>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Self {
                tx,
                accepted: Counter::default(),
            },
            rx,
        )
    }
}

/// What a source connector gets to work with.
#[derive(Clone, Debug)]
pub struct SourceContext {
    pub records: RecordSender,
    pub shutdown: CancellationToken,
    pub metrics: Metrics,
    side: Arc<SideOutputs>,
}

impl SourceContext {
    /// A second output topic (no transforms; e.g. compliance events), created if missing and
    /// flushed at shutdown like the main one. In capture mode it is the file
    /// `<capture>.<topic>`.
    pub async fn side_output(&self, topic: &str) -> Result<RecordSender> {
        self.side.open(topic, &self.metrics).await
    }

    /// The last records of the connector's topic (at most `n` per partition; in capture
    /// mode, of the capture file), their values only `with_values`: what a restart must not
    /// write again (a backfill re-delivers up to minutes of tweets), and where it takes up
    /// the stream. Their timestamp is Fluvio's (when produced); in capture mode, the record's
    /// own event time.
    pub async fn last_records(&self, n: usize, with_values: bool) -> Result<Vec<Record>> {
        match (&self.side.capture, &self.side.fluvio, &self.side.meta) {
            (Some(path), _, _) => {
                if !path.exists() || path == std::path::Path::new("/dev/null") {
                    return Ok(Vec::new());
                }
                let records = crate::output::read_capture(path)?;
                let skip = records.len().saturating_sub(n);
                Ok(records
                    .into_iter()
                    .skip(skip)
                    .filter(|r| r.key.is_some())
                    .map(|mut r| {
                        if !with_values {
                            r.value = Bytes::new();
                        }
                        r
                    })
                    .collect())
            }
            (None, Some(fluvio), Some(meta)) => {
                cluster::last_records(fluvio, &meta.topic.name, n as i64, with_values).await
            }
            _ => Ok(Vec::new()),
        }
    }

    /// A context whose records go to `records` (for tests of connector logic).
    pub fn for_test(records: RecordSender) -> Self {
        Self {
            records,
            shutdown: CancellationToken::new(),
            metrics: Metrics::new("test"),
            side: Arc::new(SideOutputs::default()),
        }
    }
}

/// Extra topics a source writes to, each pumped by a task of its own.
#[derive(Default)]
struct SideOutputs {
    fluvio: Option<Arc<fluvio::Fluvio>>,
    meta: Option<crate::config::MetaConfig>,
    capture: Option<std::path::PathBuf>,
    shutdown: CancellationToken,
    pumps: std::sync::Mutex<Vec<tokio::task::JoinHandle<Result<()>>>>,
}

impl std::fmt::Debug for SideOutputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SideOutputs")
            .field("capture", &self.capture)
            .finish()
    }
}

impl SideOutputs {
    async fn open(&self, topic: &str, metrics: &Metrics) -> Result<RecordSender> {
        let mut output = match (&self.capture, &self.fluvio, &self.meta) {
            (Some(path), _, _) => RecordOutput::capture(&std::path::PathBuf::from(format!(
                "{}.{topic}",
                path.display()
            )))?,
            (None, Some(fluvio), Some(meta)) => {
                let mut meta = meta.clone();
                meta.topic = crate::config::TopicConfig {
                    name: topic.to_string(),
                    ..meta.topic.clone()
                };
                cluster::ensure_topic(fluvio, &meta.topic).await?;
                let producer = cluster::producer(fluvio, &meta).await?;
                RecordOutput::Fluvio(Box::new(FluvioOutput::new(
                    fluvio.clone(),
                    meta,
                    producer,
                    metrics,
                    self.shutdown.clone(),
                )))
            }
            _ => anyhow::bail!("side outputs are not available here"),
        };
        let (tx, mut rx) = mpsc::channel::<Record>(DEFAULT_QUEUE_CAPACITY);
        let produced = metrics.counter_with(
            "side_records_produced_total",
            &[("topic", topic)],
            "records produced to side topics",
        );
        let topic_name = topic.to_string();
        let handle = tokio::spawn(async move {
            while let Some(record) = rx.recv().await {
                output.send(record).await?;
                produced.inc();
            }
            output
                .flush()
                .await
                .with_context(|| format!("flushing side topic `{topic_name}`"))
        });
        self.pumps.lock().expect("side outputs").push(handle);
        Ok(RecordSender {
            tx,
            accepted: metrics.counter_with(
                "side_records_accepted_total",
                &[("topic", topic)],
                "records handed to side topics",
            ),
        })
    }

    async fn finish(&self) -> Result<()> {
        let handles: Vec<_> = std::mem::take(&mut *self.pumps.lock().expect("side outputs"));
        for h in handles {
            h.await
                .map_err(|e| anyhow::anyhow!("side output task: {e}"))??;
        }
        Ok(())
    }
}

/// Run a source connector process: parse the command line and config, connect, then run
/// `source` until it returns or a signal arrives. Returns the process exit code.
pub fn main<C, F, Fut>(info: ConnectorInfo, source: F) -> ExitCode
where
    C: Section,
    F: FnOnce(ConnectorConfig<C>, SourceContext) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    launch::run(info, move |launched: Launched<C>| async move {
        run(launched, source).await
    })
}

async fn run<C, F, Fut>(launched: Launched<C>, source: F) -> Result<()>
where
    C: Section,
    F: FnOnce(ConnectorConfig<C>, SourceContext) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let Launched {
        config,
        args,
        metrics,
        shutdown,
    } = launched;
    anyhow::ensure!(
        config.meta.is_source(),
        "meta.type `{}` is not a source (a source's type ends in `-source`)",
        config.meta.kind
    );
    anyhow::ensure!(
        args.input_file.is_none(),
        "--input-file is for sink connectors (a source writes a file with --capture)"
    );

    let (output, fluvio) = open_output(&config, &args, &metrics, &shutdown).await?;
    let transforms = start_transforms(&config, fluvio.as_deref()).await?;
    let pump_metrics = PumpMetrics::new(&metrics);
    if let Some(pool) = &transforms {
        pump_metrics.workers.set(pool.workers() as u64);
    }
    let (tx, rx) = mpsc::channel(DEFAULT_QUEUE_CAPACITY);
    let side = Arc::new(SideOutputs {
        fluvio: fluvio.clone(),
        meta: Some(config.meta.clone()),
        capture: args.capture.clone(),
        shutdown: shutdown.clone(),
        pumps: Default::default(),
    });
    let ctx = SourceContext {
        records: RecordSender {
            tx,
            accepted: pump_metrics.accepted.clone(),
        },
        shutdown: shutdown.clone(),
        metrics: metrics.clone(),
        side: side.clone(),
    };
    let mut pump = Pump {
        topic: config.meta.topic.name.clone(),
        rx,
        transforms,
        output,
        metrics: pump_metrics,
        progress: Progress::new(),
    };
    let mut source_task = tokio::spawn(source(config, ctx));
    let pumped = pump.run(&mut source_task, &shutdown).await;
    finish(pump, &side, source_task, pumped).await
}

/// After pumping: wait for the connector's task, flush every output, and log the counts. After
/// a transform worker died the producer is still flushed (what it holds is stored); after the
/// output failed it is not (it already tried as long as it may).
async fn finish(
    mut pump: Pump,
    side: &SideOutputs,
    mut source_task: tokio::task::JoinHandle<Result<()>>,
    pumped: Result<Option<Result<()>>>,
) -> Result<()> {
    let mut source_result = match pumped {
        Ok(result) => result,
        Err(e) => {
            source_task.abort();
            if !e.is::<WorkerPanicked>() {
                return Err(e);
            }
            if let Err(flush) = pump.output.flush().await {
                tracing::error!(error = %format!("{flush:#}"), "flushing after the failure");
            }
            return Err(e);
        }
    };
    if source_result.is_none() {
        // The queue closed first; the task has returned or is about to.
        source_result = match tokio::time::timeout(STOP_GRACE, &mut source_task).await {
            Ok(joined) => {
                Some(joined.unwrap_or_else(|e| Err(anyhow::anyhow!("source task panicked: {e}"))))
            }
            Err(_) => {
                source_task.abort();
                None
            }
        };
    }
    pump.output.flush().await.context("final flush")?;
    side.finish().await?;
    let m = &pump.metrics;
    tracing::info!(
        accepted = m.accepted.get(),
        produced = m.produced.get(),
        filtered = m.filtered.get(),
        rejected = m.rejected.get(),
        "flushed; source stopped"
    );
    source_result.unwrap_or(Ok(()))
}

/// Where records go: a capture file, or the topic (created if missing) through a producer.
async fn open_output<C>(
    config: &ConnectorConfig<C>,
    args: &crate::cli::ConnectorArgs,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(RecordOutput, Option<Arc<fluvio::Fluvio>>)> {
    if let Some(path) = &args.capture {
        tracing::info!(capture = %path.display(), "capture mode: records go to a file, not to Fluvio");
        return Ok((RecordOutput::capture(path)?, None));
    }
    let fluvio = Arc::new(cluster::connect(&config.meta.name).await?);
    cluster::ensure_topic(&fluvio, &config.meta.topic).await?;
    let producer = cluster::producer(&fluvio, &config.meta).await?;
    let output = FluvioOutput::new(
        fluvio.clone(),
        config.meta.clone(),
        producer,
        metrics,
        shutdown.clone(),
    );
    Ok((RecordOutput::Fluvio(Box::new(output)), Some(fluvio)))
}

/// The `transforms:` chain on its worker pool (`None` without transforms).
async fn start_transforms<C>(
    config: &ConnectorConfig<C>,
    fluvio: Option<&fluvio::Fluvio>,
) -> Result<Option<ChainPool>> {
    if config.transforms.is_empty() {
        return Ok(None);
    }
    let modules = transforms::resolve(&config.transforms, &config.dir(), fluvio).await?;
    let workers = config.transform_workers.unwrap_or_else(default_workers);
    let pool = ChainPool::start(modules, workers).await?;
    tracing::info!(modules = ?pool.module_names(), max_workers = pool.max_workers(), "transforms initialised (one worker; more while a backlog waits)");
    Ok(Some(pool))
}

/// The queue from the reader, through the transforms, into the output.
struct Pump {
    topic: String,
    rx: mpsc::Receiver<Record>,
    transforms: Option<ChainPool>,
    output: RecordOutput,
    metrics: PumpMetrics,
    progress: Progress,
}

impl Pump {
    /// Pump until every sender is gone (or, after a signal, the connector's grace is over),
    /// then send what the workers still hold. The source task's result, if it returned.
    async fn run(
        &mut self,
        source_task: &mut tokio::task::JoinHandle<Result<()>>,
        shutdown: &CancellationToken,
    ) -> Result<Option<Result<()>>> {
        let mut source_result: Option<Result<()>> = None;
        let mut stop_deadline: Option<tokio::time::Instant> = None;
        let mut batch = Vec::new();
        loop {
            self.grow_on_backlog();
            let has_room = self.transforms.as_ref().is_none_or(ChainPool::has_room);
            let busy = self.transforms.as_ref().is_some_and(ChainPool::is_busy);
            let deadline = async {
                match stop_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some(applied) = next_applied(&mut self.transforms), if busy => {
                    self.produce(applied?).await?;
                }
                more = next_batch(&mut self.rx, &mut batch), if has_room => {
                    // Every sender is gone: the source has returned.
                    if !more {
                        break;
                    }
                    self.metrics.queue_depth.set(self.rx.len() as u64);
                    let records = std::mem::take(&mut batch);
                    match self.transforms.as_mut() {
                        Some(pool) => pool.submit(records),
                        None => self.produce(Applied { records, ..Applied::default() }).await?,
                    }
                }
                joined = &mut *source_task, if source_result.is_none() => {
                    source_result = Some(joined.unwrap_or_else(|e| Err(anyhow::anyhow!("source task panicked: {e}"))));
                    // Keep draining: senders cloned into helper tasks may still hold records.
                    self.rx.close();
                }
                _ = shutdown.cancelled(), if stop_deadline.is_none() => {
                    stop_deadline = Some(tokio::time::Instant::now() + STOP_GRACE);
                }
                _ = deadline => {
                    tracing::warn!("the source did not stop within {STOP_GRACE:?}; closing its queue");
                    self.rx.close();
                    stop_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
                }
            }
        }
        // What the workers still hold goes out before the flush.
        while let Some(applied) = next_applied(&mut self.transforms).await {
            self.produce(applied?).await?;
        }
        Ok(source_result)
    }

    /// A full pool with this many records waiting behind it gets another worker.
    fn grow_on_backlog(&mut self) {
        if let Some(pool) = self.transforms.as_mut() {
            if !pool.has_room() && self.rx.len() >= GROW_BACKLOG && pool.grow() {
                self.metrics.workers.set(pool.workers() as u64);
            }
        }
    }

    /// Send a batch's records to the output; count and log what the transforms filtered or
    /// refused.
    async fn produce(&mut self, applied: Applied) -> Result<()> {
        let m = &self.metrics;
        m.filtered.add(applied.filtered);
        for Rejection { key, error } in applied.rejected {
            m.rejected.inc();
            let key = crate::key_lossy(key.as_deref());
            match error {
                TransformError::Rejected(msg) => {
                    tracing::warn!(%key, error = %msg, "transform rejected the record")
                }
                e @ TransformError::Failed(_) => {
                    tracing::error!(%key, error = %e, "transform chain failed on the record")
                }
            }
        }
        for out in applied.records {
            m.produced_bytes.add(out.value.len() as u64);
            self.output.send(out).await?;
            m.produced.inc();
        }
        self.progress.tick(m, &self.topic);
        Ok(())
    }
}

struct PumpMetrics {
    accepted: Counter,
    produced: Counter,
    produced_bytes: Counter,
    filtered: Counter,
    rejected: Counter,
    queue_depth: Gauge,
    workers: Gauge,
}

impl PumpMetrics {
    fn new(m: &Metrics) -> Self {
        Self {
            accepted: m.counter(
                "records_accepted_total",
                "records handed over by the source",
            ),
            produced: m.counter("records_produced_total", "records produced to the topic"),
            produced_bytes: m.counter("bytes_produced_total", "bytes of record values produced"),
            filtered: m.counter(
                "records_filtered_total",
                "records the transforms filtered out (no output)",
            ),
            rejected: m.counter(
                "transform_errors_total",
                "records a transform rejected with an error (logged with their key)",
            ),
            queue_depth: m.gauge("queue_depth", "records waiting between reader and producer"),
            workers: m.gauge("transform_workers", "threads running the transforms"),
        }
    }
}

/// One thread per core, unless the config says `transform_workers`.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Wait for a record, then take what else is already queued, up to a batch. Nothing waits for
/// a batch to fill: a slow stream's records go on one by one as they come, a fast one's in
/// batches as large as the queue holds. `false` once every sender is gone.
async fn next_batch(rx: &mut mpsc::Receiver<Record>, batch: &mut Vec<Record>) -> bool {
    let Some(first) = rx.recv().await else {
        return false;
    };
    let mut bytes = first.value.len();
    batch.push(first);
    while batch.len() < transforms::BATCH_RECORDS && bytes < transforms::BATCH_BYTES {
        match rx.try_recv() {
            Ok(record) => {
                bytes += record.value.len();
                batch.push(record);
            }
            Err(_) => break,
        }
    }
    true
}

/// The oldest transformed batch, once ready (`None`: no transforms, or nothing in flight).
async fn next_applied(transforms: &mut Option<ChainPool>) -> Option<Result<Applied>> {
    transforms.as_mut()?.next().await
}

/// A log line every few seconds, so a user sees the connector working.
struct Progress {
    last: Instant,
    last_count: u64,
}

impl Progress {
    fn new() -> Self {
        Self {
            last: Instant::now(),
            last_count: 0,
        }
    }

    fn tick(&mut self, m: &PumpMetrics, topic: &str) {
        let elapsed = self.last.elapsed();
        if elapsed < PROGRESS_EVERY {
            return;
        }
        let produced = m.produced.get();
        let rate = (produced - self.last_count) as f64 / elapsed.as_secs_f64();
        tracing::info!(
            topic,
            produced,
            filtered = m.filtered.get(),
            rejected = m.rejected.get(),
            rate = format!("{rate:.0}/s"),
            "progress"
        );
        self.last = Instant::now();
        self.last_count = produced;
    }
}
