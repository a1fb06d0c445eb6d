//! SmartModule benchmarks (`cargo bench -p smartmodule-engine-tests`): records per second on
//! one core through the real engine for `tweet-filter`, `tweet-shape` and the chain users write
//! (filter then shape), on ~3.7 KB v1.1 tweets, against the engine floor (a pass-through module
//! measured in the same run) and against the same logic natively; and memory over the run.

use std::time::Instant;

use connector_runtime::transforms::TransformChain;
use smartmodule_engine_tests::{module, run, wasm_or_skip};
use testkit::bench::{report, rss_mb, Figure};

fn per_second(records: &[String], mut f: impl FnMut(&[u8])) -> f64 {
    // Warm up, then measure.
    for r in records.iter().take(500) {
        f(r.as_bytes());
    }
    let start = Instant::now();
    for r in records {
        f(r.as_bytes());
    }
    records.len() as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let n: u64 = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let gen = x_emulator::generator::Generator::new(1_700_000_000_000);
    let records: Vec<String> = (0..n).map(|s| gen.v1(s % 4096)).collect();
    let avg = records.iter().map(String::len).sum::<usize>() / records.len();
    println!("== SmartModules through fluvio-smartengine ({n} v1.1 tweets, {avg} bytes on average, one core) ==");
    let (Some(pass), Some(filter), Some(shape)) = (
        wasm_or_skip("SmartModule bench", "passthrough.wasm"),
        wasm_or_skip("SmartModule bench", "tweet_filter.wasm"),
        wasm_or_skip("SmartModule bench", "tweet_shape.wasm"),
    ) else {
        return;
    };
    let params: &[(&str, &str)] = &[("languages", "en,es,fr,pt"), ("exclude_retweets", "true")];
    let engine = |modules| {
        let mut chain = TransformChain::new(modules).unwrap();
        move |v: &[u8]| {
            run(&mut chain, v).unwrap();
        }
    };
    let rss0 = rss_mb(std::process::id()).unwrap_or(0.0);
    let floor = per_second(
        &records,
        engine(vec![module("passthrough", pass.clone(), &[])]),
    );
    let f = per_second(
        &records,
        engine(vec![module("tweet-filter", filter.clone(), params)]),
    );
    let s = per_second(
        &records,
        engine(vec![module("tweet-shape", shape.clone(), &[])]),
    );
    // Any chain of two modules pays the engine's per-call cost twice: two pass-throughs are
    // the most a two-module chain can do.
    let floor2 = per_second(
        &records,
        engine(vec![
            module("passthrough", pass.clone(), &[]),
            module("passthrough-2", pass.clone(), &[]),
        ]),
    );
    let rss_mid = rss_mb(std::process::id()).unwrap_or(0.0);
    let chain = per_second(
        &records,
        engine(vec![
            module("tweet-filter", filter, params),
            module("tweet-shape", shape, &[]),
        ]),
    );
    let rss_end = rss_mb(std::process::id()).unwrap_or(0.0);

    let filter_native = tweet_model::Filter::from_params(
        &params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .unwrap();
    let native_f = per_second(&records, |v| {
        std::hint::black_box(tweet_filter::decide(&filter_native, v).unwrap());
    });
    let native_s = per_second(&records, |v| {
        std::hint::black_box(tweet_shape::reshape(v).unwrap());
    });
    let native_chain = per_second(&records, |v| {
        if tweet_filter::decide(&filter_native, v).unwrap() {
            std::hint::black_box(tweet_shape::reshape(v).unwrap());
        }
    });

    report(&Figure {
        stage: "smartmod",
        what: "passthrough (engine floor)",
        value: floor,
        unit: "rec/s",
        baseline_what: "-",
        baseline: floor,
        target: "-",
    });
    report(&Figure {
        stage: "smartmod",
        what: "tweet-filter",
        value: f,
        unit: "rec/s",
        baseline_what: "engine floor",
        baseline: floor,
        target: "-",
    });
    report(&Figure {
        stage: "smartmod",
        what: "tweet-shape",
        value: s,
        unit: "rec/s",
        baseline_what: "engine floor",
        baseline: floor,
        target: "-",
    });
    report(&Figure {
        stage: "smartmod",
        what: "chain tweet-filter -> tweet-shape",
        value: chain,
        unit: "rec/s",
        baseline_what: "engine floor",
        baseline: floor,
        target: ">= 0.7x floor",
    });
    report(&Figure {
        stage: "smartmod",
        what: "passthrough -> passthrough (two-module floor)",
        value: floor2,
        unit: "rec/s",
        baseline_what: "engine floor",
        baseline: floor,
        target: "-",
    });
    report(&Figure {
        stage: "smartmod",
        what: "chain tweet-filter -> tweet-shape",
        value: chain,
        unit: "rec/s",
        baseline_what: "two-module floor",
        baseline: floor2,
        target: "-",
    });
    report(&Figure {
        stage: "smartmod",
        what: "tweet-filter",
        value: f,
        unit: "rec/s",
        baseline_what: "same logic natively",
        baseline: native_f,
        target: "-",
    });
    report(&Figure {
        stage: "smartmod",
        what: "tweet-shape",
        value: s,
        unit: "rec/s",
        baseline_what: "same logic natively",
        baseline: native_s,
        target: "-",
    });
    report(&Figure {
        stage: "smartmod",
        what: "chain",
        value: chain,
        unit: "rec/s",
        baseline_what: "same logic natively",
        baseline: native_chain,
        target: "-",
    });
    report(&Figure {
        stage: "smartmod",
        what: "resident memory after the chain run",
        value: rss_end,
        unit: "MB",
        baseline_what: "before the chain run",
        baseline: rss_mid,
        target: "flat",
    });
    let _ = rss0;
}
