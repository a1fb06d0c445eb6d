//! The connector producing to a real Fluvio topic (skipped, visibly, without a cluster):
//! clean shutdown under load loses nothing it accepted, the fault scenarios of `faults.rs`
//! (all in one run per API) leave every tweet in the topic once and in order, and transforms run
//! by local path and by registered name.

mod common;

use std::time::Duration;

use common::*;
use testkit::fluvio::FluvioEnv;
use x_emulator::{ConnectionPlan, Corpus, Emulator, Inject};

const T: Duration = Duration::from_secs(60);

#[test]
fn sigterm_under_load_flushes_every_accepted_record_to_the_topic() {
    let Some(env) = FluvioEnv::find_or_skip("source shutdown under load (Fluvio)") else {
        return;
    };
    let topic = env.unique_topic("shutdown");
    let mut cfg = generated(1_000_000);
    cfg.random_chunks = false;
    let emu = Emulator::start_background(cfg).unwrap();
    // A long linger: records sit in the producer's batches when the signal comes.
    let config = with_topic(
        &config_yaml(&emu.base_url(), &format!("  mode: sample\n{BEARER}"), ""),
        &topic,
    )
    .replace(
        "  secrets:\n",
        "  producer:\n    linger: 2s\n    batch-size: \"512 KB\"\n  secrets:\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut proc = start_into_fluvio(&env, &config, &dir);
    wait_until_stored(&env, &topic, 12_000, &proc, T);
    proc.stop_cleanly(T);
    let out = proc.output();
    let produced: usize = out
        .lines()
        .find(|l| l.contains("flushed; source stopped"))
        .and_then(|l| l.split("produced=").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no final count in:\n{out}"));
    assert!(produced > 10_000, "stopped under load: {produced}");
    let keys: Vec<String> = env
        .consume_keyed(&topic, 0)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys.len(),
        produced,
        "every accepted record is in the topic"
    );
    let sent = emu.sent_ids();
    assert_eq!(
        keys[..],
        sent[..keys.len()],
        "in order, none missing, none doubled"
    );
}

#[test]
fn a_restart_recovers_from_the_newest_post_in_the_topic_not_its_producer_stamp() {
    let Some(env) = FluvioEnv::find_or_skip("source restart with recovery (Fluvio)") else {
        return;
    };
    // Posts created a second apart from 20 minutes ago: the newest in the topic is 20 minutes
    // old when the connector comes back, but Fluvio stamped it when it was produced, just now.
    let mut cfg = generated(10_000);
    cfg.corpus = Corpus::generated_spaced(connector_runtime::now_ms() - 20 * 60 * 1000, 1000);
    cfg.rate = 200.0;
    let emu = Emulator::start_background(cfg).unwrap();
    let topic = env.unique_topic("recovery");
    let config = with_topic(
        &config_yaml(
            &emu.base_url(),
            &format!(
                "  mode: sample10\n  partition: 1\n  recovery: true\n{BEARER}{FAST_RECONNECT}"
            ),
            "",
        ),
        &topic,
    );
    let dir = tempfile::tempdir().unwrap();
    let run_until = |sent: usize| {
        let mut proc = start_into_fluvio(&env, &config, &dir);
        wait_until_sent(&emu, sent, &proc, T);
        proc.stop_cleanly(T);
        proc.output()
    };
    run_until(40);
    // While it was down, 5 went by.
    emu.push_plan(plan(r#"{"missed": 5}"#));
    let second = run_until(emu.sent_ids().len() + 60);
    let restart = emu.log().last().unwrap().query.clone();
    assert!(
        restart.contains("start_time=20"),
        "recovery asks from 20 minutes ago: {restart}\n{second}"
    );
    let keys: Vec<String> = env
        .consume_keyed(&topic, 0)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    // Everything X sent up to the newest post in the topic (what it sent after that the
    // source had not read when it stopped).
    let sent = unique_in_order(&emu.sent_ids());
    let found: Vec<i64> = keys
        .iter()
        .map(|k| sent.iter().position(|e| e == k).map_or(-1, |i| i as i64))
        .collect();
    let offered = found.iter().max().map_or(0, |m| *m + 1) as usize;
    testkit::reliability::Count::of(offered, found)
        .report(
            "source",
            "a restart 20 minutes behind, into Fluvio (recovery: true; 5 posts went by)",
            "the Fluvio topic",
        )
        .assert_exactly_once("after the restart");
    assert_eq!(keys[..], sent[..offered], "every post once, in order");
}

#[test]
fn a_restart_with_backfill_writes_no_tweet_twice_though_the_tail_is_longer_than_a_fetch() {
    let Some(env) = FluvioEnv::find_or_skip("source restart with backfill (Fluvio)") else {
        return;
    };
    // X re-sends up to `backfill_minutes` of tweets on a new connection; the restarted source
    // seeds its dedup window from the end of the topic: here thousands of tweets, megabytes
    // more than one 4 MB fetch (Fluvio 0.50's consumer drops the batch straddling a fetch's end).
    // The first run stops once the topic holds 7,000 (~6 MB), not once X sent that many: on a
    // loaded machine the source reads megabytes behind what X wrote into the socket.
    let mut cfg = generated(20_000);
    cfg.rate = 4_000.0;
    let emu = Emulator::start_background(cfg).unwrap();
    let topic = env.unique_topic("backfill");
    let config = with_topic(&sample_v2(&emu, "  backfill_minutes: 5\n"), &topic);
    let dir = tempfile::tempdir().unwrap();
    let mut first = start_into_fluvio(&env, &config, &dir);
    wait_until_stored(&env, &topic, 7_000, &first, T);
    first.stop_cleanly(T);
    let before = env.high_watermarks(&topic)[0];
    let tail_mb = env
        .consume_values(&topic, 0)
        .iter()
        .map(String::len)
        .sum::<usize>()
        / 1_000_000;
    assert!(
        tail_mb > 4,
        "the tail the restart reads spans fetches: {tail_mb} MB"
    );
    let mut second = start_into_fluvio(&env, &config, &dir);
    testkit::wait_for("the emulator to send everything", T, || {
        emu.exhausted(x_emulator::Dialect::V2).then_some(())
    });
    let expected = unique_in_order(&emu.sent_ids());
    testkit::wait_for("every tweet in the topic", T, || {
        (env.high_watermarks(&topic)[0] >= expected.len() as i64).then_some(())
    });
    // A little longer: a duplicate would come after the last new tweet.
    std::thread::sleep(Duration::from_secs(1));
    second.stop_cleanly(T);
    let sent = emu.sent_ids().len();
    assert!(
        sent as i64 >= expected.len() as i64 + before / 2,
        "the backfill re-sent the first run's tweets: {sent} sent, {} distinct, {before} in the topic before",
        expected.len()
    );
    let keys: Vec<String> = env
        .consume_keyed(&topic, 0)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    count_keys(&expected, &keys)
        .report(
            "source",
            "a restart with backfill_minutes: 5 into Fluvio, the topic's tail longer than a fetch",
            "the Fluvio topic",
        )
        .assert_exactly_once("after the restart");
    env.run(&["topic", "delete", &topic]);
}

/// The faults of `faults.rs`, one after the other on successive connections of one run.
fn every_fault(dialect: x_emulator::Dialect) -> Vec<ConnectionPlan> {
    let injections: &[(u64, Inject)] = match dialect {
        x_emulator::Dialect::V2 => BAD_INPUT_V2,
        x_emulator::Dialect::V1 => &[
            (2, Inject::Delete),
            (4, Inject::Malformed),
            (6, Inject::StatusWithheld),
            (8, Inject::InvalidUtf8),
            (10, Inject::Duplicate),
            (12, Inject::OutOfOrder),
        ],
    };
    let bad = with_bad_input(
        plan(r#"{"after": 40, "end": "close_mid_message"}"#),
        injections,
        (14, 1_500_000),
    );
    let in_band = match dialect {
        x_emulator::Dialect::V2 => r#"{"after": 20, "end": "operational_disconnect"}"#,
        x_emulator::Dialect::V1 => r#"{"after": 20, "end": "disconnect", "code": 12}"#,
    };
    vec![
        bad,
        plan(r#"{"status": 503}"#),
        plan(r#"{"status": 429, "reset_in_secs": 0}"#),
        plan(r#"{"after": 20, "end": "stall"}"#),
        plan(in_band),
        plan(r#"{"after": 20, "end": "close", "phantom_secs": 0.5}"#),
        plan(r#"{"drip_bytes_per_sec": 200000, "after": 20, "end": "close"}"#),
    ]
}

#[test]
fn every_fault_leaves_each_tweet_in_the_topic_once_and_in_order() {
    let Some(env) = FluvioEnv::find_or_skip("fault scenarios through a Fluvio topic") else {
        return;
    };
    for (dialect, mode, auth) in [
        (x_emulator::Dialect::V2, "sample", BEARER),
        (x_emulator::Dialect::V1, "v1-sample", OAUTH1),
    ] {
        let mut cfg = generated(300);
        cfg.plans = every_fault(dialect);
        let emu = Emulator::start_background(cfg).unwrap();
        let topic = env.unique_topic("faults");
        let events = env.unique_topic("fault-events");
        let config = with_topic(
            &config_yaml(
                &emu.base_url(),
                &format!(
                    "  mode: {mode}
{auth}{FAST_RECONNECT}  stall_timeout: 1s
  events_topic: {events}
"
                ),
                "",
            ),
            &topic,
        );
        let dir = tempfile::tempdir().unwrap();
        let mut proc = start_into_fluvio(&env, &config, &dir);
        testkit::wait_for("the emulator to send everything", T, || {
            if let Some(s) = proc.try_status() {
                panic!("connector exited with {s}: {}", proc.output());
            }
            emu.exhausted(dialect).then_some(())
        });
        let expected = unique_in_order(&emu.sent_ids());
        testkit::wait_for("every tweet handed over", T, || {
            let m = testkit::metrics_socket(&dir.path().join("m.sock"));
            (m["tweets_total"].as_u64() == Some(expected.len() as u64)).then_some(m)
        });
        proc.stop_cleanly(T);
        assert!(
            emu.log().len() > every_fault(dialect).len(),
            "{mode}: a connection per fault, then a clean one: {:?}",
            emu.log()
        );
        let keys: Vec<String> = env
            .consume_keyed(&topic, 0)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys.len(), expected.len(), "{mode}: count");
        assert_eq!(keys, expected, "{mode}: every tweet sent, once, in order");
        if dialect == x_emulator::Dialect::V1 {
            let events = env.consume_keyed(&events, 0);
            assert_eq!(
                events.len(),
                2,
                "{mode}: the delete and the withholding: {events:?}"
            );
            assert!(events[0].1.starts_with(r#"{"delete""#), "{events:?}");
            assert!(
                events[1].1.starts_with(r#"{"status_withheld""#),
                "{events:?}"
            );
        }
    }
}

#[test]
fn transforms_by_local_path_and_by_registered_name() {
    let Some(env) = FluvioEnv::find_or_skip("source transforms (Fluvio)") else {
        return;
    };
    let Some((filter, shape)) = testkit::tweet_smartmodules_or_skip("source transforms (Fluvio)")
    else {
        return;
    };
    let registered = env.unique_topic("tweet-shape-test");
    env.run(&[
        "smartmodule",
        "create",
        &registered,
        "--wasm-file",
        shape.to_str().unwrap(),
    ]);
    let emu = Emulator::start_background(generated(400)).unwrap();
    let topic = env.unique_topic("shaped");
    let transforms = format!(
        "transforms:\n  - uses: {}\n    with:\n      languages: [en]\n      exclude_retweets: \"true\"\n  - uses: {registered}\n",
        filter.display()
    );
    let config = with_topic(
        &config_yaml(
            &emu.base_url(),
            &format!("  mode: sample\n{BEARER}"),
            &transforms,
        ),
        &topic,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut proc = start_into_fluvio(&env, &config, &dir);
    testkit::wait_for("the emulator to send everything", T, || {
        emu.exhausted(x_emulator::Dialect::V2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    proc.stop_cleanly(T);
    let _ = env
        .command()
        .args(["smartmodule", "delete", &registered])
        .output();
    let values = env.consume_values(&topic, 0);
    let gen = x_emulator::generator::Generator::new(1_700_000_000_000);
    let expected: Vec<String> = emu
        .sent_ids()
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let f = gen.facts(*i as u64);
            f.lang == "en" && f.kind != x_emulator::generator::Kind::Retweet
        })
        .map(|(_, id)| id.clone())
        .collect();
    assert!(!expected.is_empty());
    let got: Vec<String> = values
        .iter()
        .map(|v| {
            let t: serde_json::Value = serde_json::from_str(v).expect("shaped JSON");
            assert_eq!(t["schema"], "tweet/1");
            assert_eq!(t["lang"], "en");
            assert_ne!(t["kind"], "retweet");
            t["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(got, expected, "filtered then shaped, in order");
}

/// The connections of the firehose test, each ending after 100 posts: 20 partitions of 300
/// tweets and 4 compliance partitions of 1,500 events.
const FIREHOSE_CONNECTIONS: usize = 20 * 3 + 4 * 15;

#[test]
fn a_firehose_of_20_partition_connections_lands_in_one_topic_each_tweet_once() {
    let Some(env) = FluvioEnv::find_or_skip("firehose and compliance into Fluvio") else {
        return;
    };
    let topic = env.unique_topic("firehose");
    let events = env.unique_topic("compliance");
    let mut cfg = generated(6000);
    // Every connection ends after 100 posts (the emulator takes one plan per connection, and
    // there are plans to spare for the reconnections after a partition's end).
    cfg.plans = vec![
        ConnectionPlan {
            after: Some(100),
            end: Some(x_emulator::End::Close),
            ..Default::default()
        };
        2 * FIREHOSE_CONNECTIONS
    ];
    let emu = Emulator::start_background(cfg).unwrap();
    let config = with_topic(
        &config_yaml(
            &emu.base_url(),
            &format!("  mode: firehose\n{BEARER}{FAST_RECONNECT}  events_topic: {events}\n  compliance:\n    tweets: [1, 2, 3, 4]\n"),
            "",
        ),
        &topic,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut proc = start_into_fluvio(&env, &config, &dir);
    testkit::wait_for("the 20 + 4 partitions to send everything", T, || {
        if let Some(s) = proc.try_status() {
            panic!("the source exited ({s}): {}", proc.output());
        }
        emu.exhausted(x_emulator::Dialect::V2).then_some(())
    });
    let metrics = || testkit::metrics_socket(&dir.path().join("m.sock"));
    let metric = |name: &str| metrics()[name].as_u64().unwrap_or(0);
    // The emulator has written everything into the sockets; wait until the source has read
    // it (what a stop leaves unread in a socket is not the source's to lose) and produced
    // the tweets. The events' way to their topic is the flush at SIGTERM.
    testkit::wait_for("every tweet produced, every event read", T, || {
        (metric("records_produced_total") >= 6000
            && metric("messages_total{type=compliance}") >= 6000)
            .then_some(())
    });
    let connections: u64 = metrics()
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("connections_total{"))
        .filter_map(|(_, v)| v.as_u64())
        .sum();
    assert!(
        connections >= FIREHOSE_CONNECTIONS as u64,
        "every partition was read over several connections: {connections}"
    );
    proc.stop_cleanly(T);
    let mut got: Vec<String> = env
        .keys_by_offset(&topic, 0)
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    let mut sent = unique_in_order(&emu.sent_on("/2/tweets/firehose/stream"));
    assert_eq!(sent.len(), 6000, "a clean close loses no tweet");
    let mut event_keys: Vec<String> = env
        .keys_by_offset(&events, 0)
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    let mut expected_events = emu.sent_on("/2/tweets/compliance/stream");
    assert_eq!(expected_events.len(), 6000);
    let scenario = |what: &str| {
        format!("{what} of 20 firehose and 4 compliance partitions, each connection ending after 100 posts (at least {FIREHOSE_CONNECTIONS} connections), then SIGTERM")
    };
    count_keys(&sent, &got)
        .report(
            "source",
            &scenario("the tweets"),
            "fluvio consume --start/--end (keys)",
        )
        .assert_exactly_once("the firehose's tweets");
    count_keys(&expected_events, &event_keys)
        .report(
            "source",
            &scenario("the compliance events"),
            "fluvio consume --start/--end (keys)",
        )
        .assert_exactly_once("the compliance events");
    event_keys.sort();
    expected_events.sort();
    assert_eq!(
        event_keys, expected_events,
        "each compliance event once in its topic"
    );
    got.sort();
    sent.sort();
    let before = got.len();
    got.dedup();
    assert_eq!(before, got.len(), "no tweet twice in the topic");
    assert_eq!(got, sent, "every tweet of every partition in the topic");
}
