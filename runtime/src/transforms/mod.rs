//! Source transforms: the `transforms:` chain run in-process with `fluvio-smartengine`, in
//! batches ([`chain`]) on worker threads ([`pool`]).
//!
//! `uses:` is a local `.wasm` path (absolute, or relative to the config file) or the name of a
//! SmartModule registered in the cluster. Unlike upstream, a record that a module rejects with
//! an error is counted and logged with its key, never dropped silently; and a chain whose
//! guest memory is exhausted (third-party modules leak on every call) is re-initialised and
//! the batch retried, instead of trapping on every later call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::config::TransformStep;

mod chain;
mod pool;

pub use chain::{engine_record, Applied, Rejection, TransformChain, TransformError};
pub use pool::{ChainPool, WorkerPanicked, BATCH_BYTES, BATCH_RECORDS};

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
