//! The bridge reading a real Fluvio topic (skipped, visibly, without a cluster): every record
//! reaches Kafka once and in order, through SIGKILLs and restarts, with offsets committed under
//! the consumer id. Fetches are kept small (64 KB) so the backlog spans many of them: Fluvio
//! 0.50 drops the batch that straddles a fetch's end, and the bridge must read it again.

use std::process::Command;
use std::time::Duration;

use testkit::fluvio::FluvioEnv;
use testkit::kafka::KafkaBroker;
use testkit::process::TestProcess;

const BIN: &str = env!("CARGO_BIN_EXE_kafka-bridge-sink");
const T: Duration = Duration::from_secs(90);

/// (key, fluvio.offset) of every record of a Kafka topic.
fn kafka_offsets(broker: &str, topic: &str) -> Option<Vec<(String, i64)>> {
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

#[test]
fn mirrors_a_fluvio_topic_exactly_once_through_sigkills() {
    let Some(env) = FluvioEnv::find_or_skip("bridge from Fluvio") else {
        return;
    };
    let Some(broker) = KafkaBroker::start_or_skip("bridge from Fluvio") else {
        return;
    };
    let topic = env.unique_topic("bridge-src");
    env.run(&["topic", "create", &topic]);
    let dir = tempfile::tempdir().unwrap();
    let n = 30_000;
    let data: String = (0..n)
        .map(|i| format!("k{i}\t{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(200)))
        .collect();
    let file = dir.path().join("records.txt");
    std::fs::write(&file, data).unwrap();
    env.run(&[
        "produce",
        &topic,
        "--key-separator",
        "\t",
        "-f",
        file.to_str().unwrap(),
    ]);
    let Some(got) = mirror_through_sigkills(&env, &broker, &topic, dir.path(), "mirrored", "")
    else {
        return;
    };
    let offsets: Vec<i64> = got.iter().map(|(_, o)| *o).collect();
    assert_eq!(
        offsets,
        (0..n as i64).collect::<Vec<_>>(),
        "each record exactly once, in order"
    );
    assert_eq!(got[123].0, "k123", "keys carried over");
    let listed = env.run(&["consumer", "list"]);
    assert!(
        listed.contains(&format!("{topic}-mirrored")),
        "the consumer id's offset is committed:\n{listed}"
    );

    // Resuming from the committed offset alone (not from Kafka): a commit that passed a record
    // Kafka had not acknowledged (records linger 500 ms, 1000 in flight), or one still to
    // be read again after a skipped fetch, loses it.
    let Some(got) = mirror_through_sigkills(
        &env,
        &broker,
        &topic,
        dir.path(),
        "mirrored-from-commits",
        "  resume_from_kafka: false\n  linger: 500ms\n  max_in_flight: 1000\n",
    ) else {
        return;
    };
    let mut offsets: Vec<i64> = got.iter().map(|(_, o)| *o).collect();
    offsets.sort_unstable();
    offsets.dedup();
    assert_eq!(
        offsets,
        (0..n as i64).collect::<Vec<_>>(),
        "every record at least once from the committed offsets"
    );
}

/// Mirror all `n` records of `topic` into Kafka `kafka_topic` (with a consumer id of its own),
/// the bridge killed three times at random points, then run to the end and stopped with
/// SIGTERM. Returns (key, fluvio.offset) of what Kafka holds; `None` (SKIPPED) without the
/// Python venv that reads Kafka.
fn mirror_through_sigkills(
    env: &FluvioEnv,
    broker: &KafkaBroker,
    topic: &str,
    dir: &std::path::Path,
    kafka_topic: &str,
    kafka_extra: &str,
) -> Option<Vec<(String, i64)>> {
    let n = 30_000;
    let cfg = dir.join(format!("{kafka_topic}.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "apiVersion: 0.1.0\nmeta:\n  version: 0.1.0\n  name: bridge-fluvio-test\n  type: kafka-bridge-sink\n  topic: {topic}\n  consumer:\n    id: {topic}-{kafka_topic}\n    max-bytes: 64 KB\n    offset:\n      start: beginning\n      strategy: manual\nkafka:\n  brokers: {}\n  topic: {kafka_topic}\n  commit_interval: 300ms\n{kafka_extra}",
            broker.bootstrap()
        ),
    )
    .unwrap();
    let socket = dir.join(format!("{kafka_topic}.sock"));
    let start = || {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .env("FLUVIO_METRIC_CONNECTOR", &socket);
        for (k, v) in env.profile_env() {
            cmd.env(k, v);
        }
        TestProcess::spawn(
            "kafka-bridge-sink",
            cmd,
            &dir.join(format!("{kafka_topic}.log")),
        )
    };
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..3 {
        let mut p = start();
        std::thread::sleep(Duration::from_millis(rng.u64(1500..3500)));
        p.signal(9);
        p.wait_timeout(T);
    }
    let mut p = start();
    let begun = std::time::Instant::now();
    loop {
        let Some(got) = kafka_offsets(&broker.bootstrap(), kafka_topic) else {
            testkit::skip("bridge from Fluvio", "no Python venv to read Kafka");
            return None;
        };
        let mut seen: Vec<i64> = got.iter().map(|(_, o)| *o).collect();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() >= n {
            break;
        }
        assert!(
            begun.elapsed() < T,
            "{} of {n} mirrored; log:\n{}",
            seen.len(),
            p.output()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // With the topic idle (a read pending forever), the acknowledgements are still taken in:
    // the metrics show every record mirrored.
    testkit::wait_for("the idle bridge to count every acknowledgement", T, || {
        let m = testkit::metrics_socket(&socket);
        (m["acked_offset{partition=0}"].as_i64() == Some(n as i64 - 1)).then_some(())
    });
    p.signal(15);
    assert_eq!(p.wait_timeout(T).code(), Some(0), "{}", p.output());
    kafka_offsets(&broker.bootstrap(), kafka_topic)
}
