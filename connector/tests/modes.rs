//! Every mode, end to end: the `twitter-source` binary talking HTTP to the X API emulator,
//! records captured where they are handed to the producer. Each test checks that every tweet
//! the emulator sent arrives once, in order, keyed by its id, with the exact bytes sent.

mod common;

use std::time::Duration;

use common::*;
use x_emulator::Emulator;

const T: Duration = Duration::from_secs(30);

/// The emulator's sent ids, and the captured records, must agree exactly.
fn assert_delivered_exactly(emu: &Emulator, records: &[connector_runtime::Record]) {
    let sent = unique_in_order(&emu.sent_ids());
    assert!(!sent.is_empty(), "the emulator sent nothing");
    assert_eq!(keys(records), sent, "every sent tweet once, in order");
    for r in records {
        let v: serde_json::Value =
            serde_json::from_slice(&r.value).expect("value is the JSON message");
        let id = v["id_str"]
            .as_str()
            .or_else(|| v["data"]["id"].as_str())
            .expect("an id in the value");
        assert_eq!(id, r.key_lossy(), "key is the tweet id");
    }
}

#[test]
fn v2_sample_stream() {
    let emu = Emulator::start_background(generated(300)).unwrap();
    let mut run = Run::start(&config_yaml(
        &emu.base_url(),
        &format!("  mode: sample\n{BEARER}"),
        "",
    ));
    let (code, records) = run_until_tweets(&mut run, 300, T);
    assert_eq!(code, 0, "{}", run.output());
    assert_delivered_exactly(&emu, &records);
    assert!(
        emu.log()[0].query.contains("tweet.fields="),
        "fields are requested: {}",
        emu.log()[0].query
    );
    assert!(run.output().contains("flushed; source stopped"));
}

#[test]
fn v2_sample10_needs_and_sends_its_partition() {
    let emu = Emulator::start_background(generated(50)).unwrap();
    let mut run = Run::start(&config_yaml(
        &emu.base_url(),
        &format!("  mode: sample10\n  partition: 2\n{BEARER}"),
        "",
    ));
    let (code, records) = run_until_tweets(&mut run, 50, T);
    assert_eq!(code, 0);
    assert_delivered_exactly(&emu, &records);
    assert!(
        emu.log()[0].query.starts_with("partition=2"),
        "{}",
        emu.log()[0].query
    );
}

/// Each key once; the partitions interleave, so the order is only kept within one.
fn assert_each_sent_tweet_once(emu: &Emulator, records: &[connector_runtime::Record]) {
    let got = keys(records);
    let unique: std::collections::HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no tweet twice");
    let mut sent = unique_in_order(&emu.sent_ids());
    let mut got = got.clone();
    sent.sort();
    got.sort();
    assert_eq!(got, sent, "every tweet sent, once");
}

/// The partitions the emulator saw connections for, sorted, each once.
fn partitions_connected(emu: &Emulator) -> Vec<u8> {
    let mut p: Vec<u8> = emu
        .log()
        .iter()
        .filter(|c| c.status == 200)
        .filter_map(|c| {
            c.query
                .split('&')
                .find_map(|kv| kv.strip_prefix("partition="))
                .and_then(|v| v.parse().ok())
        })
        .collect();
    p.sort();
    p.dedup();
    p
}

#[test]
fn v2_firehose_reads_all_20_partitions_into_one_topic_each_reconnecting_alone() {
    let mut cfg = generated(3000);
    // One partition's connection breaks mid-message; it alone reconnects.
    cfg.plans = vec![x_emulator::ConnectionPlan {
        after: Some(40),
        end: Some(x_emulator::End::CloseMidMessage),
        ..Default::default()
    }];
    let emu = Emulator::start_background(cfg).unwrap();
    let mut run = Run::start(&config_yaml(
        &emu.base_url(),
        &format!("  mode: firehose\n{BEARER}{FAST_RECONNECT}"),
        "",
    ));
    testkit::wait_for("every partition to send everything", T, || {
        if let Some(s) = run.proc.try_status() {
            panic!("connector exited with {s}: {}", run.output());
        }
        emu.exhausted(x_emulator::Dialect::V2).then_some(())
    });
    let sent = unique_in_order(&emu.sent_ids()).len() as u64;
    assert_eq!(
        sent, 2999,
        "the 20 partitions together are the whole stream, less the tweet cut mid-message"
    );
    run.wait_metric("tweets_total", sent, T);
    let m = run.metrics();
    assert_eq!(run.stop(), 0, "{}", run.output());
    assert_each_sent_tweet_once(&emu, &run.records());
    assert_eq!(partitions_connected(&emu), (1..=20).collect::<Vec<u8>>());
    let count = |prefix: &str| -> u64 {
        m.as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(count("connections_total{partition="), 21, "{m}");
    assert_eq!(count("reconnects_total{cause=dropped"), 1, "{m}");
    assert_eq!(
        emu.log().len(),
        21,
        "the other partitions never reconnected"
    );
}

#[test]
fn v2_language_firehose_reads_the_chosen_partitions_of_one_language() {
    let emu = Emulator::start_background(generated(2000)).unwrap();
    let mut run = Run::start(&config_yaml(
        &emu.base_url(),
        &format!("  mode: firehose-lang\n  lang: en\n  partitions: [2, 5]\n{BEARER}"),
        "",
    ));
    let path = "/2/tweets/firehose/stream/lang/en";
    testkit::wait_for("partitions 2 and 5 to send everything", T, || {
        if let Some(s) = run.proc.try_status() {
            panic!("connector exited with {s}: {}", run.output());
        }
        emu.partitions_exhausted(path, &[2, 5]).then_some(())
    });
    let sent = unique_in_order(&emu.sent_ids()).len() as u64;
    assert!(sent > 50, "English tweets in 2 of 8 partitions: {sent}");
    run.wait_metric("tweets_total", sent, T);
    assert_eq!(run.stop(), 0, "{}", run.output());
    let records = run.records();
    assert_each_sent_tweet_once(&emu, &records);
    for r in &records {
        let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
        assert_eq!(v["data"]["lang"], "en", "{v}");
    }
    assert_eq!(partitions_connected(&emu), vec![2, 5]);
    assert!(emu.log().iter().all(|c| c.path == path));
}

#[test]
fn v2_compliance_streams_beside_the_sample_send_each_event_to_the_events_topic() {
    let emu = Emulator::start_background(generated(200)).unwrap();
    let twitter = format!(
        "  mode: sample\n{BEARER}  events_topic: tweet-events\n  compliance:\n    tweets: [1, 2, 3, 4]\n    users: [1, 2, 3, 4]\n"
    );
    let mut run = Run::start(&config_yaml(&emu.base_url(), &twitter, ""));
    testkit::wait_for(
        "the stream and its 8 compliance partitions to send everything",
        T,
        || {
            if let Some(s) = run.proc.try_status() {
                panic!("connector exited with {s}: {}", run.output());
            }
            emu.exhausted(x_emulator::Dialect::V2).then_some(())
        },
    );
    let tweets = emu.sent_on("/2/tweets/sample/stream");
    let tweet_events = emu.sent_on("/2/tweets/compliance/stream");
    let user_events = emu.sent_on("/2/users/compliance/stream");
    assert_eq!(
        (tweets.len(), tweet_events.len(), user_events.len()),
        (200, 200, 200)
    );
    run.wait_metric("tweets_total", 200, T);
    run.wait_metric("messages_total{type=compliance}", 400, T);
    assert_eq!(run.stop(), 0, "{}", run.output());
    assert_eq!(keys(&run.records()), tweets, "the tweets, in order, once");
    let events = connector_runtime::output::read_capture(&std::path::PathBuf::from(format!(
        "{}.tweet-events",
        run.capture.display()
    )))
    .expect("events capture");
    assert_eq!(events.len(), 400, "every event once");
    let mut by_kind = std::collections::BTreeMap::<String, usize>::new();
    let mut tweet_keys = Vec::new();
    for e in &events {
        let v: serde_json::Value = serde_json::from_slice(&e.value).unwrap();
        let (kind, body) = v["data"].as_object().unwrap().iter().next().unwrap();
        *by_kind.entry(kind.clone()).or_default() += 1;
        let id = body["tweet"]["id"]
            .as_str()
            .or(body["user"]["id"].as_str())
            .unwrap();
        assert_eq!(
            e.key_lossy(),
            id,
            "keyed by the tweet's or the user's id: {v}"
        );
        if body.get("tweet").is_some() {
            tweet_keys.push(id.to_string());
        }
    }
    for kind in [
        "delete",
        "tweet_edit",
        "withheld",
        "drop",
        "undrop",
        "user_delete",
        "user_protect",
    ] {
        assert!(by_kind.contains_key(kind), "{kind} in {by_kind:?}");
    }
    tweet_keys.sort();
    let mut expected = tweet_events.clone();
    expected.sort();
    assert_eq!(tweet_keys, expected);
}

#[test]
fn v2_filtered_reconciles_rules_and_tags_tweets() {
    let mut cfg = generated(2000);
    cfg.rules = vec![
        ("stale rule".into(), Some("old".into())),
        ("coffee".into(), Some("wrong-tag".into())),
    ];
    let emu = Emulator::start_background(cfg).unwrap();
    let twitter = format!("  mode: filtered\n{BEARER}  rules:\n    - value: coffee\n      tag: drinks\n    - value: \"cats OR dogs\"\n      tag: pets\n");
    let mut run = Run::start(&config_yaml(&emu.base_url(), &twitter, ""));
    // Wait for the emulator to run out, then for the connector to catch up.
    testkit::wait_for("emulator exhausted", T, || {
        if run.proc.try_status().is_some() {
            panic!("connector exited: {}", run.output());
        }
        emu.exhausted(x_emulator::Dialect::V2).then_some(())
    });
    let sent = emu.sent_ids().len() as u64;
    let (code, records) = run_until_tweets(&mut run, sent, T);
    assert_eq!(code, 0, "{}", run.output());
    let rules = app_rules(&emu);
    assert_eq!(
        rules,
        vec![
            ("cats OR dogs".into(), Some("pets".into())),
            ("coffee".into(), Some("drinks".into()))
        ]
    );
    assert_delivered_exactly(&emu, &records);
    for r in &records {
        let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
        let tags: Vec<&str> = v["matching_rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["tag"].as_str())
            .collect();
        let text = v["data"]["text"].as_str().unwrap().to_lowercase();
        assert!(!tags.is_empty());
        if tags.contains(&"drinks") {
            assert!(text.contains("coffee"), "{text}");
        }
    }
}

#[test]
fn v2_filtered_invalid_rule_stops_start_up_with_xs_message() {
    let emu = Emulator::start_background(generated(10)).unwrap();
    let twitter = format!("  mode: filtered\n{BEARER}  rules:\n    - value: \"cats bogus:op\"\n");
    let mut run = Run::start(&config_yaml(&emu.base_url(), &twitter, ""));
    let status = run.proc.wait_timeout(T);
    assert_eq!(status.code(), Some(1));
    let out = run.output();
    assert!(
        out.contains("Reference to invalid operator 'bogus'"),
        "{out}"
    );
    assert!(emu.rules().is_empty(), "nothing was added");
}

#[test]
fn v2_consumer_key_and_secret_are_exchanged_for_a_bearer_token() {
    let emu = Emulator::start_background(generated(20)).unwrap();
    let twitter = "  mode: sample\n  auth:\n    consumer_key: \"${{ secrets.TWITTERCONSUMERKEY }}\"\n    consumer_secret: \"${{ secrets.TWITTERCONSUMERSECRET }}\"\n";
    let mut run = Run::start(&config_yaml(&emu.base_url(), twitter, ""));
    let (code, records) = run_until_tweets(&mut run, 20, T);
    assert_eq!(code, 0, "{}", run.output());
    assert_delivered_exactly(&emu, &records);
}

#[test]
fn v1_sample_with_oauth1_and_length_delimited_framing() {
    let emu = Emulator::start_background(generated(200)).unwrap();
    let mut run = Run::start(&config_yaml(
        &emu.base_url(),
        &format!("  mode: v1-sample\n{OAUTH1}"),
        "",
    ));
    let (code, records) = run_until_tweets(&mut run, 200, T);
    assert_eq!(code, 0, "{}", run.output());
    assert_delivered_exactly(&emu, &records);
    let q = &emu.log()[0].query;
    assert!(
        q.contains("delimited=length") && q.contains("stall_warnings=true"),
        "{q}"
    );
}

#[test]
fn v1_filter_posts_track_and_gets_matching_tweets() {
    let emu = Emulator::start_background(generated(3000)).unwrap();
    let twitter = format!(
        "  mode: v1-filter\n  track: [coffee, \"space launch\"]\n  language: [en]\n{OAUTH1}"
    );
    let mut run = Run::start(&config_yaml(&emu.base_url(), &twitter, ""));
    testkit::wait_for("emulator exhausted", T, || {
        emu.exhausted(x_emulator::Dialect::V1).then_some(())
    });
    let sent = emu.sent_ids().len() as u64;
    assert!(sent > 0);
    let (code, records) = run_until_tweets(&mut run, sent, T);
    assert_eq!(code, 0, "{}", run.output());
    assert_delivered_exactly(&emu, &records);
    assert_eq!(emu.log()[0].method, "POST");
    for r in &records {
        let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
        assert_eq!(v["lang"], "en");
    }
}

#[test]
fn v1_bad_oauth_keys_stop_with_401_and_xs_message() {
    let emu = Emulator::start_background(generated(10)).unwrap();
    let secrets = SECRETS.replace("emulator-access-token-secret", "wrong-secret");
    let mut run = Run::start_with(
        &config_yaml(&emu.base_url(), &format!("  mode: v1-sample\n{OAUTH1}"), ""),
        &secrets,
        &[],
    );
    let status = run.proc.wait_timeout(T);
    assert_eq!(status.code(), Some(1));
    let out = run.output();
    assert!(
        out.contains("401") && out.contains("invalid signature"),
        "{out}"
    );
    assert!(
        !out.contains("wrong-secret") && !out.contains("emulator-consumer-secret"),
        "a secret leaked:\n{out}"
    );
}

#[test]
fn replay_of_jsonl_gz_and_json_array_files_in_a_folder() {
    let gen = x_emulator::generator::Generator::new(1_700_000_000_000);
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..30).map(|s| gen.v1(s)).collect();
    std::fs::write(dir.path().join("a.jsonl"), lines[..10].join("\n") + "\n").unwrap();
    {
        use std::io::Write;
        let f = std::fs::File::create(dir.path().join("b.jsonl.gz")).unwrap();
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        gz.write_all(lines[10..20].join("\r\n").as_bytes()).unwrap();
        gz.finish().unwrap();
    }
    std::fs::write(
        dir.path().join("c.json"),
        format!("[\n{}\n]", lines[20..].join(",\n")),
    )
    .unwrap();
    let twitter = format!(
        "  mode: replay\n  replay:\n    path: {}\n    rate: max\n",
        dir.path().display()
    );
    let mut run = Run::start(&config_yaml("http://unused", &twitter, ""));
    let status = run.proc.wait_timeout(T);
    assert_eq!(
        status.code(),
        Some(0),
        "replay ends by itself: {}",
        run.output()
    );
    let records = run.records();
    assert_eq!(records.len(), 30);
    for (r, line) in records.iter().zip(&lines) {
        assert_eq!(
            std::str::from_utf8(&r.value).unwrap(),
            line,
            "byte for byte"
        );
    }
}

#[test]
fn replay_at_a_fixed_rate_loops_until_stopped_and_dedups() {
    let gen = x_emulator::generator::Generator::new(1_700_000_000_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.jsonl");
    std::fs::write(
        &file,
        (0..5).map(|s| gen.v2(s)).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let twitter = format!(
        "  mode: replay\n  replay:\n    path: {}\n    rate: 50\n    loop: true\n",
        file.display()
    );
    let mut run = Run::start(&config_yaml("http://unused", &twitter, ""));
    run.wait_metric("duplicates_total", 10, T);
    assert_eq!(run.stop(), 0);
    assert_eq!(
        run.records().len(),
        5,
        "looping re-sends the same ids: the window drops them"
    );
}
