//! The runtime's reads of a real Fluvio topic (skipped, visibly, without a cluster).

use std::io::Write;

use connector_runtime::cluster;
use testkit::fluvio::FluvioEnv;

/// The source seeds its dedup window, and finds what a failed producer stored, by reading
/// the end of its topic. Fluvio 0.50 drops the batch that straddles the end of a fetch (4 MB)
/// when it reads a backlog: a tail longer than a fetch must still come back whole.
#[test]
fn the_tail_read_finds_every_record_of_a_tail_longer_than_a_fetch() {
    let Some(env) = FluvioEnv::find_or_skip("tail read across fetches (Fluvio)") else {
        return;
    };
    let topic = env.unique_topic("tail");
    env.run(&["topic", "create", &topic]);
    // 6,000 keyed records of ~2 KB, in the CLI's 16 KB batches: three 4 MB fetches and more.
    let n = 6_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.txt");
    let mut file = std::fs::File::create(&path).unwrap();
    let padding = "x".repeat(2_000);
    for i in 0..n {
        writeln!(file, "k{i}\t{{\"id\":{i},\"text\":\"{padding}\"}}").unwrap();
    }
    drop(file);
    env.produce_keyed_file(&topic, &path, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fluvio = rt.block_on(cluster::connect("tail-test")).unwrap();
    for tail in [n, 2_500] {
        let keys = rt
            .block_on(cluster::last_keys(&fluvio, &topic, tail as i64))
            .unwrap();
        let keys: Vec<String> = keys
            .into_iter()
            .map(|k| String::from_utf8(k).unwrap())
            .collect();
        let expected: Vec<String> = (n - tail..n).map(|i| format!("k{i}")).collect();
        let missing = expected.iter().filter(|k| !keys.contains(k)).count();
        assert_eq!(
            keys.len(),
            tail,
            "the last {tail} records: {missing} missing, {} read",
            keys.len()
        );
        assert_eq!(
            keys, expected,
            "the last {tail} records, in order, once each"
        );
    }
    env.run(&["topic", "delete", &topic]);
}
