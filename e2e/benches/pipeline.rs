//! Benchmarks through a real Fluvio cluster and a real Kafka broker (`cargo bench -p e2e`, run
//! by `./bench.sh`; SKIPPED without a Fluvio cluster):
//! - the bridge reading a Fluvio topic into Kafka, against `fluvio consume -B -d | kcat -P` on
//!   the same records (~1 KB shaped, ~3 KB raw);
//! - the whole pipeline at 6,000 tweets/s (emulator -> twitter-source with tweet-filter and
//!   tweet-shape -> Fluvio -> bridge -> Kafka): latency p50/p99 from the emulator's send to
//!   Kafka's append (`LogAppendTime`), and the resident memory of each process;
//! - the bridge alone at 6,000 records/s: Fluvio record time -> Kafka append (the source's
//!   records carry the tweet's time, so only records produced here measure the bridge);
//! - the highest sustained end-to-end rate (the emulator unpaced), and the source's own;
//! - `BENCH_ONLY=replay`: a generated archive of 1,000,000 tweets (`BENCH_REPLAY`; v1.1 and
//!   v2, real-sized) replayed at full speed through tweet-filter and tweet-shape into Fluvio
//!   and mirrored into Kafka, against `fluvio produce -f` then `fluvio consume -B -d | kcat -P`
//!   of the same file, counted at both ends, with each process's resident memory.
//!
//! It runs the connectors' release binaries as they are: `./bench.sh` builds them first (its
//! `cargo bench -p twitter-source` and `-p kafka-bridge-sink`); alone, run
//! `cargo build --release -p twitter-source -p kafka-bridge-sink` before it.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::bench::{cores, report, rss_mb, Figure};
use testkit::fluvio::FluvioEnv;
use testkit::kafka::{read_topic, KafkaBroker};
use x_emulator::{Corpus, Dialect, Emulator, EmulatorConfig};

const KAFKA_FETCH: &str = "33554432";

/// The fetch size of both sides of the bridge-vs-pipe comparison (the bridge's
/// `meta.consumer.max-bytes`, the pipe's `--maxbytes`): 4 MB read a backlog ~10% faster than
/// Fluvio's 1 MB default and keep the bridge near 80 MB resident; 16 MB went past 128 MB.
const MIRROR_FETCH: &str = "4194304";

struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Start a connector binary of the workspace on `config`.
    fn spawn(&self, env: &FluvioEnv, bin: &str, config: &str) -> Child {
        let cfg = self.dir.path().join(format!("{bin}.yaml"));
        std::fs::write(&cfg, config).unwrap();
        let mut cmd = Command::new(testkit::workspace_bin(bin));
        let log = std::fs::File::create(self.log(bin)).unwrap();
        cmd.arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .env("FLUVIO_METRIC_CONNECTOR", self.socket(bin))
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env.profile_env() {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    fn socket(&self, bin: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{bin}.sock"))
    }

    fn log(&self, bin: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{bin}.log"))
    }

    /// Panic with the connector's log if it exited.
    /// The source (`source_cfg`, into `topic`) and the bridge mirroring `topic` into Kafka,
    /// logging each record's append time.
    fn pipeline(
        &self,
        env: &FluvioEnv,
        broker: &str,
        topic: &str,
        source_cfg: &str,
    ) -> (Child, Child) {
        let source = self.spawn(env, "twitter-source", source_cfg);
        let bridge = self.spawn(
            env,
            "kafka-bridge-sink",
            &log_append_bridge_config(topic, broker, ""),
        );
        (source, bridge)
    }

    fn alive(&self, bin: &str, child: &mut Child) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{bin} exited ({status}): {}",
                std::fs::read_to_string(self.log(bin)).unwrap_or_default()
            );
        }
    }

    fn metric(&self, bin: &str, name: &str) -> u64 {
        testkit::metrics_socket(&self.socket(bin))[name]
            .as_u64()
            .unwrap_or(0)
    }

    fn seconds(&self, bin: &str, name: &str) -> f64 {
        testkit::metrics_socket(&self.socket(bin))[name]
            .as_f64()
            .unwrap_or(0.0)
    }
}

fn bridge_config(
    fluvio_topic: &str,
    broker: &str,
    kafka_topic: &str,
    topic_config: &str,
) -> String {
    format!(
        "apiVersion: 0.1.0\nmeta:\n  version: 0.1.0\n  name: bench-bridge-{kafka_topic}\n  type: kafka-bridge-sink\n  topic: {fluvio_topic}\n  consumer:\n    id: bench-{kafka_topic}\n    offset:\n      start: beginning\n      strategy: manual\nkafka:\n  brokers: {broker}\n  topic: {kafka_topic}\n{topic_config}"
    )
}

/// A bridge from `topic` into the Kafka topic of the same name, created with `LogAppendTime`
/// (the latency benches compare Kafka's append time with the Fluvio record time).
fn log_append_bridge_config(topic: &str, broker: &str, kafka_extra: &str) -> String {
    bridge_config(
        topic,
        broker,
        topic,
        &format!("  topic_config:\n    message.timestamp.type: LogAppendTime\n{kafka_extra}"),
    )
}

fn stop(mut child: Child) {
    testkit::signal(&child, 15);
    let _ = child.wait();
}

/// Mirror a few records once, so the broker's transaction coordinator exists before a timed
/// run: on a fresh broker the first transactional producer waits ~2 s for Kafka to create
/// `__transaction_state`, a cost each cluster pays once, not each start of the bridge.
fn warm_up_transactions(env: &FluvioEnv, broker: &str) {
    let run = Run::new();
    let file = run.dir.path().join("values.txt");
    std::fs::write(&file, values(100, true).join("\n") + "\n").unwrap();
    let topic = env.unique_topic("bench-warm-up");
    env.run(&["topic", "create", &topic]);
    env.run(&["produce", &topic, "-f", file.to_str().unwrap()]);
    let mut bridge = run.spawn(
        env,
        "kafka-bridge-sink",
        &bridge_config(&topic, broker, &topic, ""),
    );
    let started = Instant::now();
    while run.metric("kafka-bridge-sink", "records_mirrored_total") < 100 {
        run.alive("kafka-bridge-sink", &mut bridge);
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "warm-up stalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(bridge);
    env.run(&["topic", "delete", &topic]);
}

// Long on purpose: one scenario in order (load the topic, run the bridge, run the pipe on the
// same records, count both, report).
/// The bridge against `fluvio consume -B -d | kcat -P` on the same Fluvio topic.
fn bridge_vs_pipe(env: &FluvioEnv, broker: &str, n: u64) {
    warm_up_transactions(env, broker);
    for (label, shaped) in [("~1 KB shaped records", true), ("~3 KB raw tweets", false)] {
        let values = values(n, shaped);
        let avg = values.iter().map(String::len).sum::<usize>() / values.len();
        let bytes: usize = values.iter().map(String::len).sum();
        let run = Run::new();
        let file = run.dir.path().join("values.txt");
        std::fs::write(&file, values.join("\n") + "\n").unwrap();
        let topic = env.unique_topic(if shaped { "bench-shaped" } else { "bench-raw" });
        env.run(&["topic", "create", &topic]);
        env.run(&["produce", &topic, "-f", file.to_str().unwrap()]);
        let kafka_topic = topic.clone();

        let started = Instant::now();
        // Fetches of the same size as the pipe's.
        let config = bridge_config(&topic, broker, &kafka_topic, "").replace(
            "  consumer:\n",
            &format!("  consumer:\n    max-bytes: {MIRROR_FETCH}\n"),
        );
        let mut bridge = run.spawn(env, "kafka-bridge-sink", &config);
        let mut rss: f64 = 0.0;
        // Steady state: from the first records mirrored (after connecting to Fluvio and Kafka,
        // creating the Kafka topic and reading its tail) to the last.
        let mut first: Option<(Instant, u64)> = None;
        loop {
            let mirrored = run.metric("kafka-bridge-sink", "records_mirrored_total");
            if mirrored >= n {
                break;
            }
            if first.is_none() && mirrored > 0 {
                first = Some((Instant::now(), mirrored));
            }
            run.alive("kafka-bridge-sink", &mut bridge);
            rss = rss.max(rss_mb(bridge.id()).unwrap_or(0.0));
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "bridge bench stalled"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let bridge_secs = started.elapsed().as_secs_f64();
        let (first_at, first_n) = first.unwrap_or((started, 0));
        let steady_mbs =
            bytes as f64 * (n - first_n) as f64 / n as f64 / 1e6 / first_at.elapsed().as_secs_f64();
        stop(bridge);

        // The same records through the pipe, into the topic the bridge created: what it
        // delivered is what the topic holds beyond the bridge's n records.
        let pipe = pipe_seconds(env, &topic, broker, &kafka_topic);
        let pipe_delivered = kafka_end_offset(broker, &kafka_topic).map(|end| end - n as i64);
        env.run(&["topic", "delete", &topic]);
        let rate = n as f64 / bridge_secs;
        let what = format!("Fluvio -> Kafka, {label} ({avg} B), from process start");
        let baseline_what = match (pipe, pipe_delivered) {
            (Some(_), Some(got)) => format!(
                "fluvio consume -B -d | kcat -P (idempotent, acks=all, lz4; delivered {got} of {n})"
            ),
            _ => "(kcat missing)".to_string(),
        };
        report(&Figure {
            stage: "bridge",
            what: &what,
            value: rate,
            unit: "rec/s",
            baseline_what: &baseline_what,
            baseline: pipe.map(|s| n as f64 / s).unwrap_or(f64::NAN),
            target: ">= 3x the pipe",
        });
        report(&Figure {
            stage: "bridge",
            what: &format!("Fluvio -> Kafka MB/s, {label}, from process start"),
            value: bytes as f64 / 1e6 / bridge_secs,
            unit: "MB/s",
            baseline_what: "target",
            baseline: 60.0,
            target: "-",
        });
        report(&Figure {
            stage: "bridge",
            what: &format!("Fluvio -> Kafka MB/s, {label}, steady (first record to last)"),
            value: steady_mbs,
            unit: "MB/s",
            baseline_what: "target",
            baseline: 60.0,
            target: ">= 60 MB/s",
        });
        report(&Figure {
            stage: "bridge",
            what: &format!("Fluvio -> Kafka MB/s, {label}, from process start"),
            value: bytes as f64 / 1e6 / bridge_secs,
            unit: "MB/s",
            baseline_what: "steady",
            baseline: steady_mbs,
            target: ">= 0.8x",
        });
        report(&Figure {
            stage: "bridge",
            what: &format!("resident memory, Fluvio -> Kafka, {label}"),
            value: rss,
            unit: "MB",
            baseline_what: "target",
            baseline: 128.0,
            target: "<= 128 MB",
        });
    }
}

/// `n` generated tweets: raw v1.1 statuses (~3 KB) or shaped by `tweet-shape` (~1 KB).
fn values(n: u64, shaped: bool) -> Vec<String> {
    x_emulator::generator::Generator::new(1_700_000_000_000).v1_values(n, shaped)
}

// Long on purpose: one scenario in order (a paced producer, the bridge, a live reader, the
// latencies matched record by record).
/// The bridge alone at `rate` records/s for `secs`: shaped records produced into Fluvio with
/// a 5 ms linger and the sources' batch size (the record time is the producer's clock), mirrored into a `LogAppendTime`
/// topic. Returns Fluvio record time -> Kafka append per record after a 2 s warm-up (ms,
/// sorted): Fluvio's own delivery to the bridge is included, as a user sees it.
/// The bridge's added latency at `rate` records/s: (Fluvio record time -> Kafka append,
/// Fluvio record time -> visible to a live `read_committed` consumer), sorted.
fn bridge_latency(
    env: &FluvioEnv,
    broker: &str,
    rate: u64,
    secs: u64,
    kafka: &str,
) -> (Vec<i64>, Vec<i64>) {
    let warmup = rate * 2;
    let values = values(warmup + rate * secs, true);
    let run = Run::new();
    let topic = env.unique_topic("bench-latency");
    env.run(&["topic", "create", &topic]);
    // Into a file: a pipe read only at the end would fill and hold the watcher back.
    let seen_path = run.dir.path().join("visible.txt");
    let watcher = Command::new(testkit::python().expect("the test Python venv (./test.sh)"))
        .arg(testkit::workspace_root().join("testkit/kafka/watch.py"))
        .args([broker, topic.as_str(), &values.len().to_string()])
        .stdout(std::fs::File::create(&seen_path).unwrap())
        .spawn()
        .unwrap();
    let mut bridge = run.spawn(
        env,
        "kafka-bridge-sink",
        &log_append_bridge_config(&topic, broker, kafka),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let fluvio = connector_runtime::cluster::connect("bench-latency")
            .await
            .unwrap();
        let config = fluvio::TopicProducerConfigBuilder::default()
            .linger(Duration::from_millis(5))
            .batch_size(connector_runtime::config::DEFAULT_PRODUCER_BATCH_SIZE as usize)
            .build()
            .unwrap();
        let producer = fluvio
            .topic_producer_with_config(&topic, config)
            .await
            .unwrap();
        // The warm-up, then a wait until the bridge mirrored it (its start-up, e.g.
        // init_transactions, is not what is measured), then the measured records.
        for (part, range) in [(0, 0..warmup as usize), (1, warmup as usize..values.len())] {
            let started = tokio::time::Instant::now();
            for (i, v) in values[range].iter().enumerate() {
                tokio::time::sleep_until(started + Duration::from_secs_f64(i as f64 / rate as f64))
                    .await;
                producer
                    .send(fluvio::RecordKey::NULL, v.as_str())
                    .await
                    .unwrap();
            }
            producer.flush().await.unwrap();
            let waiting = Instant::now();
            while part == 0 && run.metric("kafka-bridge-sink", "records_mirrored_total") < warmup {
                assert!(
                    waiting.elapsed() < Duration::from_secs(60),
                    "the bridge did not mirror the warm-up"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let n = values.len() as u64;
    let started = Instant::now();
    while run.metric("kafka-bridge-sink", "records_mirrored_total") < n {
        run.alive("kafka-bridge-sink", &mut bridge);
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "bridge latency bench stalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut watcher = watcher;
    watcher.wait().unwrap();
    let seen = std::fs::read_to_string(&seen_path).unwrap();
    let commits = run.metric("kafka-bridge-sink", "transactions_committed_total");
    if commits > 0 {
        println!(
            "   {commits} transactions, commits held sends back {:.1} ms on average ({:.1} ms of it waiting for deliveries), {:.1} ms at most",
            run.seconds("kafka-bridge-sink", "transaction_commit_seconds_sum") * 1000.0 / commits as f64,
            run.seconds("kafka-bridge-sink", "transaction_flush_seconds_sum") * 1000.0 / commits as f64,
            run.seconds("kafka-bridge-sink", "transaction_commit_seconds_max") * 1000.0
        );
    }
    stop(bridge);
    let fluvio_times = fluvio_record_times(env, &topic);
    env.run(&["topic", "delete", &topic]);
    let records = read_topic(broker, &topic).expect("the test Python venv (./test.sh)");
    let mut appended: Vec<i64> = records
        .iter()
        .filter(|r| r.fluvio_offset() >= warmup as i64)
        .filter_map(|r| Some(r.ts - fluvio_times.get(&r.fluvio_offset())?))
        .collect();
    appended.sort_unstable();
    let mut visible: Vec<i64> = seen
        .lines()
        .filter_map(|l| {
            let (offset, at) = l.split_once(' ')?;
            let offset: i64 = offset.parse().ok()?;
            let at: i64 = at.parse().ok()?;
            (offset >= warmup as i64).then(|| Some(at - fluvio_times.get(&offset)?))?
        })
        .collect();
    visible.sort_unstable();
    (appended, visible)
}

/// The record time of each offset of a Fluvio topic (ms).
fn fluvio_record_times(env: &FluvioEnv, topic: &str) -> HashMap<i64, i64> {
    env.run(&[
        "consume",
        topic,
        "-B",
        "-d",
        "--maxbytes",
        KAFKA_FETCH,
        "--format",
        "{{offset}} {{time}}",
    ])
    .lines()
    .filter_map(|l| {
        let (offset, time) = l.split_once(' ')?;
        let t = humantime::parse_rfc3339(time.trim()).ok()?;
        let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
        Some((offset.parse().ok()?, ms))
    })
    .collect()
}

/// The end offset of partition 0 of a Kafka topic (`kcat -Q`).
fn kafka_end_offset(broker: &str, topic: &str) -> Option<i64> {
    let out = Command::new(testkit::kcat()?)
        .args(["-Q", "-b", broker, "-t", &format!("{topic}:0:-1")])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// The records a `read_committed` reader finds in `topic` (an end offset also counts the
/// transactions' commit markers).
fn kafka_count(broker: &str, topic: &str) -> Option<u64> {
    let out = Command::new(testkit::kcat()?)
        .args([
            "-C",
            "-b",
            broker,
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .args(["-X", "isolation.level=read_committed", "-f", "x\n"])
        .output()
        .ok()?;
    Some(out.stdout.iter().filter(|b| **b == b'\n').count() as u64)
}

/// Seconds `fluvio consume -B -d <topic> | kcat -P` takes to copy the topic into Kafka.
fn pipe_seconds(env: &FluvioEnv, topic: &str, broker: &str, kafka_topic: &str) -> Option<f64> {
    pipe(env, topic, broker, kafka_topic).and_then(|(secs, ok)| ok.then_some(secs))
}

/// `fluvio consume -B -d <topic> | kcat -P`: its seconds, and whether both ends exited well
/// (`None` without kcat).
fn pipe(env: &FluvioEnv, topic: &str, broker: &str, kafka_topic: &str) -> Option<(f64, bool)> {
    let errors = std::env::temp_dir().join(format!("bench-pipe-{kafka_topic}.err"));
    let kafka = testkit::kcat_producer(broker, kafka_topic)?
        .stdin(Stdio::piped())
        .stderr(std::fs::File::create(&errors).ok()?)
        .spawn();
    let started = Instant::now();
    let mut kafka = kafka.ok()?;
    let consumed = env
        .command()
        .args(["consume", topic, "-B", "-d", "--maxbytes", MIRROR_FETCH])
        .stdout(kafka.stdin.take().unwrap())
        .stderr(std::fs::File::options().append(true).open(&errors).ok()?)
        .status()
        .unwrap()
        .success();
    let produced = kafka.wait().is_ok_and(|s| s.success());
    if !(consumed && produced) {
        let text = std::fs::read_to_string(&errors).unwrap_or_default();
        // The errors, without the frames of a backtrace.
        let tail: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.starts_with("note:"))
            .take(8)
            .collect();
        println!(
            "the pipe failed (fluvio consume ok: {consumed}, kcat ok: {produced}); last errors: {:?}",
            tail
        );
    }
    let _ = std::fs::remove_file(&errors);
    Some((started.elapsed().as_secs_f64(), consumed && produced))
}

/// The p-th percentile (0..=100) of sorted values.
fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64
}

/// A source config into `topic` through tweet-filter (`exclude_retweets`) and tweet-shape,
/// with these `producer:` settings and `twitter:` section (both indented already).
fn filtered_and_shaped_source(name: &str, topic: &str, producer: &str, twitter: &str) -> String {
    let (filter, shape) =
        testkit::tweet_smartmodules_or_skip(name).expect("./bench.sh builds the SmartModules");
    format!(
        "apiVersion: 0.1.0\nmeta:\n  version: 0.1.0\n  name: {name}\n  type: twitter-source\n  topic: {topic}\n  producer:\n{producer}transforms:\n  - uses: {}\n    with:\n      exclude_retweets: \"true\"\n  - uses: {}\ntwitter:\n{twitter}",
        filter.display(),
        shape.display(),
    )
}

/// What one end-to-end run measured.
struct EndToEnd {
    sent: usize,
    arrived: usize,
    /// Emulator send -> Kafka append, per tweet (ms, sorted).
    latency: Vec<i64>,
    /// First send to last Kafka append (s).
    span_secs: f64,
    /// The source's rate: tweets it had read and transformed, first to last (tweets/s).
    source_rate: f64,
    rss_source: f64,
    rss_bridge: f64,
}

// Long on purpose: one scenario in order (emulator, source, bridge, a live reader; the
// latencies matched tweet by tweet).
/// The emulator's sample stream at `rate` tweets/s (0: unpaced) for `limit` tweets through
/// the source (tweet-filter, tweet-shape), Fluvio, the bridge, into a `LogAppendTime` topic.
fn end_to_end(env: &FluvioEnv, broker: &str, rate: f64, limit: u64) -> EndToEnd {
    let mut cfg = EmulatorConfig::new(Corpus::generated(connector_runtime::now_ms()));
    cfg.limit = Some(limit);
    cfg.rate = rate;
    let emu = Emulator::start_background(cfg).unwrap();
    let run = Run::new();
    let topic = env.unique_topic("bench-e2e");
    let source_cfg = filtered_and_shaped_source(
        "bench-source",
        &topic,
        "    linger: 5ms\n",
        &format!(
            "  mode: sample\n  base_url: {}\n  auth:\n    bearer_token: emulator-bearer-token\n",
            emu.base_url()
        ),
    );
    let started = Instant::now();
    let (mut source, mut bridge) = run.pipeline(env, broker, &topic, &source_cfg);
    let (mut rss_source, mut rss_bridge) = (0.0f64, 0.0f64);
    let (mut last, mut still_since) = (u64::MAX, Instant::now());
    // (first time the source had produced, last time its count moved, the count then)
    let mut source_progress: Option<(Instant, Instant, u64)> = None;
    loop {
        run.alive("twitter-source", &mut source);
        run.alive("kafka-bridge-sink", &mut bridge);
        let transformed = run.metric("twitter-source", "records_produced_total")
            + run.metric("twitter-source", "records_filtered_total");
        source_progress = match source_progress {
            None if transformed > 0 => Some((Instant::now(), Instant::now(), transformed)),
            Some((first, _, before)) if transformed > before => {
                Some((first, Instant::now(), transformed))
            }
            other => other,
        };
        rss_source = rss_source.max(rss_mb(source.id()).unwrap_or(0.0));
        rss_bridge = rss_bridge.max(rss_mb(bridge.id()).unwrap_or(0.0));
        let mirrored = run.metric("kafka-bridge-sink", "records_mirrored_total");
        if mirrored != last {
            (last, still_since) = (mirrored, Instant::now());
        }
        if emu.exhausted(Dialect::V2)
            && mirrored > 0
            && still_since.elapsed() > Duration::from_secs(3)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "end-to-end bench stalled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(source);
    stop(bridge);

    let sent: HashMap<String, i64> = emu.sent_times().into_iter().collect();
    env.run(&["topic", "delete", &topic]);
    let records = read_topic(broker, &topic).expect("the test Python venv (./test.sh)");
    let mut latency = Vec::new();
    // Kafka append time and latency per record, in Kafka order, for a closer look:
    // `BENCH_LATENCY_DUMP=<prefix>` writes `<prefix>-<rate>.tsv` per run.
    let dump_prefix = std::env::var_os("BENCH_LATENCY_DUMP");
    let mut dump = String::new();
    let mut last_append = 0;
    for r in &records {
        assert_eq!(r.ts_type, 2, "the Kafka topic keeps LogAppendTime");
        last_append = last_append.max(r.ts);
        let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
        let e2e = v["id"]
            .as_str()
            .and_then(|id| sent.get(id))
            .map(|at| r.ts - at);
        latency.extend(e2e);
        if let (Some(e), true) = (e2e, dump_prefix.is_some()) {
            dump.push_str(&format!("{}\t{e}\n", r.ts));
        }
    }
    if let Some(prefix) = dump_prefix {
        let path = format!("{}-{rate}.tsv", prefix.to_string_lossy());
        std::fs::write(path, dump).unwrap();
    }
    latency.sort_unstable();
    let first_send = sent.values().copied().min().unwrap_or(0);
    let source_rate = source_progress.map_or(0.0, |(first, last, count)| {
        count as f64 / (last - first).as_secs_f64().max(0.001)
    });
    EndToEnd {
        sent: sent.len(),
        arrived: records.len(),
        latency,
        span_secs: (last_append - first_send) as f64 / 1000.0,
        source_rate,
        rss_source,
        rss_bridge,
    }
}

fn main() {
    let n: u64 = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let Some(env) = FluvioEnv::find_or_skip("end-to-end benchmarks") else {
        return;
    };
    let Some(broker) = KafkaBroker::start_or_skip("end-to-end benchmarks") else {
        return;
    };
    let broker = broker.bootstrap();
    // `BENCH_ONLY=latency`: only the bridge's latencies (a quick look at a delivery change);
    // `BENCH_ONLY=pipeline`: only the unpaced whole pipeline (a quick look at throughput);
    // `BENCH_ONLY=bridge`: only the bridge against the pipe.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only == "pipeline" {
        unpaced_pipeline(&env, &broker, n);
        println!("== whole pipeline at 6000 tweets/s for 20 s ==");
        report_memory(&end_to_end(&env, &broker, 6000.0, 6000 * 20));
        return;
    }
    if only == "replay" {
        let n = std::env::var("BENCH_REPLAY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        replay_archive(&env, &broker, n);
        return;
    }
    if only == "bridge" {
        println!("== bridge through Fluvio ({n} records per run) ==");
        bridge_vs_pipe(&env, &broker, n);
        return;
    }
    let only_latency = only == "latency";
    if !only_latency {
        println!("== bridge through Fluvio ({n} records per run) ==");
        bridge_vs_pipe(&env, &broker, n);
    }

    let secs = 20;
    let bridge_alone = bridge_latencies(&env, &broker, secs);
    if only_latency {
        return;
    }
    paced_pipeline(&env, &broker, secs, &bridge_alone);
    unpaced_pipeline(&env, &broker, n);
}

/// How long the latency bench's warm-up run lasts.
const WARM_UP_SECS: u64 = 10;

/// The bridge alone at 6,000 records/s for `secs`: Kafka append and `read_committed`
/// visibility, exactly once (100 ms and 20 ms transactions) against at-least-once. Returns the
/// exactly-once append latencies.
fn bridge_latencies(env: &FluvioEnv, broker: &str, secs: u64) -> Vec<i64> {
    println!("== the bridge alone at 6000 records/s for {secs} s ==");
    // A fresh broker is slow until its JIT has compiled the hot paths: the run measured first
    // met commits of up to 285 ms (8-15 ms at most in the runs after it), so a warm-up run
    // of the same kind comes first and is not counted.
    println!("   warm-up ({WARM_UP_SECS} s, not counted):");
    bridge_latency(env, broker, 6000, WARM_UP_SECS, "");
    let (bridge_alone, visible) = bridge_latency(env, broker, 6000, secs, "");
    let (idempotent, idempotent_visible) =
        bridge_latency(env, broker, 6000, secs, "  delivery: at-least-once\n");
    // The best visibility under the commit's own round trip: short transactions.
    let (short, short_visible) =
        bridge_latency(env, broker, 6000, secs, "  transaction_interval: 20ms\n");
    let p = |v: &[i64], q: f64| percentile(v, q);
    for q in [50.0, 99.0] {
        report(&Figure {
            stage: "bridge",
            what: &format!(
                "added latency p{q} (Fluvio record time -> Kafka append), 6000 rec/s, {} records, exactly once",
                bridge_alone.len()
            ),
            value: p(&bridge_alone, q),
            unit: "ms",
            baseline_what: "target",
            baseline: 50.0,
            target: if q == 99.0 { "< 50 ms" } else { "-" },
        });
        report(&Figure {
            stage: "bridge",
            what: &format!(
                "latency p{q} to a live read_committed reader (Fluvio record time -> visible), 6000 rec/s, exactly once (100 ms transactions)"
            ),
            value: p(&visible, q),
            unit: "ms",
            baseline_what: "the same with delivery: at-least-once",
            baseline: p(&idempotent_visible, q),
            target: "-",
        });
        report(&Figure {
            stage: "bridge",
            what: &format!("latency p{q} to a live read_committed reader, exactly once, transaction_interval: 20ms (append p{q}: {} ms)", p(&short, q)),
            value: p(&short_visible, q),
            unit: "ms",
            baseline_what: "the same with delivery: at-least-once",
            baseline: p(&idempotent_visible, q),
            target: "-",
        });
        report(&Figure {
            stage: "bridge",
            what: &format!("added latency p{q} (-> Kafka append), delivery: at-least-once"),
            value: p(&idempotent, q),
            unit: "ms",
            baseline_what: "target",
            baseline: 50.0,
            target: if q == 99.0 { "< 50 ms" } else { "-" },
        });
    }
    bridge_alone
}

/// The whole pipeline at 6,000 tweets/s for `secs`: latency emulator send -> Kafka append,
/// against the bridge's alone, and each process's memory.
fn paced_pipeline(env: &FluvioEnv, broker: &str, secs: u64, bridge_alone: &[i64]) {
    let p = |v: &[i64], q: f64| percentile(v, q);
    println!("== whole pipeline at 6000 tweets/s for {secs} s ==");
    let paced = end_to_end(env, broker, 6000.0, 6000 * secs);
    println!(
        "sent {} tweets, {} arrived in Kafka (the rest are retweets, dropped by tweet-filter)",
        paced.sent, paced.arrived
    );
    for q in [50.0, 99.0] {
        report(&Figure {
            stage: "pipeline",
            what: &format!("latency p{q} emulator send -> Kafka append, 6000 tweets/s"),
            value: p(&paced.latency, q),
            unit: "ms",
            baseline_what: "the bridge alone (Fluvio record time -> Kafka append)",
            baseline: p(bridge_alone, q),
            target: "-",
        });
    }
    report_memory(&paced);
}

/// Resident memory of each process in a paced run.
fn report_memory(paced: &EndToEnd) {
    for (what, rss) in [
        ("twitter-source", paced.rss_source),
        ("kafka-bridge-sink", paced.rss_bridge),
    ] {
        report(&Figure {
            stage: "pipeline",
            what: &format!("resident memory of {what} at 6000 tweets/s"),
            value: rss,
            unit: "MB",
            baseline_what: "target",
            baseline: if what == "twitter-source" {
                64.0
            } else {
                128.0
            },
            target: if what == "twitter-source" {
                "<= 64 MB"
            } else {
                "<= 128 MB"
            },
        });
    }
}

/// The whole pipeline as fast as the emulator sends: the end-to-end rate, and the source's.
fn unpaced_pipeline(env: &FluvioEnv, broker: &str, n: u64) {
    println!("== whole pipeline unpaced ({n} tweets) ==");
    let fast = end_to_end(env, broker, 0.0, n);
    assert_eq!(fast.sent as u64, n, "the emulator sent every tweet");
    report(&Figure {
        stage: "pipeline",
        what: "highest sustained end-to-end rate (tweets in, first send -> last Kafka append)",
        value: fast.sent as f64 / fast.span_secs,
        unit: "tweets/s",
        baseline_what: "the paced run's rate",
        baseline: 6000.0,
        target: ">= 60000",
    });
    let cores = cores();
    report(&Figure {
        stage: "pipeline",
        what: &format!("the source with tweet-filter and tweet-shape, emulator -> Fluvio, {cores} transform workers"),
        value: fast.source_rate,
        unit: "tweets/s",
        baseline_what: "the whole pipeline's rate",
        baseline: fast.sent as f64 / fast.span_secs,
        target: ">= 100000",
    });
}

/// An archive of `n` generated tweets, v1.1 and v2 in turn, one per line: the tweets
/// tweet-filter (`exclude_retweets`) keeps, in the file's order.
fn write_archive(path: &std::path::Path, n: u64) -> u64 {
    use std::io::Write;
    let gen = x_emulator::generator::Generator::new(connector_runtime::now_ms() - n as i64);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut kept = 0;
    for seq in 0..n {
        let line = if seq % 2 == 0 {
            gen.v1(seq)
        } else {
            gen.v2(seq)
        };
        out.write_all(line.as_bytes()).unwrap();
        out.write_all(b"\n").unwrap();
        kept += u64::from(gen.facts(seq).kind != x_emulator::generator::Kind::Retweet);
    }
    out.flush().unwrap();
    kept
}

// Long on purpose: one scenario in order (write the archive, replay it through the pipeline,
// then through the baseline's pipe, count both, report).
/// The archive replayed through the pipeline, against `fluvio produce -f` then
/// `fluvio consume -B -d | kcat -P`: seconds to the last record in Kafka, records there.
fn replay_archive(env: &FluvioEnv, broker: &str, n: u64) {
    println!("== a {n}-tweet archive replayed into Kafka ==");
    let run = Run::new();
    let archive = run.dir.path().join("archive.jsonl");
    let kept = write_archive(&archive, n);
    let mb = std::fs::metadata(&archive).unwrap().len() as f64 / 1e6;
    warm_up_transactions(env, broker);

    let topic = env.unique_topic("bench-replay");
    let source_cfg = filtered_and_shaped_source(
        "bench-replay",
        &topic,
        "    linger: 20ms\n    batch-size: \"512 KB\"\n",
        &format!(
            "  mode: replay\n  dedup_window: 0\n  replay:\n    path: {}\n",
            archive.display()
        ),
    );
    let started = Instant::now();
    let (mut source, mut bridge) = run.pipeline(env, broker, &topic, &source_cfg);
    let (mut rss_source, mut rss_bridge) = (0.0f64, 0.0f64);
    let (mut last, mut last_change) = (0u64, Instant::now());
    loop {
        run.alive("kafka-bridge-sink", &mut bridge);
        let source_done = matches!(source.try_wait(), Ok(Some(_)));
        if !source_done {
            rss_source = rss_source.max(rss_mb(source.id()).unwrap_or(0.0));
        }
        rss_bridge = rss_bridge.max(rss_mb(bridge.id()).unwrap_or(0.0));
        let mirrored = run.metric("kafka-bridge-sink", "records_mirrored_total");
        if mirrored != last {
            (last, last_change) = (mirrored, Instant::now());
        }
        if source_done && (mirrored >= kept || last_change.elapsed() > Duration::from_secs(20)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "replay bench stalled at {mirrored}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ours = last_change.duration_since(started).as_secs_f64();
    stop(bridge);
    let in_kafka = kafka_count(broker, &topic).map_or(-1, |n| n as i64);

    // The baseline: the same file into a topic, then the topic piped into Kafka.
    let raw = env.unique_topic("bench-replay-raw");
    env.run(&["topic", "create", &raw]);
    let t = Instant::now();
    env.run(&["produce", &raw, "-f", archive.to_str().unwrap()]);
    let produce_secs = t.elapsed().as_secs_f64();
    // The broker does not create topics on first use: the pipe's user creates it first.
    testkit::kafka::admin(&["create-topic", broker, &raw, "1"]);
    let (pipe_secs, pipe_ok) = pipe(env, &raw, broker, &raw).expect("kcat (./test.sh installs it)");
    let baseline = produce_secs + pipe_secs;
    let baseline_in_kafka = kafka_count(broker, &raw).map_or(-1, |n| n as i64);
    env.run(&["topic", "delete", &topic]);
    env.run(&["topic", "delete", &raw]);

    report(&Figure {
        stage: "pipeline",
        what: &format!("replay of {n} tweets ({mb:.0} MB) through filter and shape into Kafka, tweets/s to the last record in Kafka ({ours:.1} s)"),
        value: n as f64 / ours,
        unit: "tweets/s",
        baseline_what: &format!(
            "fluvio produce -f ({produce_secs:.1} s) then consume -B -d | kcat -P ({pipe_secs:.1} s{})",
            if pipe_ok { "" } else { ", failed" }
        ),
        baseline: n as f64 / baseline,
        target: ">= 1.0x",
    });
    report(&Figure {
        stage: "pipeline",
        what: &format!("replay: records in Kafka, of the {kept} the filter keeps"),
        value: in_kafka as f64,
        unit: "records",
        baseline_what: &format!("the baseline's records in Kafka, of {n}"),
        baseline: baseline_in_kafka as f64,
        target: "-",
    });
    report(&Figure {
        stage: "pipeline",
        what: "replay: records missing (or extra) in Kafka",
        value: (kept as i64 - in_kafka).abs() as f64,
        unit: "records",
        baseline_what: "the baseline's (its pipe drops records)",
        baseline: (n as i64 - baseline_in_kafka).abs() as f64,
        target: "<= 0",
    });
    // The source's 64 MB target is at 6,000 tweets/s (the pipeline bench checks it); flat
    // out it runs a chain per core and holds a full queue, so its figure is shown against it.
    // The bridge's 128 MB holds at any rate.
    for (what, rss, baseline_what, baseline, target) in [
        (
            "twitter-source",
            rss_source,
            "the target at 6,000 tweets/s",
            64.0,
            "-",
        ),
        (
            "kafka-bridge-sink",
            rss_bridge,
            "target",
            128.0,
            "<= 128 MB",
        ),
    ] {
        report(&Figure {
            stage: "pipeline",
            what: &format!("replay: resident memory of {what}"),
            value: rss,
            unit: "MB",
            baseline_what,
            baseline,
            target,
        });
    }
}
