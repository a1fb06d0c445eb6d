//! What the bridge's integration tests share: a bridge process mirroring a capture file
//! (`--input-file`, the same core as Fluvio partitions) into a real broker, the
//! test records, and exactly-once checks that describe what differs.
#![allow(dead_code)]

pub mod fluvio;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use connector_runtime::output::capture_line;
use connector_runtime::Record;
use testkit::kafka::KafkaRecord;
use testkit::process::TestProcess;

pub const BIN: &str = env!("CARGO_BIN_EXE_kafka-bridge-sink");
pub const T: Duration = Duration::from_secs(60);

pub struct Bridge {
    pub dir: tempfile::TempDir,
    pub input: PathBuf,
    pub config: PathBuf,
    /// How many processes were started: each writes its own log.
    starts: std::sync::atomic::AtomicUsize,
}

impl Bridge {
    pub fn new(broker: &str, kafka_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("input.jsonl");
        std::fs::write(&input, "").unwrap();
        let config = dir.path().join("bridge.yaml");
        let bridge = Self {
            dir,
            input,
            config,
            starts: Default::default(),
        };
        bridge.configure(broker, kafka_extra);
        bridge
    }

    /// (Re)write the config: the next start uses it, on the same input and commits.
    pub fn configure(&self, broker: &str, kafka_extra: &str) {
        std::fs::write(
            &self.config,
            format!(
                "apiVersion: 0.1.0\nmeta:\n  version: 0.1.0\n  name: bridge-test\n  type: kafka-bridge-sink\n  topic: tweets\n  consumer:\n    id: bridge-test\n    offset:\n      start: beginning\n      strategy: manual\nkafka:\n  brokers: {broker}\n  topic: tweets\n  commit_interval: 200ms\n{kafka_extra}"
            ),
        )
        .unwrap();
    }

    pub fn append(&self, records: &[Record]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.input)
            .unwrap();
        let text: String = records.iter().map(capture_line).collect();
        f.write_all(text.as_bytes()).unwrap();
    }

    pub fn start(&self) -> TestProcess {
        self.start_with_log("info")
    }

    pub fn start_with_log(&self, rust_log: &str) -> TestProcess {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--input-file")
            .arg(&self.input)
            .env("RUST_LOG", rust_log)
            .env("FLUVIO_METRIC_CONNECTOR", self.dir.path().join("m.sock"));
        TestProcess::spawn(
            "kafka-bridge-sink",
            cmd,
            &self.dir.path().join(format!(
                "bridge.{}.log",
                self.starts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )),
        )
    }

    pub fn committed(&self) -> Option<i64> {
        std::fs::read_to_string(format!("{}.committed", self.input.display()))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn wait_committed(&self, proc: &mut TestProcess, offset: i64) {
        let start = std::time::Instant::now();
        while self.committed() != Some(offset) {
            if let Some(s) = proc.try_status() {
                panic!(
                    "bridge exited ({s}) before committing {offset}: {}",
                    proc.output()
                );
            }
            assert!(
                start.elapsed() < T,
                "committed {:?}, want {offset}; log:\n{}",
                self.committed(),
                proc.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn wait_for_log(proc: &mut TestProcess, text: &str) {
    let start = std::time::Instant::now();
    while !proc.output().contains(text) {
        if let Some(s) = proc.try_status() {
            panic!("exited ({s}) before logging `{text}`: {}", proc.output());
        }
        assert!(start.elapsed() < T, "no `{text}` in:\n{}", proc.output());
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn records(n: usize) -> Vec<Record> {
    let g = x_emulator::generator::Generator::new(1_700_000_000_000);
    (0..n as u64)
        .map(|s| {
            let f = g.facts(s);
            Record {
                key: Some(f.id.to_string().into_bytes().into()),
                value: format!("{{\"id\":\"{}\",\"n\":{s}}}", f.id)
                    .into_bytes()
                    .into(),
                timestamp_ms: Some(f.time_ms),
            }
        })
        .collect()
}

pub fn fluvio_offset(r: &KafkaRecord) -> i64 {
    r.headers["fluvio.offset"]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// The partition the Java client's default partitioner picks for `key`: Kafka's murmur2
/// (seed 0x9747b28c), made positive, modulo the partition count. Written from the algorithm
/// (Kafka's `Utils.murmur2`), to check the bridge against it.
pub fn java_partition(key: &[u8], partitions: u32) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    (h & 0x7fff_ffff) % partitions
}

/// Each Fluvio offset exactly once, in order, in each Kafka partition (key partitioning), each
/// key in the partition the Java client would put it in.
pub fn assert_exactly_once_by_key(got: &[KafkaRecord], n: usize) {
    let mut by_partition: std::collections::BTreeMap<i32, Vec<&KafkaRecord>> = Default::default();
    for r in got {
        by_partition.entry(r.partition).or_default().push(r);
    }
    assert!(
        by_partition.len() > 1,
        "key partitioning used one partition"
    );
    let partitions = by_partition.len().max(3) as u32;
    for r in got.iter().take(200) {
        let key = r.key.as_deref().expect("a keyed record");
        assert_eq!(
            r.partition as u32,
            java_partition(key, partitions),
            "the Java client's partition for key {}",
            String::from_utf8_lossy(key)
        );
    }
    for (p, records) in &by_partition {
        let offsets: Vec<i64> = records.iter().map(|r| fluvio_offset(r)).collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "Kafka partition {p}: Fluvio offsets out of order or repeated"
        );
    }
    let mut all: Vec<i64> = got.iter().map(fluvio_offset).collect();
    all.sort_unstable();
    let expected: Vec<i64> = (0..n as i64).collect();
    assert!(
        all == expected,
        "not exactly once: {} records for {n}",
        all.len()
    );
}

/// Each Fluvio offset exactly once, in order.
pub fn assert_exactly_once(got: &[KafkaRecord], n: usize) {
    let offsets: Vec<i64> = got.iter().map(fluvio_offset).collect();
    let expected: Vec<i64> = (0..n as i64).collect();
    if offsets != expected {
        panic!(
            "not exactly once in order: {} records for {n} (first mismatch at index {:?}); {}",
            offsets.len(),
            offsets.iter().zip(&expected).position(|(a, b)| a != b),
            describe_mismatch(got, n)
        );
    }
}

/// Where Kafka's copy differs from 0..n: the Fluvio offsets written more than once (as ranges,
/// with the Kafka offsets of each repeat) and those missing, so a failure shows its shape.
pub fn describe_mismatch(got: &[KafkaRecord], n: usize) -> String {
    let mut seen: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for r in got {
        seen.entry(fluvio_offset(r)).or_default().push(r.offset);
    }
    let ranges = |offsets: Vec<i64>| -> Vec<String> {
        let mut out: Vec<(i64, i64)> = Vec::new();
        for o in offsets {
            match out.last_mut() {
                Some((_, end)) if *end + 1 == o => *end = o,
                _ => out.push((o, o)),
            }
        }
        out.iter()
            .take(10)
            .map(|(a, b)| format!("{a}..={b}"))
            .collect()
    };
    let repeated: Vec<i64> = seen
        .iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|(o, _)| *o)
        .collect();
    let first_repeat = repeated
        .first()
        .map(|o| format!("{o} at Kafka offsets {:?}", seen[o]));
    let missing: Vec<i64> = (0..n as i64).filter(|o| !seen.contains_key(o)).collect();
    format!(
        "written more than once: {} ({:?}; first: {first_repeat:?}); missing: {} ({:?})",
        repeated.len(),
        ranges(repeated.clone()),
        missing.len(),
        ranges(missing)
    )
}
