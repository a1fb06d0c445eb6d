//! `mode: bluesky` against the emulator's Jetstream (a real WebSocket server on loopback):
//! posts keyed by at-uri, and nothing lost or written twice across dropped and stalled
//! connections, an instance failover (instances whose clocks differ) and a restart.

mod common;

use std::time::Duration;

use common::*;
use x_emulator::jetstream::{JetstreamConfig, Timeline};
use x_emulator::{Emulator, EmulatorConfig};

const POST: &str = "app.bsky.feed.post";

/// A network publishing `rate` events a second, `limit` in all, from 1.5 s from now (the
/// connector is connected by then, so "live" is the start of the timeline).
fn network(rate: f64, limit: u64) -> JetstreamConfig {
    JetstreamConfig::starting_in(Duration::from_millis(1500), rate, limit)
}

fn instance(net: &JetstreamConfig, skew_us: i64) -> Emulator {
    let mut c = EmulatorConfig::new(x_emulator::Corpus::generated(1_700_000_000_000));
    c.jetstream = JetstreamConfig {
        skew_us,
        ..net.clone()
    };
    Emulator::start_background(c).expect("emulator")
}

/// Every post of the timeline, in order: what the topic must hold, each once.
fn posts(net: &JetstreamConfig) -> Vec<String> {
    let t = Timeline::new(net, 0);
    (0..net.limit.unwrap())
        .map(|i| t.event(i))
        .filter(|e| e.collection == Some(POST))
        .filter_map(|e| e.key)
        .collect()
}

fn config(instances: &[&Emulator], extra: &str) -> String {
    let list: Vec<String> = instances
        .iter()
        .map(|e| format!("      - ws://{}\n", e.addr))
        .collect();
    config_yaml(
        "https://unused.example",
        &format!(
            "  mode: bluesky\n  bluesky:\n    instances:\n{}    cursor_overlap: 200ms\n  stall_timeout: 1s\n{FAST_RECONNECT}{extra}",
            list.concat()
        ),
        "",
    )
}

/// Wait for `n` posts, stop, and check the captured keys are `expected` exactly, in order.
/// Returns the records and the metrics read just before the stop.
fn expect_exactly(
    run: &mut Run,
    expected: &[String],
) -> (Vec<connector_runtime::Record>, serde_json::Value) {
    run.wait_metric(
        "tweets_total",
        expected.len() as u64,
        Duration::from_secs(60),
    );
    let metrics = run.metrics();
    assert_eq!(run.stop(), 0, "{}", run.output());
    let records = run.records();
    assert_each_once_in_order(&keys(&records), expected);
    (records, metrics)
}

/// `got` is `expected`: none missing, none twice, in order (counted, then compared).
fn assert_each_once_in_order(got: &[String], expected: &[String]) {
    let unique = unique_in_order(got);
    let twice = got.len() - unique.len();
    assert_eq!(twice, 0, "{twice} posts written twice");
    let missing = expected.iter().filter(|k| !unique.contains(k)).count();
    assert_eq!(missing, 0, "{missing} of {} posts missing", expected.len());
    assert!(
        got == expected,
        "{} posts, not in timeline order",
        got.len()
    );
}

#[test]
fn posts_are_keyed_by_at_uri_and_shape_into_the_ml_record() {
    let net = network(2000.0, 600);
    let emu = instance(&net, 0);
    let mut run = Run::start(&config(&[&emu], ""));
    let (records, _) = expect_exactly(&mut run, &posts(&net));
    assert!(records.len() > 400, "{} posts", records.len());
    for r in &records {
        let t = tweet_model::shape(&r.value).expect("JSON").expect("a post");
        assert_eq!(t.source_api, "bluesky");
        assert_eq!(t.id, r.key_lossy());
        assert!(r.timestamp_ms.is_some(), "time_us is the record time");
    }
    let log = emu.log();
    assert!(
        log[0]
            .query
            .contains("wantedCollections=app.bsky.feed.post"),
        "{}",
        log[0].query
    );
    assert!(
        !log[0].query.contains("cursor="),
        "the first start has no cursor"
    );
}

#[test]
fn compressed_events_are_read_with_the_dictionary() {
    let dictionary = x_emulator::jetstream::train_dictionary(2000);
    let mut net = network(2000.0, 1500);
    net.zstd_dictionary = Some(std::sync::Arc::new(dictionary.clone()));
    let emu = instance(&net, 0);
    let dir = tempfile::tempdir().unwrap();
    let dict = dir.path().join("zstd_dictionary");
    std::fs::write(&dict, &dictionary).unwrap();
    let config = config(&[&emu], "").replace(
        "    cursor_overlap: 200ms\n",
        &format!(
            "    cursor_overlap: 200ms\n    zstd_dictionary: {}\n",
            dict.display()
        ),
    );
    let mut run = Run::start(&config);
    expect_exactly(&mut run, &posts(&net));
    assert!(
        emu.log()[0].query.contains("compress=true"),
        "{}",
        emu.log()[0].query
    );
}

#[test]
fn dropped_closed_and_stalled_connections_resume_from_the_cursor() {
    let net = network(2000.0, 3000);
    let emu = instance(&net, 0);
    for p in [
        r#"{"after": 300, "end": "close_mid_message"}"#,
        r#"{"status": 503}"#,
        r#"{"after": 400, "end": "stall"}"#,
        r#"{"after": 200, "end": "close"}"#,
    ] {
        emu.push_plan(plan(p));
    }
    let mut run = Run::start(&config(&[&emu], ""));
    let (_, m) = expect_exactly(&mut run, &posts(&net));
    let log = emu.log();
    assert!(log.len() >= 5, "{} connections", log.len());
    assert!(
        log[1..].iter().all(|c| c.query.contains("cursor=")),
        "every reconnect resumes"
    );
    assert!(m["stalls_total"].as_u64().unwrap_or(0) >= 1, "{m}");
}

#[test]
fn failover_between_instances_with_different_clocks_loses_and_repeats_nothing() {
    let net = network(2000.0, 3000);
    // The second instance's clock runs 150 ms ahead, the first's cursor means 150 ms earlier
    // there; going back, the first would miss 150 ms without the overlap.
    let (a, b) = (instance(&net, 0), instance(&net, 150_000));
    a.push_plan(plan(r#"{"after": 600, "end": "close_mid_message"}"#));
    b.push_plan(plan(r#"{"after": 700, "end": "close"}"#));
    let mut run = Run::start(&config(&[&a, &b], ""));
    let (_, m) = expect_exactly(&mut run, &posts(&net));
    assert_eq!(b.log().len(), 1, "one connection to the second instance");
    assert!(
        a.log().len() >= 2,
        "back to the first after the second closed"
    );
    let repeated = a.sent_on("/subscribe").len() + b.sent_on("/subscribe").len();
    assert!(
        m["duplicates_total"].as_u64().unwrap_or(0) > 0 && repeated > posts(&net).len(),
        "the overlap re-sent some posts, and the dedup window dropped them: {m}"
    );
}

#[test]
fn a_restart_takes_up_from_the_last_record_in_the_topic() {
    let net = network(1000.0, 3000);
    let emu = instance(&net, 0);
    let config = config(&[&emu], "");
    let mut run = Run::start(&config);
    run.wait_metric("tweets_total", 500, Duration::from_secs(30));
    assert_eq!(run.stop(), 0, "{}", run.output());
    // Down for a second while the network goes on publishing.
    std::thread::sleep(Duration::from_secs(1));
    run.restart();
    let expected = posts(&net);
    // The timeline ends 3 s after its start; give the restarted connector 1.5 s more.
    let end_us = net.epoch_us.unwrap() + 3_000_000 + 1_500_000;
    let wait = (end_us - connector_runtime::now_ms() * 1000).max(0) as u64;
    std::thread::sleep(Duration::from_micros(wait));
    assert_eq!(run.stop(), 0, "{}", run.output());
    assert_each_once_in_order(&keys(&run.records()), &expected);
    let second = emu.log().last().unwrap().query.clone();
    assert!(second.contains("cursor="), "the restart resumed: {second}");
}

// Long on purpose: one story in order (two restarts, one in a backlog, then the count).
/// Through the project's SmartModules into a real Fluvio topic, stopped and restarted twice:
/// the topic holds shaped posts (no `time_us` in them, and Fluvio's stamps are later than
/// the events), and still every English post is there once, in order.
#[test]
fn filtered_and_shaped_into_fluvio_restarts_lose_and_repeat_nothing() {
    let Some(env) = testkit::fluvio::FluvioEnv::find_or_skip("Bluesky into Fluvio") else {
        return;
    };
    let Some((filter, shape)) = testkit::tweet_smartmodules_or_skip("Bluesky into Fluvio") else {
        return;
    };
    let net = network(1000.0, 6000);
    let emu = instance(&net, 0);
    let topic = env.unique_topic("bluesky");
    let transforms = format!(
        "transforms:\n  - uses: {}\n    with:\n      languages: [en]\n  - uses: {}\n",
        filter.display(),
        shape.display()
    );
    let config = with_topic(
        &config_yaml(
            "https://unused.example",
            &format!(
                "  mode: bluesky\n  bluesky:\n    instances: [ws://{}]\n    cursor_overlap: 200ms\n{FAST_RECONNECT}",
                emu.addr
            ),
            &transforms,
        ),
        &topic,
    );
    let dir = tempfile::tempdir().unwrap();
    let t = Duration::from_secs(60);
    let metric = |name: &str| {
        testkit::metrics_socket(&dir.path().join("m.sock"))[name]
            .as_u64()
            .unwrap_or(0)
    };
    for _ in 0..2 {
        let mut proc = start_into_fluvio(&env, &config, &dir);
        testkit::wait_for("posts handed over", t, || {
            (metric("tweets_total") >= 800).then_some(())
        });
        proc.stop_cleanly(t);
        let _ = std::fs::remove_file(dir.path().join("m.sock"));
        std::thread::sleep(Duration::from_millis(700));
    }
    let mut proc = start_into_fluvio(&env, &config, &dir);
    let last_post = posts(&net).pop().unwrap();
    testkit::wait_for("the last post sent", t, || {
        emu.log()
            .last()
            .unwrap()
            .sent
            .contains(&last_post)
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    proc.stop_cleanly(t);
    let timeline = Timeline::new(&net, 0);
    // The first start takes up the network live, where it is when connected.
    let first = emu.log()[0].sent[0].clone();
    let expected: Vec<String> = (0..6000)
        .map(|i| timeline.event(i))
        .filter(|e| e.collection == Some(POST) && e.key.is_some())
        .skip_while(|e| e.key.as_deref() != Some(first.as_str()))
        .filter(|e| {
            let shaped = tweet_model::shape(e.json.as_bytes()).unwrap().unwrap();
            shaped.lang.as_deref() == Some("en")
        })
        .filter_map(|e| e.key)
        .collect();
    let got: Vec<String> = env
        .consume_values(&topic, 0)
        .iter()
        .map(|v| {
            let t: serde_json::Value = serde_json::from_str(v).expect("shaped JSON");
            assert_eq!(t["source_api"], "bluesky");
            assert_eq!(t["lang"], "en");
            t["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_each_once_in_order(&got, &expected);
}
