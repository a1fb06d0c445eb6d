//! Every real recorded payload of `../shared/data/tweets` goes through the connector intact
//! (byte for byte) with the right key: streamed by the emulator over HTTP in both dialects,
//! and replayed from the files. Skipped, visibly, where the recordings are not present.

mod common;

use std::time::Duration;

use common::*;
use x_emulator::{Corpus, Dialect, Emulator, EmulatorConfig};

const T: Duration = Duration::from_secs(60);

fn expected_key(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["id_str"]
        .as_str()
        .or_else(|| v["data"]["id"].as_str())
        .expect("recorded tweets have ids")
        .to_string()
}

fn check(lines: &[String], records: &[connector_runtime::Record]) {
    assert_eq!(records.len(), lines.len());
    for (line, r) in lines.iter().zip(records) {
        assert_eq!(
            std::str::from_utf8(&r.value).unwrap(),
            line,
            "byte for byte"
        );
        assert_eq!(
            r.key_lossy(),
            expected_key(line),
            "keyed by the tweet id (never a float)"
        );
    }
}

fn streamed(dialect: Dialect, file: &str, twitter: &str) {
    let Some(dir) = testkit::data::tweets_dir_or_skip("recorded payloads through the stream")
    else {
        return;
    };
    let lines = testkit::data::lines(&dir, file);
    let mut cfg = EmulatorConfig::new(Corpus::files(&dir, false).unwrap());
    cfg.keepalive_v1 = Duration::from_millis(200);
    cfg.keepalive_v2 = Duration::from_millis(200);
    let emu = Emulator::start_background(cfg).unwrap();
    let mut run = Run::start(&config_yaml(&emu.base_url(), twitter, ""));
    run.wait_metric("tweets_total", lines.len() as u64, T);
    assert!(emu.exhausted(dialect));
    assert_eq!(run.stop(), 0, "{}", run.output());
    check(&lines, &run.records());
}

#[test]
fn recorded_v1_statuses_stream_intact() {
    streamed(
        Dialect::V1,
        "v1_statuses.jsonl",
        &format!("  mode: v1-sample\n{OAUTH1}"),
    );
}

#[test]
fn recorded_v2_messages_stream_intact() {
    streamed(
        Dialect::V2,
        "v2_messages.jsonl",
        &format!("  mode: sample\n{BEARER}"),
    );
}

#[test]
fn recorded_files_replay_intact_and_the_delete_goes_to_events() {
    let Some(dir) = testkit::data::tweets_dir_or_skip("recorded payloads through replay") else {
        return;
    };
    for file in ["v1_statuses.jsonl", "v2_messages.jsonl"] {
        let twitter = format!(
            "  mode: replay\n  replay:\n    path: {}\n",
            dir.join(file).display()
        );
        let mut run = Run::start(&config_yaml("http://unused", &twitter, ""));
        assert_eq!(run.proc.wait_timeout(T).code(), Some(0), "{}", run.output());
        check(&testkit::data::lines(&dir, file), &run.records());
    }
    let twitter = format!(
        "  mode: replay\n  events_topic: events\n  replay:\n    path: {}\n",
        dir.join("v1_stream_messages.jsonl").display()
    );
    let mut run = Run::start(&config_yaml("http://unused", &twitter, ""));
    assert_eq!(run.proc.wait_timeout(T).code(), Some(0), "{}", run.output());
    assert!(run.records().is_empty(), "a delete is not a tweet");
    let events = connector_runtime::output::read_capture(&std::path::PathBuf::from(format!(
        "{}.events",
        run.capture.display()
    )))
    .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].key_lossy(), "272691609211117568");
    assert_eq!(
        std::str::from_utf8(&events[0].value).unwrap(),
        testkit::data::lines(&dir, "v1_stream_messages.jsonl")[0]
    );
}
