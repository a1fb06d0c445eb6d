//! The Fluvio cluster failing under a 6,000 tweets/s stream (its own test binary: it stops
//! the private test cluster, so nothing else may use it meanwhile; its two tests take turns).
//! The source keeps every tweet it accepted, holds the stream back while Fluvio is away,
//! stores the unconfirmed records again once it is back, and writes none twice. Matrix rows
//! of docs/RELIABILITY.md.

mod common;

use std::cell::Cell;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use testkit::fluvio::FluvioEnv;
use x_emulator::Emulator;

const T: Duration = Duration::from_secs(120);
/// The source's bound on records sent and not yet confirmed (`MAX_UNCONFIRMED` in
/// runtime/src/produce.rs): once reached, it waits on the oldest confirmation.
const QUEUE_FULL: u64 = 50_000;

/// The two tests stop the same cluster: one at a time.
static CLUSTER: Mutex<()> = Mutex::new(());

#[test]
fn fluvio_down_for_30_s_under_6000_tweets_per_second_loses_and_repeats_nothing() {
    let test = "source through a Fluvio outage";
    outage_run(
        test,
        "Fluvio cluster down 30 s under 6,000 tweets/s",
        "",
        |env, _| env.outage(test, Duration::from_secs(30)),
    );
}

/// The SPU stalls (stopped: connections open, no answer) until the source's queue is full
/// and it waits on its oldest confirmation, then dies: that confirmation arrives as an error,
/// which the recovery must take as "not stored" (it once awaited it again and panicked, in
/// an outage where the Fluvio client happened to buffer instead of failing the next send).
#[test]
fn the_spu_failing_while_the_source_waits_on_a_full_queue_loses_and_repeats_nothing() {
    let test = "source through an SPU that stalls then dies under a full queue";
    let seen = outage_run(
        test,
        "Fluvio SPU stalled until the queue is full, then killed",
        // Batches large enough that the Fluvio client's own queue (100 batches) holds more
        // than the source's: the source, not the client, is the one that waits.
        "  producer:\n    max-request-size: \"2 MB\"\n    batch-size: \"1 MB\"\n",
        |env, unconfirmed| {
            if !env.signal_spu(test, "STOP") {
                return false;
            }
            // Sends into a stopped SPU take from 0.15 to 1.3 ms each (seen here): up to 65 s.
            let until = Instant::now() + Duration::from_secs(100);
            while unconfirmed() < QUEUE_FULL && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(100));
            }
            // The source is now waiting on the oldest confirmation.
            std::thread::sleep(Duration::from_secs(2));
            env.signal_spu(test, "KILL");
            std::thread::sleep(Duration::from_secs(2));
            env.outage(test, Duration::from_secs(1))
        },
    );
    if let Some(most) = seen {
        eprintln!("{test}: {most} records unconfirmed at the most");
        assert!(
            most >= QUEUE_FULL,
            "the queue never filled while the SPU was stopped (at most {most} unconfirmed): the scenario did not happen"
        );
    }
}

/// Stream 120,000 tweets at 6,000/s into a new topic (with `producer`, `meta.producer`
/// settings, if any), run `fault` after the first 10,000
/// (given the source's unconfirmed-record count; `false` when it skipped), then count every
/// tweet the emulator sent in the topic. The most unconfirmed records `fault` saw; `None`
/// when skipped.
fn outage_run(
    test: &str,
    scenario: &str,
    producer: &str,
    fault: impl FnOnce(&FluvioEnv, &dyn Fn() -> u64) -> bool,
) -> Option<u64> {
    let _turn = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let env = FluvioEnv::find_or_skip(test)?;
    let topic = env.unique_topic("outage");
    let n = 120_000;
    let mut cfg = generated(n);
    cfg.rate = 6000.0;
    let emu = Emulator::start_background(cfg).unwrap();
    let config = with_topic(
        &config_yaml(&emu.base_url(), &format!("  mode: sample\n{BEARER}"), ""),
        &topic,
    )
    .replace("  secrets:\n", &format!("{producer}  secrets:\n"));
    let dir = tempfile::tempdir().unwrap();
    let mut proc = start_into_fluvio(&env, &config, &dir);
    let metric = |name: &str| testkit::metrics_socket(&dir.path().join("m.sock"))[name].as_u64();
    testkit::wait_for("10,000 tweets produced", T, || {
        (metric("records_produced_total").unwrap_or(0) >= 10_000).then_some(())
    });
    let most_unconfirmed = Cell::new(0);
    let unconfirmed = || {
        let n = metric(&format!("records_unconfirmed{{topic={topic}}}")).unwrap_or(0);
        most_unconfirmed.set(most_unconfirmed.get().max(n));
        n
    };
    if !fault(&env, &unconfirmed) {
        proc.signal(15);
        proc.wait_timeout(T);
        return None;
    }
    testkit::wait_for("the emulator to send everything", T, || {
        if let Some(s) = proc.try_status() {
            panic!("the source exited ({s}): {}", proc.output());
        }
        emu.exhausted(x_emulator::Dialect::V2).then_some(())
    });
    let expected = unique_in_order(&emu.sent_ids());
    testkit::wait_for("every tweet produced", T, || {
        (metric("records_produced_total").unwrap_or(0) >= expected.len() as u64).then_some(())
    });
    proc.stop_cleanly(T);
    assert!(
        proc.output().contains("the Fluvio producer failed"),
        "the outage reached the producer: {}",
        proc.output()
    );
    let got: Vec<String> = env
        .keys_by_offset(&topic, 0)
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    count_keys(&expected, &got)
        .report("source", scenario, "fluvio consume --start/--end (keys)")
        .assert_exactly_once("through the outage");
    Some(most_unconfirmed.get())
}
