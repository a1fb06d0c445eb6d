//! One initialised chain of SmartModules, applied to a batch of records per engine call.
//!
//! Each module runs in an engine instance of its own, so the runtime, not the engine, decides
//! what happens when a module refuses a record in the middle of a batch: the records before it
//! go on to the next module, the refused one is reported with its key, and the rest of the
//! batch is handed to the same module again. (The engine's own multi-module chain returns the
//! refusing module's partial output as if it were the chain's, unshaped.)
//!
//! Records are matched to the batch's inputs by their offset within the batch, which every
//! filter, map and filter_map module keeps; the output's order is the modules' order.

use anyhow::{anyhow, Result};
use bytes::Bytes;
use fluvio_smartengine::{
    SmartEngine, SmartModuleChainBuilder, SmartModuleChainInstance, SmartModuleConfig,
    DEFAULT_SMARTENGINE_VERSION,
};
use fluvio_smartmodule::dataplane::smartmodule::SmartModuleInput;

use super::ModuleSpec;
use crate::Record;

type EngineRecord = fluvio_smartmodule::Record;

/// Why a record did not come out of the chain.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransformError {
    /// A module returned an error for this record.
    #[error("rejected by a SmartModule: {0}")]
    Rejected(String),
    /// The chain trapped even after a fresh initialisation.
    #[error("SmartModule chain failed: {0}")]
    Failed(String),
}

/// An input record that did not come out, and why.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub key: Option<Bytes>,
    pub error: TransformError,
}

/// What a batch became.
#[derive(Debug, Default)]
pub struct Applied {
    /// The records that came out, in order.
    pub records: Vec<Record>,
    /// How many input records produced no record and no error.
    pub filtered: u64,
    /// The input records that failed, in order.
    pub rejected: Vec<Rejection>,
}

impl Applied {
    fn extend(&mut self, other: Applied) {
        self.records.extend(other.records);
        self.filtered += other.filtered;
        self.rejected.extend(other.rejected);
    }

    /// Every input failed with `error`.
    pub fn all_failed(inputs: &[Record], error: String) -> Self {
        Self {
            rejected: inputs
                .iter()
                .map(|r| Rejection {
                    key: r.key.clone(),
                    error: TransformError::Failed(error.clone()),
                })
                .collect(),
            ..Self::default()
        }
    }
}

/// An initialised chain: one engine instance per module.
pub struct TransformChain {
    engine: SmartEngine,
    modules: Vec<ModuleSpec>,
    stages: Vec<SmartModuleChainInstance>,
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

    /// Like [`TransformChain::new`], with a store memory limit per module other than the
    /// engine's 1 GB (tests use a small one to prove a module's memory stays flat).
    pub fn with_memory_limit(modules: Vec<ModuleSpec>, limit: Option<usize>) -> Result<Self> {
        let engine = SmartEngine::new();
        let stages = initialise(&engine, &modules, limit)?;
        Ok(Self {
            engine,
            modules,
            stages,
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
        self.stages = initialise(&self.engine, &self.modules, self.memory_limit)?;
        self.reinitialisations += 1;
        self.since_init = 0;
        Ok(())
    }

    /// Run one record through the chain: zero, one or several records come out.
    pub fn apply(&mut self, record: &Record) -> Result<Vec<Record>, TransformError> {
        let mut applied = self.apply_batch(std::slice::from_ref(record));
        match applied.rejected.pop() {
            Some(rejection) => Err(rejection.error),
            None => Ok(applied.records),
        }
    }

    /// Run a batch through the chain, one engine call per module (more when a module refuses a
    /// record). A chain that traps (e.g. a leaking module exhausted its memory) is
    /// re-initialised and the batch retried; if it traps again, each record is retried alone,
    /// so only the record that makes it trap fails.
    pub fn apply_batch(&mut self, inputs: &[Record]) -> Applied {
        if inputs.is_empty() {
            return Applied::default();
        }
        if self.reinit_every > 0 && self.since_init >= self.reinit_every {
            if let Err(e) = self.reinitialise() {
                return Applied::all_failed(inputs, format!("re-initialisation: {e:#}"));
            }
        }
        self.since_init += inputs.len() as u64;
        let first = match self.run_stages(inputs) {
            Ok(applied) => return applied,
            Err(e) => e,
        };
        tracing::warn!(error = %first, records = inputs.len(), "SmartModule chain trapped; re-initialising it and retrying");
        if let Err(e) = self.reinitialise() {
            return Applied::all_failed(inputs, format!("re-initialisation: {e:#}"));
        }
        match self.run_stages(inputs) {
            Ok(applied) => applied,
            Err(e) if inputs.len() == 1 => Applied::all_failed(inputs, e.to_string()),
            Err(_) => {
                let mut all = Applied::default();
                for record in inputs {
                    all.extend(self.apply_batch(std::slice::from_ref(record)));
                }
                all
            }
        }
    }

    /// Every module in turn over the batch; `Err` when a module traps.
    fn run_stages(&mut self, inputs: &[Record]) -> Result<Applied> {
        let base_timestamp = inputs.iter().find_map(|r| r.timestamp_ms).unwrap_or(0);
        let mut batch: Vec<EngineRecord> = inputs
            .iter()
            .enumerate()
            .map(|(i, r)| engine_record(i, r, base_timestamp))
            .collect();
        let mut refused: Vec<(usize, String)> = Vec::new();
        for stage in &mut self.stages {
            batch = run_stage(stage, batch, base_timestamp, &mut refused)?;
        }
        Ok(attribute(inputs, batch, refused))
    }
}

/// A record as the engine's record at `index` in a batch whose timestamps count from
/// `base_timestamp`.
pub fn engine_record(index: usize, record: &Record, base_timestamp: i64) -> EngineRecord {
    let mut r = match &record.key {
        Some(k) => EngineRecord::new_key_value(k.clone(), record.value.clone()),
        None => EngineRecord::new(record.value.clone()),
    };
    r.preamble.set_offset_delta(index as i64);
    r.preamble
        .set_timestamp_delta(record.timestamp_ms.map_or(0, |t| t - base_timestamp));
    r
}

/// One module over a batch. A refused record is noted (by its index in the batch) and the
/// records after it are handed to the module again.
fn run_stage(
    stage: &mut SmartModuleChainInstance,
    batch: Vec<EngineRecord>,
    base_timestamp: i64,
    refused: &mut Vec<(usize, String)>,
) -> Result<Vec<EngineRecord>> {
    let mut out = Vec::with_capacity(batch.len());
    let mut rest: &[EngineRecord] = &batch;
    while !rest.is_empty() {
        let mut raw = Vec::with_capacity(rest.iter().map(|r| r.value.len() + 32).sum());
        smartmodule_glue::encode_records(rest, DEFAULT_SMARTENGINE_VERSION, &mut raw)?;
        let input = SmartModuleInput::new(raw, 0, base_timestamp);
        let output = stage.process(input)?;
        out.extend(output.successes);
        let Some(error) = output.error else { break };
        // The refused record: same offset and value (a module emitting several records per
        // input gives them the same offset).
        let at = rest.iter().position(|r| {
            r.offset_delta() == error.offset && r.value.as_ref() == error.record_value.as_ref()
        });
        refused.push((error.offset.max(0) as usize, error.to_string()));
        match at {
            Some(at) => rest = &rest[at + 1..],
            None => {
                // The module named a record it was not given: what follows cannot be told
                // apart from what it already did, so it is reported, not guessed at.
                for r in rest {
                    refused.push((
                        r.offset_delta().max(0) as usize,
                        format!(
                            "not processed: the module refused offset {} that was not in its input",
                            error.offset
                        ),
                    ));
                }
                break;
            }
        }
    }
    Ok(out)
}

/// The chain's output as runtime records (each with the timestamp of the input it came from),
/// and the inputs that produced nothing.
fn attribute(
    inputs: &[Record],
    outputs: Vec<EngineRecord>,
    refused: Vec<(usize, String)>,
) -> Applied {
    let last = inputs.len() - 1;
    let mut produced = vec![false; inputs.len()];
    let mut records = Vec::with_capacity(outputs.len());
    for r in outputs {
        let from = (r.offset_delta().max(0) as usize).min(last);
        produced[from] = true;
        records.push(Record {
            key: r.key.map(|k| Bytes::clone(&k)),
            value: Bytes::clone(&r.value),
            timestamp_ms: inputs[from].timestamp_ms,
        });
    }
    let mut rejected = Vec::with_capacity(refused.len());
    for (index, message) in refused {
        let index = index.min(last);
        produced[index] = true;
        rejected.push(Rejection {
            key: inputs[index].key.clone(),
            error: TransformError::Rejected(message),
        });
    }
    Applied {
        records,
        filtered: produced.iter().filter(|p| !**p).count() as u64,
        rejected,
    }
}

fn initialise(
    engine: &SmartEngine,
    modules: &[ModuleSpec],
    memory_limit: Option<usize>,
) -> Result<Vec<SmartModuleChainInstance>> {
    modules
        .iter()
        .map(|m| {
            let mut builder = SmartModuleChainBuilder::default();
            if let Some(limit) = memory_limit {
                builder.set_store_memory_limit(limit);
            }
            let mut config = SmartModuleConfig::builder();
            config.smartmodule_names(vec![m.name.clone()]);
            for (k, v) in &m.params {
                config.param(k.clone(), v.clone());
            }
            let config = config
                .build()
                .map_err(|e| anyhow!("SmartModule `{}`: {e}", m.name))?;
            builder.add_smart_module(config, m.wasm.clone());
            builder
                .initialize(engine)
                .map_err(|e| anyhow!("cannot initialise the SmartModule chain: {e:#}"))
        })
        .collect()
}
