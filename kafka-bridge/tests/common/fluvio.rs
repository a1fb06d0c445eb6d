//! The bridge against a real Fluvio topic: a bridge process per Kafka topic, records put into
//! Fluvio with the CLI, and Kafka read back by position.

use std::process::Command;
use std::time::Duration;

use testkit::fluvio::FluvioEnv;
use testkit::kafka::KafkaBroker;
use testkit::process::TestProcess;

use super::BIN;

pub const T: Duration = Duration::from_secs(90);

/// A Fluvio cluster and a Kafka broker, or `None` after SKIPPED.
pub fn fluvio_and_kafka_or_skip(test: &str) -> Option<(FluvioEnv, KafkaBroker)> {
    let env = FluvioEnv::find_or_skip(test)?;
    let broker = KafkaBroker::start_or_skip(test)?;
    Some((env, broker))
}

/// A bridge from a Fluvio topic into a Kafka topic, its files in `dir` (named after the Kafka
/// topic), consumer id `<topic>-<kafka topic>`.
pub struct BridgeRun<'a> {
    env: &'a FluvioEnv,
    pub config: std::path::PathBuf,
    pub log: std::path::PathBuf,
    pub socket: std::path::PathBuf,
}

impl<'a> BridgeRun<'a> {
    pub fn new(
        env: &'a FluvioEnv,
        broker: &KafkaBroker,
        topic: &str,
        dir: &std::path::Path,
        kafka_topic: &str,
        kafka_extra: &str,
    ) -> Self {
        let config = dir.join(format!("{kafka_topic}.yaml"));
        std::fs::write(
            &config,
            format!(
                "apiVersion: 0.1.0\nmeta:\n  version: 0.1.0\n  name: bridge-fluvio-test\n  type: kafka-bridge-sink\n  topic: {topic}\n  consumer:\n    id: {topic}-{kafka_topic}\n    max-bytes: 64 KB\n    offset:\n      start: beginning\n      strategy: manual\nkafka:\n  brokers: {}\n  topic: {kafka_topic}\n  commit_interval: 300ms\n{kafka_extra}",
                broker.bootstrap()
            ),
        )
        .unwrap();
        Self {
            env,
            config,
            log: dir.join(format!("{kafka_topic}.log")),
            socket: dir.join(format!("{kafka_topic}.sock")),
        }
    }

    pub fn start(&self) -> TestProcess {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .env("FLUVIO_METRIC_CONNECTOR", &self.socket);
        for (k, v) in self.env.profile_env() {
            cmd.env(k, v);
        }
        TestProcess::spawn("kafka-bridge-sink", cmd, &self.log)
    }

    /// A metric of the running bridge (its JSON socket).
    pub fn metric(&self, name: &str) -> Option<i64> {
        testkit::metrics_socket(&self.socket)[name].as_i64()
    }
}

/// Put `n` keyed records (`k<i>`, a ~220-byte JSON value) into a new Fluvio topic.
pub fn topic_with_records(
    env: &FluvioEnv,
    prefix: &str,
    dir: &std::path::Path,
    n: usize,
) -> String {
    let topic = env.unique_topic(prefix);
    env.run(&["topic", "create", &topic]);
    produce_records(env, &topic, dir, 0..n, &[]);
    topic
}

/// Produce records `range` (as [`topic_with_records`] makes them) with one `fluvio produce`.
pub fn produce_records(
    env: &FluvioEnv,
    topic: &str,
    dir: &std::path::Path,
    range: std::ops::Range<usize>,
    options: &[&str],
) {
    let data: String = range
        .clone()
        .map(|i| format!("k{i}\t{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(200)))
        .collect();
    let file = dir.join(format!("{topic}-{}.txt", range.start));
    std::fs::write(&file, data).unwrap();
    env.produce_keyed_file(topic, &file, options);
}

/// (key, fluvio.offset) of every record of a Kafka topic.
pub fn kafka_offsets(broker: &str, topic: &str) -> Option<Vec<(String, i64)>> {
    let records = testkit::kafka::read_topic(broker, topic)?;
    Some(
        records
            .iter()
            .map(|r| {
                (
                    String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
                    r.fluvio_offset(),
                )
            })
            .collect(),
    )
}

/// (fluvio.partition, fluvio.offset) of every record of a Kafka topic.
pub fn kafka_positions(broker: &str, topic: &str) -> Option<Vec<(u32, i64)>> {
    let records = testkit::kafka::read_topic(broker, topic)?;
    Some(
        records
            .iter()
            .map(|r| {
                let p = r.headers["fluvio.partition"].as_deref().unwrap_or("?");
                (
                    p.parse().expect("a fluvio.partition header"),
                    r.fluvio_offset(),
                )
            })
            .collect(),
    )
}
