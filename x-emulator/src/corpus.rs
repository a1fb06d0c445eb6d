//! What the emulator streams: recorded payloads from files (sent byte for byte), or generated
//! tweets. Generated tweets come from a pool of templates whose ids are rewritten per sequence
//! number, so the emulator can stream several hundred thousand unique tweets a second.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::generator::{snowflake, Generator};

/// The API dialect of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    V1,
    V2,
}

/// One message ready to send, with what the filters and rules look at.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub json: Arc<[u8]>,
    pub text: String,
    pub lang: String,
    pub username: String,
    pub user_id: String,
}

/// The source of tweets.
pub enum Corpus {
    Generated {
        generator: Generator,
        v1: Vec<OnceLock<Item>>,
        v2: Vec<OnceLock<Item>>,
    },
    Files {
        v1: Vec<Item>,
        v2: Vec<Item>,
        looped: bool,
    },
}

/// Templates in the generated pool (distinct texts before ids repeat their shape).
pub const POOL: usize = 4096;

impl Corpus {
    pub fn generated(start_ms: i64) -> Self {
        Self::generated_spaced(start_ms, 1)
    }

    /// Generated tweets created `spacing_ms` apart from `start_ms` on (a pace in simulated
    /// time; tests of recovery use it to have tweets from before and after a moment).
    pub fn generated_spaced(start_ms: i64, spacing_ms: i64) -> Self {
        Self::Generated {
            generator: Generator::spaced(start_ms, spacing_ms),
            v1: (0..POOL).map(|_| OnceLock::new()).collect(),
            v2: (0..POOL).map(|_| OnceLock::new()).collect(),
        }
    }

    /// `v1_statuses.jsonl` and `v2_messages.jsonl` of a folder (either may be missing); other
    /// `.jsonl` files named on their own are read as v1 (lines with `data`) or v2.
    pub fn files(dir: &Path, looped: bool) -> Result<Self> {
        let mut v1 = Vec::new();
        let mut v2 = Vec::new();
        let read = |name: &str| -> Result<Vec<String>> {
            let p = dir.join(name);
            if !p.exists() {
                return Ok(Vec::new());
            }
            Ok(std::fs::read_to_string(&p)
                .with_context(|| format!("read {}", p.display()))?
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect())
        };
        for line in read("v1_statuses.jsonl")? {
            v1.push(item_from_line(&line, Dialect::V1)?);
        }
        for line in read("v2_messages.jsonl")? {
            v2.push(item_from_line(&line, Dialect::V2)?);
        }
        anyhow::ensure!(
            !v1.is_empty() || !v2.is_empty(),
            "{}: no v1_statuses.jsonl or v2_messages.jsonl",
            dir.display()
        );
        Ok(Self::Files { v1, v2, looped })
    }

    /// How many distinct messages a dialect can give (`None`: unbounded).
    pub fn len(&self, dialect: Dialect) -> Option<u64> {
        match self {
            Self::Generated { .. } => None,
            Self::Files { v1, v2, looped } => {
                if *looped {
                    None
                } else {
                    Some(match dialect {
                        Dialect::V1 => v1.len() as u64,
                        Dialect::V2 => v2.len() as u64,
                    })
                }
            }
        }
    }

    /// Message `seq` of a dialect, or `None` once a non-looping file corpus is exhausted.
    pub fn item(&self, dialect: Dialect, seq: u64) -> Option<Item> {
        match self {
            Self::Generated { generator, v1, v2 } => {
                let slot = (seq % POOL as u64) as usize;
                let pool = match dialect {
                    Dialect::V1 => v1,
                    Dialect::V2 => v2,
                };
                let template = pool[slot].get_or_init(|| {
                    let line = match dialect {
                        Dialect::V1 => generator.v1(slot as u64),
                        Dialect::V2 => generator.v2(slot as u64),
                    };
                    item_from_line(&line, dialect).expect("generated tweets are valid")
                });
                if seq < POOL as u64 {
                    return Some(template.clone());
                }
                // Same template, a new unique id of the same width.
                let new_id = snowflake(generator.time_of(seq), seq).to_string();
                let mut item = template.clone();
                if new_id.len() == template.id.len() {
                    item.json =
                        replace_all(&template.json, template.id.as_bytes(), new_id.as_bytes())
                            .into();
                } else {
                    let text =
                        String::from_utf8_lossy(&template.json).replace(&template.id, &new_id);
                    item.json = text.into_bytes().into();
                }
                item.id = new_id;
                Some(item)
            }
            Self::Files { v1, v2, looped } => {
                let list = match dialect {
                    Dialect::V1 => v1,
                    Dialect::V2 => v2,
                };
                if list.is_empty() {
                    return None;
                }
                if *looped {
                    Some(list[(seq % list.len() as u64) as usize].clone())
                } else {
                    list.get(seq as usize).cloned()
                }
            }
        }
    }
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = haystack.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

/// Read what the emulator needs from a recorded or generated line.
pub fn item_from_line(line: &str, dialect: Dialect) -> Result<Item> {
    let v: Value = serde_json::from_str(line).context("corpus line is not JSON")?;
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let item = match dialect {
        Dialect::V1 => {
            let text = v
                .pointer("/extended_tweet/full_text")
                .or_else(|| v.get("full_text"))
                .or_else(|| v.get("text"));
            Item {
                id: s(&v["id_str"]),
                json: line.as_bytes().into(),
                text: text.map(s).unwrap_or_default(),
                lang: s(&v["lang"]),
                username: s(&v["user"]["screen_name"]),
                user_id: s(&v["user"]["id_str"]),
            }
        }
        Dialect::V2 => {
            let author = s(&v["data"]["author_id"]);
            let username = v["includes"]["users"]
                .as_array()
                .and_then(|users| users.iter().find(|u| u["id"] == author.as_str()))
                .map(|u| s(&u["username"]))
                .unwrap_or_default();
            let text = v
                .pointer("/data/note_tweet/text")
                .unwrap_or(&v["data"]["text"]);
            Item {
                id: s(&v["data"]["id"]),
                json: line.as_bytes().into(),
                text: s(text),
                lang: s(&v["data"]["lang"]),
                username,
                user_id: author,
            }
        }
    };
    anyhow::ensure!(
        !item.id.is_empty(),
        "corpus line has no tweet id: {}",
        &line[..line.len().min(80)]
    );
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_json_stays_valid() {
        let c = Corpus::generated(1_700_000_000_000);
        let mut ids = std::collections::HashSet::new();
        for seq in [0, 1, POOL as u64, POOL as u64 + 1, 3 * POOL as u64] {
            let item = c.item(Dialect::V1, seq).unwrap();
            let v: Value = serde_json::from_slice(&item.json).unwrap();
            assert_eq!(v["id_str"], item.id.as_str());
            assert!(ids.insert(item.id.clone()));
            let item2 = c.item(Dialect::V2, seq).unwrap();
            let v2: Value = serde_json::from_slice(&item2.json).unwrap();
            assert_eq!(v2["data"]["id"], item2.id.as_str());
        }
    }
}
