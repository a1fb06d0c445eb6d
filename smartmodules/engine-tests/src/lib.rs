//! Helpers for running the tweet SmartModules through the real engine: find the built wasm
//! (`scripts/build-smartmodules.sh`), build chains with parameters, and gather test tweets
//! (the recorded payloads when present, plus generated ones).

pub mod bare;

use std::collections::BTreeMap;

use bytes::Bytes;
use connector_runtime::transforms::{ChainPool, ModuleSpec, TransformChain};
use connector_runtime::Record;

pub use testkit::wasm_dir;

/// The bytes of a built module, or `None` after printing SKIPPED (a failure when
/// `REQUIRE_WASM=1`, as `./test.sh` sets after building them).
pub fn wasm_or_skip(test: &str, file: &str) -> Option<Vec<u8>> {
    let path = wasm_dir().join(file);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) => {
            if std::env::var("REQUIRE_WASM").as_deref() == Ok("1") {
                panic!(
                    "{test}: {}: {e} (scripts/build-smartmodules.sh builds it)",
                    path.display()
                );
            }
            testkit::skip(
                test,
                &format!(
                    "{} is not built (scripts/build-smartmodules.sh)",
                    path.display()
                ),
            );
            None
        }
    }
}

/// A module with parameters.
pub fn module(name: &str, wasm: Vec<u8>, params: &[(&str, &str)]) -> ModuleSpec {
    ModuleSpec {
        name: name.to_string(),
        wasm,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// Run one value through a chain; the values that come out.
pub fn run(chain: &mut TransformChain, value: &[u8]) -> Result<Vec<Bytes>, String> {
    chain
        .apply(&Record::new(
            Some(Bytes::from_static(b"k")),
            Bytes::copy_from_slice(value),
        ))
        .map(|out| out.into_iter().map(|r| r.value).collect())
        .map_err(|e| e.to_string())
}

/// Hand `batches` to the pool as fast as it takes them; what came out, in order.
pub async fn through_pool(
    pool: &mut ChainPool,
    mut batches: impl Iterator<Item = Vec<Record>>,
) -> Vec<Record> {
    let mut out = Vec::new();
    loop {
        if pool.has_room() {
            if let Some(batch) = batches.next() {
                pool.submit(batch);
                continue;
            }
        }
        match pool.next().await {
            Some(applied) => out.extend(applied.expect("no worker panics").records),
            None => return out,
        }
    }
}

/// Test tweets: every recorded payload (if present) and `generated` generated ones of each dialect.
pub fn corpus(generated: u64) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(dir) = testkit::data::tweets_dir() {
        for f in [
            "v1_statuses.jsonl",
            "v2_messages.jsonl",
            "v1_stream_messages.jsonl",
        ] {
            out.extend(testkit::data::lines(&dir, f));
        }
    }
    let g = x_emulator::generator::Generator::new(1_700_000_000_000);
    for s in 0..generated {
        out.push(g.v1(s));
        out.push(g.v2(s));
    }
    out
}

/// `n` events of the emulator's Bluesky Jetstream (posts, reposts, likes, deletes, identity
/// and account events), as the source stores them.
pub fn jetstream_corpus(n: u64) -> Vec<String> {
    let network = x_emulator::JetstreamConfig {
        epoch_us: Some(1_764_000_000_000_000),
        ..Default::default()
    };
    let timeline = x_emulator::jetstream::Timeline::new(&network, 0);
    (0..n).map(|i| timeline.event(i).json).collect()
}
