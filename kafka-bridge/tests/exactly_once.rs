//! The bridge's exactly-once guarantee for `read_committed` readers, under the faults users
//! meet, against a real broker; each scenario is a row of the fault matrix
//! (`testkit::reliability`, written to docs/RELIABILITY.md by `./reliability.sh`): records
//! offered, records a `read_committed` reader (confluent-kafka) found, missing, duplicates.

mod common;

use std::time::Duration;

use common::*;
use connector_runtime::Record;
use testkit::kafka::{admin, read_topic, read_topic_uncommitted, KafkaBroker, KafkaRecord};
use testkit::reliability::Count;

/// Count what a `read_committed` reader finds of offsets `0..offered` in `topic`, as a matrix
/// row; `None` after SKIPPED without the test venv.
fn count(broker: &KafkaBroker, topic: &str, offered: usize, scenario: &str) -> Option<Count> {
    let got = read_topic(&broker.bootstrap(), topic)?;
    Some(
        Count::of(offered, got.iter().map(KafkaRecord::fluvio_offset)).report(
            "bridge",
            scenario,
            "read_committed (confluent-kafka)",
        ),
    )
}

/// `n` records of ~1 KB, the one at `big` carrying 300 KB of incompressible bytes.
fn records_with_a_big_one(n: usize, big: usize) -> Vec<Record> {
    let mut rs = records(n);
    let mut rng = fastrand::Rng::with_seed(3);
    for r in rs.iter_mut() {
        let mut v = r.value.to_vec();
        v.extend(std::iter::repeat_n(b' ', 1000));
        r.value = v.into();
    }
    rs[big].value = (0..300_000).map(|_| rng.u8(..)).collect::<Vec<u8>>().into();
    rs
}

const SMALL_TOPIC: &str = "  topic_config:\n    max.message.bytes: \"200000\"\n  linger: 5ms\n";

#[test]
fn a_record_the_broker_refuses_stops_the_bridge_at_it_until_the_cause_is_fixed() {
    let Some(broker) = KafkaBroker::start_or_skip("bridge refused record") else {
        return;
    };
    let bridge = Bridge::new(&broker.bootstrap(), SMALL_TOPIC);
    let (n, big) = (3000, 1500);
    bridge.append(&records_with_a_big_one(n, big));
    for run in ["the run", "a restart before the fix"] {
        let mut proc = bridge.start();
        let status = proc.wait_timeout(T);
        let out = proc.output();
        assert_eq!(status.code(), Some(1), "{run}: {out}");
        assert!(
            out.contains("kafka refused Fluvio partition 0 offset 1500")
                && out.contains("MessageSizeTooLarge"),
            "{run}: names the record and the broker's reason: {out}"
        );
        assert_eq!(bridge.committed(), Some(big as i64 - 1), "{run}");
        let Some(c) = count(
            &broker,
            "tweets",
            big,
            &format!("broker refuses a record (too large): {run}"),
        ) else {
            return;
        };
        c.assert_exactly_once(&format!("{run}: everything before it, nothing after it"));
    }
    assert!(admin(&[
        "alter-topic",
        &broker.bootstrap(),
        "tweets",
        "max.message.bytes",
        "1048576"
    ]));
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, n as i64 - 1);
    proc.stop_cleanly(T);
    let c = count(
        &broker,
        "tweets",
        n,
        "broker refuses a record (too large): a restart after the fix",
    )
    .unwrap();
    c.assert_exactly_once("after the fix");
}

#[test]
fn a_refused_record_goes_to_the_dead_letter_topic_and_the_rest_goes_on() {
    let Some(broker) = KafkaBroker::start_or_skip("bridge dead letter") else {
        return;
    };
    let bridge = Bridge::new(
        &broker.bootstrap(),
        &format!("{SMALL_TOPIC}  on_refused: dead-letter\n"),
    );
    let (n, big) = (3000, 1500);
    bridge.append(&records_with_a_big_one(n, big));
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, n as i64 - 1);
    let m = testkit::metrics_socket(&bridge.dir.path().join("m.sock"));
    proc.stop_cleanly(T);
    assert_eq!(m["dead_lettered_total"], 1, "{m}");
    let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
        return;
    };
    let dead = read_topic(&broker.bootstrap(), "tweets-dead-letter").unwrap();
    assert_eq!(dead.len(), 1, "one record in the dead-letter topic");
    assert_eq!(dead[0].fluvio_offset(), big as i64);
    let reason = dead[0].headers["error.reason"].clone().unwrap_or_default();
    assert!(reason.contains("MessageSizeTooLarge"), "{reason}");
    assert_eq!(dead[0].headers["error.topic"].as_deref(), Some("tweets"));
    let found = got.iter().chain(&dead).map(KafkaRecord::fluvio_offset);
    Count::of(n, found)
        .report(
            "bridge",
            "broker refuses a record: dead-letter topic (both topics counted)",
            "read_committed (confluent-kafka)",
        )
        .assert_exactly_once("the topic and the dead-letter topic together");
}

#[test]
fn a_second_instance_fences_the_first_and_nothing_is_written_twice() {
    let Some(broker) = KafkaBroker::start_or_skip("bridge two instances") else {
        return;
    };
    let bridge = Bridge::new(&broker.bootstrap(), "  linger: 5ms\n");
    let n = 20_000;
    let all = records(n);
    bridge.append(&all[..n / 2]);
    let mut first = bridge.start();
    bridge.wait_committed(&mut first, n as i64 / 2 - 1);
    // The second `cdk deploy` of the same connector: same consumer id, same input.
    let mut second = bridge.start_with_log("info");
    wait_for_log(&mut second, "transactions initialised");
    bridge.append(&all[n / 2..]);
    let status = first.wait_timeout(T);
    let out = first.output();
    assert_eq!(status.code(), Some(1), "the first instance stops: {out}");
    assert!(
        out.contains("another bridge instance") && out.contains("took over"),
        "{out}"
    );
    bridge.wait_committed(&mut second, n as i64 - 1);
    second.stop_cleanly(T);
    if let Some(c) = count(
        &broker,
        "tweets",
        n,
        "two bridge instances with the same consumer id",
    ) {
        c.assert_exactly_once("two instances");
    }
}

#[test]
fn twenty_sigkills_during_a_200k_record_mirror_leave_each_record_once() {
    sigkills(
        "  linger: 5ms\n",
        200_000,
        20,
        "SIGKILL of the bridge 20 times (same partitioning)",
    );
}

#[test]
fn sigkills_with_key_partitioning_leave_each_record_once() {
    sigkills(
        "  linger: 5ms\n  partitioning: key\n  partitions: 3\n",
        50_000,
        5,
        "SIGKILL of the bridge 5 times (key partitioning, 3 Kafka partitions)",
    );
}

#[test]
fn foreign_records_in_the_kafka_topic_neither_stop_nor_confuse_the_resume() {
    let Some(broker) = KafkaBroker::start_or_skip("bridge foreign records") else {
        return;
    };
    // Another producer's records (no headers), and a mirror of another Fluvio topic, before
    // and between the bridge's runs.
    if !admin(&["create-topic", &broker.bootstrap(), "tweets", "1"]) {
        return;
    }
    admin(&["foreign", &broker.bootstrap(), "tweets", "20000"]);
    let bridge = Bridge::new(&broker.bootstrap(), "  linger: 5ms\n");
    let n = 30_000;
    let all = records(n);
    bridge.append(&all[..n / 2]);
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, n as i64 / 2 - 1);
    proc.signal(9);
    proc.wait_timeout(T);
    admin(&["foreign", &broker.bootstrap(), "tweets", "20000"]);
    admin(&[
        "foreign",
        &broker.bootstrap(),
        "tweets",
        "5000",
        "other-topic",
    ]);
    bridge.append(&all[n / 2..]);
    let mut proc = bridge.start();
    wait_for_log(&mut proc, &format!("start={}", n / 2));
    bridge.wait_committed(&mut proc, n as i64 - 1);
    proc.stop_cleanly(T);
    let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
        return;
    };
    let ours = got
        .iter()
        .filter(|r| r.headers.get("fluvio.topic").and_then(|t| t.as_deref()) == Some("tweets"));
    Count::of(n, ours.map(KafkaRecord::fluvio_offset))
        .report(
            "bridge",
            "a Kafka topic holding 45,000 foreign records",
            "read_committed (confluent-kafka)",
        )
        .assert_exactly_once("ours among foreign records");
    assert_eq!(got.len(), n + 45_000, "foreign records untouched");
}

/// Mirror `n` records, killing the bridge `kills` times at random points, then count.
fn sigkills(kafka_extra: &str, n: usize, kills: usize, scenario: &str) {
    let Some(broker) = KafkaBroker::start_or_skip(scenario) else {
        return;
    };
    let bridge = Bridge::new(&broker.bootstrap(), kafka_extra);
    bridge.append(&records(n));
    let mut rng = fastrand::Rng::with_seed(11);
    let mut killed = 0;
    while killed < kills {
        let mut proc = bridge.start();
        wait_for_log(&mut proc, "mirroring a capture file");
        std::thread::sleep(Duration::from_millis(rng.u64(50..400)));
        if proc.try_status().is_some() || bridge.committed() == Some(n as i64 - 1) {
            break;
        }
        proc.signal(9);
        proc.wait_timeout(T);
        killed += 1;
    }
    assert!(killed >= kills / 2, "killed mid-mirror {killed} times");
    let mut proc = bridge.start();
    // Up and running before the SIGTERM (the last killed run may have mirrored everything).
    wait_for_log(&mut proc, "mirroring a capture file");
    bridge.wait_committed(&mut proc, n as i64 - 1);
    proc.stop_cleanly(T);
    let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
        return;
    };
    let c = Count::of(n, got.iter().map(KafkaRecord::fluvio_offset)).report(
        "bridge",
        &format!("{scenario}, {n} records ({killed} kills)"),
        "read_committed (confluent-kafka)",
    );
    c.assert_exactly_once(scenario);
    // What a reader that does not read committed sees: the records of the transactions each
    // kill left open (aborted at the next start) too. Reported, not a guarantee.
    let raw = read_topic_uncommitted(&broker.bootstrap(), "tweets").unwrap();
    let seen = Count::of(n, raw.iter().map(KafkaRecord::fluvio_offset)).report(
        "bridge",
        &format!("{scenario}, {n} records ({killed} kills)"),
        "read_uncommitted (not guaranteed)",
    );
    assert_eq!(seen.missing, 0);
}

#[test]
fn a_replicated_kafka_losing_its_leader_then_the_bridge_killed_leaves_each_record_once() {
    let test = "bridge into a 3-broker Kafka";
    let Some(mut cluster) = testkit::kafka::KafkaCluster::start_or_skip(test, 3) else {
        return;
    };
    let bridge = Bridge::new(
        &cluster.bootstrap(),
        "  linger: 5ms\n  replication: 3\n  topic_config:\n    min.insync.replicas: \"2\"\n",
    );
    let n = 100_000;
    bridge.append(&records(n));
    let mut proc = bridge.start();
    testkit::wait_for("a fifth mirrored", T, || {
        if let Some(s) = proc.try_status() {
            panic!("the bridge exited ({s}): {}", proc.output());
        }
        bridge.committed().filter(|c| *c >= n as i64 / 5)
    });
    let Some(leader) = cluster.leader("tweets", 0) else {
        testkit::skip(test, "no Python venv to ask for the partition leader");
        return;
    };
    // The partition leader dies mid-mirror (SIGKILL), then the bridge, with records in flight.
    cluster.brokers[leader].kill();
    std::thread::sleep(Duration::from_millis(1500));
    proc.signal(9);
    proc.wait_timeout(T);
    cluster.brokers[leader].restart().unwrap();
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, n as i64 - 1);
    proc.stop_cleanly(T);
    let got = read_topic(&cluster.bootstrap(), "tweets").unwrap();
    Count::of(n, got.iter().map(KafkaRecord::fluvio_offset))
        .report(
            "bridge",
            "3-broker KRaft Kafka (replication 3, min.insync.replicas 2): partition leader SIGKILLed mid-mirror, then the bridge; both restarted",
            "read_committed (confluent-kafka)",
        )
        .assert_exactly_once(test);
}

#[test]
fn with_at_least_once_delivery_a_refused_batch_leaves_no_gap_behind_it() {
    // The idempotent producer (no transactions): a refused batch stops the producer before
    // any later record is written past it, so the next start cannot skip over it.
    let Some(broker) = KafkaBroker::start_or_skip("bridge refused record, at least once") else {
        return;
    };
    let bridge = Bridge::new(
        &broker.bootstrap(),
        &format!("{SMALL_TOPIC}  delivery: at-least-once\n"),
    );
    let (n, big) = (3000, 1500);
    bridge.append(&records_with_a_big_one(n, big));
    for run in ["the run", "a restart before the fix"] {
        let mut proc = bridge.start();
        let status = proc.wait_timeout(T);
        assert_eq!(status.code(), Some(1), "{run}: {}", proc.output());
        let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
            return;
        };
        let offsets: Vec<i64> = got.iter().map(KafkaRecord::fluvio_offset).collect();
        let prefix = offsets.len() as i64;
        assert!(
            prefix <= big as i64,
            "{run}: nothing past the refused record"
        );
        Count::of(prefix as usize, offsets)
            .report(
                "bridge",
                &format!("broker refuses a record, delivery: at-least-once: {run} (Kafka holds a prefix, no gap)"),
                "any reader",
            )
            .assert_exactly_once(run);
    }
}

/// `n` v1.1 tweets in several languages, the one at `bad` not JSON; and the offsets of the
/// English ones other than `bad` (what an English-only filter keeps).
fn tweets_with_a_bad_one(n: usize, bad: usize) -> (Vec<Record>, Vec<i64>) {
    let g = x_emulator::generator::Generator::new(1_700_000_000_000);
    let mut english = Vec::new();
    let records = (0..n as u64)
        .map(|seq| {
            let f = g.facts(seq);
            let value = if seq as usize == bad {
                "{not a tweet".to_string()
            } else {
                if f.lang == "en" {
                    english.push(seq as i64);
                }
                g.v1(seq)
            };
            Record {
                key: Some(f.id.to_string().into_bytes().into()),
                value: value.into_bytes().into(),
                timestamp_ms: Some(f.time_ms),
            }
        })
        .collect();
    (records, english)
}

// Long on purpose: one story in order (transform, reject, restart before and after the fix,
// count every record).
#[test]
fn sink_transforms_run_in_the_bridge_and_a_record_they_reject_is_not_skipped() {
    let Some(broker) = KafkaBroker::start_or_skip("bridge sink transforms") else {
        return;
    };
    let Some((filter, shape)) = testkit::tweet_smartmodules_or_skip("bridge sink transforms")
    else {
        return;
    };
    let (n, bad) = (20_000, 10_000);
    let (all, english) = tweets_with_a_bad_one(n, bad);
    assert!(
        english.len() > 1000 && english.len() < n - 1000,
        "holes to leave"
    );
    let transforms = format!(
        "transforms:\n  - uses: {}\n    with:\n      languages: [en]\n  - uses: {}\n",
        filter.display(),
        shape.display()
    );
    let bridge = Bridge::new(&broker.bootstrap(), &format!("  linger: 5ms\n{transforms}"));
    bridge.append(&all);
    // The record the filter cannot read stops the bridge at it, after everything before it.
    let mut proc = bridge.start();
    let status = proc.wait_timeout(T);
    let out = proc.output();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("the sink transforms refused Fluvio partition 0 offset 10000"),
        "names the record: {out}"
    );
    assert_eq!(bridge.committed(), Some(bad as i64 - 1));
    let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
        return;
    };
    let before: Vec<i64> = english
        .iter()
        .copied()
        .filter(|o| *o < bad as i64)
        .collect();
    let offsets: Vec<i64> = got.iter().map(KafkaRecord::fluvio_offset).collect();
    assert_eq!(offsets, before, "the English tweets before it, once each");
    let shaped: serde_json::Value = serde_json::from_slice(&got[0].value).unwrap();
    assert_eq!(shaped["lang"], "en", "shaped by tweet-shape: {shaped}");
    // With the dead-letter topic it goes there, and a SIGKILL on the way changes nothing.
    bridge.configure(
        &broker.bootstrap(),
        &format!("  linger: 5ms\n  on_refused: dead-letter\n{transforms}"),
    );
    let mut proc = bridge.start();
    testkit::wait_for("a commit past the rejected record", T, || {
        bridge.committed().filter(|c| *c > bad as i64).map(|_| ())
    });
    proc.signal(9);
    proc.wait_timeout(T);
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, n as i64 - 1);
    let m = testkit::metrics_socket(&bridge.dir.path().join("m.sock"));
    proc.stop_cleanly(T);
    assert!(m["filtered_total"].as_u64().unwrap_or(0) > 0, "{m}");
    let got = read_topic(&broker.bootstrap(), "tweets").unwrap();
    let dead = read_topic(&broker.bootstrap(), "tweets-dead-letter").unwrap();
    assert_eq!(
        dead.len(),
        1,
        "the rejected record in the dead-letter topic"
    );
    assert_eq!(dead[0].fluvio_offset(), bad as i64);
    assert_eq!(dead[0].headers["error.class"].as_deref(), Some("transform"));
    assert_eq!(
        &dead[0].value[..],
        b"{not a tweet",
        "as it came from Fluvio"
    );
    let mut kept = english.clone();
    kept.push(bad as i64);
    kept.sort_unstable();
    let found = got.iter().chain(&dead).map(|r| {
        let o = r.fluvio_offset();
        kept.binary_search(&o).map_or(-1, |i| i as i64)
    });
    Count::of(kept.len(), found)
        .report(
            "bridge",
            "a filtering sink transform (tweet-filter English only + tweet-shape), a record it rejects dead-lettered, one SIGKILL",
            "read_committed (confluent-kafka)",
        )
        .assert_exactly_once("the English tweets and the rejected one, once each");
}

#[test]
fn tombstones_turn_the_delete_events_into_null_valued_records_keyed_by_the_post() {
    let Some(broker) = KafkaBroker::start_or_skip("bridge tombstones") else {
        return;
    };
    let event = |key: &str, json: &str| Record {
        key: Some(key.as_bytes().to_vec().into()),
        value: json.as_bytes().to_vec().into(),
        timestamp_ms: Some(1_700_000_000_000),
    };
    // The source's events topic: both dialects' deletes, and events that delete nothing.
    let events = [
        event(
            "1501",
            r#"{"delete":{"status":{"id":1501,"id_str":"1501","user_id":7}}}"#,
        ),
        event(
            "1502",
            r#"{"data":{"tweet_edit":{"tweet":{"id":"1502","author_id":"7"},"initial_tweet_id":"1500","edit_tweet_ids":["1500","1502"],"event_at":"2026-11-30T00:00:00.000Z"}}}"#,
        ),
        event(
            "1503",
            r#"{"data":{"delete":{"tweet":{"id":"1503","author_id":"7"},"event_at":"2026-11-30T00:00:00.000Z"}}}"#,
        ),
        event(
            "77",
            r#"{"data":{"user_protect":{"user":{"id":"77"},"event_at":"2026-11-30T00:00:00.000Z"}}}"#,
        ),
    ];
    let bridge = Bridge::new(&broker.bootstrap(), "  tombstones: true\n");
    bridge.append(&events);
    let mut proc = bridge.start();
    bridge.wait_committed(&mut proc, 3);
    let m = testkit::metrics_socket(&bridge.dir.path().join("m.sock"));
    proc.stop_cleanly(T);
    assert_eq!(
        m["filtered_total"], 2,
        "the edit and the account event: {m}"
    );
    let Some(got) = read_topic(&broker.bootstrap(), "tweets") else {
        return;
    };
    let seen: Vec<(String, bool, i64)> = got
        .iter()
        .map(|r| {
            (
                String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
                r.tombstone,
                r.fluvio_offset(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![("1501".to_string(), true, 0), ("1503".to_string(), true, 2)],
        "each delete once, as a tombstone with the post's key"
    );
}
