//! The X API's answers of 2026, each through the real connector binary against the emulator
//! over HTTP: a spent pay-per-use cap, a stale connection cleared with the Connections API, an
//! unknown problem type, paginated rule listing, `DuplicateRule` from a server that honours no
//! `dry_run`, rule limits by access level, credentials kept off plain HTTP, the pay-per-use
//! count, and what a reconnection or a restart asks X to send again (backfill, recovery).

mod common;

use std::time::Duration;

use common::*;
use x_emulator::{Corpus, Emulator, EmulatorConfig};

const T: Duration = Duration::from_secs(30);

fn filtered(base_url: &str, rules: &str, extra: &str) -> String {
    config_yaml(
        base_url,
        &format!("  mode: filtered\n{BEARER}{FAST_RECONNECT}{extra}  rules:\n{rules}"),
        "",
    )
}

/// The emulator's log lines for calls to `path` (stream connections and API calls).
fn calls(emu: &Emulator, path: &str) -> usize {
    emu.log().iter().filter(|c| c.path == path).count()
}

#[test]
fn a_spent_usage_cap_stops_at_once_naming_the_cap() {
    let mut cfg = generated(10);
    cfg.plans = vec![plan(
        r#"{"status": 429, "usage_capped": true, "reset_in_secs": 900}"#,
    )];
    let emu = Emulator::start_background(cfg).unwrap();
    let mut run = Run::start(&sample_v2(&emu, ""));
    let code = run.proc.wait_timeout(T).code();
    let out = run.output();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("UsageCapExceeded, scope Product")
            && out.contains("monthly cap")
            && out.contains("next monthly billing period"),
        "{out}"
    );
    assert_eq!(emu.log().len(), 1, "no retry loop: {:?}", emu.log());
}

#[test]
fn a_stale_connection_is_cleared_once_when_allowed_and_the_stream_goes_on() {
    let mut cfg = generated(100);
    // The first connection drops mid-message and X keeps it as a phantom for 10 minutes.
    cfg.plans = vec![plan(
        r#"{"after": 30, "end": "close_mid_message", "phantom_secs": 600}"#,
    )];
    let emu = Emulator::start_background(cfg).unwrap();
    let done = deliver_all(&emu, &sample_v2(&emu, "  clear_stale_connections: true\n"));
    assert_eq!(calls(&emu, "/2/connections/all"), 1, "{:?}", emu.log());
    let statuses: Vec<u16> = emu.log().iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        vec![200, 429, 200, 200],
        "connect, refused, DELETE, connect"
    );
    assert_eq!(
        done.metrics["reconnects_total{cause=stale_connection_cleared}"], 1,
        "{}",
        done.metrics
    );
    assert!(done.run.output().contains("DELETE /2/connections/all"));
}

#[test]
fn without_clear_stale_connections_a_phantom_is_waited_out_not_cleared() {
    let mut cfg = generated(100);
    cfg.plans = vec![plan(
        r#"{"after": 30, "end": "close_mid_message", "phantom_secs": 600}"#,
    )];
    let emu = Emulator::start_background(cfg).unwrap();
    let mut run = Run::start(&sample_v2(&emu, ""));
    testkit::wait_for("the refused reconnect", T, || {
        emu.log().iter().any(|c| c.status == 429).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(calls(&emu, "/2/connections/all"), 0);
    let m = run.metrics();
    assert_eq!(m["reconnects_total{cause=rate_limited}"], 1, "{m}");
    assert_eq!(run.stop(), 0, "{}", run.output());
}

#[test]
fn an_unknown_problem_type_is_logged_with_its_url_and_retried() {
    let mut cfg = generated(40);
    cfg.plans = vec![plan(
        r#"{"status": 503, "problem_type": "https://api.x.com/2/problems/brand-new-kind"}"#,
    )];
    let emu = Emulator::start_background(cfg).unwrap();
    let done = deliver_all(&emu, &sample_v2(&emu, ""));
    let out = done.run.output();
    assert!(
        out.contains("problem type this connector does not know")
            && out.contains("https://api.x.com/2/problems/brand-new-kind"),
        "{out}"
    );
}

#[test]
fn rules_are_listed_across_pages_before_reconciling() {
    let mut cfg = generated(200);
    cfg.rules_page_size = 2;
    cfg.rules = (0..5)
        .map(|i| (format!("unowned{i}"), Some("old".to_string())))
        .collect();
    let emu = Emulator::start_background(cfg).unwrap();
    let config = filtered(
        &emu.base_url(),
        "    - value: coffee\n      tag: drinks\n",
        "",
    );
    let mut run = Run::start(&config);
    run.wait_metric("connections_total", 1, T);
    let rules = app_rules(&emu);
    assert_eq!(
        rules,
        vec![("coffee".to_string(), Some("drinks".to_string()))],
        "the rules on pages 2 and 3 were seen and deleted too"
    );
    assert_eq!(run.stop(), 0, "{}", run.output());
}

#[test]
fn duplicate_rule_from_a_server_without_dry_run_means_present() {
    let mut cfg = generated(200);
    cfg.ignore_dry_run = true;
    let emu = Emulator::start_background(cfg).unwrap();
    let config = filtered(
        &emu.base_url(),
        "    - value: coffee\n      tag: drinks\n    - value: \"cats OR dogs\"\n      tag: pets\n",
        "",
    );
    let mut run = Run::start(&config);
    run.wait_metric("connections_total", 1, T);
    let rules = app_rules(&emu);
    assert_eq!(
        rules,
        vec![
            ("cats OR dogs".to_string(), Some("pets".to_string())),
            ("coffee".to_string(), Some("drinks".to_string()))
        ]
    );
    assert!(run.output().contains("DuplicateRule"), "{}", run.output());
    assert_eq!(run.stop(), 0, "{}", run.output());
}

#[test]
fn rules_over_the_access_level_limits_stop_before_any_call() {
    let mut cfg = generated(10);
    cfg.rule_limits = (25_000, 2048);
    let emu = Emulator::start_background(cfg).unwrap();
    let long = "coffee ".repeat(150);
    let config = filtered(&emu.base_url(), &format!("    - value: \"{long}\"\n"), "");
    let mut run = Run::start(&config);
    let code = run.proc.wait_timeout(T).code();
    let out = run.output();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "twitter.rules[0].value: 1050 characters, longer than the pay-per-use limit of 1024"
        ),
        "{out}"
    );
    assert!(emu.log().is_empty() && emu.rules().is_empty());
    // The same rule fits the enterprise limits.
    let config = filtered(
        &emu.base_url(),
        &format!("    - value: \"{long}\"\n"),
        "  rule_limits: enterprise\n",
    );
    let mut run = Run::start(&config);
    run.wait_metric("connections_total", 1, T);
    assert_eq!(emu.rules().len(), 1);
    assert_eq!(run.stop(), 0, "{}", run.output());
}

#[test]
fn credentials_are_not_sent_over_plain_http_to_another_host() {
    // 192.0.2.0/24 is TEST-NET-1: nothing answers there, and nothing may be tried.
    let config = config_yaml(
        "http://192.0.2.1:9",
        &format!("  mode: sample\n{BEARER}"),
        "",
    );
    let mut run = Run::start(&config);
    let code = run.proc.wait_timeout(T).code();
    let out = run.output();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("twitter.base_url: plain http:// to `192.0.2.1`")
            && out.contains("allow_insecure_http"),
        "{out}"
    );
    assert!(!out.contains("emulator-bearer-token"), "{out}");
}

#[test]
fn billable_posts_are_counted_once_priced_and_warned_about_near_the_cap() {
    let mut cfg = generated(90);
    cfg.plans = vec![plan(
        r#"{"inject": [{"after": 10, "what": "duplicate"}, {"after": 50, "what": "duplicate"}]}"#,
    )];
    let emu = Emulator::start_background(cfg).unwrap();
    let done = deliver_all(
        &emu,
        &sample_v2(
            &emu,
            "  billing:\n    price_per_post_usd: 0.01\n    monthly_cap: 100\n",
        ),
    );
    let m = &done.metrics;
    assert_eq!(
        m["posts_billable_total"], 90,
        "duplicates are not billed twice: {m}"
    );
    assert_eq!(m["duplicates_total"], 2, "{m}");
    let cost = m["estimated_cost_usd_total"].as_f64().unwrap();
    assert!((cost - 0.9).abs() < 1e-9, "{cost}");
    let out = done.run.output();
    assert!(out.contains("80% of the monthly cap"), "{out}");
    assert!(!out.contains("95% of the monthly cap"), "{out}");
}

/// `limit` tweets created one second apart, the first `back_secs` ago (a reconnection now
/// falls among them, as in a live stream).
fn paced(limit: u64, back_secs: i64) -> EmulatorConfig {
    let mut c = generated(limit);
    c.corpus = Corpus::generated_spaced(connector_runtime::now_ms() - back_secs * 1000, 1000);
    c
}

/// 200 paced tweets; the stream closes after 30, and 5 go by before the reconnection.
fn a_gap_with_5_missed() -> EmulatorConfig {
    let mut cfg = paced(200, 60);
    cfg.plans = vec![
        plan(r#"{"after": 30, "end": "close"}"#),
        plan(r#"{"missed": 5}"#),
    ];
    cfg
}

#[test]
fn backfill_asks_for_the_gap_on_reconnect_and_recovers_what_went_by() {
    let emu = Emulator::start_background(a_gap_with_5_missed()).unwrap();
    let done = deliver_all(&emu, &sample_v2(&emu, "  backfill: true\n"));
    let log = emu.log();
    assert!(
        !log[0].query.contains("backfill_minutes"),
        "{}",
        log[0].query
    );
    assert!(
        log[1].query.contains("backfill_minutes=1"),
        "a gap under a minute asks for one: {}",
        log[1].query
    );
    assert_eq!(
        unique_in_order(&emu.sent_ids()).len(),
        200,
        "the 5 came back"
    );
    let m = &done.metrics;
    assert_eq!(
        m["duplicates_total"], 30,
        "the 30 sent again are dropped: {m}"
    );
    // New tweets created before the reconnection: the 5 missed and those created since.
    let recovered = m["tweets_recovered_total"].as_u64().unwrap();
    assert!((25..=35).contains(&recovered), "{recovered}: {m}");
    assert!(
        m["seconds_without_stream_total"].as_f64().unwrap() < 5.0,
        "{m}"
    );
}

#[test]
fn without_backfill_the_tweets_that_went_by_are_not_sent() {
    let emu = Emulator::start_background(a_gap_with_5_missed()).unwrap();
    let done = deliver_all(&emu, &sample_v2(&emu, ""));
    assert_eq!(unique_in_order(&emu.sent_ids()).len(), 195);
    assert_eq!(done.metrics["tweets_recovered_total"], 0);
    assert!(!emu.log()[1].query.contains("backfill_minutes"));
}

#[test]
fn a_restart_after_a_long_gap_recovers_with_start_time_from_the_end_of_the_topic() {
    // Tweets created a second apart from 20 minutes ago: the end of the topic is 20 minutes
    // old when the connector comes back, longer than any backfill.
    let mut cfg = paced(10_000, 20 * 60);
    cfg.rate = 200.0;
    let emu = Emulator::start_background(cfg).unwrap();
    let config = config_yaml(
        &emu.base_url(),
        &format!("  mode: sample10\n  partition: 1\n  recovery: true\n{BEARER}{FAST_RECONNECT}"),
        "",
    );
    let mut run = Run::start(&config);
    run.wait_metric("tweets_total", 40, T);
    assert_eq!(run.stop(), 0, "{}", run.output());
    let first = keys(&run.records());
    // While it was down, 5 went by.
    emu.push_plan(plan(r#"{"missed": 5}"#));
    run.restart();
    run.wait_metric("tweets_total", 60, T);
    let m = run.metrics();
    assert_eq!(run.stop(), 0, "{}", run.output());
    let restart = emu.log().last().unwrap().query.clone();
    assert!(
        restart.contains("start_time=20"),
        "recovery asks with start_time: {restart}"
    );
    let all = keys(&run.records());
    let unique: std::collections::HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "nothing twice across the restart");
    let sent = unique_in_order(&emu.sent_ids());
    assert_eq!(all[..], sent[..all.len()], "in order, none missing");
    assert!(
        all.len() >= first.len() + 60,
        "{} then {}",
        first.len(),
        all.len()
    );
    assert!(m["tweets_recovered_total"].as_u64().unwrap() >= 5, "{m}");
    assert!(
        m["duplicates_total"].as_u64().unwrap() >= first.len() as u64,
        "{m}"
    );
}

#[test]
fn a_connector_started_before_x_is_reachable_waits_for_it() {
    // Nothing listens on the port yet: the token exchange and the rules cannot reach X.
    let port = testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let rules = "    - value: coffee\n      tag: drinks\n";
    let mut run = Run::start(&filtered(&base, rules, ""));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        run.proc.child.try_wait().unwrap().is_none(),
        "it waits, not exits: {}",
        run.output()
    );
    let emu =
        Emulator::start_background_on(generated(50), format!("127.0.0.1:{port}").parse().unwrap())
            .unwrap();
    run.wait_metric("connections_total", 1, T);
    assert_eq!(
        app_rules(&emu),
        vec![("coffee".to_string(), Some("drinks".to_string()))]
    );
    let out = run.output();
    assert!(
        out.contains("the rules: X cannot be reached; trying again"),
        "{out}"
    );
    assert_eq!(run.stop(), 0, "{out}");
}
