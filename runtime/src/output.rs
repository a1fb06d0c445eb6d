//! Where a source's records go: a Fluvio topic producer, or (with `--capture`) a JSON-lines
//! file, which lets the whole connector run and be tested without a cluster.

use std::io::Write;
use std::path::Path;

use crate::produce::FluvioOutput;
use crate::Record;
use anyhow::{Context, Result};
use base64::Engine as _;

pub enum RecordOutput {
    Fluvio(Box<FluvioOutput>),
    Capture(std::io::BufWriter<std::fs::File>),
    /// `--capture /dev/null`: records are dropped without being encoded (benchmarks of the
    /// path up to the producer).
    Discard,
}

impl std::fmt::Debug for RecordOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fluvio(_) => f.write_str("RecordOutput::Fluvio"),
            Self::Capture(_) => f.write_str("RecordOutput::Capture"),
            Self::Discard => f.write_str("RecordOutput::Discard"),
        }
    }
}

impl RecordOutput {
    /// Append-only capture file, created if missing.
    pub fn capture(path: &Path) -> Result<Self> {
        if path == Path::new("/dev/null") {
            return Ok(Self::Discard);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open capture file {}", path.display()))?;
        Ok(Self::Capture(std::io::BufWriter::with_capacity(
            1 << 20,
            file,
        )))
    }

    /// Hand one record over; it is durable after [`RecordOutput::flush`].
    pub async fn send(&mut self, record: Record) -> Result<()> {
        match self {
            Self::Fluvio(producer) => producer.send(record).await,
            Self::Capture(w) => {
                let line = capture_line(&record);
                w.write_all(line.as_bytes())?;
                Ok(())
            }
            Self::Discard => Ok(()),
        }
    }

    /// Wait until every record handed over is stored.
    pub async fn flush(&mut self) -> Result<()> {
        match self {
            Self::Fluvio(producer) => producer.flush().await,
            Self::Capture(w) => {
                w.flush()?;
                w.get_ref().sync_data()?;
                Ok(())
            }
            Self::Discard => Ok(()),
        }
    }
}

/// One capture line: `{"key": "..."|null, "value": "..."}`, with `value_base64`/`key_base64`
/// instead when the bytes are not UTF-8, so the exact bytes can always be recovered.
pub fn capture_line(record: &Record) -> String {
    let mut obj = serde_json::Map::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    match &record.key {
        None => {
            obj.insert("key".into(), serde_json::Value::Null);
        }
        Some(k) => match std::str::from_utf8(k) {
            Ok(s) => {
                obj.insert("key".into(), s.into());
            }
            Err(_) => {
                obj.insert("key_base64".into(), b64.encode(k).into());
            }
        },
    }
    match std::str::from_utf8(&record.value) {
        Ok(s) => obj.insert("value".into(), s.into()),
        Err(_) => obj.insert("value_base64".into(), b64.encode(&record.value).into()),
    };
    if let Some(ts) = record.timestamp_ms {
        obj.insert("timestamp_ms".into(), ts.into());
    }
    let mut line = serde_json::Value::Object(obj).to_string();
    line.push('\n');
    line
}

/// Read a capture file back (used by tests and tools).
pub fn read_capture(path: &Path) -> Result<Vec<Record>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read capture file {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            read_capture_line(line).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

/// One line of a capture file back to its record.
pub fn read_capture_line(line: &str) -> Result<Record> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let v: serde_json::Value = serde_json::from_str(line).context("not JSON")?;
    let key = match (v.get("key"), v.get("key_base64")) {
        (Some(serde_json::Value::String(s)), _) => Some(s.clone().into_bytes().into()),
        (_, Some(serde_json::Value::String(s))) => Some(b64.decode(s)?.into()),
        _ => None,
    };
    let value = match (v.get("value"), v.get("value_base64")) {
        (Some(serde_json::Value::String(s)), _) => s.clone().into_bytes(),
        (_, Some(serde_json::Value::String(s))) => b64.decode(s)?,
        _ => anyhow::bail!("no value"),
    };
    Ok(Record {
        key,
        value: value.into(),
        timestamp_ms: v.get("timestamp_ms").and_then(|t| t.as_i64()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capture_round_trips_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let records = vec![
            Record::new(Some("1".into()), "{\"text\":\"é \\u0000 😂\"}"),
            Record::new(None, "plain"),
            Record {
                key: Some(vec![0xff, 0x00].into()),
                value: vec![0xc3, 0x28].into(),
                timestamp_ms: Some(5),
            },
        ];
        let mut out = RecordOutput::capture(&path).unwrap();
        for r in &records {
            out.send(r.clone()).await.unwrap();
        }
        out.flush().await.unwrap();
        assert_eq!(read_capture(&path).unwrap(), records);
    }
}
