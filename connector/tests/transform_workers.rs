//! The source's transforms on worker threads (real wasm, `tweet-shape`): a stream one worker
//! keeps up with runs on one; a backlog behind a full pool starts the second; and the records
//! leave in the stream's order whichever worker shaped them.

mod common;

use common::*;
use x_emulator::Emulator;

/// The v2 sample stream of `emu`, shaped, on up to two workers.
fn shaped(emu: &Emulator, shape: &std::path::Path) -> String {
    config_yaml(
        &emu.base_url(),
        &format!("  mode: sample\n{BEARER}{FAST_RECONNECT}"),
        &format!(
            "transform_workers: 2\ntransforms:\n  - uses: {}\n",
            shape.display()
        ),
    )
}

#[test]
fn a_stream_one_worker_keeps_up_with_runs_on_one() {
    let Some((_, shape)) = testkit::tweet_smartmodules_or_skip("one transform worker") else {
        return;
    };
    let mut cfg = generated(600);
    cfg.rate = 300.0;
    let emu = Emulator::start_background(cfg).unwrap();
    let done = deliver_all(&emu, &shaped(&emu, &shape));
    assert_eq!(done.metrics["transform_workers"], 1, "{}", done.metrics);
    assert!(
        !done.run.output().contains("another transform worker"),
        "{}",
        done.run.output()
    );
}

#[test]
fn a_backlog_starts_the_second_worker_and_the_order_holds() {
    let Some((_, shape)) = testkit::tweet_smartmodules_or_skip("two transform workers") else {
        return;
    };
    // Unpaced: the emulator sends faster than one worker shapes.
    let emu = Emulator::start_background(generated(30_000)).unwrap();
    // Every tweet once, in the order X sent them (checked by `deliver_all`).
    let done = deliver_all(&emu, &shaped(&emu, &shape));
    assert_eq!(done.metrics["transform_workers"], 2, "{}", done.metrics);
    assert!(
        done.run
            .output()
            .contains("backlog: another transform worker"),
        "{}",
        done.run.output()
    );
}
