//! A Fluvio cluster for the tests that need one. Neither `fluvio` nor `fluvio-run` is on a
//! registry, so this finds them (`$FLUVIO_BIN_DIR` or PATH) and uses the cluster of
//! `$FLV_PROFILE_PATH` (which `./test.sh` sets after starting a private cluster under its own
//! HOME) or of the current profile. Tests name their topics uniquely, so a user's existing
//! topics and data are never touched. Without a reachable cluster a test prints SKIPPED
//! (or fails when `REQUIRE_FLUVIO=1`).

use std::path::PathBuf;
use std::process::Command;

use crate::skip;

/// The Fluvio CLI and the profile it talks to.
#[derive(Debug, Clone)]
pub struct FluvioEnv {
    pub cli: PathBuf,
    pub profile_path: Option<PathBuf>,
}

const MAX_BYTES: &str = "64000000";

/// Where the SPU of a local cluster (`fluvio cluster start --local`) serves clients.
const SPU_PUBLIC_ADDR: &str = "127.0.0.1:9010";

/// Send `signal` to the SPU of the cluster whose HOME is `home`; `false` if none runs.
fn signal_spu_of(home: &std::path::Path, signal: &str) -> bool {
    let spu = format!("fluvio-run spu .*{}", home.join("data").display());
    Command::new("pkill")
        .args([&format!("-{signal}"), "-f", &spu])
        .status()
        .expect("run pkill")
        .success()
}

/// The empty files under `dir`, recursively.
fn empty_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.metadata() {
            Ok(m) if m.is_dir() => out.extend(empty_files(&path)),
            Ok(m) if m.len() == 0 => out.push(path),
            _ => {}
        }
    }
    out
}

/// `fluvio` and `fluvio-run`, if both are installed.
pub fn binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| match std::env::var_os("FLUVIO_BIN_DIR") {
        Some(dir) => {
            let p = PathBuf::from(dir).join(name);
            p.is_file().then_some(p)
        }
        None => crate::which(name),
    };
    Some((find("fluvio")?, find("fluvio-run")?))
}

impl FluvioEnv {
    /// A reachable cluster, or `None` after printing SKIPPED for `test`.
    pub fn find_or_skip(test: &str) -> Option<Self> {
        let required = std::env::var("REQUIRE_FLUVIO").as_deref() == Ok("1");
        let Some((cli, _run)) = binaries() else {
            if required {
                panic!("{test}: REQUIRE_FLUVIO=1 but fluvio/fluvio-run are not installed");
            }
            skip(test, "needs a Fluvio cluster: `fluvio` and `fluvio-run` are not installed (PATH or FLUVIO_BIN_DIR)");
            return None;
        };
        let env = Self {
            cli,
            profile_path: std::env::var_os("FLV_PROFILE_PATH").map(PathBuf::from),
        };
        let reachable = env
            .command()
            .args(["topic", "list"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !reachable {
            if required {
                panic!("{test}: REQUIRE_FLUVIO=1 but no Fluvio cluster answers");
            }
            skip(test, "no Fluvio cluster answers (./test.sh starts a private one when fluvio and fluvio-run are installed)");
            return None;
        }
        Some(env)
    }

    /// A `fluvio` command bound to this cluster's profile.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.cli);
        if let Some(p) = &self.profile_path {
            cmd.env("FLV_PROFILE_PATH", p);
        }
        cmd
    }

    /// A topic name no one else uses: `<prefix>-<pid>-<nanos>`.
    pub fn unique_topic(&self, prefix: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{prefix}-{}-{nanos}", std::process::id())
    }

    /// Run `fluvio <args>`, panicking with its output when it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("run fluvio");
        assert!(
            out.status.success(),
            "fluvio {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The high watermark of each partition of `topic`, from `fluvio partition list`.
    pub fn high_watermarks(&self, topic: &str) -> Vec<i64> {
        let text = self.run(&["partition", "list"]);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let col = header
            .split_whitespace()
            .position(|h| h == "HW")
            .expect("an HW column");
        // RESOLUTION and SIZE hold one word each, MIRROR and a `[]` REPLICAS may be empty:
        // count from the end of the row instead, where HW is as far as in the header.
        let from_end = header.split_whitespace().count() - col;
        lines
            .filter(|l| l.split_whitespace().next() == Some(topic))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                cells.get(cells.len().checked_sub(from_end)?)?.parse().ok()
            })
            .collect()
    }

    /// `fluvio produce <topic> --key-separator '\t' -f <file> <extra>` for a file of
    /// `key\tvalue` lines with unique keys. A partition whose leader is not settled after a
    /// restart refuses a produce for a moment ("the given SPU is not the leader for the
    /// partition") though listed Online, possibly after the CLI stored part of the file; so
    /// each retry produces only the lines whose key the topic does not hold yet (read from
    /// the partitions themselves: `partition list`'s HW lags behind them).
    pub fn produce_keyed_file(&self, topic: &str, file: &std::path::Path, extra: &[&str]) {
        let lines = std::fs::read_to_string(file).expect("read the records file");
        let rest_file = file.with_extension("rest");
        let mut current = file.to_path_buf();
        let started = std::time::Instant::now();
        loop {
            let path = current.to_str().expect("a UTF-8 path");
            let mut args = vec!["produce", topic, "--key-separator", "\t", "-f", path];
            args.extend_from_slice(extra);
            let out = self.command().args(&args).output().expect("run fluvio");
            if out.status.success() {
                return;
            }
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if !err.contains("not the leader")
                || started.elapsed() > std::time::Duration::from_secs(60)
            {
                panic!("fluvio {args:?} failed: {err}");
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
            let partitions = self.high_watermarks(topic).len() as u32;
            let stored: std::collections::HashSet<String> = (0..partitions)
                .flat_map(|p| self.keys_by_offset(topic, p))
                .map(|(_, key)| key)
                .collect();
            let rest: String = lines
                .lines()
                .filter(|l| !stored.contains(l.split('\t').next().unwrap_or_default()))
                .map(|l| format!("{l}\n"))
                .collect();
            eprintln!(
                "fluvio produce refused (not the leader); the topic holds {} records, producing the {} of the file it lacks",
                stored.len(),
                rest.lines().count()
            );
            std::fs::write(&rest_file, rest).expect("write the records not stored");
            current = rest_file.clone();
        }
    }

    /// `fluvio consume <topic> -B -d -p <partition>` plus `extra`, its output lines. A large
    /// `--maxbytes`: with the default, the 0.18 CLI skips whole batches of a fetch that does
    /// not fit (seen here with 512 KB batches), which would hide what is stored.
    fn consume(&self, topic: &str, partition: u32, extra: &[&str]) -> Vec<String> {
        let p = partition.to_string();
        let mut args = vec![
            "consume",
            topic,
            "-B",
            "-d",
            "--maxbytes",
            MAX_BYTES,
            "-p",
            &p,
        ];
        args.extend_from_slice(extra);
        self.run(&args).lines().map(str::to_string).collect()
    }

    /// Every record value of `topic` partition `partition` from the beginning, one per line;
    /// values must not contain newlines (JSON lines don't).
    pub fn consume_values(&self, topic: &str, partition: u32) -> Vec<String> {
        self.consume(topic, partition, &[])
    }

    /// Every `(key, value)` of `topic` partition `partition` from the beginning.
    pub fn consume_keyed(&self, topic: &str, partition: u32) -> Vec<(String, String)> {
        self.consume(topic, partition, &["-F", "{{key}}\t{{value}}"])
            .into_iter()
            .filter_map(|l| {
                l.split_once('\t')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    }

    /// The home of the private cluster `./test.sh` started (under the test cache) when this
    /// is it: the only one a test may stop or signal. Otherwise `None` after SKIPPED.
    fn private_home(&self, test: &str) -> Option<PathBuf> {
        let home = crate::cache_dir().join("fluvio-home");
        if self.profile_path.as_deref() != Some(home.join(".fluvio").join("config").as_path()) {
            skip(
                test,
                "stops the Fluvio cluster, which it does only to the private one ./test.sh starts",
            );
            return None;
        }
        Some(home)
    }

    /// Send `signal` (`STOP`, `CONT`, `KILL`, ...) to the SPU of the private cluster: a
    /// stopped SPU keeps its connections open and answers nothing. `false` after SKIPPED
    /// with any other cluster.
    pub fn signal_spu(&self, test: &str, signal: &str) -> bool {
        let Some(home) = self.private_home(test) else {
            return false;
        };
        assert!(
            signal_spu_of(&home, signal),
            "no SPU process of {} to signal",
            home.display()
        );
        true
    }

    /// Stop the cluster (SC and SPU) for `down`, then resume it with its data and wait until
    /// the SPU serves and every partition is online again. Only the private cluster
    /// `./test.sh` started (under the test cache) is ever stopped; with any other, `false`
    /// after SKIPPED.
    ///
    /// The SPU is killed first and the SC a moment later (`fluvio cluster shutdown`): the
    /// shutdown SIGKILLs both at once, while the SC, seeing the SPU go, rewrites its metadata
    /// files in place (truncate, then write); a kill in between left an empty
    /// `SPU/custom-spu-5001.yaml` that the resumed SC could not load, so no SPU came back and
    /// `fluvio produce` spun forever.
    pub fn outage(&self, test: &str, down: std::time::Duration) -> bool {
        let Some(home) = self.private_home(test) else {
            return false;
        };
        let bin_dir = self.cli.parent().map(PathBuf::from).unwrap_or_default();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let cluster = |what: &str| {
            let out = Command::new(&self.cli)
                .args(["cluster", what])
                .env("HOME", &home)
                .env("PATH", &path)
                .env_remove("FLV_PROFILE_PATH")
                .output()
                .expect("run fluvio");
            assert!(
                out.status.success(),
                "fluvio cluster {what}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        signal_spu_of(&home, "KILL"); // unless it is dead already
        std::thread::sleep(std::time::Duration::from_secs(2));
        cluster("shutdown");
        std::thread::sleep(down);
        let metadata = home.join("data").join("metadata");
        if let Some(empty) = empty_files(&metadata).first() {
            panic!(
                "the Fluvio SC left an empty metadata file {} (killed while writing it); the cluster cannot resume",
                empty.display()
            );
        }
        cluster("resume");
        crate::wait_for(
            "the SPU to accept connections after resuming",
            std::time::Duration::from_secs(60),
            || std::net::TcpStream::connect(SPU_PUBLIC_ADDR).ok(),
        );
        // Answering is not enough: a produce before every partition has its leader back is
        // refused ("the given SPU is not the leader for the partition").
        crate::wait_for(
            "every Fluvio partition to be online after resuming",
            std::time::Duration::from_secs(60),
            || {
                let out = self.command().args(["partition", "list"]).output().ok()?;
                let text = String::from_utf8_lossy(&out.stdout);
                let rows: Vec<&str> = text
                    .lines()
                    .skip(1)
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                (out.status.success() && rows.iter().all(|r| r.contains(" Online "))).then_some(())
            },
        );
        true
    }

    /// Every `(offset, key)` of `topic` partition `partition`, read in windows of 5,000
    /// offsets (`--start`/`--end`, each window one fetch) up to the first empty one: the CLI
    /// drops the batch that straddles the end of a fetch when it reads a long backlog, which
    /// would look like loss.
    pub fn keys_by_offset(&self, topic: &str, partition: u32) -> Vec<(i64, String)> {
        let p = partition.to_string();
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let last = start + 4_999;
            let (s, e) = (start.to_string(), last.to_string());
            let lines = self.run(&[
                "consume",
                topic,
                "-p",
                &p,
                "--start",
                &s,
                "--end",
                &e,
                "-d",
                "--maxbytes",
                MAX_BYTES,
                "-F",
                "{{offset}}\t{{key}}",
            ]);
            let before = out.len();
            for l in lines.lines() {
                if let Some((o, k)) = l.split_once('\t') {
                    if let Ok(o) = o.trim().parse() {
                        out.push((o, k.to_string()));
                    }
                }
            }
            if out.len() == before {
                return out;
            }
            start = last + 1;
        }
    }

    /// The profile path to hand to a connector process (`FLV_PROFILE_PATH`).
    pub fn profile_env(&self) -> Vec<(String, String)> {
        self.profile_path
            .iter()
            .map(|p| ("FLV_PROFILE_PATH".to_string(), p.display().to_string()))
            .collect()
    }
}
