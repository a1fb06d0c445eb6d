//! The tweet SmartModules natively and through the real engine (fluvio-smartengine on the
//! built wasm), with the same expectations: every recorded payload, targeted cases, bad input,
//! the chain the way users write it, and memory that stays flat.

use connector_runtime::transforms::TransformChain;
use serde_json::{json, Value};
use smartmodule_engine_tests::*;
use tweet_model::{shape, Filter, Kind, Shaped};

fn shape_chain(test: &str) -> Option<TransformChain> {
    let wasm = wasm_or_skip(test, "tweet_shape.wasm")?;
    Some(
        TransformChain::new(vec![module("tweet-shape", wasm, &[])])
            .expect("tweet-shape initialises"),
    )
}

fn filter_chain(test: &str, params: &[(&str, &str)]) -> Option<TransformChain> {
    let wasm = wasm_or_skip(test, "tweet_filter.wasm")?;
    Some(
        TransformChain::new(vec![module("tweet-filter", wasm, params)])
            .expect("tweet-filter initialises"),
    )
}

/// The filter of these parameters, natively.
fn native_filter(params: &[(&str, &str)]) -> Filter {
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Filter::from_params(&params).unwrap()
}

/// Shape natively and, when built, through the engine: both must agree.
fn shaped(value: &Value) -> Option<Shaped> {
    let bytes = serde_json::to_vec(value).unwrap();
    let native = shape(&bytes).expect("valid JSON");
    if let Some(mut chain) = shape_chain("targeted shape case through the engine") {
        let out = run(&mut chain, &bytes).unwrap();
        match &native {
            Some(n) => {
                assert_eq!(out.len(), 1);
                let engine: Shaped = serde_json::from_slice(&out[0]).unwrap();
                assert_eq!(&engine, n, "engine and native differ");
            }
            None => assert!(out.is_empty(), "non-tweets are dropped"),
        }
    }
    native
}

#[test]
fn bluesky_posts_filter_and_shape_in_wasm_as_natively() {
    let test = "Bluesky parity";
    let Some(mut shape_c) = shape_chain(test) else {
        return;
    };
    let params = [("languages", "en"), ("exclude_replies", "true")];
    let Some(mut filter_c) = filter_chain(test, &params) else {
        return;
    };
    let filter = native_filter(&params);
    let (mut posts, mut kept) = (0, 0);
    for line in jetstream_corpus(400) {
        let native = shape(line.as_bytes()).unwrap();
        let engine = run(&mut shape_c, line.as_bytes()).unwrap();
        match &native {
            Some(n) => {
                posts += 1;
                assert_eq!(n.source_api, "bluesky");
                let e: Shaped = serde_json::from_slice(&engine[0]).unwrap();
                assert_eq!(&e, n);
            }
            None => assert!(engine.is_empty(), "not a post: dropped"),
        }
        let keep = native.as_ref().is_some_and(|t| filter.matches(t));
        let out = run(&mut filter_c, line.as_bytes()).unwrap();
        assert_eq!(!out.is_empty(), keep, "filter disagrees on {line}");
        kept += usize::from(keep);
    }
    assert!(
        (300..=360).contains(&posts),
        "{posts} posts and reposts in 400 events"
    );
    assert!(
        kept > 0 && kept < posts,
        "the filter keeps some and drops some ({kept})"
    );
}

#[test]
fn native_and_engine_agree_on_every_payload() {
    let Some(mut shape_c) = shape_chain("parity over the corpus") else {
        return;
    };
    let params = [("languages", "en,es"), ("exclude_retweets", "true")];
    let Some(mut filter_c) = filter_chain("parity over the corpus", &params) else {
        return;
    };
    let filter = native_filter(&params);
    let corpus = corpus(300);
    assert!(corpus.len() >= 600);
    let (mut shaped_n, mut kept) = (0, 0);
    for line in &corpus {
        let native = shape(line.as_bytes()).unwrap();
        let engine = run(&mut shape_c, line.as_bytes()).unwrap();
        match &native {
            Some(n) => {
                shaped_n += 1;
                let e: Shaped = serde_json::from_slice(&engine[0]).unwrap();
                assert_eq!(&e, n);
                // The id is exact: the same digits as in the input.
                assert!(line.contains(&n.id), "id {} not in input", n.id);
            }
            None => assert!(engine.is_empty()),
        }
        let keep = native.as_ref().is_some_and(|t| filter.matches(t));
        let out = run(&mut filter_c, line.as_bytes()).unwrap();
        assert_eq!(
            !out.is_empty(),
            keep,
            "filter disagrees on {}",
            &line[..line.len().min(120)]
        );
        if keep {
            kept += 1;
            assert_eq!(
                out[0].as_ref(),
                line.as_bytes(),
                "a filter passes the record unchanged"
            );
        }
    }
    assert!(
        shaped_n >= corpus.len() - 2,
        "every tweet shapes ({shaped_n} of {})",
        corpus.len()
    );
    assert!(
        kept > 0 && kept < shaped_n,
        "the filter keeps some and drops some ({kept})"
    );
}

#[test]
fn shaped_records_validate_against_the_json_schema() {
    let Some(py) = testkit::python() else {
        testkit::skip(
            "schema validation",
            "the test Python venv with jsonschema is not installed (./test.sh installs it)",
        );
        return;
    };
    let dir = tempfile_dir();
    let records: Vec<String> = corpus(300)
        .iter()
        .chain(&jetstream_corpus(300))
        .filter_map(|l| shape(l.as_bytes()).unwrap())
        .map(|t| serde_json::to_string(&t).unwrap())
        .collect();
    let data = dir.join("shaped.jsonl");
    std::fs::write(&data, records.join("\n")).unwrap();
    let schema = testkit::workspace_root().join("smartmodules/tweet-shape/tweet.schema.json");
    let script = "import json,sys,jsonschema\nschema=json.load(open(sys.argv[1]))\njsonschema.Draft202012Validator.check_schema(schema)\nv=jsonschema.Draft202012Validator(schema)\nn=0\nfor line in open(sys.argv[2]):\n    errs=list(v.iter_errors(json.loads(line)))\n    assert not errs, (line[:200], [e.message for e in errs])\n    n+=1\nprint(n)\n";
    let out = std::process::Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(&schema)
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        records.len().to_string()
    );
    // A record the schema must reject: proves the check can fail.
    let bad = records[0].replace("\"kind\":\"", "\"kind\":\"x");
    std::fs::write(&data, bad).unwrap();
    let out = std::process::Command::new(testkit::python().unwrap())
        .arg("-c")
        .arg(script)
        .arg(&schema)
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sm-engine-tests-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn v1_user() -> Value {
    json!({"id": 1234567890123u64, "id_str": "1234567890123", "screen_name": "ada", "name": "Ada L", "followers_count": 5000, "verified": false})
}

#[test]
fn compat_mode_truncated_tweet_uses_extended_full_text() {
    let full = "A long text with 🙂 emoji and café, well over one hundred and forty characters so that compat mode truncates it, with #RustLang at the end &amp; more";
    let t = shaped(&json!({
        "created_at": "Sun Jun 12 18:07:19 +0000 2016", "id": 743472511740870657u64, "id_str": "743472511740870657",
        "text": "A long text with 🙂 emoji and café, well over one hundred and forty characters so that compat mode truncates it… https://t.co/x",
        "truncated": true, "user": v1_user(), "lang": "en",
        "entities": {"hashtags": [], "urls": [{"url": "https://t.co/x", "expanded_url": "https://twitter.com/i/web/status/743472511740870657"}], "user_mentions": []},
        "extended_tweet": {"full_text": full, "entities": {"hashtags": [{"text": "RustLang", "indices": [130, 139]}], "urls": [], "user_mentions": []}}
    }))
    .unwrap();
    assert_eq!(t.text, full.replace("&amp;", "&"));
    assert_eq!(t.hashtags, ["RustLang"]);
    assert!(
        t.urls.is_empty(),
        "entities of the full text, not of the truncated one"
    );
    assert_eq!(t.id, "743472511740870657");
    assert_eq!(t.created_at.as_deref(), Some("2016-06-12T18:07:19.000Z"));
    assert_eq!(t.created_at_ms, Some(1_465_754_839_000));
    assert_eq!(t.author.username.as_deref(), Some("ada"));
    assert_eq!(t.author.followers, Some(5000));
    assert_eq!(t.kind, Kind::Original);
    assert_eq!(t.source_api, "v1.1");
}

#[test]
fn retweet_of_an_extended_tweet_carries_the_original_full_text() {
    let inner_full = "The original, long, full text of the retweeted tweet that is definitely longer than one hundred and forty characters, ending with #Climate";
    let t = shaped(&json!({
        "created_at": "Sun Jun 12 18:07:19 +0000 2016", "id_str": "743472511740870658", "text": "RT @orig: The original, long, full text of the retweeted tweet that is definitely longer than one hundred and forty…",
        "user": v1_user(), "lang": "en", "timestamp_ms": "1465754839123",
        "entities": {"hashtags": [], "user_mentions": [{"screen_name": "orig"}]},
        "retweeted_status": {"id_str": "743000000000000001", "text": "truncated…", "truncated": true, "user": {"id_str": "9", "screen_name": "orig"},
            "extended_tweet": {"full_text": inner_full, "entities": {"hashtags": [{"text": "Climate"}]}}}
    }))
    .unwrap();
    assert_eq!(t.kind, Kind::Retweet);
    assert_eq!(t.text, inner_full);
    assert_eq!(t.hashtags, ["Climate"]);
    assert_eq!(
        t.referenced.retweeted.as_deref(),
        Some("743000000000000001")
    );
    assert_eq!(
        t.created_at_ms,
        Some(1_465_754_839_123),
        "timestamp_ms wins over created_at"
    );
    assert_eq!(
        t.author.username.as_deref(),
        Some("ada"),
        "the retweeter is the author"
    );
}

#[test]
fn quote_of_a_retweet_and_reply_kinds() {
    let t = shaped(&json!({
        "id_str": "900000000000000001", "text": "My comment", "user": v1_user(), "is_quote_status": true,
        "quoted_status_id_str": "800000000000000001",
        "quoted_status": {"id_str": "800000000000000001", "text": "RT @x: hi", "user": {"id_str": "2"}, "retweeted_status": {"id_str": "700000000000000001", "text": "hi", "user": {"id_str": "3"}}}
    }))
    .unwrap();
    assert_eq!(t.kind, Kind::Quote);
    assert_eq!(t.text, "My comment");
    assert_eq!(t.referenced.quoted.as_deref(), Some("800000000000000001"));
    assert_eq!(t.created_at, None, "missing fields are null, not invented");
    assert_eq!(t.lang, None);
    let r = shaped(&json!({"id_str": "900000000000000002", "text": "@ada yes", "user": v1_user(), "in_reply_to_status_id_str": "900000000000000001"})).unwrap();
    assert_eq!(r.kind, Kind::Reply);
    assert_eq!(
        r.referenced.replied_to.as_deref(),
        Some("900000000000000001")
    );
}

#[test]
fn v2_note_tweet_retweet_expansion_media_place_and_rules() {
    let long = "x".repeat(300) + " the end with émoji 🎉";
    let t = shaped(&json!({
        "data": {"id": "1600000000000000001", "text": "truncated to 280...", "note_tweet": {"text": long, "entities": {"hashtags": [{"start": 0, "end": 5, "tag": "Long"}]}},
            "created_at": "2022-12-01T10:00:00.000Z", "author_id": "42", "lang": "fr",
            "attachments": {"media_keys": ["3_1"]}, "geo": {"place_id": "p1", "coordinates": {"type": "Point", "coordinates": [2.35, 48.85]}},
            "public_metrics": {"retweet_count": 1, "reply_count": 2, "like_count": 3, "quote_count": 4}},
        "includes": {"users": [{"id": "42", "username": "grace", "name": "Grace", "verified": true, "public_metrics": {"followers_count": 77}}],
            "media": [{"media_key": "3_1", "type": "photo", "url": "https://pbs.twimg.com/media/a.jpg"}],
            "places": [{"id": "p1", "full_name": "Paris, France", "country_code": "FR"}]},
        "matching_rules": [{"id": "1600000000000000099", "tag": "paris"}, {"id": 123, "tag": null}]
    }))
    .unwrap();
    assert_eq!(t.text, long);
    assert_eq!(t.hashtags, ["Long"]);
    assert_eq!(t.source_api, "v2");
    assert_eq!(t.author.followers, Some(77));
    assert_eq!(t.author.verified, Some(true));
    assert_eq!(t.media.len(), 1);
    assert_eq!(t.media[0].kind.as_deref(), Some("photo"));
    assert_eq!(t.geo.place.as_deref(), Some("Paris, France"));
    assert_eq!(t.geo.country_code.as_deref(), Some("FR"));
    assert_eq!(t.geo.coordinates, Some(vec![2.35, 48.85]));
    assert_eq!(t.metrics.unwrap().quotes, Some(4));
    assert_eq!(t.matching_rules.len(), 2);
    assert_eq!(t.matching_rules[0].tag.as_deref(), Some("paris"));
    assert_eq!(
        t.matching_rules[1].id.as_deref(),
        Some("123"),
        "2021 streams sent rule ids as numbers"
    );

    let rt = shaped(&json!({
        "data": {"id": "1600000000000000002", "text": "RT @grace: short…", "author_id": "43", "referenced_tweets": [{"type": "retweeted", "id": "1600000000000000001"}]},
        "includes": {"tweets": [{"id": "1600000000000000001", "text": "the whole original text", "author_id": "42"}]}
    }))
    .unwrap();
    assert_eq!(rt.kind, Kind::Retweet);
    assert_eq!(rt.text, "the whole original text");
    assert_eq!(rt.author.id.as_deref(), Some("43"));
    assert_eq!(
        rt.author.username, None,
        "the author was not expanded: null"
    );
}

#[test]
fn non_tweets_are_dropped_and_64_bit_ids_stay_exact() {
    for m in [
        json!({"delete": {"status": {"id": 272691609211117568u64, "id_str": "272691609211117568"}}}),
        json!({"limit": {"track": 5}}),
        json!({"errors": [{"detail": "x"}]}),
        json!({"warning": {"code": "FALLING_BEHIND"}}),
    ] {
        assert!(shaped(&m).is_none(), "{m}");
    }
    // Only a numeric id: 2^63 - 25 keeps all its digits.
    let t = shaped(
        &serde_json::from_str(
            r#"{"id":9223372036854775783,"text":"n","user":{"id":9223372036854775782}}"#,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(t.id, "9223372036854775783");
    assert_eq!(t.author.id.as_deref(), Some("9223372036854775782"));
}

#[test]
fn shaped_input_passes_through_both_modules() {
    let t = shaped(&json!({"id_str": "900000000000000003", "text": "hello rust", "user": v1_user(), "lang": "en"})).unwrap();
    let bytes = serde_json::to_vec(&t).unwrap();
    assert_eq!(shape(&bytes).unwrap().unwrap(), t);
    let (k, v) = tweet_shape::reshape(&bytes).unwrap().unwrap();
    assert_eq!(k, b"900000000000000003");
    assert_eq!(v, bytes, "an already shaped record is unchanged");
    let f = Filter::from_params(
        &[("keywords".to_string(), "rust".to_string())]
            .into_iter()
            .collect(),
    )
    .unwrap();
    assert!(tweet_filter::decide(&f, &bytes).unwrap());
}

#[test]
fn edits_keep_their_history_and_the_filter_can_keep_the_latest_version_only() {
    let post = |id: &str, history: &[&str]| {
        serde_json::to_vec(
            &json!({"data": {"id": id, "text": "coffee", "author_id": "7",
            "edit_history_tweet_ids": history}}),
        )
        .unwrap()
    };
    let first = post("1500000000000000001", &["1500000000000000001"]);
    let edit = post(
        "1500000000000000002",
        &["1500000000000000001", "1500000000000000002"],
    );
    // A first version that arrives after its edit (a backfill) knows it was replaced.
    let replaced = post(
        "1500000000000000001",
        &["1500000000000000001", "1500000000000000002"],
    );
    let t = shape(&edit).unwrap().unwrap();
    assert_eq!(
        t.edit_history,
        ["1500000000000000001", "1500000000000000002"]
    );
    assert_eq!(t.edit_of.as_deref(), Some("1500000000000000001"));
    let t = shape(&first).unwrap().unwrap();
    assert_eq!((t.edit_history.len(), t.edit_of), (1, None));
    let latest: std::collections::BTreeMap<String, String> =
        [("latest_version_only".to_string(), "true".to_string())].into();
    let f = Filter::from_params(&latest).unwrap();
    assert!(tweet_filter::decide(&f, &first).unwrap());
    assert!(tweet_filter::decide(&f, &edit).unwrap());
    assert!(
        !tweet_filter::decide(&f, &replaced).unwrap(),
        "the replaced version goes"
    );
    assert!(tweet_filter::decide(&Filter::default(), &replaced).unwrap());
    if let Some(mut chain) = filter_chain(
        "latest_version_only through the engine",
        &[("latest_version_only", "true")],
    ) {
        assert!(run(&mut chain, &replaced).unwrap().is_empty());
        assert_eq!(run(&mut chain, &edit).unwrap().len(), 1);
    }
}

#[test]
fn filter_parameters() {
    let base = json!({"id_str": "900000000000000004", "text": "Big #DataEngineering news: the data model ships &amp; works", "lang": "en",
        "user": v1_user(), "entities": {"hashtags": [{"text": "DataEngineering"}], "urls": [{"expanded_url": "https://example.com"}]}});
    let bytes = serde_json::to_vec(&base).unwrap();
    let keep = |params: &[(&str, &str)]| {
        let map = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let native = tweet_filter::decide(&Filter::from_params(&map).unwrap(), &bytes).unwrap();
        if let Some(mut chain) = filter_chain("filter parameters through the engine", params) {
            assert_eq!(
                !run(&mut chain, &bytes).unwrap().is_empty(),
                native,
                "engine vs native for {params:?}"
            );
        }
        native
    };
    assert!(keep(&[]));
    assert!(keep(&[("keywords", "DATA MODEL,other")]));
    assert!(
        keep(&[("keywords", "[\"nope\", \"news\"]")]),
        "a YAML list arrives as JSON"
    );
    assert!(!keep(&[("keywords", "dat")]), "whole words only");
    assert!(keep(&[("hashtags", "#dataengineering")]));
    assert!(!keep(&[("hashtags", "rust")]));
    assert!(keep(&[("languages", "fr, en")]));
    assert!(!keep(&[("languages", "fr")]));
    assert!(keep(&[("users", "@ADA")]) && keep(&[("users", "1234567890123")]));
    assert!(!keep(&[("users", "grace")]));
    assert!(keep(&[("min_followers", "5000")]) && !keep(&[("min_followers", "5001")]));
    assert!(keep(&[("has_links", "true")]) && !keep(&[("has_links", "false")]));
    assert!(!keep(&[("has_media", "true")]) && keep(&[("has_media", "false")]));
    assert!(keep(&[
        ("exclude_retweets", "true"),
        ("exclude_replies", "true"),
        ("exclude_quotes", "true")
    ]));
    assert!(
        !keep(&[("rule_tags", "ml")]),
        "no matching rules: dropped by a rule_tags filter"
    );
    assert!(keep(&[("sample_percent", "100")]) && !keep(&[("sample_percent", "0")]));
    // Sampling is deterministic by id and close to the asked share.
    let ids: Vec<String> = (0..10_000u64)
        .map(|i| (1_600_000_000_000_000_000u64 + i * 7919).to_string())
        .collect();
    let kept = ids
        .iter()
        .filter(|id| tweet_model::filter::sampled(id, 10.0))
        .count();
    assert!((800..1200).contains(&kept), "{kept}");
    assert_eq!(
        tweet_model::filter::sampled(&ids[3], 10.0),
        tweet_model::filter::sampled(&ids[3], 10.0)
    );
    // Bad parameters are init errors naming the parameter.
    let err = |k: &str, v: &str| {
        Filter::from_params(&[(k.to_string(), v.to_string())].into_iter().collect()).unwrap_err()
    };
    assert!(err("min_followers", "many").contains("min_followers"));
    assert!(err("sample_percent", "150").contains("sample_percent"));
    assert!(err("exclude_retweets", "maybe").contains("exclude_retweets"));
    assert!(err("keyword", "x").contains("unknown parameter `keyword`"));
    if let Some(wasm) = wasm_or_skip("bad parameters through the engine", "tweet_filter.wasm") {
        let e = TransformChain::new(vec![module(
            "tweet-filter",
            wasm,
            &[("min_followers", "many")],
        )])
        .unwrap_err();
        assert!(format!("{e:#}").contains("min_followers"), "{e:#}");
    }
}

#[test]
fn bad_input_is_an_error_or_dropped_never_a_trap() {
    let bad: [&[u8]; 4] = [
        b"{\"id_str\":\"1\",\"text\":\"cut",
        b"\xff\xfe",
        b"[1,2,3]",
        b"null",
    ];
    for b in bad {
        assert!(tweet_shape::reshape(b).is_err() || tweet_shape::reshape(b).unwrap().is_none());
    }
    let Some(mut errs) = shape_chain("bad input through the engine") else {
        return;
    };
    let e = run(&mut errs, bad[0]).unwrap_err();
    assert!(
        e.contains("tweet-shape") && e.contains("not a JSON tweet"),
        "{e}"
    );
    let wasm = wasm_or_skip("bad input through the engine", "tweet_filter.wasm").unwrap();
    let mut drop = TransformChain::new(vec![module(
        "tweet-filter",
        wasm,
        &[("on_invalid", "drop")],
    )])
    .unwrap();
    for b in bad {
        assert!(run(&mut drop, b).unwrap().is_empty());
    }
    // The chain still works after bad input.
    assert_eq!(
        run(&mut errs, br#"{"id_str":"5","text":"ok","user":{}}"#)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(errs.reinitialisations(), 0, "no trap");
}

#[test]
fn the_chain_users_write_filter_then_shape() {
    let Some(f) = wasm_or_skip("chain", "tweet_filter.wasm") else {
        return;
    };
    let s = wasm_or_skip("chain", "tweet_shape.wasm").unwrap();
    let mut chain = TransformChain::new(vec![
        module("tweet-filter", f, &[("languages", "en")]),
        module("tweet-shape", s, &[]),
    ])
    .unwrap();
    let mut n = 0;
    for line in corpus(200) {
        let out = run(&mut chain, line.as_bytes()).unwrap();
        let native = shape(line.as_bytes())
            .unwrap()
            .filter(|t| t.lang.as_deref() == Some("en"));
        assert_eq!(out.len(), native.is_some() as usize);
        if let Some(t) = native {
            assert_eq!(serde_json::from_slice::<Shaped>(&out[0]).unwrap(), t);
            n += 1;
        }
    }
    assert!(n > 50);
}

/// Push `n` records through a chain whose store may hold only `limit` bytes.
fn drive(chain: &mut TransformChain, n: u64, value: &[u8]) -> u64 {
    let mut out = 0;
    for _ in 0..n {
        out += run(chain, value).expect("no record may fail").len() as u64;
    }
    out
}

fn leak_records() -> u64 {
    std::env::var("SMARTMODULE_LEAK_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

#[test]
fn our_modules_keep_guest_memory_flat() {
    // With a 32 MiB store, a module that kept each ~2 KB output would trap within ~16k calls.
    const LIMIT: usize = 32 << 20;
    let Some(f) = wasm_or_skip("memory", "tweet_filter.wasm") else {
        return;
    };
    let s = wasm_or_skip("memory", "tweet_shape.wasm").unwrap();
    let tweet = x_emulator::generator::Generator::new(1_700_000_000_000).v1(7);
    let n = leak_records();
    for (name, wasm) in [("tweet-filter", f), ("tweet-shape", s)] {
        let mut chain =
            TransformChain::with_memory_limit(vec![module(name, wasm, &[])], Some(LIMIT)).unwrap();
        assert_eq!(drive(&mut chain, n, tweet.as_bytes()), n, "{name}");
        assert_eq!(
            chain.reinitialisations(),
            0,
            "{name} never exhausted its {LIMIT}-byte store in {n} calls"
        );
    }
}

#[test]
fn the_runtime_survives_a_third_party_module_that_leaks() {
    const LIMIT: usize = 32 << 20;
    let Some(leaky) = wasm_or_skip("leaky module", "upstream_macro_map.wasm") else {
        return;
    };
    let tweet = x_emulator::generator::Generator::new(1_700_000_000_000).v1(7);
    let mut chain = TransformChain::with_memory_limit(
        vec![module("upstream-macro-map", leaky, &[])],
        Some(LIMIT),
    )
    .unwrap();
    let n = 60_000;
    assert_eq!(
        drive(&mut chain, n, tweet.as_bytes()),
        n,
        "every record came out"
    );
    assert!(
        chain.reinitialisations() >= 1,
        "the leak did exhaust the store (so this test can fail): re-initialised {} times",
        chain.reinitialisations()
    );
}
