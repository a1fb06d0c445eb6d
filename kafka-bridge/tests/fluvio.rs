//! The bridge reading a real Fluvio topic (skipped, visibly, without a cluster): every record
//! reaches Kafka once and in order, through SIGKILLs and restarts, with offsets committed under
//! the consumer id. Fetches are kept small (64 KB) so the backlog spans many of them: Fluvio
//! 0.50 drops the batch that straddles a fetch's end, and the bridge must read it again.

mod common;

use std::time::Duration;

use common::fluvio::*;
use testkit::fluvio::FluvioEnv;
use testkit::kafka::KafkaBroker;

#[test]
fn mirrors_a_fluvio_topic_exactly_once_through_sigkills() {
    let Some((env, broker)) = fluvio_and_kafka_or_skip("bridge from Fluvio") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n = 30_000;
    let topic = topic_with_records(&env, "bridge-src", dir.path(), n);
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
        "  resume_from_kafka: false\n  delivery: at-least-once\n  linger: 500ms\n  max_in_flight: 1000\n",
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
    let bridge = BridgeRun::new(env, broker, topic, dir, kafka_topic, kafka_extra);
    let start = || bridge.start();
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
        if begun.elapsed() >= T {
            let missing: Vec<i64> = (0..n as i64)
                .filter(|o| seen.binary_search(o).is_err())
                .take(20)
                .collect();
            panic!(
                "{} of {n} mirrored; missing (first 20): {missing:?}; bridge metrics: {}; consumers:\n{}\nlog:\n{}",
                seen.len(),
                testkit::metrics_socket(&bridge.socket),
                env.run(&["consumer", "list"]),
                p.output()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // With the topic idle (a read pending forever), the acknowledgements are still taken in:
    // the metrics show every record mirrored.
    testkit::wait_for("the idle bridge to count every acknowledgement", T, || {
        (bridge.metric("acked_offset{partition=0}") == Some(n as i64 - 1)).then_some(())
    });
    p.stop_cleanly(T);
    kafka_offsets(&broker.bootstrap(), kafka_topic)
}

#[test]
fn reports_the_lag_while_kafka_is_away_and_none_once_caught_up() {
    let Some((env, broker)) = fluvio_and_kafka_or_skip("bridge lag") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n = 2_000;
    let topic = topic_with_records(&env, "bridge-lag", dir.path(), n);
    let bridge = BridgeRun::new(&env, &broker, &topic, dir.path(), "lagging", "");
    broker.freeze();
    let mut p = bridge.start();
    testkit::wait_for("the lag of every record while Kafka is frozen", T, || {
        (bridge.metric("lag{partition=0}") == Some(n as i64)).then_some(())
    });
    broker.unfreeze();
    testkit::wait_for("no lag once Kafka holds everything", T, || {
        let caught_up = bridge.metric("acked_offset{partition=0}") == Some(n as i64 - 1);
        (caught_up && bridge.metric("lag{partition=0}") == Some(0)).then_some(())
    });
    p.stop_cleanly(T);
}

#[test]
fn mirrors_the_last_records_when_the_consumer_skips_them_at_the_end_of_the_topic() {
    let Some((env, broker)) = fluvio_and_kafka_or_skip("bridge tail re-read") else {
        return;
    };
    // A ~55 KB batch, then an ~11 KB one: the second straddles the end of the first 64 KB
    // fetch, and Fluvio 0.50's consumer drops it (`fluvio consume --maxbytes 65536` shows 282
    // of the 300 records). Nothing comes after it to reveal the gap.
    let dir = tempfile::tempdir().unwrap();
    let topic = env.unique_topic("bridge-tail");
    env.run(&["topic", "create", &topic]);
    let one_batch = ["--batch-size", "1000000"];
    produce_records(&env, &topic, dir.path(), 0..250, &one_batch);
    produce_records(&env, &topic, dir.path(), 250..300, &one_batch);
    let bridge = BridgeRun::new(&env, &broker, &topic, dir.path(), "tail", "");
    let mut p = bridge.start();
    testkit::wait_for("all 300 records acknowledged by Kafka", T, || {
        (bridge.metric("acked_offset{partition=0}") == Some(299)).then_some(())
    });
    p.stop_cleanly(T);
    assert!(
        p.output().contains("stopped short of the partition's end"),
        "the consumer was expected to drop the last batch; log:\n{}",
        p.output()
    );
    let Some(got) = kafka_offsets(&broker.bootstrap(), "tail") else {
        return;
    };
    let offsets: Vec<i64> = got.iter().map(|(_, o)| *o).collect();
    assert_eq!(
        offsets,
        (0..300).collect::<Vec<_>>(),
        "each record once, in order"
    );
}

#[test]
fn four_fluvio_partitions_mirror_exactly_once_into_each_partitioning() {
    let Some((env, broker)) = fluvio_and_kafka_or_skip("bridge from 4 Fluvio partitions") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let topic = env.unique_topic("bridge-4p");
    env.run(&["topic", "create", &topic, "-p", "4"]);
    produce_records(&env, &topic, dir.path(), 0..n, &[]);
    for (kafka_topic, extra) in [
        ("same4", ""),
        ("key4", "  partitioning: key\n  partitions: 3\n"),
        ("fixed4", "  partitioning: {fixed: 1}\n  partitions: 2\n"),
    ] {
        let bridge = BridgeRun::new(&env, &broker, &topic, dir.path(), kafka_topic, extra);
        let mut p = bridge.start();
        std::thread::sleep(Duration::from_millis(1500));
        p.signal(9);
        p.wait_timeout(T);
        let mut p = bridge.start();
        let positions = testkit::wait_for(&format!("{kafka_topic}: all {n} records"), T, || {
            let got = kafka_positions(&broker.bootstrap(), kafka_topic)?;
            (got.len() >= n).then_some(got)
        });
        p.stop_cleanly(T);
        let positions = kafka_positions(&broker.bootstrap(), kafka_topic).unwrap_or(positions);
        // Each Fluvio partition's offsets 0.. once each; together, every record.
        let mut total = testkit::reliability::Count::of(0, []);
        for fp in 0..4u32 {
            let offsets: Vec<i64> = positions
                .iter()
                .filter(|(q, _)| *q == fp)
                .map(|(_, o)| *o)
                .collect();
            let len = offsets.iter().max().map_or(0, |m| m + 1) as usize;
            let c = testkit::reliability::Count::of(len, offsets);
            total.offered += c.offered;
            total.found += c.found;
            total.missing += c.missing;
            total.duplicates += c.duplicates;
        }
        assert_eq!(total.offered, n, "the partitions hold {n} records together");
        total
            .report(
                "bridge",
                &format!(
                    "4 Fluvio partitions into Kafka `{kafka_topic}` ({}), one SIGKILL",
                    if extra.is_empty() {
                        "same".to_string()
                    } else {
                        extra.trim().replace("\n ", ",")
                    }
                ),
                "read_committed (confluent-kafka)",
            )
            .assert_exactly_once(kafka_topic);
    }
}

#[test]
fn a_recreated_fluvio_topic_is_a_clear_error_or_with_start_over_a_fresh_mirror() {
    let Some((env, broker)) = fluvio_and_kafka_or_skip("bridge re-created topic") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let topic = topic_with_records(&env, "bridge-recreated", dir.path(), 1000);
    let bridge = BridgeRun::new(&env, &broker, &topic, dir.path(), "recreated", "");
    let mut p = bridge.start();
    testkit::wait_for("the first topic mirrored", T, || {
        (bridge.metric("acked_offset{partition=0}") == Some(999)).then_some(())
    });
    p.stop_cleanly(T);

    env.run(&["topic", "delete", &topic]);
    env.run(&["topic", "create", &topic]);
    produce_records(&env, &topic, dir.path(), 0..300, &[]);
    let mut p = bridge.start();
    let status = p.wait_timeout(T);
    assert_eq!(status.code(), Some(1), "{}", p.output());
    assert!(
        p.output().contains("deleted and re-created")
            && p.output().contains("holds its offset 999"),
        "{}",
        p.output()
    );

    let bridge = BridgeRun::new(
        &env,
        &broker,
        &topic,
        dir.path(),
        "recreated",
        "  on_fluvio_reset: start-over\n",
    );
    let mut p = bridge.start();
    testkit::wait_for("the new topic mirrored from its start", T, || {
        (bridge.metric("acked_offset{partition=0}") == Some(299)).then_some(())
    });
    p.stop_cleanly(T);
    let Some(got) = kafka_offsets(&broker.bootstrap(), "recreated") else {
        return;
    };
    let offsets: Vec<i64> = got.iter().map(|(_, o)| *o).collect();
    let expected: Vec<i64> = (0..1000).chain(0..300).collect();
    assert_eq!(
        offsets, expected,
        "the old topic, then the new one, each once"
    );
    testkit::reliability::Count::of(300, offsets[1000..].iter().copied())
        .report(
            "bridge",
            "a Fluvio topic deleted and re-created (start-over)",
            "read_committed (confluent-kafka)",
        )
        .assert_exactly_once("the new topic");
}

// A registered SmartModule by name: the bridge fetches its wasm from the cluster and runs it
// in-process (Fluvio 0.18's SPU does not apply sink transforms to a consumer-id stream).
// Long on purpose: one story in order (a filtering transform, a restart, the count of what
// was kept, filtered and committed).
#[test]
fn a_filtering_sink_transform_leaves_holes_that_are_not_loss() {
    let Some((env, broker)) = fluvio_and_kafka_or_skip("bridge with a filtering transform") else {
        return;
    };
    let Some((filter, _)) =
        testkit::tweet_smartmodules_or_skip("bridge with a filtering transform")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // v1.1 tweets in several languages; the SPU keeps the English ones for the bridge.
    let n = 3000u64;
    let gen = x_emulator::generator::Generator::new(1_700_000_000_000);
    let lines: String = (0..n)
        .map(|seq| format!("{}\t{}\n", gen.facts(seq).id, gen.v1(seq)))
        .collect();
    let file = dir.path().join("tweets.txt");
    std::fs::write(&file, lines).unwrap();
    let topic = env.unique_topic("bridge-filtered");
    env.run(&["topic", "create", &topic]);
    env.run(&[
        "produce",
        &topic,
        "--key-separator",
        "\t",
        "-f",
        file.to_str().unwrap(),
    ]);
    let module = env.unique_topic("tweet-filter-sink");
    env.run(&[
        "smartmodule",
        "create",
        &module,
        "--wasm-file",
        filter.to_str().unwrap(),
    ]);
    let expected: Vec<i64> = (0..n)
        .filter(|seq| gen.facts(*seq).lang == "en")
        .map(|seq| seq as i64)
        .collect();
    assert!(
        expected.len() < n as usize && !expected.is_empty(),
        "holes to leave"
    );
    let extra = format!(
        "  linger: 5ms\ntransforms:\n  - uses: {module}\n    with:\n      languages: [en]\n"
    );
    let bridge = BridgeRun::new(&env, &broker, &topic, dir.path(), "filtered", &extra);
    let mut p = bridge.start();
    std::thread::sleep(Duration::from_millis(1500));
    p.signal(9);
    p.wait_timeout(T);
    let mut p = bridge.start();
    testkit::wait_for("every English tweet in Kafka", T, || {
        let got = kafka_offsets(&broker.bootstrap(), "filtered")?;
        if let Some(s) = p.try_status() {
            panic!("the bridge stopped ({s}): {}", p.output());
        }
        (got.len() >= expected.len()).then_some(())
    });
    // A restart with holes before and after its resume point goes on as well.
    p.stop_cleanly(T);
    let mut p = bridge.start();
    std::thread::sleep(Duration::from_secs(3));
    assert!(p.try_status().is_none(), "{}", p.output());
    p.stop_cleanly(T);
    let _ = env
        .command()
        .args(["smartmodule", "delete", &module])
        .output();
    let Some(got) = kafka_offsets(&broker.bootstrap(), "filtered") else {
        return;
    };
    let offsets: Vec<i64> = got.iter().map(|(_, o)| *o).collect();
    assert_eq!(offsets, expected, "the English tweets once each, in order");
    let kept: std::collections::HashSet<i64> = expected.iter().copied().collect();
    let c = testkit::reliability::Count::of(
        expected.len(),
        offsets
            .iter()
            .map(|o| expected.binary_search(o).map_or(-1, |i| i as i64)),
    )
    .report(
        "bridge",
        "a filtering sink transform (tweet-filter, English only), one SIGKILL",
        "read_committed (confluent-kafka)",
    );
    assert!(offsets.iter().all(|o| kept.contains(o)));
    c.assert_exactly_once("filtered");
}
