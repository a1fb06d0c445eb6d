//! Bridge benchmarks (`cargo bench -p kafka-bridge-sink`): records/s and MB/s mirrored into a
//! real Kafka broker for ~1 KB shaped records and ~3.7 KB raw tweets, with resident memory;
//! records fed from a capture file (the Kafka side alone, no Fluvio), against `kcat -P` writing
//! the same values in the same run, and the cost of transactions (the default, exactly once)
//! against the idempotent producer (`delivery: at-least-once`) in the same run. The bridge reading a Fluvio topic (against
//! `fluvio consume -B -d | kcat -P`) is measured by the end-to-end bench (`e2e/benches`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use connector_runtime::output::capture_line;
use connector_runtime::Record;
use testkit::bench::{report, rss_mb, Figure};
use testkit::kafka::KafkaBroker;

const BIN: &str = env!("CARGO_BIN_EXE_kafka-bridge-sink");

/// `n` generated tweets: raw v1.1 statuses (~3 KB) or shaped by `tweet-shape` (~1 KB).
fn values(n: u64, shaped: bool) -> Vec<String> {
    x_emulator::generator::Generator::new(1_700_000_000_000).v1_values(n, shaped)
}

/// Mirror a capture file of `vals` into `topic` (`kafka_extra`: more `kafka:` settings):
/// (records/s, MB/s, max RSS MB).
fn bridge_file(broker: &str, topic: &str, vals: &[String], kafka_extra: &str) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let text: String = vals
        .iter()
        .enumerate()
        .map(|(i, v)| {
            capture_line(&Record::new(
                Some(i.to_string().into_bytes().into()),
                v.clone().into_bytes(),
            ))
        })
        .collect();
    std::fs::write(&input, text).unwrap();
    let cfg = dir.path().join("b.yaml");
    std::fs::write(&cfg, format!("meta: {{name: bench, type: kafka-bridge-sink, version: 0.1.0, topic: tweets}}\nkafka:\n  brokers: {broker}\n  topic: {topic}\n  commit_interval: 100ms\n{kafka_extra}")).unwrap();
    let committed = format!("{}.committed", input.display());
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--input-file")
        .arg(&input)
        .env("RUST_LOG", "warn")
        .env("FLUVIO_METRIC_CONNECTOR", dir.path().join("m.sock"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let last = (vals.len() - 1).to_string();
    let mut start: Option<Instant> = None;
    let mut rss: f64 = 0.0;
    let begun = Instant::now();
    loop {
        let c = std::fs::read_to_string(&committed).unwrap_or_default();
        if start.is_none() && !c.is_empty() {
            start = Some(Instant::now());
        }
        if c.trim() == last {
            break;
        }
        rss = rss.max(rss_mb(child.id()).unwrap_or(0.0));
        assert!(
            begun.elapsed() < Duration::from_secs(300),
            "bridge bench stalled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = start
        .map(|s| s.elapsed().as_secs_f64())
        .unwrap_or(1.0)
        .max(1e-3);
    testkit::signal(&child, 15);
    let _ = child.wait();
    let bytes: usize = vals.iter().map(String::len).sum();
    // The first commit lands after the first interval: count from there, over the rest.
    let n = vals.len() as f64;
    (n / (secs + 0.1), bytes as f64 / 1e6 / (secs + 0.1), rss)
}

fn kcat_rate(broker: &str, topic: &str, vals: &[String]) -> Option<f64> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("v.txt");
    std::fs::write(&f, vals.join("\n") + "\n").unwrap();
    let mut kcat = testkit::kcat_producer(broker, topic)?;
    let start = Instant::now();
    let status = kcat.arg("-l").arg(&f).status().ok()?;
    status
        .success()
        .then(|| vals.len() as f64 / start.elapsed().as_secs_f64())
}

fn main() {
    let n: u64 = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let Some(broker) = KafkaBroker::start_or_skip("bridge bench") else {
        return;
    };
    println!("== kafka-bridge-sink into a real Kafka broker ({n} records per run) ==");
    for (label, shaped) in [
        ("~1 KB shaped records", true),
        ("~3.7 KB raw tweets", false),
    ] {
        let vals = values(n, shaped);
        let avg = vals.iter().map(String::len).sum::<usize>() / vals.len();
        let topic = if shaped { "bench-shaped" } else { "bench-raw" };
        let (rate, mbs, rss) = bridge_file(&broker.bootstrap(), topic, &vals, "");
        let idempotent = format!("{topic}-idempotent");
        let (at_least_once, _, _) = bridge_file(
            &broker.bootstrap(),
            &idempotent,
            &vals,
            "  delivery: at-least-once\n",
        );
        report(&Figure {
            stage: "bridge",
            what: &format!("mirror {label}, exactly once (transactions every 100 ms)"),
            value: rate,
            unit: "rec/s",
            baseline_what: "delivery: at-least-once (idempotent)",
            baseline: at_least_once,
            target: "-",
        });
        // kcat writes into the topic the bridge created (Kafka here creates no topic by itself).
        let base = kcat_rate(&broker.bootstrap(), topic, &vals);
        let what = format!("mirror {label} ({avg} B), from memory");
        match base {
            Some(b) => report(&Figure {
                stage: "bridge",
                what: &what,
                value: rate,
                unit: "rec/s",
                baseline_what: "kcat -P (idempotent, acks=all, lz4)",
                baseline: b,
                target: "-",
            }),
            None => report(&Figure {
                stage: "bridge",
                what: &what,
                value: rate,
                unit: "rec/s",
                baseline_what: "(kcat missing)",
                baseline: f64::NAN,
                target: "-",
            }),
        }
        report(&Figure {
            stage: "bridge",
            what: &format!("mirror {label} MB/s"),
            value: mbs,
            unit: "MB/s",
            baseline_what: "target",
            baseline: 60.0,
            target: ">= 60 MB/s",
        });
        report(&Figure {
            stage: "bridge",
            what: &format!("resident memory, {label}"),
            value: rss,
            unit: "MB",
            baseline_what: "target",
            baseline: 128.0,
            target: "<= 128 MB",
        });
    }
    compare_codecs(&broker, n);
}

/// The trade-off of `kafka.compression`: rate and bytes on the broker's disk per codec, for the
/// ~1 KB shaped records, against lz4 (the fastest of librdkafka's codecs) in the same run.
/// gzip and none are the codecs every client decodes without extras (kafka-python needs the
/// `lz4`, `python-snappy` or `zstandard` package for the others).
fn compare_codecs(broker: &KafkaBroker, n: u64) {
    let vals = values(n, true);
    let raw: usize = vals.iter().map(String::len).sum();
    let mut lz4 = (f64::NAN, f64::NAN);
    let gzip6 = "gzip\n  options: {compression.level: \"6\"}";
    for (i, codec) in ["lz4", "none", "gzip", gzip6, "snappy", "zstd"]
        .into_iter()
        .enumerate()
    {
        let topic = format!("bench-codec-{i}");
        let (rate, mbs, _) = bridge_file(
            &broker.bootstrap(),
            &topic,
            &vals,
            &format!("  compression: {codec}\n"),
        );
        let codec = if codec == gzip6 {
            "gzip (level 6)"
        } else if codec == "gzip" {
            "gzip (level 1, the default)"
        } else {
            codec
        };
        let ratio = raw as f64 / broker.topic_bytes(&topic).max(1) as f64;
        if codec == "lz4" {
            lz4 = (rate, ratio);
        }
        report(&Figure {
            stage: "bridge",
            what: &format!("compression: {codec}, ~1 KB shaped records ({mbs:.1} MB/s)"),
            value: rate,
            unit: "rec/s",
            baseline_what: "compression: lz4",
            baseline: lz4.0,
            target: "-",
        });
        report(&Figure {
            stage: "bridge",
            what: &format!("compression: {codec}, record bytes per byte on Kafka's disk"),
            value: ratio,
            unit: "x",
            baseline_what: "compression: lz4",
            baseline: lz4.1,
            target: "-",
        });
    }
}
