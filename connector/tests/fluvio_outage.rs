//! The Fluvio cluster stopped for 30 s under a 6,000 tweets/s stream (its own test binary:
//! it stops the private test cluster, so nothing else may use it meanwhile). The source keeps
//! every tweet it accepted, holds the stream back while Fluvio is away, stores the unconfirmed
//! records again once it is back, and writes none twice. A matrix row of docs/RELIABILITY.md.

mod common;

use std::time::Duration;

use common::*;
use testkit::fluvio::FluvioEnv;
use x_emulator::Emulator;

const T: Duration = Duration::from_secs(120);

#[test]
fn fluvio_down_for_30_s_under_6000_tweets_per_second_loses_and_repeats_nothing() {
    let test = "source through a Fluvio outage";
    let Some(env) = FluvioEnv::find_or_skip(test) else {
        return;
    };
    let topic = env.unique_topic("outage");
    let n = 120_000;
    let mut cfg = generated(n);
    cfg.rate = 6000.0;
    let emu = Emulator::start_background(cfg).unwrap();
    let config = with_topic(
        &config_yaml(&emu.base_url(), &format!("  mode: sample\n{BEARER}"), ""),
        &topic,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut proc = start_into_fluvio(&env, &config, &dir);
    let metric = |name: &str| testkit::metrics_socket(&dir.path().join("m.sock"))[name].as_u64();
    testkit::wait_for("10,000 tweets produced", T, || {
        (metric("records_produced_total").unwrap_or(0) >= 10_000).then_some(())
    });
    if !env.outage(test, Duration::from_secs(30)) {
        proc.signal(15);
        proc.wait_timeout(T);
        return;
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
        .report(
            "source",
            "Fluvio cluster down 30 s under 6,000 tweets/s",
            "fluvio consume --start/--end (keys)",
        )
        .assert_exactly_once("through the outage");
}
