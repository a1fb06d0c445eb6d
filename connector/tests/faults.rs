//! Every fault the emulator can inject, against the real connector binary: after each one,
//! every tweet the emulator sent is delivered once and in order, the reconnect delays follow
//! the official policy (its steps scaled down by config, see `FAST_RECONNECT`), and bad input is
//! counted and skipped. Configuration errors (non-retryable statuses) stop with X's message.

mod common;

use std::time::Duration;

use common::*;
use x_emulator::{ConnectionPlan, Emulator, Inject};

const T: Duration = Duration::from_secs(30);

fn sample_v1(emu: &Emulator, extra: &str) -> String {
    config_yaml(
        &emu.base_url(),
        &format!("  mode: v1-sample\n{OAUTH1}{FAST_RECONNECT}{extra}"),
        "",
    )
}

/// Gaps (ms) between successive connection attempts' start times.
fn gaps(emu: &Emulator) -> Vec<u64> {
    let log = emu.log();
    log.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect()
}

fn assert_between(what: &str, got: u64, lo: u64, hi: u64) {
    assert!(
        got >= lo && got <= hi,
        "{what}: {got} ms not in [{lo}, {hi}]"
    );
}

#[test]
fn truncated_read_reconnects_at_once_and_loses_nothing_sent() {
    let mut cfg = generated(200);
    cfg.plans = vec![
        plan(r#"{"after": 50, "end": "close_mid_message"}"#),
        plan(r#"{"after": 60, "end": "close"}"#),
    ];
    let emu = Emulator::start_background(cfg).unwrap();
    let done = deliver_all(&emu, &sample_v2(&emu, ""));
    let log = emu.log();
    assert!(log.len() >= 3, "{log:?}");
    assert_eq!(log[0].end.as_deref(), Some("closed mid-message"));
    // An established connection that drops: at once (well under the first network step).
    assert_between("reconnect after truncation", gaps(&emu)[0], 0, 400);
    assert!(
        done.metrics["reconnects_total{cause=dropped}"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    );
}

#[test]
fn http_5xx_backs_off_exponentially() {
    let mut cfg = generated(30);
    cfg.plans = vec![
        plan(r#"{"status": 503}"#),
        plan(r#"{"status": 500}"#),
        plan(r#"{"status": 503}"#),
    ];
    let emu = Emulator::start_background(cfg).unwrap();
    deliver_all(&emu, &sample_v2(&emu, ""));
    let g = gaps(&emu);
    assert_between("1st retry", g[0], 190, 700);
    assert_between("2nd retry", g[1], 390, 900);
    assert_between("3rd retry", g[2], 790, 1300);
}

#[test]
fn rate_limits_back_off_and_respect_the_reset_header() {
    let mut cfg = generated(30);
    cfg.plans = vec![
        plan(r#"{"status": 429, "reset_in_secs": 2}"#),
        plan(r#"{"status": 429, "reset_in_secs": 0}"#),
    ];
    let emu = Emulator::start_background(cfg).unwrap();
    deliver_all(&emu, &sample_v2(&emu, ""));
    let g = gaps(&emu);
    // The reset is 1 to 2 s away (whole epoch seconds); the policy alone would wait 400 ms.
    assert_between("wait for the reset", g[0], 990, 2600);
    // Reset already passed: the exponential step, doubled (800 ms).
    assert_between("2nd rate-limit step", g[1], 790, 1400);
}

#[test]
fn v1_enhance_your_calm_420_is_a_rate_limit() {
    let mut cfg = generated(20);
    cfg.plans = vec![plan(r#"{"status": 420, "reset_in_secs": 0}"#)];
    let emu = Emulator::start_background(cfg).unwrap();
    deliver_all(&emu, &sample_v1(&emu, ""));
    assert_between("420 wait", gaps(&emu)[0], 390, 1000);
}

#[test]
fn too_many_connections_and_phantom_connections_are_waited_out() {
    let mut cfg = generated(100);
    cfg.plans = vec![
        plan(r#"{"status": 429, "too_many_connections": true, "reset_in_secs": 0}"#),
        plan(r#"{"after": 30, "end": "close_mid_message", "phantom_secs": 1.5}"#),
    ];
    let emu = Emulator::start_background(cfg).unwrap();
    let done = deliver_all(&emu, &sample_v2(&emu, ""));
    let statuses: Vec<u16> = emu.log().iter().map(|c| c.status).collect();
    assert_eq!(statuses[0], 429);
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 2,
        "the phantom refused a reconnect: {statuses:?}"
    );
    assert!(
        done.run.output().contains("TooManyConnections"),
        "the cause is logged"
    );
}

#[test]
fn a_silent_stall_is_detected_and_reconnected() {
    let mut cfg = generated(60);
    cfg.plans = vec![plan(r#"{"after": 20, "end": "stall"}"#)];
    let emu = Emulator::start_background(cfg).unwrap();
    let done = deliver_all(&emu, &sample_v2(&emu, "  stall_timeout: 1s\n"));
    assert_between("stall detected after", gaps(&emu)[0], 990, 2500);
    assert!(done.metrics["stalls_total"].as_u64().unwrap() >= 1);
    assert!(done.run.output().contains("stall"), "{}", done.run.output());
}

#[test]
fn keep_alives_alone_are_not_a_stall() {
    let mut cfg = generated(1000);
    cfg.plans = vec![plan(r#"{"after": 10, "end": "keepalives_only"}"#)];
    let emu = Emulator::start_background(cfg).unwrap();
    let mut run = Run::start(&sample_v2(&emu, "  stall_timeout: 1s\n"));
    run.wait_metric("tweets_total", 10, T);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(emu.log().len(), 1, "no reconnect while keep-alives arrive");
    assert!(run.metrics()["keepalives_total"].as_u64().unwrap() >= 5);
    assert_eq!(run.stop(), 0);
    assert_eq!(keys(&run.records()), unique_in_order(&emu.sent_ids()));
}

#[test]
fn a_server_that_accepts_and_drops_with_keep_alives_only_is_backed_off_from() {
    // Five connections that send a keep-alive and close at once, then a normal stream: the
    // first drop is reconnected at once, the next ones back off (50, 100, 150, 200 ms with
    // FAST_RECONNECT) instead of a storm.
    let mut cfg = generated(20);
    cfg.plans = (0..5)
        .map(|_| plan(r#"{"after": 0, "end": "keepalives_only", "secs": 0.02}"#))
        .collect();
    let emu = Emulator::start_background(cfg).unwrap();
    deliver_all(&emu, &sample_v2(&emu, ""));
    let g = gaps(&emu);
    // Each gap is the connection's own 20 ms plus the wait before the next attempt.
    assert_between("reconnect after the first drop", g[0], 0, 45 + 20);
    assert_between("2nd", g[1], 50 + 15, 50 + 200);
    assert_between("3rd", g[2], 100 + 15, 100 + 200);
    assert_between("4th", g[3], 150 + 15, 150 + 200);
    assert_between("5th", g[4], 200 + 15, 200 + 200);
}

#[test]
fn a_restart_with_backfill_writes_no_tweet_twice() {
    // X re-sends up to `backfill_minutes` of tweets on a new connection, without
    // deduplicating: the restarted connector seeds its window from the end of its output.
    let mut cfg = generated(600);
    cfg.rate = 300.0;
    let emu = Emulator::start_background(cfg).unwrap();
    let mut run = Run::start(&sample_v2(&emu, "  backfill_minutes: 5\n"));
    run.wait_metric("tweets_total", 150, T);
    assert_eq!(run.stop(), 0, "{}", run.output());
    let before = run.records().len();
    run.restart();
    testkit::wait_for("the emulator to send everything", T, || {
        emu.exhausted(x_emulator::Dialect::V2).then_some(())
    });
    let expected = unique_in_order(&emu.sent_ids());
    run.wait_metric("tweets_total", (expected.len() - before) as u64, T);
    assert_eq!(run.stop(), 0, "{}", run.output());
    let sent = emu.sent_ids().len();
    assert!(
        sent >= expected.len() + before / 2,
        "the backfill re-sent the tweets of the first run: {sent} sent, {} distinct",
        expected.len()
    );
    assert!(
        run.output().contains("deduplication seeded"),
        "{}",
        run.output()
    );
    let got = keys(&run.records());
    count_keys(&expected, &got)
        .report(
            "source",
            "a restart with backfill_minutes: 5 (X re-sends the first run's tweets)",
            "the capture file",
        )
        .assert_exactly_once("after the restart");
    assert_eq!(got, expected, "every tweet once, in order");
}

#[test]
fn a_slow_drip_of_bytes_is_read_whole() {
    let mut cfg = generated(4);
    cfg.plans = vec![plan(r#"{"drip_bytes_per_sec": 20000}"#)];
    let emu = Emulator::start_background(cfg).unwrap();
    deliver_all(&emu, &sample_v2(&emu, "  stall_timeout: 2s\n"));
    assert_eq!(emu.log().len(), 1, "a slow but live connection is kept");
}

#[test]
fn in_band_disconnects_reconnect() {
    let mut cfg = generated(60);
    cfg.plans = vec![plan(r#"{"after": 15, "end": "operational_disconnect"}"#)];
    let emu = Emulator::start_background(cfg).unwrap();
    let done = deliver_all(&emu, &sample_v2(&emu, ""));
    assert_eq!(emu.log().len(), 2);
    assert!(done.run.output().contains("operational disconnect"));

    let mut cfg = generated(60);
    cfg.plans = vec![plan(r#"{"after": 15, "end": "disconnect", "code": 12}"#)];
    let emu = Emulator::start_background(cfg).unwrap();
    let done = deliver_all(&emu, &sample_v1(&emu, ""));
    assert_eq!(emu.log().len(), 2);
    assert!(
        done.run.output().contains("disconnect code 12"),
        "{}",
        done.run.output()
    );
}

#[test]
fn bad_messages_are_counted_and_skipped_v2() {
    let mut cfg = generated(40);
    cfg.plans = vec![with_bad_input(
        ConnectionPlan::default(),
        BAD_INPUT_V2,
        (13, 1_500_000),
    )];
    let emu = Emulator::start_background(cfg).unwrap();
    let done = deliver_all(&emu, &sample_v2(&emu, ""));
    let m = &done.metrics;
    assert_eq!(m["errors_total{kind=malformed_json}"], 1, "{m}");
    assert_eq!(m["errors_total{kind=invalid_utf8}"], 1, "{m}");
    assert_eq!(m["errors_total{kind=oversized}"], 1, "{m}");
    assert_eq!(
        m["duplicates_total"], 1,
        "{m}: ids out of order are not duplicates"
    );
    assert_eq!(m["messages_total{type=unknown}"], 1, "{m}");
    let sent = emu.sent_ids();
    assert!(
        sent.windows(2)
            .any(|w| w[0].parse::<u64>().unwrap() > w[1].parse::<u64>().unwrap()),
        "the emulator sent ids out of order"
    );
    assert_eq!(m["messages_total{type=errors}"], 1, "{m}");
    assert_eq!(emu.log().len(), 1, "bad input never breaks the connection");
    let out = done.run.output();
    assert!(
        out.contains("invalid UTF-8 at byte"),
        "an excerpt is logged:\n{out}"
    );
}

#[test]
fn bad_messages_resync_length_framing_v1_and_events_go_to_their_topic() {
    let mut cfg = generated(40);
    cfg.plans = vec![with_bad_input(
        ConnectionPlan::default(),
        &[
            (2, Inject::Delete),
            (4, Inject::Malformed),
            (6, Inject::StatusWithheld),
            (8, Inject::UserWithheld),
            (10, Inject::ScrubGeo),
            (12, Inject::Limit),
            (14, Inject::Warning),
            (16, Inject::InvalidUtf8),
        ],
        (18, 1_200_000),
    )];
    let emu = Emulator::start_background(cfg).unwrap();
    let done = deliver_all(&emu, &sample_v1(&emu, "  events_topic: tweet-events\n"));
    let events = connector_runtime::output::read_capture(&std::path::PathBuf::from(format!(
        "{}.tweet-events",
        done.run.capture.display()
    )))
    .expect("events capture");
    let kinds: Vec<String> = events
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
            v.as_object().unwrap().keys().next().unwrap().clone()
        })
        .collect();
    assert_eq!(
        kinds,
        ["delete", "status_withheld", "user_withheld", "scrub_geo"]
    );
    let sent = emu.sent_ids();
    assert_eq!(
        events[0].key_lossy(),
        sent[1],
        "a delete is keyed by the deleted tweet's id"
    );
    assert_eq!(
        events[2].key_lossy(),
        "123456",
        "a user withholding by the user id"
    );
    let m = &done.metrics;
    assert_eq!(m["errors_total{kind=oversized}"], 1, "{m}");
    assert_eq!(m["messages_total{type=warning}"], 1, "{m}");
    assert!(done.run.output().contains("FALLING_BEHIND"));
}

#[test]
fn non_retryable_statuses_stop_with_xs_problem_detail() {
    for (status, detail) in [
        (401, "Unauthorized"),
        (403, "Client Forbidden"),
        (404, "Not Found"),
        (406, "Not Acceptable"),
        (409, "There are no rules"),
        (413, "Payload Too Large"),
        (416, "backfill_minutes"),
    ] {
        let mut cfg = generated(10);
        cfg.plans = vec![plan(&format!(r#"{{"status": {status}}}"#))];
        let emu = Emulator::start_background(cfg).unwrap();
        let mut run = Run::start(&sample_v2(&emu, ""));
        let code = run.proc.wait_timeout(T).code();
        let out = run.output();
        assert_eq!(code, Some(1), "{status}: {out}");
        assert!(
            out.contains(&format!("answered {status}")) && out.contains(detail),
            "{status}: {out}"
        );
        assert_eq!(emu.log().len(), 1, "{status} is not retried");
    }
}

#[test]
fn network_errors_back_off_linearly_until_the_server_comes_up() {
    let port = testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let config = config_yaml(
        &url,
        &format!("  mode: sample\n{BEARER}{FAST_RECONNECT}"),
        "",
    );
    let mut run = Run::start(&config);
    std::thread::sleep(Duration::from_millis(1200));
    let emu =
        Emulator::start_background_on(generated(20), format!("127.0.0.1:{port}").parse().unwrap())
            .unwrap();
    run.wait_metric("tweets_total", 20, T);
    let m = run.metrics();
    assert_eq!(run.stop(), 0);
    // 50, 100, 150, 200, 250 ms... : about 5 refused attempts in 1.2 s, not a storm.
    let refused = m["reconnects_total{cause=network}"].as_u64().unwrap_or(0);
    assert!(
        (3..=8).contains(&refused),
        "network retries in 1.2 s: {refused}\n{}",
        run.output()
    );
    assert_eq!(keys(&run.records()), unique_in_order(&emu.sent_ids()));
}

#[test]
fn give_up_after_max_attempts_when_configured() {
    let mut cfg = generated(10);
    cfg.plans = (0..5).map(|_| plan(r#"{"status": 503}"#)).collect();
    let emu = Emulator::start_background(cfg).unwrap();
    let mut run = Run::start(&sample_v2(&emu, "    max_attempts: 3\n"));
    let code = run.proc.wait_timeout(T).code();
    assert_eq!(code, Some(1));
    assert!(
        run.output().contains("giving up after 3 failed attempts"),
        "{}",
        run.output()
    );
    assert_eq!(emu.log().len(), 3);
}
