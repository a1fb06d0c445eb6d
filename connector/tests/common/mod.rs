//! Shared by the connector's integration tests: run the real `twitter-source` binary against
//! the X API emulator (a real HTTP server on loopback) and read back, from `--capture`, every
//! record it handed to the producer.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use connector_runtime::output::read_capture;
use connector_runtime::Record;
use testkit::process::TestProcess;
use x_emulator::{ConnectionPlan, Corpus, Emulator, EmulatorConfig, Inject, Injection};

pub const BIN: &str = env!("CARGO_BIN_EXE_twitter-source");

/// Emulator credentials, as secrets the config references.
pub const SECRETS: &str = "TWITTER_BEARER_TOKEN=emulator-bearer-token\n\
TWITTERCONSUMERKEY=emulator-consumer-key\n\
TWITTERCONSUMERSECRET=emulator-consumer-secret\n\
TWITTERACCESSTOKEN=emulator-access-token\n\
TWITTERACCESSTOKENSECRET=emulator-access-token-secret\n";

/// Reconnect steps scaled down so fault tests run in seconds (the schedule's shape is the
/// same; `backoff.rs` checks the real numbers).
pub const FAST_RECONNECT: &str = "  reconnect:\n    network_step: 50ms\n    network_max: 400ms\n    http_initial: 200ms\n    http_max: 1600ms\n    rate_limit_initial: 400ms\n    rate_limit_max: 3s\n";

/// A generated-tweets emulator config, `limit` tweets per dialect, keep-alives every 200 ms.
pub fn generated(limit: u64) -> EmulatorConfig {
    let mut c = EmulatorConfig::new(Corpus::generated(1_700_000_000_000));
    c.limit = Some(limit);
    c.keepalive_v2 = Duration::from_millis(200);
    c.keepalive_v1 = Duration::from_millis(200);
    c
}

/// A connection plan from its JSON form (as the emulator's control endpoint takes it).
pub fn plan(json: &str) -> ConnectionPlan {
    serde_json::from_str(json).expect("plan JSON")
}

/// Bad and unusual v2 messages, slipped in after so many good ones.
pub const BAD_INPUT_V2: &[(u64, Inject)] = &[
    (3, Inject::Malformed),
    (5, Inject::InvalidUtf8),
    (7, Inject::Duplicate),
    (9, Inject::UnknownType),
    (11, Inject::V2Errors),
    (12, Inject::OutOfOrder),
];

/// `p` with `injections` slipped in, then a line of `huge.1` bytes after `huge.0` messages.
pub fn with_bad_input(
    mut p: ConnectionPlan,
    injections: &[(u64, Inject)],
    huge: (u64, usize),
) -> ConnectionPlan {
    for &(after, what) in injections {
        p.inject.push(Injection {
            after,
            what,
            bytes: None,
        });
    }
    p.inject.push(Injection {
        after: huge.0,
        what: Inject::Huge,
        bytes: Some(huge.1),
    });
    p
}

/// One connector run in a temp folder.
pub struct Run {
    pub dir: tempfile::TempDir,
    pub proc: TestProcess,
    pub capture: PathBuf,
}

/// The config text for `twitter:` settings (indented two spaces) against `emu`.
pub fn config_yaml(emu_url: &str, twitter: &str, extra_top: &str) -> String {
    format!(
        "apiVersion: 0.1.0\n\
meta:\n  version: 0.1.0\n  name: twitter-test\n  type: twitter-source\n  topic: tweets\n  secrets:\n    - name: TWITTER_BEARER_TOKEN\n    - name: TWITTERCONSUMERKEY\n    - name: TWITTERCONSUMERSECRET\n    - name: TWITTERACCESSTOKEN\n    - name: TWITTERACCESSTOKENSECRET\n\
{extra_top}\
twitter:\n  base_url: {emu_url}\n{twitter}"
    )
}

/// The v2 sample stream against `emu`, with fast reconnects and `extra` `twitter:` settings.
pub fn sample_v2(emu: &Emulator, extra: &str) -> String {
    config_yaml(
        &emu.base_url(),
        &format!("  mode: sample\n{BEARER}{FAST_RECONNECT}{extra}"),
        "",
    )
}

/// The emulated app's rules as (value, tag), sorted.
pub fn app_rules(emu: &Emulator) -> Vec<(String, Option<String>)> {
    let mut rules: Vec<(String, Option<String>)> =
        emu.rules().into_iter().map(|(_, v, t)| (v, t)).collect();
    rules.sort();
    rules
}

pub const BEARER: &str = "  auth:\n    bearer_token: \"${{ secrets.TWITTER_BEARER_TOKEN }}\"\n";
pub const OAUTH1: &str = "  auth:\n    consumer_key: \"${{ secrets.TWITTERCONSUMERKEY }}\"\n    consumer_secret: \"${{ secrets.TWITTERCONSUMERSECRET }}\"\n    access_token: \"${{ secrets.TWITTERACCESSTOKEN }}\"\n    access_token_secret: \"${{ secrets.TWITTERACCESSTOKENSECRET }}\"\n";

impl Run {
    /// Start the connector with this config text, capturing records.
    pub fn start(config: &str) -> Self {
        Self::start_with(config, SECRETS, &[])
    }

    pub fn start_with(config: &str, secrets: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("config.yaml");
        std::fs::write(&cfg, config).expect("write config");
        let sec = dir.path().join("secrets.env");
        std::fs::write(&sec, secrets).expect("write secrets");
        let capture = dir.path().join("records.jsonl");
        let proc = Self::spawn(dir.path(), &capture, env, "connector.log");
        Self { dir, proc, capture }
    }

    fn spawn(dir: &Path, capture: &Path, env: &[(&str, &str)], log: &str) -> TestProcess {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(dir.join("config.yaml"))
            .arg("--secrets")
            .arg(dir.join("secrets.env"))
            .arg("--capture")
            .arg(capture)
            .env("RUST_LOG", "info")
            .env("FLUVIO_METRIC_CONNECTOR", dir.join("metrics.sock"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        TestProcess::spawn("twitter-source", cmd, &dir.join(log))
    }

    /// Start the connector again after it stopped: same folder, config and capture file.
    pub fn restart(&mut self) {
        let _ = std::fs::remove_file(self.dir.path().join("metrics.sock"));
        self.proc = Self::spawn(self.dir.path(), &self.capture, &[], "connector-again.log");
    }

    /// SIGTERM, then the exit code (panics if it does not exit in time).
    pub fn stop(&mut self) -> i32 {
        self.proc.signal(libc_sigterm());
        let status = self.proc.wait_timeout(Duration::from_secs(20));
        status.code().unwrap_or(-1)
    }

    /// Records captured so far (the file is flushed at exit; during a run it may lag).
    pub fn records(&self) -> Vec<Record> {
        if !self.capture.exists() {
            return Vec::new();
        }
        read_capture(&self.capture).expect("read capture")
    }

    pub fn output(&self) -> String {
        self.proc.output()
    }

    /// Metric values from the Unix socket (upstream's JSON counters).
    pub fn metrics(&self) -> serde_json::Value {
        testkit::metrics_socket(&self.dir.path().join("metrics.sock"))
    }

    /// Wait until the metric `name` reaches `at_least` (or panic with the log).
    pub fn wait_metric(&self, name: &str, at_least: u64, timeout: Duration) {
        let start = std::time::Instant::now();
        loop {
            let v = self.metrics()[name].as_u64().unwrap_or(0);
            if v >= at_least {
                return;
            }
            if start.elapsed() > timeout {
                panic!(
                    "metric {name} = {v} < {at_least} after {timeout:?}; log:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn libc_sigterm() -> i32 {
    15
}

/// Wait until the emulator has used up its tweets and the connector has handed over `n`
/// tweets, then stop it and return (exit code, records).
pub fn run_until_tweets(run: &mut Run, n: u64, timeout: Duration) -> (i32, Vec<Record>) {
    run.wait_metric("tweets_total", n, timeout);
    let code = run.stop();
    (code, run.records())
}

/// The keys of records, as strings.
pub fn keys(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.key_lossy()).collect()
}

/// Each id once, in first-sent order.
pub fn unique_in_order(ids: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.iter()
        .filter(|id| seen.insert((*id).clone()))
        .cloned()
        .collect()
}

/// The fault matrix's count of the keys `found` against the ids `offered` (each once): a key
/// counts by its position among them (an unknown key is found but stands for no offered one).
pub fn count_keys(offered: &[String], found: &[String]) -> testkit::reliability::Count {
    let position: std::collections::HashMap<&str, i64> = offered
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as i64))
        .collect();
    testkit::reliability::Count::of(
        offered.len(),
        found
            .iter()
            .map(|k| position.get(k.as_str()).copied().unwrap_or(-1)),
    )
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

/// The connector producing into the Fluvio cluster of `env` (no capture), its files in `dir`.
pub fn start_into_fluvio(
    env: &testkit::fluvio::FluvioEnv,
    config: &str,
    dir: &tempfile::TempDir,
) -> TestProcess {
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, config).unwrap();
    let sec = dir.path().join("secrets.env");
    std::fs::write(&sec, SECRETS).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&cfg)
        .arg("--secrets")
        .arg(&sec)
        .env("RUST_LOG", "info");
    cmd.env("FLUVIO_METRIC_CONNECTOR", dir.path().join("m.sock"));
    for (k, v) in env.profile_env() {
        cmd.env(k, v);
    }
    TestProcess::spawn("twitter-source", cmd, &dir.path().join("connector.log"))
}

/// Wait until `emu` has sent `n` tweets; after `timeout`, fail with the connector's log.
pub fn wait_until_sent(emu: &Emulator, n: usize, proc: &TestProcess, timeout: Duration) {
    wait_or_fail(proc, timeout, || emu.sent_ids().len() >= n);
}

/// Wait until partition 0 of `topic` holds `n` records; after `timeout`, fail with the
/// connector's log. What a test that needs the source to have produced waits on: on a loaded
/// machine the source reads megabytes behind what X wrote into the socket.
pub fn wait_until_stored(
    env: &testkit::fluvio::FluvioEnv,
    topic: &str,
    n: i64,
    proc: &TestProcess,
    timeout: Duration,
) {
    wait_or_fail(proc, timeout, || {
        env.high_watermarks(topic)
            .first()
            .is_some_and(|hw| *hw >= n)
    });
}

fn wait_or_fail(proc: &TestProcess, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "{}", proc.output());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `config` writing to Fluvio topic `topic`.
pub fn with_topic(config: &str, topic: &str) -> String {
    config.replace("  topic: tweets\n", &format!("  topic: {topic}\n"))
}

/// A finished run and its metrics, read just before it was stopped.
pub struct Done {
    pub run: Run,
    pub metrics: serde_json::Value,
}

/// Run until the emulator has sent all its tweets and the connector delivered them; check
/// exactly-once in-order delivery; return the run and its metrics for more checks.
pub fn deliver_all(emu: &Emulator, config: &str) -> Done {
    let mut run = Run::start(config);
    let t = Duration::from_secs(30);
    testkit::wait_for("the emulator to send everything", t, || {
        if let Some(s) = run.proc.try_status() {
            panic!("connector exited with {s}: {}", run.output());
        }
        (emu.exhausted(x_emulator::Dialect::V2) || emu.exhausted(x_emulator::Dialect::V1))
            .then_some(())
    });
    let expected = unique_in_order(&emu.sent_ids());
    run.wait_metric("tweets_total", expected.len() as u64, t);
    let metrics = run.metrics();
    assert_eq!(run.stop(), 0, "{}", run.output());
    let got = keys(&run.records());
    assert_eq!(got.len(), expected.len(), "count; log:\n{}", run.output());
    assert_eq!(got, expected, "every tweet sent, once, in order");
    Done { run, metrics }
}
