//! The bridge against a real Apache Kafka broker (from the test harness), read back by real
//! clients (Python confluent-kafka, kcat). Records come from a capture file
//! (`--input-file`), which exercises the same core as Fluvio partitions (ordering,
//! commit after acknowledgement, resume from the headers) without a Fluvio cluster.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use connector_runtime::Record;
use testkit::kafka::{read_topic, KafkaBroker, KafkaRecord};

#[test]
fn the_harness_broker_round_trips_a_record_with_a_real_client() {
    let Some(broker) = KafkaBroker::start_or_skip("kafka harness round trip") else {
        return;
    };
    let Some(py) = testkit::python() else {
        testkit::skip("kafka harness round trip", "no Python venv");
        return;
    };
    let script = r#"
import sys
from confluent_kafka import Producer, Consumer
from confluent_kafka.admin import AdminClient, NewTopic
b = sys.argv[1]
a = AdminClient({"bootstrap.servers": b})
a.create_topics([NewTopic("harness", 1, 1)])["harness"].result()
p = Producer({"bootstrap.servers": b})
p.produce("harness", key=b"k", value=b"hello kafka")
assert p.flush(10) == 0
c = Consumer({"bootstrap.servers": b, "group.id": "g", "auto.offset.reset": "earliest"})
c.subscribe(["harness"])
for _ in range(60):
    m = c.poll(1)
    if m is not None and not m.error():
        print(m.key().decode(), m.value().decode())
        break
"#;
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(broker.bootstrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "k hello kafka");
}

// Long on purpose: one round trip, then a check per field of every record read back.
#[test]
fn recorded_payloads_round_trip_with_keys_timestamps_and_headers() {
    let Some(broker) = KafkaBroker::start_or_skip("bridge round trip") else {
        return;
    };
    let bridge = Bridge::new(&broker.bootstrap(), "");
    let started_ms = connector_runtime::now_ms();
    let mut input: Vec<Record> = Vec::new();
    if let Some(dir) = testkit::data::tweets_dir_or_skip("recorded payloads through the bridge") {
        for f in ["v1_statuses.jsonl", "v2_messages.jsonl"] {
            for line in testkit::data::lines(&dir, f) {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let id = v["id_str"]
                    .as_str()
                    .or_else(|| v["data"]["id"].as_str())
                    .unwrap()
                    .to_string();
                input.push(Record {
                    key: Some(id.into_bytes().into()),
                    value: line.into_bytes().into(),
                    // Recent: kept as CreateTime.
                    timestamp_ms: Some(started_ms - 3_600_000 + input.len() as i64),
                });
            }
        }
    }
    // Times from 2023: too old for Kafka's producer-state expiry, so kept in a header.
    input.extend(records(50));
    input.push(Record {
        key: None,
        value: "no key here".into(),
        timestamp_ms: None,
    });
    bridge.append(&input);
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, input.len() as i64 - 1);
    proc.stop_cleanly(T);

    let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
        return;
    };
    assert_exactly_once(&got, input.len());
    for (r, want) in got.iter().zip(&input) {
        assert_eq!(r.value, want.value.to_vec(), "value byte for byte");
        assert_eq!(
            r.key,
            want.key.as_ref().map(|k| k.to_vec()),
            "key (a null key stays null)"
        );
        let replaced = r.headers.get("fluvio.timestamp").cloned().flatten();
        match want.timestamp_ms {
            Some(ts) if ts > started_ms - 12 * 3_600_000 => {
                assert_eq!((r.ts_type, r.ts), (1, ts), "Fluvio time as CreateTime");
                assert_eq!(
                    replaced, None,
                    "no fluvio.timestamp when CreateTime is the Fluvio time"
                );
            }
            Some(ts) => {
                assert!(
                    r.ts >= started_ms,
                    "an old Fluvio time gives the current time: {}",
                    r.ts
                );
                assert_eq!(
                    replaced,
                    Some(ts.to_string()),
                    "the Fluvio time in fluvio.timestamp"
                );
            }
            None => {
                assert!(r.ts >= started_ms);
                assert_eq!(replaced, None);
            }
        }
        assert_eq!(r.headers["fluvio.topic"].as_deref(), Some("tweets"));
        assert_eq!(r.headers["fluvio.partition"].as_deref(), Some("0"));
        assert_eq!(r.partition, 0);
    }

    // kcat reads the same thing.
    if let Some(kcat) = testkit::kcat() {
        let out = Command::new(kcat)
            .args([
                "-C",
                "-b",
                &broker.bootstrap(),
                "-t",
                "tweets",
                "-e",
                "-q",
                "-f",
                "%k\\t%h\\n",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), input.len());
        let first_key = String::from_utf8(input[0].key.clone().unwrap().to_vec()).unwrap();
        assert!(
            lines[0].starts_with(&first_key) && lines[0].contains("fluvio.offset=0"),
            "{}",
            lines[0]
        );
    } else {
        testkit::skip("kcat read-back", "kcat is not installed");
    }
}

#[test]
fn sigkill_at_random_points_leaves_each_record_exactly_once() {
    let Some(broker) = KafkaBroker::start_or_skip("bridge SIGKILL") else {
        return;
    };
    let bridge = Bridge::new(&broker.bootstrap(), "  linger: 5ms\n");
    let n = 100_000;
    bridge.append(&records(n));
    let mut rng = fastrand::Rng::with_seed(7);
    let mut kills = 0;
    for _ in 0..5 {
        let mut proc = bridge.start();
        wait_for_log(&mut proc, "mirroring a capture file");
        std::thread::sleep(Duration::from_millis(rng.u64(10..250)));
        if proc.try_status().is_some() || bridge.committed() == Some(n as i64 - 1) {
            break;
        }
        proc.signal(9);
        proc.wait_timeout(T);
        kills += 1;
    }
    assert!(kills >= 3, "the bridge was killed mid-stream {kills} times");
    let mut proc = bridge.start();
    wait_for_log(&mut proc, "mirroring a capture file");
    bridge.wait_committed(&mut proc, n as i64 - 1);
    proc.stop_cleanly(T);
    let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
        return;
    };
    assert_exactly_once(&got, n);
    assert!(
        proc.output().contains("resuming") || proc.output().contains("mirroring a capture file")
    );
}

#[test]
fn a_broker_restart_mid_stream_loses_nothing() {
    let Some(mut broker) = KafkaBroker::start_or_skip("bridge broker restart") else {
        return;
    };
    let bridge = Bridge::new(&broker.bootstrap(), "");
    let all = records(3000);
    bridge.append(&all[..1000]);
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, 999);
    broker.stop();
    bridge.append(&all[1000..2000]);
    std::thread::sleep(Duration::from_secs(2));
    broker.restart().unwrap();
    bridge.append(&all[2000..]);
    bridge.wait_committed(&mut proc, 2999);
    proc.stop_cleanly(T);
    let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
        return;
    };
    assert_exactly_once(&got, 3000);
}

#[test]
fn sigterm_delivers_in_flight_records_and_commits_before_exit() {
    let Some(broker) = KafkaBroker::start_or_skip("bridge SIGTERM") else {
        return;
    };
    // A long commit interval and linger: only the shutdown path can commit in time.
    let bridge = Bridge::new(&broker.bootstrap(), "  linger: 500ms\n");
    std::fs::write(
        &bridge.config,
        std::fs::read_to_string(&bridge.config)
            .unwrap()
            .replace("commit_interval: 200ms", "commit_interval: 1h"),
    )
    .unwrap();
    bridge.append(&records(20_000));
    let mut proc = bridge.start();
    wait_for_log(&mut proc, "mirroring a capture file");
    std::thread::sleep(Duration::from_millis(300));
    proc.stop_cleanly(T);
    let committed = bridge.committed().expect("committed on the way out");
    let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
        return;
    };
    assert_eq!(
        got.len() as i64,
        committed + 1,
        "Kafka holds exactly what was committed"
    );
    assert_exactly_once(&got, got.len());
}

#[test]
fn bad_input_fails_clearly_and_loses_nothing() {
    // No broker at all: the bridge waits, says so, and stops cleanly on SIGTERM.
    let port = testkit::free_port();
    let bridge = Bridge::new(&format!("127.0.0.1:{port}"), "");
    bridge.append(&records(10));
    let mut proc = bridge.start();
    let start = std::time::Instant::now();
    while !proc.output().contains("Kafka is not reachable yet") {
        assert!(start.elapsed() < T, "{}", proc.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    proc.stop_cleanly(T);
    assert_eq!(bridge.committed(), None, "nothing committed");

    let Some(broker) = KafkaBroker::start_or_skip("bridge bad input") else {
        return;
    };
    // A missing topic with creation off.
    let bridge = Bridge::new(&broker.bootstrap(), "  create_topic: false\n");
    bridge.append(&records(10));
    let mut proc = bridge.start();
    assert_eq!(proc.wait_timeout(T).code(), Some(1));
    assert!(
        proc.output()
            .contains("does not exist and kafka.create_topic is false"),
        "{}",
        proc.output()
    );

    // A record over Kafka's size limit: exit 1 naming its offset; everything before it is in
    // Kafka and committed, nothing after it is skipped.
    let bridge = Bridge::new(&broker.bootstrap(), "");
    let mut rs = records(5);
    rs.insert(
        3,
        Record {
            key: Some("big".into()),
            value: vec![b'x'; 2_000_000].into(),
            timestamp_ms: None,
        },
    );
    bridge.append(&rs);
    let mut proc = bridge.start();
    assert_eq!(proc.wait_timeout(T).code(), Some(1), "{}", proc.output());
    let out = proc.output();
    assert!(
        out.contains("offset 3") && out.contains("not committed"),
        "{out}"
    );
    assert_eq!(bridge.committed(), Some(2));
    let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
        return;
    };
    assert_exactly_once(&got, 3);

    // A config without a consumer id is refused (records produced while down would be lost).
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "meta:\n  version: 0.1.0\n  name: b\n  type: kafka-bridge-sink\n  topic: tweets\nkafka:\n  brokers: 127.0.0.1:1\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .env("FLUVIO_METRIC_CONNECTOR", dir.path().join("s"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("meta.consumer.id: required"));
}

/// Mirror 200,000 records (`extra`: more `kafka:` settings) while `fault` happens to the
/// broker 300 ms in (records in flight), then check Kafka holds each exactly once, in order
/// (with the bridge's warnings if not), as the fault matrix's row `scenario`. Returns the
/// bridge's log (`None`: skipped).
fn mirror_through_broker_fault(
    test: &str,
    scenario: &str,
    extra: &str,
    fault: impl FnOnce(&mut KafkaBroker),
) -> Option<String> {
    let mut broker = KafkaBroker::start_or_skip(test)?;
    // librdkafka's idempotence log (producer id, epoch, sequence errors, retries): what a
    // failure needs to be understood.
    let bridge = Bridge::new(
        &broker.bootstrap(),
        &format!("  linger: 50ms\n{extra}  options:\n    debug: eos\n"),
    );
    let n = 200_000;
    bridge.append(&records(n));
    let mut proc = bridge.start_with_log("info,librdkafka=debug");
    wait_for_log(&mut proc, "mirroring a capture file");
    std::thread::sleep(Duration::from_millis(300));
    broker.note("the fault starts");
    fault(&mut broker);
    broker.note("the fault is over");
    bridge.wait_committed(&mut proc, n as i64 - 1);
    proc.stop_cleanly(T);
    let got = read_topic(&broker.bootstrap(), "tweets")?;
    if got.len() != n {
        // What the bridge and the broker saw, without the reconnection noise.
        let noise = [
            "REBOOTSTRAP",
            "brokers are down",
            "Connection refused",
            "client error",
        ];
        let bridge_log = proc.output();
        let bridge_lines: Vec<&str> = bridge_log
            .lines()
            .filter(|l| !l.contains(" INFO ") || l.contains("librdkafka"))
            .filter(|l| !noise.iter().any(|w| l.contains(w)))
            .take(200)
            .collect();
        eprintln!(
            "bridge warnings, errors and librdkafka EOS log:\n{}",
            bridge_lines.join("\n")
        );
        let broker_log = std::fs::read_to_string(broker.log_path()).unwrap_or_default();
        let broker_lines: Vec<&str> = broker_log
            .lines()
            .skip_while(|l| !l.contains("the fault starts"))
            .filter(|l| {
                ["=== test", "tweets-0", " WARN ", " ERROR "]
                    .iter()
                    .any(|w| l.contains(w))
            })
            .take(80)
            .collect();
        eprintln!("broker log from the fault on:\n{}", broker_lines.join("\n"));
    }
    testkit::reliability::Count::of(n, got.iter().map(KafkaRecord::fluvio_offset)).report(
        "bridge",
        scenario,
        "read_committed (confluent-kafka)",
    );
    assert_exactly_once(&got, n);
    Some(proc.output())
}

#[test]
fn a_broker_stopped_with_records_in_flight_loses_nothing() {
    let scenario = "broker stopped 2 s with records in flight";
    mirror_through_broker_fault("bridge broker stop in flight", scenario, "", |broker| {
        broker.stop();
        std::thread::sleep(Duration::from_secs(2));
        broker.restart().unwrap();
    });
}

#[test]
fn a_broker_that_hangs_past_the_request_timeout_gets_nothing_twice() {
    // Frozen longer than librdkafka's 30 s request timeout, its connections left open.
    let scenario = "broker frozen 35 s (past the request timeout) with records in flight";
    mirror_through_broker_fault("bridge hung broker", scenario, "", |broker| {
        broker.freeze();
        std::thread::sleep(Duration::from_secs(35));
        broker.unfreeze();
    });
}

#[test]
fn a_producer_stalled_past_its_timeout_is_replaced_and_nothing_is_lost() {
    // The broker away longer than `stalled_producer_timeout`, as librdkafka's transactional
    // producer can be for good after a broker restart: the bridge replaces its producer (the
    // new one fences the old and aborts its transaction) and goes on from what Kafka holds.
    let out = mirror_through_broker_fault(
        "bridge stalled producer",
        "producer stalled 3 s (broker stopped 8 s): replaced",
        "  stalled_producer_timeout: 3s\n",
        |broker| {
            broker.stop();
            std::thread::sleep(Duration::from_secs(8));
            broker.restart().unwrap();
        },
    );
    if let Some(out) = out {
        assert!(
            out.contains("the Kafka producer stalled")
                && out.contains("replacing the Kafka producer"),
            "{out}"
        );
    }
}

#[test]
fn a_delivery_timeout_stops_the_bridge_and_the_next_start_loses_nothing() {
    let Some(mut broker) = KafkaBroker::start_or_skip("bridge delivery timeout") else {
        return;
    };
    let bridge = Bridge::new(&broker.bootstrap(), "  delivery_timeout: 3s\n");
    let all = records(2000);
    bridge.append(&all[..1000]);
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, 999);
    broker.stop();
    bridge.append(&all[1000..]);
    let status = proc.wait_timeout(T);
    let out = proc.output();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("kafka did not take Fluvio partition 0 offset 1000"),
        "{out}"
    );
    assert_eq!(
        bridge.committed(),
        Some(999),
        "nothing unacknowledged committed"
    );
    broker.restart().unwrap();
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, 1999);
    proc.stop_cleanly(T);
    let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
        return;
    };
    assert_exactly_once(&got, 2000);
}

#[test]
fn records_kafka_wrote_but_never_acknowledged_are_not_sent_twice() {
    lose_acknowledgements("", assert_exactly_once);
}

#[test]
fn with_key_partitioning_records_kafka_wrote_but_never_acknowledged_are_not_sent_twice() {
    lose_acknowledgements(
        "  partitioning: key\n  partitions: 3\n",
        assert_exactly_once_by_key,
    );
}

#[test]
fn a_broker_restarted_while_its_acknowledgements_are_lost_writes_nothing_twice() {
    // Kafka writes what the bridge sends, its answers are lost, and it restarts: librdkafka
    // sends the unanswered requests again to a broker that reloaded its producer state.
    let Some((mut broker, proxy)) =
        KafkaBroker::start_behind_proxy_or_skip("bridge restart with lost acknowledgements")
    else {
        return;
    };
    let bridge = Bridge::new(&format!("127.0.0.1:{}", proxy.port()), "  linger: 20ms\n");
    let n = 100_000;
    bridge.append(&records(n / 2));
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, n as i64 / 2 - 1);
    std::thread::scope(|s| {
        let hold = s.spawn(|| proxy.lose_answers_for(Duration::from_secs(6)));
        std::thread::sleep(Duration::from_millis(200));
        bridge.append(&records(n)[n / 2..]);
        std::thread::sleep(Duration::from_millis(1500));
        broker.restart().unwrap();
        hold.join().unwrap();
    });
    bridge.wait_committed(&mut proc, n as i64 - 1);
    proc.stop_cleanly(T);
    let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
        return;
    };
    assert_exactly_once(&got, n);
}

/// Mirror records while Kafka writes them but its acknowledgements are lost, then the
/// connections cut: the requests in flight are sent again, and Kafka must not write them twice.
fn lose_acknowledgements(kafka_extra: &str, check: fn(&[KafkaRecord], usize)) {
    let Some((broker, proxy)) =
        KafkaBroker::start_behind_proxy_or_skip("bridge lost acknowledgements")
    else {
        return;
    };
    let bootstrap = format!("127.0.0.1:{}", proxy.port());
    let bridge = Bridge::new(&bootstrap, &format!("  linger: 20ms\n{kafka_extra}"));
    let n = 100_000;
    bridge.append(&records(n / 2));
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, n as i64 / 2 - 1);
    let holding = std::thread::scope(|s| {
        let hold = s.spawn(|| proxy.lose_answers_for(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(200));
        bridge.append(&records(n)[n / 2..]);
        hold.join()
    });
    holding.unwrap();
    bridge.wait_committed(&mut proc, n as i64 - 1);
    // librdkafka's statistics (where the count comes from) arrive every second.
    let mut m = serde_json::Value::Null;
    for _ in 0..30 {
        m = testkit::metrics_socket(&bridge.dir.path().join("m.sock"));
        if m["kafka_request_failures"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let resent = m["kafka_request_failures"].as_u64().unwrap_or(0);
    proc.stop_cleanly(T);
    let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
        return;
    };
    check(&got, n);
    assert!(
        resent > 0,
        "no request was sent again after the answers were lost: {m}\n{}",
        proc.output()
    );
}

/// Mirror `batch` (the next records of the input) with these brokers and `security:` lines,
/// wait until all of it is committed, stop with SIGTERM (exit 0); the bridge's log.
fn mirror_batch(
    bridge: &Bridge,
    brokers: &str,
    security: &str,
    batch: &[Record],
    what: &str,
) -> String {
    bridge.configure(brokers, security);
    let before = bridge.committed().unwrap_or(-1);
    bridge.append(batch);
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, before + batch.len() as i64);
    proc.signal(15);
    assert_eq!(
        proc.wait_timeout(T).code(),
        Some(0),
        "{what}: {}",
        proc.output()
    );
    proc.output()
}

#[test]
fn sasl_plain_and_scram_mirror_and_bad_credentials_fail_clearly_without_the_secret() {
    let Some((broker, sasl)) = KafkaBroker::start_with_sasl_or_skip("bridge SASL") else {
        return;
    };
    let (user, password) = testkit::kafka::SASL_USER;
    let security = |mechanism: &str, password: &str| {
        format!("  security:\n    protocol: SASL_PLAINTEXT\n    sasl: {{mechanism: {mechanism}, username: {user}, password: {password}}}\n")
    };
    let all = records(400);
    let bridge = Bridge::new(&sasl, &security("PLAIN", password));
    for (i, mechanism) in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        .iter()
        .enumerate()
    {
        let batch = &all[i * 100..(i + 1) * 100];
        mirror_batch(
            &bridge,
            &sasl,
            &security(mechanism, password),
            batch,
            mechanism,
        );
    }

    let wrong = "not-alices-password-7731";
    bridge.configure(&sasl, &security("SCRAM-SHA-256", wrong));
    bridge.append(&all[300..]);
    let out = refused_by_security(&bridge, &broker, "authentication", 299);
    assert!(!out.contains(wrong), "the password leaked: {out}");
}

/// Start the bridge where Kafka refuses its credentials or TLS session: it must exit 1 naming
/// `cause` and `kafka.security`, commit nothing past `committed`, and Kafka must hold the
/// records up to it exactly once. The bridge's log.
fn refused_by_security(
    bridge: &Bridge,
    broker: &KafkaBroker,
    cause: &str,
    committed: i64,
) -> String {
    let mut proc = bridge.start();
    let code = proc.wait_timeout(T).code();
    let out = proc.output();
    assert_eq!(code, Some(1), "a refusal must stop the bridge: {out}");
    assert!(
        out.to_lowercase().contains(&cause.to_lowercase()) && out.contains("kafka.security"),
        "the error names the cause ({cause}) and the config section: {out}"
    );
    assert_eq!(
        bridge.committed(),
        Some(committed),
        "nothing committed past what Kafka took"
    );
    if let Some(got) = read_topic(&broker.bootstrap(), "tweets") {
        assert_exactly_once(&got, committed as usize + 1);
    }
    out
}

/// `text` as a YAML block scalar at `indent` spaces (inline PEM in a config).
fn yaml_block(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let lines: String = text.lines().map(|l| format!("{pad}{l}\n")).collect();
    format!("|\n{lines}")
}

#[test]
fn ssl_and_sasl_ssl_mirror_with_pem_files_and_inline_pem() {
    let Some((broker, tls)) = KafkaBroker::start_with_tls_or_skip("bridge TLS") else {
        return;
    };
    let (user, password) = testkit::kafka::SASL_USER;
    let (ca, cert, key) = (tls.ca(), tls.client_cert(), tls.client_key());
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let cases = [
        (
            "SSL with PEM files",
            tls.ssl.clone(),
            format!(
                "  security:\n    protocol: SSL\n    ssl:\n      ca_file: {}\n      cert_file: {}\n      key_file: {}\n",
                ca.display(),
                cert.display(),
                key.display()
            ),
        ),
        (
            "SSL with inline PEM",
            tls.ssl.clone(),
            format!(
                "  security:\n    protocol: SSL\n    ssl:\n      ca_pem: {}      cert_pem: {}      key_pem: {}",
                yaml_block(&read(&ca), 8),
                yaml_block(&read(&cert), 8),
                yaml_block(&read(&key), 8)
            ),
        ),
        (
            "SASL_SSL with SCRAM-SHA-512",
            tls.sasl_ssl.clone(),
            format!(
                "  security:\n    protocol: SASL_SSL\n    sasl: {{mechanism: SCRAM-SHA-512, username: {user}, password: {password}}}\n    ssl:\n      ca_file: {}\n",
                ca.display()
            ),
        ),
    ];
    let all = records(300);
    let bridge = Bridge::new(&cases[0].1, &cases[0].2);
    for (i, (what, brokers, security)) in cases.iter().enumerate() {
        let out = mirror_batch(
            &bridge,
            brokers,
            security,
            &all[i * 100..(i + 1) * 100],
            what,
        );
        assert!(
            !out.contains("PRIVATE KEY"),
            "{what}: the client key leaked into the log: {out}"
        );
    }
    // The SSL listener requires a client certificate: without one, nothing gets through.
    bridge.configure(
        &tls.ssl,
        &format!(
            "  security:\n    protocol: SSL\n    ssl:\n      ca_file: {}\n",
            ca.display()
        ),
    );
    bridge.append(&records(310)[300..]);
    refused_by_security(&bridge, &broker, "TLS handshake failed", 299);
}

#[test]
fn sigterm_with_kafka_gone_exits_in_bounded_time_without_committing_unacknowledged_records() {
    let Some(mut broker) = KafkaBroker::start_or_skip("bridge SIGTERM with Kafka gone") else {
        return;
    };
    let bridge = Bridge::new(&broker.bootstrap(), "");
    bridge.append(&records(100));
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, 99);
    broker.kill();
    bridge.append(&records(200)[100..]);
    std::thread::sleep(Duration::from_secs(1));
    proc.signal(15);
    let start = std::time::Instant::now();
    let code = proc.wait_timeout(Duration::from_secs(60)).code();
    assert!(
        start.elapsed() < Duration::from_secs(45),
        "bounded: {:?}",
        start.elapsed()
    );
    assert_eq!(code, Some(1), "{}", proc.output());
    assert!(
        proc.output().contains("exiting without committing them"),
        "{}",
        proc.output()
    );
    assert_eq!(
        bridge.committed(),
        Some(99),
        "nothing Kafka did not acknowledge is committed"
    );
}

#[test]
fn the_java_partitioner_of_the_checks_matches_kafkas_own_test_vectors() {
    // Kafka's UtilsTest: murmur2 of these keys, made positive (2^31 partitions: the hash itself).
    for (key, positive) in [
        ("21", 1_173_551_340),
        ("foobar", 1_357_151_166),
        ("a-little-bit-long-string", 1_161_502_112),
        ("abc", 479_470_107),
    ] {
        assert_eq!(java_partition(key.as_bytes(), 1 << 31), positive, "{key}");
    }
}
