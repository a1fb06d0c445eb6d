//! # testkit
//!
//! What the integration tests of every crate share: a real Apache Kafka broker ([`kafka`]), a
//! Fluvio cluster when one is installed ([`fluvio`]), the recorded tweets of `../shared`
//! ([`data`]), and small process helpers. A test that cannot run says so on stderr with a
//! `SKIPPED` line (written past the test harness's output capture, so it is always seen).

use std::io::Write;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

pub mod bench;
pub mod connector_toml;
pub mod data;
pub mod fluvio;
pub mod kafka;
pub mod process;
pub mod proxy;
pub mod reliability;

/// The cache the test command fills (Kafka jars, Python venv): `$TWEET_PIPELINE_CACHE`, else
/// `~/.cache/tweet-pipeline`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TWEET_PIPELINE_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("tweet-pipeline")
}

/// Print a visible `SKIPPED` line for `test` (bypasses libtest's capture of `eprintln!`).
pub fn skip(test: &str, reason: &str) {
    let mut err = std::io::stderr();
    let _ = writeln!(err, "SKIPPED: {test}: {reason}");
}

/// A free TCP port on 127.0.0.1 for a server started later, chosen below the kernel's
/// ephemeral range: the OS hands such a port to nobody's `bind(0)` meanwhile, so a test that
/// starts its server there seconds later cannot find another test's server in its place.
pub fn free_port() -> u16 {
    let below = ephemeral_ports_start().unwrap_or(32768);
    if below > 10_000 {
        for _ in 0..1000 {
            let port = fastrand::u16(10_000..below);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// The first port of the kernel's ephemeral range (Linux), where `bind(0)` picks from.
fn ephemeral_ports_start() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Send a Unix signal to a child process.
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) with the pid of a child we own; no memory is shared.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Poll `check` every 50 ms until it returns `Some`, or panic with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The JSON counters a connector serves on its metrics Unix socket (`Null` when it is not up).
pub fn metrics_socket(path: &std::path::Path) -> serde_json::Value {
    use std::io::Read;
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) else {
        return serde_json::Value::Null;
    };
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    serde_json::from_str(&buf).unwrap_or(serde_json::Value::Null)
}

/// The response (head and body) to `GET path` on `addr` (a connector's metrics endpoint);
/// `None` when nothing answers.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// A Python interpreter with the test packages (`confluent-kafka`, `jsonschema`), from the
/// venv the test command makes; `None` when it is not there.
pub fn python() -> Option<PathBuf> {
    let py = std::env::var_os("PIPELINE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("venv").join("bin").join("python"));
    py.exists().then_some(py)
}

/// `kcat` (or its old name `kafkacat`) on PATH.
pub fn kcat() -> Option<PathBuf> {
    ["kcat", "kafkacat"].iter().find_map(|name| which(name))
}

/// `kcat -P` into `topic` set up like the bridge's producer (idempotent, `acks=all`, 20 ms
/// linger, lz4): the baseline of the bridge benchmarks. Output is discarded.
pub fn kcat_producer(broker: &str, topic: &str) -> Option<std::process::Command> {
    let mut cmd = std::process::Command::new(kcat()?);
    cmd.args(["-P", "-b", broker, "-t", topic])
        .args(["-X", "enable.idempotence=true", "-X", "acks=all"])
        .args(["-X", "linger.ms=20", "-z", "lz4"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    Some(cmd)
}

/// Find an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The workspace root (the folder with the top `Cargo.toml`), found at run time: above the
/// package `cargo test` runs, else above the current directory (a harness binary run by
/// `pipeline.sh`), else above this crate's compile-time path. A `target/` shared between clones
/// may hold a testkit compiled in another clone, whose compile-time path is gone.
pub fn workspace_root() -> PathBuf {
    let is_root = |dir: &std::path::Path| {
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|toml| toml.lines().any(|l| l.trim() == "[workspace]"))
    };
    let starts = [
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    starts
        .iter()
        .flatten()
        .find_map(|start| start.ancestors().find(|dir| is_root(dir)))
        .map(|dir| dir.to_path_buf())
        .unwrap_or_else(|| panic!("no workspace Cargo.toml above {starts:?}"))
}

/// Where the built SmartModules are: `$SMARTMODULE_WASM_DIR`, else the release-lto wasm folder
/// of `$CARGO_TARGET_DIR` (or `target/`).
pub fn wasm_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SMARTMODULE_WASM_DIR") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("wasm32-wasip1").join("release-lto")
}

/// The built `tweet-filter` and `tweet-shape` wasm files, or `None` after printing SKIPPED.
pub fn tweet_smartmodules_or_skip(test: &str) -> Option<(PathBuf, PathBuf)> {
    let dir = wasm_dir();
    let (filter, shape) = (dir.join("tweet_filter.wasm"), dir.join("tweet_shape.wasm"));
    if filter.exists() && shape.exists() {
        return Some((filter, shape));
    }
    skip(
        test,
        "the SmartModules are not built (scripts/build-smartmodules.sh)",
    );
    None
}

/// A binary of the workspace built by the same cargo command as the running test or bench
/// (it sits next to the `deps/` folder of the running executable).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let p = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join(name);
    assert!(
        p.exists(),
        "{} is not built (build the workspace with the same profile: cargo test --workspace, or ./bench.sh)",
        p.display()
    );
    p
}
