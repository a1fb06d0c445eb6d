//! The connector config file: `apiVersion`, `meta`, `transforms` and the connector's own section.
//!
//! Loading renders secrets first (see [`crate::secrets`]), then deserialises each part with the
//! path of every field kept, so an error reads
//! `config.yaml: meta.consumer.offset.strategy: unknown variant `x`, expected one of `none`, `manual`, `auto``.
//! Unknown keys in `meta` and at the top level are tolerated like upstream, each logged as a
//! warning (typos show up); a connector's own section refuses them (its struct names them).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_yaml::{Mapping, Value};

use crate::secrets::{self, ResolvedSecrets, SecretStore};

/// `meta.producer.batch-size` when not set: 512 KB. With Fluvio's own default (16 KB), records
/// of ~1 KB at 6,000/s queue up behind many small batches: measured p50 30 ms and p99 100 ms
/// from send to a consumer, against 9 ms and 40 ms with large batches (5 ms linger).
pub const DEFAULT_PRODUCER_BATCH_SIZE: u64 = 512 * 1024;

/// `meta.producer.max-request-size` when not set (Fluvio's default): 1 MB.
pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 1024 * 1024;

/// `meta.consumer.max-bytes` when not set: 4 MB per fetch.
pub const DEFAULT_CONSUMER_MAX_BYTES: u64 = 4_000_000;

/// A config error: the file, the field path (dotted, `[i]` for list items) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.path,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Which config schema the file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// No `apiVersion` key: the legacy form, read like 0.1.0.
    Legacy,
    V0_1_0,
    V0_2_0,
}

/// A config value that is well-formed but does not fit with the rest (a connector's
/// cross-field checks): the field's path, e.g. `kafka.security.sasl`, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidField {
    pub field: String,
    pub problem: String,
}

/// `Err(InvalidField)` for `field`.
pub fn invalid<T>(field: impl Into<String>, problem: impl Into<String>) -> Result<T, InvalidField> {
    Err(InvalidField {
        field: field.into(),
        problem: problem.into(),
    })
}

/// A connector's own section of the config (`twitter:`, `kafka:`): deserialised by serde,
/// then checked across its fields before anything connects.
pub trait Section: DeserializeOwned + Send + 'static {
    /// The checks serde cannot make: the first field at fault.
    fn validate(&self) -> Result<(), InvalidField>;
}

/// A whole connector config, with the connector's own section typed as `C`.
#[derive(Debug, Clone)]
pub struct ConnectorConfig<C> {
    pub file: PathBuf,
    pub api_version: ApiVersion,
    pub meta: MetaConfig,
    pub transforms: Vec<TransformStep>,
    /// `transform_workers`: threads running the transforms (default: one per core).
    pub transform_workers: Option<usize>,
    pub custom: C,
    /// The resolved secret values, kept to scrub them from any later error text.
    pub secrets: ResolvedSecrets,
}

/// `meta`: what every connector has.
#[derive(Debug, Clone)]
pub struct MetaConfig {
    pub name: String,
    /// `meta.type`, e.g. `twitter-source`; a source iff it ends in `-source`.
    pub kind: String,
    pub version: String,
    pub topic: TopicConfig,
    pub producer: ProducerParams,
    pub consumer: Option<ConsumerParams>,
    pub secrets: Vec<String>,
}

impl MetaConfig {
    pub fn is_source(&self) -> bool {
        self.kind.ends_with("-source")
    }

    /// `meta.consumer.id`, if set.
    pub fn consumer_id(&self) -> Option<&str> {
        self.consumer.as_ref().and_then(|c| c.id.as_deref())
    }
}

/// The topic and, for 0.2.0 configs, how to create it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    pub name: String,
    pub partitions: u32,
    pub replication: u32,
    pub ignore_rack_assignment: bool,
    pub retention: Option<Duration>,
    pub segment_size: Option<u64>,
    pub max_partition_size: Option<u64>,
    pub compression: Option<String>,
}

impl TopicConfig {
    fn named(name: String) -> Self {
        Self {
            name,
            partitions: 1,
            replication: 1,
            ignore_rack_assignment: false,
            retention: None,
            segment_size: None,
            max_partition_size: None,
            compression: None,
        }
    }
}

/// `meta.producer`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ProducerParams {
    #[serde(default, deserialize_with = "crate::units::opt_duration")]
    pub linger: Option<Duration>,
    #[serde(default)]
    pub compression: Option<Compression>,
    #[serde(default, deserialize_with = "crate::units::opt_bytes")]
    pub batch_size: Option<u64>,
    #[serde(default, deserialize_with = "crate::units::opt_bytes")]
    pub max_request_size: Option<u64>,
}

impl ProducerParams {
    /// `max-request-size`, or Fluvio's default.
    pub fn effective_max_request_size(&self) -> u64 {
        self.max_request_size.unwrap_or(DEFAULT_MAX_REQUEST_SIZE)
    }

    /// `batch-size`, or ours (within the request size).
    pub fn effective_batch_size(&self) -> u64 {
        self.batch_size
            .unwrap_or(DEFAULT_PRODUCER_BATCH_SIZE.min(self.effective_max_request_size()))
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// `meta.consumer`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ConsumerParams {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub partition: PartitionSelection,
    #[serde(default, deserialize_with = "crate::units::opt_bytes")]
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub offset: OffsetConfig,
}

/// `meta.consumer.partition`: `all` (the default), one partition, or a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PartitionSelection {
    #[default]
    All,
    Some(Vec<u32>),
}

impl<'de> Deserialize<'de> for PartitionSelection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) if s == "all" => Ok(Self::All),
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(|p| Self::Some(vec![p]))
                .ok_or_else(|| D::Error::custom("expected a partition number, a list, or `all`")),
            Value::Sequence(items) => items
                .iter()
                .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect::<Option<Vec<u32>>>()
                .map(Self::Some)
                .ok_or_else(|| D::Error::custom("expected a list of partition numbers")),
            _ => Err(D::Error::custom(
                "expected a partition number, a list, or `all`",
            )),
        }
    }
}

/// `meta.consumer.offset`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct OffsetConfig {
    #[serde(default)]
    pub start: Option<OffsetStart>,
    #[serde(default)]
    pub strategy: OffsetStrategy,
    #[serde(default, deserialize_with = "de_opt_flush_period")]
    pub flush_period: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetStart {
    Beginning,
    End,
    Absolute(i64),
    FromBeginning(u32),
    FromEnd(u32),
}

impl<'de> Deserialize<'de> for OffsetStart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const EXPECTED: &str =
            "expected one of beginning, end, {absolute: N}, {from-beginning: N}, {from-end: N}";
        let value = Value::deserialize(d)?;
        match &value {
            Value::String(s) if s == "beginning" => return Ok(Self::Beginning),
            Value::String(s) if s == "end" => return Ok(Self::End),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, v) = m.iter().next().expect("one entry");
                let n = v.as_i64();
                match (k.as_str(), n) {
                    (Some("absolute"), Some(n)) if n >= 0 => return Ok(Self::Absolute(n)),
                    (Some("from-beginning"), Some(n)) => {
                        if let Ok(n) = u32::try_from(n) {
                            return Ok(Self::FromBeginning(n));
                        }
                    }
                    (Some("from-end"), Some(n)) => {
                        if let Ok(n) = u32::try_from(n) {
                            return Ok(Self::FromEnd(n));
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Err(D::Error::custom(EXPECTED))
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OffsetStrategy {
    #[default]
    None,
    Manual,
    Auto,
}

/// One step of `transforms:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformStep {
    /// A SmartModule registered in the cluster, or a local `.wasm` path.
    pub uses: String,
    /// Parameters handed to the module's `init`; nested maps and lists arrive as JSON text.
    pub with: BTreeMap<String, String>,
    pub lookback: Option<Lookback>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct Lookback {
    #[serde(default)]
    pub last: Option<u64>,
    #[serde(default, deserialize_with = "crate::units::opt_duration")]
    pub age: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransform {
    uses: String,
    #[serde(default)]
    with: BTreeMap<String, Value>,
    #[serde(default)]
    lookback: Option<Lookback>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMeta {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(deserialize_with = "de_version")]
    version: String,
    topic: Value,
    #[serde(default)]
    producer: Option<ProducerParams>,
    #[serde(default)]
    consumer: Option<ConsumerParams>,
    #[serde(default)]
    secrets: Vec<SecretDecl>,
}

#[derive(Deserialize)]
struct SecretDecl {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawTopicV2 {
    meta: RawTopicMeta,
    #[serde(default)]
    partition: RawTopicPartition,
    #[serde(default)]
    retention: RawTopicRetention,
    #[serde(default)]
    compression: Option<RawTopicCompression>,
}

#[derive(Deserialize)]
struct RawTopicMeta {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RawTopicPartition {
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    replication: Option<u32>,
    #[serde(default)]
    ignore_rack_assignment: Option<bool>,
    #[serde(default, deserialize_with = "crate::units::opt_bytes")]
    max_size: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RawTopicRetention {
    #[serde(default, deserialize_with = "crate::units::opt_duration")]
    time: Option<Duration>,
    #[serde(default, deserialize_with = "crate::units::opt_bytes")]
    segment_size: Option<u64>,
}

#[derive(Deserialize)]
struct RawTopicCompression {
    #[serde(rename = "type")]
    kind: TopicCompression,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "lowercase")]
enum TopicCompression {
    Any,
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl<C> ConnectorConfig<C> {
    /// The folder of the config file (local `.wasm` paths are relative to it).
    pub fn dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

impl<C: DeserializeOwned> ConnectorConfig<C> {
    /// Read, render and parse a config file; `section` names the connector's own top-level key.
    pub fn load(path: &Path, secrets: &SecretStore, section: &str) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            path: String::new(),
            message: format!("cannot read the config file: {e}"),
        })?;
        Self::parse(&text, path, secrets, section)
    }

    /// Parse config text (see [`ConnectorConfig::load`]); `file` is only used in messages.
    pub fn parse(
        text: &str,
        file: &Path,
        store: &SecretStore,
        section: &str,
    ) -> Result<Self, ConfigError> {
        let err = |path: &str, message: String| ConfigError {
            file: file.to_path_buf(),
            path: path.to_string(),
            message,
        };

        // 1. Which secrets are declared: read from the unrendered text.
        let declared = declared_secrets(text).map_err(|m| err("", m))?;
        let resolved = store
            .resolve(&declared)
            .map_err(|e| err("meta.secrets", e.to_string()))?;

        // 2. Render the template, parse YAML, resolve `{secret: {name}}` references.
        let rendered = resolved.render(text).map_err(|e| err("", e.to_string()))?;
        let mut doc: Value = serde_yaml::from_str(&rendered).map_err(|e| {
            err(
                "",
                format!("invalid YAML: {}", resolved.scrub(&e.to_string())),
            )
        })?;
        secrets::resolve_references(&mut doc, &resolved).map_err(|e| err("", e.to_string()))?;
        let Value::Mapping(mut top) = doc else {
            return Err(err("", "expected a mapping at the top level".into()));
        };

        // Messages may quote values, which may hold a secret.
        let scrubbed = |path: &str, message: String| err(path, resolved.scrub(&message));
        let located = |(path, message): Located| scrubbed(&path, message);

        // 3-5. apiVersion, meta, transforms.
        let api_version = api_version(&mut top).map_err(located)?;
        let meta = meta(&mut top, api_version).map_err(located)?;
        let transforms = transform_steps(&mut top).map_err(located)?;
        let transform_workers = transform_workers(&mut top).map_err(located)?;

        // 6. The connector's own section.
        let custom_value = top
            .remove(section)
            .unwrap_or(Value::Mapping(Default::default()));
        let custom: C = deserialize_at(section, custom_value).map_err(|(p, m)| {
            if p == section && m.starts_with("missing field") {
                scrubbed(&p, format!("{m} (in section `{section}`)"))
            } else {
                scrubbed(&p, m)
            }
        })?;

        for (key, _) in top {
            tracing::warn!(
                file = %file.display(),
                key = %short(&key),
                "unknown top-level key in the config, ignored (a typo?)"
            );
        }

        Ok(Self {
            file: file.to_path_buf(),
            api_version,
            meta,
            transforms,
            transform_workers,
            custom,
            secrets: resolved,
        })
    }
}

/// A config error's field path and message, before the file is named and secrets scrubbed.
type Located = (String, String);

fn located(path: &str, message: impl Into<String>) -> Located {
    (path.to_string(), message.into())
}

/// `apiVersion`: absent (legacy), 0.1.0 or 0.2.0.
fn api_version(top: &mut Mapping) -> Result<ApiVersion, Located> {
    match top.remove("apiVersion") {
        None => Ok(ApiVersion::Legacy),
        Some(Value::String(v)) if v == "0.1.0" => Ok(ApiVersion::V0_1_0),
        Some(Value::String(v)) if v == "0.2.0" => Ok(ApiVersion::V0_2_0),
        Some(other) => Err(located(
            "apiVersion",
            format!(
                "expected one of 0.1.0, 0.2.0 (or no apiVersion), found {}",
                short(&other)
            ),
        )),
    }
}

/// `meta`, with its topic in the form of the `apiVersion`.
fn meta(top: &mut Mapping, api_version: ApiVersion) -> Result<MetaConfig, Located> {
    let meta_value = top
        .remove("meta")
        .ok_or_else(|| located("meta", "missing section `meta`"))?;
    let raw_meta: RawMeta = deserialize_at("meta", meta_value)?;
    let topic = topic(api_version, raw_meta.topic)?;
    if topic.name.is_empty() {
        return Err(located("meta.topic", "the topic name is empty"));
    }
    if raw_meta.name.is_empty() {
        return Err(located("meta.name", "the connector name is empty"));
    }
    let producer = raw_meta.producer.unwrap_or_default();
    let max_request = producer.effective_max_request_size();
    if producer.batch_size.is_some_and(|b| b > max_request) {
        return Err(located(
            "meta.producer.batch-size",
            format!("must not exceed max-request-size ({max_request} bytes; raise max-request-size too)"),
        ));
    }
    Ok(MetaConfig {
        name: raw_meta.name,
        kind: raw_meta.kind,
        version: raw_meta.version,
        topic,
        producer,
        consumer: raw_meta.consumer,
        secrets: raw_meta.secrets.into_iter().map(|s| s.name).collect(),
    })
}

/// `meta.topic`: a name (0.1.0 and legacy) or a topic config (0.2.0).
fn topic(api_version: ApiVersion, value: Value) -> Result<TopicConfig, Located> {
    if api_version == ApiVersion::V0_2_0 {
        let raw: RawTopicV2 = deserialize_at("meta.topic", value)?;
        return Ok(TopicConfig {
            name: raw.meta.name,
            partitions: raw.partition.count.unwrap_or(1),
            replication: raw.partition.replication.unwrap_or(1),
            ignore_rack_assignment: raw.partition.ignore_rack_assignment.unwrap_or(false),
            retention: raw.retention.time,
            segment_size: raw.retention.segment_size,
            max_partition_size: raw.partition.max_size,
            compression: raw
                .compression
                .map(|c| format!("{:?}", c.kind).to_lowercase()),
        });
    }
    match value {
        Value::String(name) => Ok(TopicConfig::named(name)),
        other => Err(located(
            "meta.topic",
            format!(
                "expected a topic name (apiVersion 0.1.0; use apiVersion 0.2.0 for a topic config), found {}",
                short(&other)
            ),
        )),
    }
}

/// `transforms`: the steps, their `with:` values as text.
fn transform_steps(top: &mut Mapping) -> Result<Vec<TransformStep>, Located> {
    match top.remove("transforms") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(value) => {
            let raw: Vec<RawTransform> = deserialize_at("transforms", value)?;
            raw.into_iter()
                .enumerate()
                .map(|(i, t)| transform_step(i, t))
                .collect()
        }
    }
}

/// `transform_workers`: 1 to 1024 threads.
fn transform_workers(top: &mut Mapping) -> Result<Option<usize>, Located> {
    match top.remove("transform_workers") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (1..=1024).contains(&n)) => {
            Ok(n.as_u64().map(|n| n as usize))
        }
        Some(other) => Err(located(
            "transform_workers",
            format!(
                "expected a number of threads from 1 to 1024, found {}",
                short(&other)
            ),
        )),
    }
}

/// The names under `meta.secrets`, read before rendering (placeholders are plain YAML text).
fn declared_secrets(text: &str) -> Result<Vec<String>, String> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| {
        format!("invalid YAML (before rendering secrets; quote `${{{{ secrets.X }}}}` placeholders): {e}")
    })?;
    let Some(list) = doc.get("meta").and_then(|m| m.get("secrets")) else {
        return Ok(Vec::new());
    };
    let Value::Sequence(items) = list else {
        return Err("meta.secrets: expected a list of {name: X}".into());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("meta.secrets[{i}]: expected {{name: X}}"))
        })
        .collect()
}

fn transform_step(i: usize, raw: RawTransform) -> Result<TransformStep, (String, String)> {
    let mut with = BTreeMap::new();
    for (key, value) in raw.with {
        let text = match value {
            Value::String(s) => s,
            Value::Bool(_) | Value::Number(_) => {
                tracing::warn!(
                    "transforms[{i}].with.{key}: a bare number or boolean; upstream Fluvio rejects it, quote it"
                );
                serde_yaml::to_string(&value)
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            }
            Value::Mapping(_) | Value::Sequence(_) => serde_json::to_string(&value)
                .map_err(|e| (format!("transforms[{i}].with.{key}"), e.to_string()))?,
            Value::Null => String::new(),
            Value::Tagged(_) => {
                return Err((
                    format!("transforms[{i}].with.{key}"),
                    "YAML tags are not supported here".into(),
                ))
            }
        };
        with.insert(key, text);
    }
    if raw.uses.trim().is_empty() {
        return Err((
            format!("transforms[{i}].uses"),
            "empty SmartModule name".into(),
        ));
    }
    Ok(TransformStep {
        uses: raw.uses,
        with,
        lookback: raw.lookback,
    })
}

/// Deserialise `value` as `T`, reporting errors with the full field path under `prefix` and
/// logging every unknown key as a warning.
pub fn deserialize_at<T: DeserializeOwned>(
    prefix: &str,
    value: Value,
) -> Result<T, (String, String)> {
    let mut unknown: Vec<String> = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let de = serde_ignored::Deserializer::new(value, &mut record);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    match result {
        Ok(v) => {
            for key in unknown {
                tracing::warn!(key = %join_path(prefix, &key), "unknown config key, ignored (a typo?)");
            }
            Ok(v)
        }
        Err(e) => {
            let inner = e.path().to_string();
            let path = if inner == "." {
                prefix.to_string()
            } else {
                join_path(prefix, &inner)
            };
            Err((path, e.into_inner().to_string()))
        }
    }
}

fn join_path(prefix: &str, inner: &str) -> String {
    if inner.is_empty() || inner == "?" {
        prefix.to_string()
    } else if inner.starts_with('[') {
        format!("{prefix}{inner}")
    } else {
        format!("{prefix}.{inner}")
    }
}

fn short(value: &Value) -> String {
    let text = serde_yaml::to_string(value).unwrap_or_default();
    let text = text.trim();
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text.to_string()
    }
}

/// `version: 1` or `version: 0.1` parse as YAML numbers; read them as the text they are.
fn de_version<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(D::Error::custom("expected a version string like `0.1.0`")),
    }
}

fn de_opt_flush_period<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Mapping(m)) => {
            let secs = m.get("secs").and_then(Value::as_u64).unwrap_or(0);
            let nanos = m.get("nanos").and_then(Value::as_u64).unwrap_or(0);
            let nanos = u32::try_from(nanos).map_err(|_| D::Error::custom("nanos out of range"))?;
            Ok(Some(Duration::new(secs, nanos)))
        }
        Some(v @ Value::String(_)) => crate::units::parse_duration(v)
            .map(Some)
            .map_err(|e| D::Error::custom(format!("expected {{secs, nanos}} or {e}"))),
        Some(_) => Err(D::Error::custom(
            "expected {secs, nanos} or a duration like `10s`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Custom {
        endpoint: String,
        #[serde(default)]
        interval: Option<String>,
    }

    fn parse(text: &str) -> Result<ConnectorConfig<Custom>, ConfigError> {
        ConnectorConfig::parse(
            text,
            Path::new("c.yaml"),
            &SecretStore::from_env(),
            "custom",
        )
    }

    const V1_SOURCE: &str = r#"
apiVersion: 0.1.0
meta:
  version: 0.1.0
  name: my-source
  type: twitter-source
  topic: tweets
  producer:
    linger: 100ms
    compression: zstd
    batch-size: "512 KB"
    max-request-size: "2 MiB"
transforms:
  - uses: infinyon/jolt@0.4.1
    with:
      spec:
        - operation: shift
          spec:
            data: ""
  - uses: ./tweet-filter.wasm
    with:
      languages: "en,fr"
custom:
  endpoint: http://localhost
"#;

    #[test]
    fn parses_a_0_1_0_source_with_nested_transform_params() {
        let c = parse(V1_SOURCE).unwrap();
        assert_eq!(c.api_version, ApiVersion::V0_1_0);
        assert!(c.meta.is_source());
        assert_eq!(c.meta.topic, TopicConfig::named("tweets".into()));
        assert_eq!(c.meta.producer.linger, Some(Duration::from_millis(100)));
        assert_eq!(c.meta.producer.compression, Some(Compression::Zstd));
        assert_eq!(c.meta.producer.batch_size, Some(512_000));
        assert_eq!(c.meta.producer.max_request_size, Some(2 * 1024 * 1024));
        assert_eq!(c.transforms.len(), 2);
        assert_eq!(
            c.transforms[0].with["spec"],
            r#"[{"operation":"shift","spec":{"data":""}}]"#
        );
        assert_eq!(c.transforms[1].with["languages"], "en,fr");
        assert_eq!(c.custom.endpoint, "http://localhost");
        assert_eq!(c.transform_workers, None, "default: one per core");
        let c = parse(&format!("{V1_SOURCE}transform_workers: 3\n")).unwrap();
        assert_eq!(c.transform_workers, Some(3));
    }

    #[test]
    fn parses_a_0_2_0_sink_with_consumer_and_topic_config() {
        let text = r#"
apiVersion: 0.2.0
meta:
  version: 0.1.0
  name: my-sink
  type: kafka-bridge-sink
  topic:
    meta:
      name: tweets
    partition:
      count: 3
      replication: 1
    retention:
      time: 7d
      segment-size: "100 MiB"
    compression:
      type: lz4
  consumer:
    id: bridge
    partition: [0, 2]
    max-bytes: "1 MB"
    offset:
      start: {absolute: 42}
      strategy: manual
      flush-period:
        secs: 5
        nanos: 0
custom:
  endpoint: x
"#;
        let c = parse(text).unwrap();
        assert!(!c.meta.is_source());
        assert_eq!(c.meta.topic.name, "tweets");
        assert_eq!(c.meta.topic.partitions, 3);
        assert_eq!(c.meta.topic.retention, Some(Duration::from_secs(7 * 86400)));
        assert_eq!(c.meta.topic.segment_size, Some(100 * 1024 * 1024));
        assert_eq!(c.meta.topic.compression.as_deref(), Some("lz4"));
        let consumer = c.meta.consumer.unwrap();
        assert_eq!(consumer.id.as_deref(), Some("bridge"));
        assert_eq!(consumer.partition, PartitionSelection::Some(vec![0, 2]));
        assert_eq!(consumer.max_bytes, Some(1_000_000));
        assert_eq!(consumer.offset.start, Some(OffsetStart::Absolute(42)));
        assert_eq!(consumer.offset.strategy, OffsetStrategy::Manual);
        assert_eq!(consumer.offset.flush_period, Some(Duration::from_secs(5)));
    }

    #[test]
    fn legacy_config_without_api_version_reads_like_0_1_0() {
        let text = "meta:\n  name: n\n  type: x-sink\n  version: 1\n  topic: t\n  consumer:\n    partition: all\n    offset:\n      start: beginning\ncustom:\n  endpoint: e\n";
        let c = parse(text).unwrap();
        assert_eq!(c.api_version, ApiVersion::Legacy);
        let consumer = c.meta.consumer.unwrap();
        assert_eq!(consumer.partition, PartitionSelection::All);
        assert_eq!(consumer.offset.start, Some(OffsetStart::Beginning));
        assert_eq!(consumer.offset.strategy, OffsetStrategy::None);
    }

    fn error_of(text: &str) -> ConfigError {
        parse(text).expect_err("config should be rejected")
    }

    const BASE_META: &str = "meta:\n  name: n\n  type: x-sink\n  version: '1'\n  topic: t\n";

    // Long on purpose: a table of bad configs, one case per entry, each with the field its
    // error must name.
    #[test]
    fn bad_configs_name_the_field() {
        let cases: Vec<(String, &str, &str)> = vec![
            (
                format!("{BASE_META}  consumer:\n    offset:\n      strategy: sometimes\ncustom: {{endpoint: e}}\n"),
                "meta.consumer.offset.strategy",
                "expected one of `none`, `manual`, `auto`",
            ),
            (
                format!("{BASE_META}  consumer:\n    offset:\n      start: middle\ncustom: {{endpoint: e}}\n"),
                "meta.consumer.offset.start",
                "expected one of beginning, end",
            ),
            (
                format!("apiVersion: 0.3.0\n{BASE_META}custom: {{endpoint: e}}\n"),
                "apiVersion",
                "expected one of 0.1.0, 0.2.0",
            ),
            (
                format!("{BASE_META}  producer:\n    linger: soon\ncustom: {{endpoint: e}}\n"),
                "meta.producer.linger",
                "expected a duration",
            ),
            (
                format!("{BASE_META}  producer:\n    compression: brotli\ncustom: {{endpoint: e}}\n"),
                "meta.producer.compression",
                "unknown variant `brotli`",
            ),
            (
                format!("{BASE_META}  producer:\n    batch-size: lots\ncustom: {{endpoint: e}}\n"),
                "meta.producer.batch-size",
                "expected a size",
            ),
            (
                format!("{BASE_META}  producer:\n    batch-size: \"4 MB\"\ncustom: {{endpoint: e}}\n"),
                "meta.producer.batch-size",
                "must not exceed max-request-size",
            ),
            (
                "meta:\n  name: n\n  type: x\n  topic: t\ncustom: {endpoint: e}\n".to_string(),
                "meta",
                "missing field `version`",
            ),
            (
                format!("{BASE_META}custom: {{endpoint: 3, extra: 1}}\n"),
                "custom.endpoint",
                "invalid type",
            ),
            (
                format!("{BASE_META}custom: {{}}\n"),
                "custom",
                "missing field `endpoint`",
            ),
            (
                format!("{BASE_META}transform_workers: 0\ncustom: {{endpoint: e}}\n"),
                "transform_workers",
                "from 1 to 1024, found 0",
            ),
            (
                format!("{BASE_META}transform_workers: all\ncustom: {{endpoint: e}}\n"),
                "transform_workers",
                "found all",
            ),
            (
                format!("{BASE_META}transforms:\n  - with: {{a: b}}\ncustom: {{endpoint: e}}\n"),
                "transforms[0]",
                "missing field `uses`",
            ),
            (
                "apiVersion: 0.1.0\nmeta:\n  name: n\n  type: x\n  version: v\n  topic: {meta: {name: t}}\ncustom: {endpoint: e}\n".to_string(),
                "meta.topic",
                "expected a topic name",
            ),
            (
                format!("{BASE_META}  consumer:\n    partition: many\ncustom: {{endpoint: e}}\n"),
                "meta.consumer.partition",
                "expected a partition number",
            ),
        ];
        for (text, path, message) in cases {
            let e = error_of(&text);
            assert_eq!(e.path, path, "wrong path for {e}\n{text}");
            assert!(e.message.contains(message), "{e} lacks `{message}`");
            assert!(e.to_string().starts_with("c.yaml: "), "{e}");
        }
    }

    #[test]
    fn invalid_yaml_is_reported() {
        let e = error_of("meta: [unclosed\n");
        assert!(e.message.contains("invalid YAML"), "{e}");
    }

    #[test]
    fn secrets_are_rendered_and_scrubbed_from_errors() {
        std::env::set_var("CONFIG_TEST_ENDPOINT", "s3cr3t-value");
        let text = "meta:\n  name: n\n  type: x-source\n  version: v\n  topic: t\n  secrets:\n    - name: CONFIG_TEST_ENDPOINT\ncustom:\n  endpoint: \"${{ secrets.CONFIG_TEST_ENDPOINT }}\"\n";
        let c = parse(text).unwrap();
        assert_eq!(c.custom.endpoint, "s3cr3t-value");
        assert!(!format!("{:?}", c.secrets).contains("s3cr3t"));

        // The value lands in a field of the wrong type: the error must not show it.
        let text = "meta:\n  name: n\n  type: x-source\n  version: v\n  topic: t\n  secrets:\n    - name: CONFIG_TEST_ENDPOINT\ncustom:\n  endpoint: e\n  interval: [\"${{ secrets.CONFIG_TEST_ENDPOINT }}\"]\n";
        let e = error_of(text);
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn missing_secret_fails_with_its_name() {
        let text = "meta:\n  name: n\n  type: x-source\n  version: v\n  topic: t\n  secrets:\n    - name: CONFIG_TEST_DEFINITELY_UNSET\ncustom:\n  endpoint: \"${{ secrets.CONFIG_TEST_DEFINITELY_UNSET }}\"\n";
        let e = error_of(text);
        assert_eq!(e.path, "meta.secrets");
        assert!(e.message.contains("CONFIG_TEST_DEFINITELY_UNSET"), "{e}");
    }
}
