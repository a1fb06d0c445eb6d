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
    let cfg = dir.path().join("bridge.yaml");
    std::fs::write(
        &cfg,
        format!(
            "apiVersion: 0.1.0\nmeta:\n  version: 0.1.0\n  name: bridge-fluvio-test\n  type: kafka-bridge-sink\n  topic: {topic}\n  consumer:\n    id: {topic}-bridge\n    max-bytes: 64 KB\n    offset:\n      start: beginning\n      strategy: manual\nkafka:\n  brokers: {}\n  topic: mirrored\n  commit_interval: 300ms\n",
            broker.bootstrap()
        ),
    )
    .unwrap();
    let start = || {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .env("FLUVIO_METRIC_CONNECTOR", dir.path().join("m.sock"));
        for (k, v) in env.profile_env() {
            cmd.env(k, v);
        }
        TestProcess::spawn("kafka-bridge-sink", cmd, &dir.path().join("bridge.log"))
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
        let got = kafka_offsets(&broker.bootstrap(), "mirrored");
        let Some(got) = got else {
            testkit::skip("bridge from Fluvio", "no Python venv to read Kafka");
            return;
        };
        if got.len() >= n {
            break;
        }
        assert!(
            begun.elapsed() < T,
            "{} of {n} mirrored; log:\n{}",
            got.len(),
            p.output()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // With the topic idle (a read pending forever), the acknowledgements are still taken in:
    // the metrics show every record mirrored.
    testkit::wait_for("the idle bridge to count every acknowledgement", T, || {
        let m = testkit::metrics_socket(&dir.path().join("m.sock"));
        (m["acked_offset{partition=0}"].as_i64() == Some(n as i64 - 1)).then_some(())
    });
    p.signal(15);
    assert_eq!(p.wait_timeout(T).code(), Some(0), "{}", p.output());
    let got = kafka_offsets(&broker.bootstrap(), "mirrored").unwrap();
    let offsets: Vec<i64> = got.iter().map(|(_, o)| *o).collect();
    assert_eq!(
        offsets,
        (0..n as i64).collect::<Vec<_>>(),
        "each record exactly once, in order"
    );
    assert_eq!(got[123].0, "k123", "keys carried over");
    let listed = env.run(&["consumer", "list"]);
    assert!(
        listed.contains(&format!("{topic}-bridge")),
        "the consumer id's offset is committed:\n{listed}"
    );
}
