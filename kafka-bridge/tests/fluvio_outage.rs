//! The Fluvio cluster stopped and resumed under the bridge (its own test binary: it stops the
//! private test cluster, so nothing else may use it meanwhile). The bridge connects again and
//! goes on from what Kafka holds: every record in Kafka once, and soon: within
//! [`RECOVERED_WITHIN`] of the cluster serving again. A row of docs/RELIABILITY.md.

mod common;

use std::time::Duration;

use common::fluvio::*;

/// How soon after the cluster serves again the second half is in Kafka (about a second here).
/// Before the SC requests had a deadline, a reconnect made just before the SC went down waited
/// Fluvio's 60 s for an answer.
const RECOVERED_WITHIN: Duration = Duration::from_secs(40);

#[test]
fn the_fluvio_cluster_stopped_and_resumed_under_the_bridge_loses_and_repeats_nothing() {
    let test = "bridge through a Fluvio outage";
    let Some((env, broker)) = fluvio_and_kafka_or_skip(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let topic = topic_with_records(&env, "bridge-outage", dir.path(), n / 2);
    let bridge = BridgeRun::new(&env, &broker, &topic, dir.path(), "outage", "");
    let mut p = bridge.start();
    testkit::wait_for("the first half in Kafka", T, || {
        (bridge.metric("acked_offset{partition=0}") == Some(n as i64 / 2 - 1)).then_some(())
    });
    if !env.outage(test, Duration::from_secs(10)) {
        p.signal(15);
        p.wait_timeout(T);
        return;
    }
    produce_records(&env, &topic, dir.path(), n / 2..n, &[]);
    let started = std::time::Instant::now();
    while bridge.metric("acked_offset{partition=0}") != Some(n as i64 - 1) {
        if let Some(s) = p.try_status() {
            panic!("the bridge exited ({s}): {}", p.output());
        }
        assert!(
            started.elapsed() < RECOVERED_WITHIN,
            "the second half not in Kafka {RECOVERED_WITHIN:?} after the cluster came back (acked {:?}); the bridge's log:\n{}",
            bridge.metric("acked_offset{partition=0}"),
            p.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    p.stop_cleanly(T);
    assert!(
        p.output().contains("connected to the Fluvio cluster again"),
        "{}",
        p.output()
    );
    let Some(got) = kafka_offsets(&broker.bootstrap(), "outage") else {
        return;
    };
    testkit::reliability::Count::of(n, got.iter().map(|(_, o)| *o))
        .report(
            "bridge",
            "Fluvio cluster (SC and SPU) stopped 10 s and resumed under the bridge",
            "read_committed (confluent-kafka)",
        )
        .assert_exactly_once("through the outage");
}
