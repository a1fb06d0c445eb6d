//! Source transforms: the `transforms:` chain run in-process with `fluvio-smartengine`.
//!
//! `uses:` is a local `.wasm` path (absolute, or relative to the config file) or the name of a
//! SmartModule registered in the cluster. Unlike upstream, a record that a module rejects with
//! an error is counted and logged with its key, never dropped silently; and a chain whose
//! guest memory is exhausted (third-party modules leak on every call) is re-initialised and
//! the record retried, instead of trapping on every later call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use fluvio_smartengine::{
    SmartEngine, SmartModuleChainBuilder, SmartModuleChainInstance, SmartModuleConfig,
    DEFAULT_SMARTENGINE_VERSION,
};
use fluvio_smartmodule::dataplane::smartmodule::SmartModuleInput;

use crate::config::TransformStep;
use crate::Record;

/// One module of a chain, resolved to its wasm bytes.
#[derive(Clone)]
pub struct ModuleSpec {
    pub name: String,
    pub wasm: Vec<u8>,
    pub params: BTreeMap<String, String>,
}

impl std::fmt::Debug for ModuleSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleSpec")
            .field("name", &self.name)
            .field("wasm_len", &self.wasm.len())
            .field("params", &self.params.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a record did not come out of the chain.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// A module returned an error for this record.
    #[error("rejected by a SmartModule: {0}")]
    Rejected(String),
    /// The chain trapped even after a fresh initialisation.
    #[error("SmartModule chain failed: {0}")]
    Failed(String),
}

/// An initialised chain, ready to apply to records one by one.
pub struct TransformChain {
    engine: SmartEngine,
    modules: Vec<ModuleSpec>,
    instance: SmartModuleChainInstance,
    reinitialisations: u64,
    /// Re-initialise proactively after this many records (0: only when the chain traps).
    reinit_every: u64,
    since_init: u64,
    memory_limit: Option<usize>,
}

impl std::fmt::Debug for TransformChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformChain")
            .field("modules", &self.modules)
            .finish()
    }
}

impl TransformChain {
    /// Compile and initialise a chain (60-300 ms per module: do it once).
    pub fn new(modules: Vec<ModuleSpec>) -> Result<Self> {
        Self::with_memory_limit(modules, None)
    }

    /// Like [`TransformChain::new`], with a store memory limit other than the engine's 1 GB
    /// (tests use a small one to prove a module's memory stays flat).
    pub fn with_memory_limit(modules: Vec<ModuleSpec>, limit: Option<usize>) -> Result<Self> {
        let engine = SmartEngine::new();
        let instance = initialise(&engine, &modules, limit)?;
        Ok(Self {
            engine,
            modules,
            instance,
            reinitialisations: 0,
            reinit_every: 0,
            since_init: 0,
            memory_limit: limit,
        })
    }

    /// Re-initialise after every `n` records (0 = only when a call traps).
    pub fn set_reinit_every(&mut self, n: u64) {
        self.reinit_every = n;
    }

    /// How many times the chain was re-initialised.
    pub fn reinitialisations(&self) -> u64 {
        self.reinitialisations
    }

    pub fn module_names(&self) -> Vec<&str> {
        self.modules.iter().map(|m| m.name.as_str()).collect()
    }

    fn reinitialise(&mut self) -> Result<()> {
        self.instance = initialise(&self.engine, &self.modules, self.memory_limit)?;
        self.reinitialisations += 1;
        self.since_init = 0;
        Ok(())
    }

    /// Run one record through the chain: zero, one or several records come out.
    pub fn apply(&mut self, record: &Record) -> Result<Vec<Record>, TransformError> {
        if self.reinit_every > 0 && self.since_init >= self.reinit_every {
            self.reinitialise()
                .map_err(|e| TransformError::Failed(format!("re-initialisation: {e:#}")))?;
        }
        self.since_init += 1;
        match self.process(record) {
            Ok(out) => out,
            Err(first) => {
                tracing::warn!(error = %first, "SmartModule chain trapped; re-initialising it and retrying the record");
                self.reinitialise()
                    .map_err(|e| TransformError::Failed(format!("re-initialisation: {e:#}")))?;
                self.process(record)
                    .map_err(|e| TransformError::Failed(e.to_string()))?
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn process(&mut self, record: &Record) -> Result<Result<Vec<Record>, TransformError>> {
        let input_record = match &record.key {
            Some(k) => fluvio_smartmodule::Record::new_key_value(k.to_vec(), record.value.to_vec()),
            None => fluvio_smartmodule::Record::new(record.value.to_vec()),
        };
        let mut input =
            SmartModuleInput::try_from_records(vec![input_record], DEFAULT_SMARTENGINE_VERSION)?;
        input.set_base_timestamp(record.timestamp_ms.unwrap_or(0));
        let output = self.instance.process(input)?;
        if let Some(err) = output.error {
            return Ok(Err(TransformError::Rejected(err.to_string())));
        }
        Ok(Ok(output
            .successes
            .into_iter()
            .map(|r| Record {
                key: r.key().map(|k| Bytes::copy_from_slice(k.as_ref())),
                value: Bytes::copy_from_slice(r.value().as_ref()),
                timestamp_ms: record.timestamp_ms,
            })
            .collect()))
    }
}

fn initialise(
    engine: &SmartEngine,
    modules: &[ModuleSpec],
    memory_limit: Option<usize>,
) -> Result<SmartModuleChainInstance> {
    let mut builder = SmartModuleChainBuilder::default();
    if let Some(limit) = memory_limit {
        builder.set_store_memory_limit(limit);
    }
    for m in modules {
        let mut config = SmartModuleConfig::builder();
        config.smartmodule_names(vec![m.name.clone()]);
        for (k, v) in &m.params {
            config.param(k.clone(), v.clone());
        }
        let config = config
            .build()
            .map_err(|e| anyhow!("SmartModule `{}`: {e}", m.name))?;
        builder.add_smart_module(config, m.wasm.clone());
    }
    builder
        .initialize(engine)
        .map_err(|e| anyhow!("cannot initialise the SmartModule chain: {e:#}"))
}

/// Where a `uses:` value points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleSource {
    File(PathBuf),
    Registered(String),
}

/// A `uses:` ending in `.wasm` is a file (relative to the config's folder); anything else is
/// the name of a SmartModule registered in the cluster.
pub fn module_source(uses: &str, config_dir: &Path) -> ModuleSource {
    if uses.ends_with(".wasm") {
        let p = Path::new(uses);
        if p.is_absolute() {
            ModuleSource::File(p.to_path_buf())
        } else {
            ModuleSource::File(config_dir.join(p))
        }
    } else {
        ModuleSource::Registered(uses.to_string())
    }
}

/// Resolve every step to wasm bytes: local files are read, registered names fetched from the
/// cluster (`fluvio` is `None` when running without a cluster, e.g. `--capture`).
pub async fn resolve(
    steps: &[TransformStep],
    config_dir: &Path,
    fluvio: Option<&fluvio::Fluvio>,
) -> Result<Vec<ModuleSpec>> {
    let mut out = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let wasm = match module_source(&step.uses, config_dir) {
            ModuleSource::File(path) => std::fs::read(&path).with_context(|| {
                format!("transforms[{i}].uses: cannot read {}", path.display())
            })?,
            ModuleSource::Registered(name) => match fluvio {
                Some(f) => fetch_registered(f, &name)
                    .await
                    .with_context(|| format!("transforms[{i}].uses: `{name}`"))?,
                None => bail!(
                    "transforms[{i}].uses: `{name}` is a registered SmartModule, which needs a Fluvio cluster; give a .wasm path to run without one"
                ),
            },
        };
        out.push(ModuleSpec {
            name: step.uses.clone(),
            wasm,
            params: step.with.clone(),
        });
    }
    Ok(out)
}

async fn fetch_registered(fluvio: &fluvio::Fluvio, name: &str) -> Result<Vec<u8>> {
    use fluvio::metadata::smartmodule::SmartModuleSpec;
    let admin = fluvio.admin().await;
    let list = admin
        .list::<SmartModuleSpec, String>(vec![name.to_string()])
        .await
        .context("cannot list SmartModules")?;
    let found = list
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| anyhow!("no SmartModule of that name in the cluster (register it with `fluvio smartmodule create`)"))?;
    found
        .spec
        .wasm
        .as_raw_wasm()
        .context("cannot decode the SmartModule's wasm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_paths_and_names() {
        let dir = Path::new("/etc/conn");
        assert_eq!(
            module_source("./sm/f.wasm", dir),
            ModuleSource::File(PathBuf::from("/etc/conn/./sm/f.wasm"))
        );
        assert_eq!(
            module_source("/abs/f.wasm", dir),
            ModuleSource::File(PathBuf::from("/abs/f.wasm"))
        );
        assert_eq!(
            module_source("infinyon/jolt@0.4.1", dir),
            ModuleSource::Registered("infinyon/jolt@0.4.1".into())
        );
    }

    #[test]
    fn invalid_wasm_is_a_clear_error() {
        let err = TransformChain::new(vec![ModuleSpec {
            name: "junk".into(),
            wasm: b"not wasm".to_vec(),
            params: Default::default(),
        }])
        .unwrap_err();
        assert!(format!("{err:#}").contains("cannot initialise"), "{err:#}");
    }
}
