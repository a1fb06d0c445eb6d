//! The transforms in batches through the real engine: a batch gives what records one at a time
//! give, a record refused in the middle of a batch is named and the rest go on through every
//! module, memory stays flat, a leaking module's batch is retried, and the worker pool keeps
//! the order.

use bytes::Bytes;
use connector_runtime::transforms::{
    engine_record, ChainPool, ModuleSpec, TransformChain, TransformError,
};
use connector_runtime::Record;
use smartmodule_engine_tests::*;
use tweet_model::{shape, Shaped};

fn filter_then_shape(test: &str) -> Option<Vec<ModuleSpec>> {
    let f = wasm_or_skip(test, "tweet_filter.wasm")?;
    let s = wasm_or_skip(test, "tweet_shape.wasm")?;
    Some(vec![
        module("tweet-filter", f, &[("languages", "en")]),
        module("tweet-shape", s, &[]),
    ])
}

/// Records keyed `k<i>`, each with its own timestamp.
fn keyed(values: &[String]) -> Vec<Record> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Bytes::from(v.clone()),
            timestamp_ms: Some(1_700_000_000_000 + i as i64 * 7),
        })
        .collect()
}

fn one_by_one(chain: &mut TransformChain, inputs: &[Record]) -> Vec<Record> {
    let mut out = Vec::new();
    for r in inputs {
        out.extend(chain.apply(r).expect("valid tweets pass"));
    }
    out
}

fn summary(records: &[Record]) -> Vec<(Option<Bytes>, Bytes, Option<i64>)> {
    records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone(), r.timestamp_ms))
        .collect()
}

#[test]
fn a_batch_gives_what_records_one_at_a_time_give() {
    let Some(modules) = filter_then_shape("batch parity") else {
        return;
    };
    let inputs = keyed(&corpus(300));
    let mut single = TransformChain::new(modules.clone()).unwrap();
    let expected = one_by_one(&mut single, &inputs);
    let mut batched = TransformChain::new(modules).unwrap();
    let (mut got, mut filtered) = (Vec::new(), 0);
    for chunk in inputs.chunks(256) {
        let applied = batched.apply_batch(chunk);
        assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
        got.extend(applied.records);
        filtered += applied.filtered;
    }
    assert!(
        expected.len() > 100 && filtered > 50,
        "the corpus has both kinds"
    );
    assert_eq!(summary(&got), summary(&expected));
    assert_eq!(got.len() as u64 + filtered, inputs.len() as u64);
}

/// The benchmark's bare-wasmtime host (fuel on or off, input encoded or copied whole) must do
/// the engine's work, or its rates say nothing about the engine's.
#[test]
fn the_bare_wasmtime_host_gives_what_the_engine_gives() {
    let Some(modules) = filter_then_shape("bare host parity") else {
        return;
    };
    let inputs = keyed(&corpus(300));
    let mut chain = TransformChain::new(modules.clone()).unwrap();
    let expected: Vec<(Option<Bytes>, Bytes)> = inputs
        .chunks(64)
        .flat_map(|chunk| chain.apply_batch(chunk).records)
        .map(|r| (r.key, r.value))
        .collect();
    assert!(expected.len() > 100, "the corpus has kept tweets");
    // The filter's parameters, as the engine's chain has them.
    let params: Vec<(&str, &str)> = modules[0]
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (fuel, whole) in [(true, false), (false, false), (false, true)] {
        let mut filter = bare::BareModule::new(&modules[0].wasm, "filter", &params, fuel).unwrap();
        let mut shape = bare::BareModule::new(&modules[1].wasm, "filter_map", &[], fuel).unwrap();
        let mut got = Vec::new();
        for chunk in inputs.chunks(64) {
            let batch: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| engine_record(i, r, 0))
                .collect();
            let kept = filter.process(&batch, whole).unwrap();
            for r in shape.process(&kept, whole).unwrap() {
                got.push((
                    r.key.map(|k| Bytes::copy_from_slice(k.as_ref())),
                    Bytes::copy_from_slice(r.value.as_ref()),
                ));
            }
        }
        assert_eq!(got, expected, "fuel {fuel}, input copied whole {whole}");
    }
}

#[test]
fn a_record_refused_mid_batch_is_named_and_the_rest_go_through_every_module() {
    let Some(modules) = filter_then_shape("refused mid-batch") else {
        return;
    };
    let gen = x_emulator::generator::Generator::new(1_700_000_000_000);
    // English tweets, two of them cut short: tweet-filter refuses those (on_invalid: error).
    let mut values: Vec<String> = (0..40)
        .map(|s| gen.v1(s))
        .filter(|t| t.contains("\"lang\":\"en\""))
        .take(12)
        .collect();
    assert_eq!(values.len(), 12, "the generator writes English tweets");
    for bad in [3, 8] {
        values[bad] = values[bad][..values[bad].len() / 2].to_string();
    }
    let inputs = keyed(&values);
    let mut chain = TransformChain::new(modules).unwrap();
    let applied = chain.apply_batch(&inputs);

    let keys: Vec<_> = applied.rejected.iter().map(|r| r.key.clone()).collect();
    assert_eq!(keys, vec![Some(Bytes::from("k3")), Some(Bytes::from("k8"))]);
    for r in &applied.rejected {
        assert!(
            matches!(&r.error, TransformError::Rejected(m) if m.contains("tweet-filter")),
            "{:?}",
            r.error
        );
    }
    // Every other record came out shaped (the engine's own chain would hand back the
    // filter's partial output, unshaped), in order, with its own timestamp.
    assert_eq!(applied.records.len(), 10);
    assert_eq!(applied.filtered, 0);
    let good: Vec<usize> = (0..12).filter(|i| *i != 3 && *i != 8).collect();
    for (out, i) in applied.records.iter().zip(good) {
        let native = shape(values[i].as_bytes()).unwrap().unwrap();
        let engine: Shaped = serde_json::from_slice(&out.value).unwrap();
        assert_eq!(engine, native, "record {i}");
        assert_eq!(out.timestamp_ms, inputs[i].timestamp_ms, "record {i}");
    }
    assert_eq!(chain.reinitialisations(), 0, "a refusal is not a trap");
}

#[test]
fn batches_keep_guest_memory_flat() {
    // As `our_modules_keep_guest_memory_flat`, in batches of 256 (bench.sh runs 5 M records).
    const LIMIT: usize = 32 << 20;
    let Some(modules) = filter_then_shape("memory in batches") else {
        return;
    };
    let n: usize = std::env::var("SMARTMODULE_LEAK_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let gen = x_emulator::generator::Generator::new(1_700_000_000_000);
    let batch = keyed(&(0..256).map(|s| gen.v1(s)).collect::<Vec<_>>());
    for m in modules {
        let name = m.name.clone();
        let mut chain = TransformChain::with_memory_limit(vec![m], Some(LIMIT)).unwrap();
        let mut seen = 0;
        while seen < n {
            let applied = chain.apply_batch(&batch);
            assert!(
                applied.rejected.is_empty(),
                "{name}: {:?}",
                applied.rejected
            );
            seen += batch.len();
        }
        assert_eq!(
            chain.reinitialisations(),
            0,
            "{name} never exhausted its {LIMIT}-byte store in {seen} records"
        );
    }
}

#[test]
fn a_leaking_module_in_batches_loses_nothing() {
    const LIMIT: usize = 32 << 20;
    let Some(leaky) = wasm_or_skip("leaky module in batches", "upstream_macro_map.wasm") else {
        return;
    };
    let gen = x_emulator::generator::Generator::new(1_700_000_000_000);
    let batch = keyed(&(0..256).map(|s| gen.v1(s)).collect::<Vec<_>>());
    let mut chain = TransformChain::with_memory_limit(
        vec![module("upstream-macro-map", leaky, &[])],
        Some(LIMIT),
    )
    .unwrap();
    let mut out = 0;
    for _ in 0..120 {
        let applied = chain.apply_batch(&batch);
        assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
        assert_eq!(
            summary(&applied.records)
                .iter()
                .map(|r| r.0.clone())
                .collect::<Vec<_>>(),
            batch.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
            "every record, in order"
        );
        out += applied.records.len();
    }
    assert_eq!(out, 120 * 256);
    assert!(
        chain.reinitialisations() >= 1,
        "the leak did exhaust the store (so this test can fail): re-initialised {} times",
        chain.reinitialisations()
    );
}

#[tokio::test]
async fn the_worker_pool_keeps_the_order_of_the_stream() {
    let Some(modules) = filter_then_shape("worker pool order") else {
        return;
    };
    let inputs = keyed(&corpus(600));
    let expected = one_by_one(&mut TransformChain::new(modules.clone()).unwrap(), &inputs);
    let mut pool = ChainPool::start(modules, 2).await.unwrap();
    assert_eq!(pool.workers(), 1, "one worker until a backlog waits");
    assert!(pool.grow());
    assert!(!pool.grow(), "at most the maximum");
    assert_eq!(pool.workers(), 2);
    // Batches of varied size, submitted as fast as the pool takes them.
    let got = through_pool(&mut pool, inputs.chunks(37).map(<[Record]>::to_vec)).await;
    assert_eq!(summary(&got), summary(&expected));
}
