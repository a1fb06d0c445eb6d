//! Archive replay: recorded tweets from a file or a folder (JSON lines or a JSON array, either
//! optionally gzipped) at a fixed rate, as fast as possible, or at the recorded pace times a
//! speed factor; optionally looping. How ML users backfill, and how the offline demo runs.
//!
//! Files are read on a blocking thread and framed with the same decoder as the live streams,
//! so bad lines, oversized lines and invalid UTF-8 are skipped and counted the same way.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use connector_runtime::SourceContext;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{ReplayConfig, ReplayRate};
use crate::framing::{Decoder, Frame, Framing};
use crate::ingest::Ingest;
use crate::message::{classify, Message};

/// The files a replay path names, in order (a folder: its files sorted by name).
pub fn files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("twitter.replay.path: {}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("twitter.replay.path: {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let name = name.strip_suffix(".gz").unwrap_or(name);
            name.ends_with(".jsonl") || name.ends_with(".json") || name.ends_with(".ndjson")
        })
        .collect();
    out.sort();
    if out.is_empty() {
        bail!(
            "twitter.replay.path: {} has no .json, .jsonl or .ndjson files (optionally .gz)",
            path.display()
        );
    }
    Ok(out)
}

enum Item {
    Frame(Frame),
    Done,
}

/// Read one file into frames on the calling (blocking) thread.
fn read_file(path: &Path, max: usize, tx: &mpsc::Sender<Item>) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(file),
        ))
    } else {
        Box::new(std::io::BufReader::with_capacity(1 << 20, file))
    };
    let first = loop {
        let buf = reader.fill_buf()?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break Some(buf[i]),
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    if first == Some(b'[') {
        // A JSON array: each element, as its exact text.
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .with_context(|| format!("{}: not UTF-8", path.display()))?;
        let items: Vec<Box<serde_json::value::RawValue>> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON array", path.display()))?;
        for raw in items {
            let frame = Frame::whole(Bytes::copy_from_slice(raw.get().as_bytes()), max);
            if tx.blocking_send(Item::Frame(frame)).is_err() {
                return Ok(());
            }
        }
        return Ok(());
    }
    let mut decoder = Decoder::new(Framing::Lines, max);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            decoder.feed(b"\n"); // a last line without its newline
        } else {
            decoder.feed(&buf[..n]);
        }
        while let Some(frame) = decoder.next_frame() {
            if tx.blocking_send(Item::Frame(frame)).is_err() {
                return Ok(());
            }
        }
        if n == 0 {
            return Ok(());
        }
    }
}

/// Replay until the archive ends (Ok), forever with `loop`, or until shutdown.
pub async fn run(
    cfg: ReplayConfig,
    max_message_bytes: usize,
    ctx: SourceContext,
    mut ingest: Ingest,
) -> Result<()> {
    let paths = files(&cfg.path)?;
    tracing::info!(files = paths.len(), rate = ?cfg.rate, looped = cfg.looped, "replaying recorded tweets");
    let (tx, mut rx) = mpsc::channel::<Item>(1024);
    let reader_paths = paths.clone();
    let looped = cfg.looped;
    let reader = tokio::task::spawn_blocking(move || -> Result<()> {
        loop {
            for p in &reader_paths {
                read_file(p, max_message_bytes, &tx)?;
                if tx.is_closed() {
                    return Ok(());
                }
            }
            if !looped {
                let _ = tx.blocking_send(Item::Done);
                return Ok(());
            }
        }
    });

    let mut pacer = Pacer::new(cfg.rate, cfg.speed);
    loop {
        let item = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            item = rx.recv() => item,
        };
        let frame = match item {
            Some(Item::Frame(f)) => f,
            Some(Item::Done) => break,
            None => break, // the reader failed: its error is reported below
        };
        match frame {
            Frame::Message(bytes) => {
                let classified = classify(&bytes);
                let time = match &classified {
                    Ok(Message::Tweet { time_ms, .. }) => *time_ms,
                    _ => None,
                };
                tokio::select! {
                    _ = pacer.wait(time) => {}
                    _ = ctx.shutdown.cancelled() => break,
                }
                if ingest.handle(bytes, classified).await.is_err() {
                    break;
                }
            }
            skipped => ingest.m.skipped(&skipped),
        }
    }
    drop(rx);
    match reader.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.context("replay")),
        Err(e) => bail!("replay reader panicked: {e}"),
    }
    tracing::info!(tweets = ingest.m.tweets.get(), "replay finished");
    Ok(())
}

/// Paces records: a fixed rate, no wait at all, or the recorded gaps divided by `speed`.
struct Pacer {
    rate: ReplayRate,
    speed: f64,
    next: Instant,
    origin: Option<(i64, Instant)>,
    /// The previous record's time.
    prev: Option<i64>,
}

/// A gap between two consecutive records longer than this (one day) is not waited out.
const MAX_RECORDED_GAP_MS: i64 = 24 * 3600 * 1000;

impl Pacer {
    fn new(rate: ReplayRate, speed: f64) -> Self {
        Self {
            rate,
            speed,
            next: Instant::now(),
            origin: None,
            prev: None,
        }
    }

    async fn wait(&mut self, time_ms: Option<i64>) {
        match self.rate {
            ReplayRate::Max => {}
            ReplayRate::PerSecond(r) => {
                self.next += Duration::from_secs_f64(1.0 / r);
                let now = Instant::now();
                if self.next > now {
                    tokio::time::sleep_until(self.next).await;
                } else if now - self.next > Duration::from_secs(1) {
                    self.next = now;
                }
            }
            ReplayRate::Original => {
                // A time before 1970 (or none) says nothing about pace.
                let Some(t) = time_ms.filter(|t| *t > 0) else {
                    return;
                };
                let (t0, w0) = *self.origin.get_or_insert((t, Instant::now()));
                let prev = self.prev.replace(t).unwrap_or(t);
                // Out of order, the loop started over, or a gap no recording has (a bad
                // time): re-anchor rather than wait.
                if t < t0 || t - prev > MAX_RECORDED_GAP_MS {
                    self.origin = Some((t, Instant::now()));
                    return;
                }
                let offset = Duration::from_secs_f64((t - t0) as f64 / 1000.0 / self.speed);
                match w0.checked_add(offset) {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => self.origin = Some((t, Instant::now())),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_files_of_a_folder_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.jsonl", "a.json.gz", "notes.txt", "c.ndjson"] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        let names: Vec<String> = files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.json.gz", "b.jsonl", "c.ndjson"]);
        assert!(files(&dir.path().join("missing")).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn original_pace_follows_recorded_gaps_times_speed() {
        let mut p = Pacer::new(ReplayRate::Original, 2.0);
        let start = Instant::now();
        p.wait(Some(10_000)).await;
        p.wait(Some(14_000)).await; // 4 s later, at 2x: 2 s
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
        p.wait(Some(20_000)).await; // 10 s after the first: 5 s
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn odd_recorded_times_never_panic_nor_stall() {
        let mut p = Pacer::new(ReplayRate::Original, 1.0);
        let start = Instant::now();
        // A negative time, then a normal one (this panicked: a wait of 55 years).
        p.wait(Some(-5_000)).await;
        p.wait(Some(1_700_000_000_000)).await;
        p.wait(Some(1_700_000_001_000)).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
        // A jump of years, the largest time there is, and back to normal.
        p.wait(Some(1_800_000_000_000)).await;
        p.wait(Some(i64::MAX)).await;
        p.wait(Some(0)).await;
        p.wait(Some(i64::MIN)).await;
        p.wait(Some(1_700_000_002_000)).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_rate() {
        let mut p = Pacer::new(ReplayRate::PerSecond(4.0), 1.0);
        let start = Instant::now();
        for _ in 0..8 {
            p.wait(None).await;
        }
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
    }
}
