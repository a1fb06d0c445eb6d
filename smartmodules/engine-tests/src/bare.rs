//! A SmartModule called on bare wasmtime, without fluvio-smartengine, with fuel metering on
//! or off: the benchmark's measure of what the engine's always-on fuel costs, and of what the
//! modules' code costs in wasm at all. It speaks the same ABI as the engine (`alloc`, `init`,
//! the transform export with `(ptr, len, version)`, the host's `copy_records`) and hands the
//! module the same encoded input; the WASI imports are stubbed, since the modules only use
//! them to print a dropped record.

use std::collections::BTreeMap;

use anyhow::{anyhow, Context, Result};
use fluvio_smartengine::DEFAULT_SMARTENGINE_VERSION as VERSION;
use smartmodule_glue::fluvio_smartmodule::dataplane::core::{Decoder, Encoder};
use smartmodule_glue::fluvio_smartmodule::dataplane::record::Record;
use smartmodule_glue::fluvio_smartmodule::dataplane::smartmodule::{
    SmartModuleExtraParams, SmartModuleInitInput, SmartModuleInput, SmartModuleOutput,
};
use wasmtime::{Caller, Config, Engine, Instance, Linker, Memory, Module, Store, TypedFunc};

/// Where the module's last output lies in its memory (set by `copy_records`).
type Output = Option<(i32, i32)>;

/// One instance of one module, ready for batches.
pub struct BareModule {
    store: Store<Output>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    transform: TypedFunc<(i32, i32, u32), i32>,
}

impl BareModule {
    /// Compile and instantiate `wasm`, call its `init` with `params`; `transform` names the
    /// export (`filter`, `filter_map`, `map`).
    pub fn new(wasm: &[u8], transform: &str, params: &[(&str, &str)], fuel: bool) -> Result<Self> {
        let mut config = Config::new();
        config.consume_fuel(fuel);
        let engine = Engine::new(&config)?;
        let module = Module::new(&engine, wasm)?;
        let mut store: Store<Output> = Store::new(&engine, None);
        if fuel {
            store.set_fuel(u64::MAX)?;
        }
        let mut linker = Linker::new(&engine);
        linker.func_wrap(
            "env",
            "copy_records",
            |mut caller: Caller<'_, Output>, ptr: i32, len: i32| {
                *caller.data_mut() = Some((ptr, len));
            },
        )?;
        linker.define_unknown_imports_as_default_values(&mut store, &module)?;
        let instance = linker.instantiate(&mut store, &module)?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("no exported memory")?;
        let mut bare = BareModule {
            alloc: instance.get_typed_func(&mut store, "alloc")?,
            transform: instance.get_typed_func(&mut store, transform)?,
            memory,
            store,
        };
        bare.init(&instance, params)?;
        Ok(bare)
    }

    fn init(&mut self, instance: &Instance, params: &[(&str, &str)]) -> Result<()> {
        let Ok(init) = instance.get_typed_func::<(i32, i32, u32), i32>(&mut self.store, "init")
        else {
            return Ok(());
        };
        let params: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let input = SmartModuleInitInput {
            params: SmartModuleExtraParams::new(params, None),
        };
        let (ptr, len) = self.write(&input)?;
        match init.call(&mut self.store, (ptr, len, VERSION as u32))? {
            0 => Ok(()),
            code => Err(anyhow!("init returned {code}")),
        }
    }

    /// Encode `value` into a buffer the module allocated.
    fn write(&mut self, value: &impl Encoder) -> Result<(i32, i32)> {
        let mut bytes = Vec::new();
        value.encode(&mut bytes, VERSION)?;
        self.write_bytes(&bytes)
    }

    /// Copy `bytes` into a buffer the module allocated.
    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(i32, i32)> {
        let len = i32::try_from(bytes.len())?;
        let ptr = self.alloc.call(&mut self.store, len)?;
        self.memory.write(&mut self.store, ptr as usize, bytes)?;
        Ok((ptr, len))
    }

    /// Run the transform over `records`, encoded as the engine encodes them (`whole: false`:
    /// the input's record bytes go through the generic encoder, one byte at a time) or with
    /// those bytes copied whole (`true`: what an engine could do); its output.
    pub fn process(&mut self, records: &[Record], whole: bool) -> Result<Vec<Record>> {
        let mut raw = Vec::with_capacity(records.iter().map(|r| r.value.len() + 32).sum());
        smartmodule_glue::encode_records(records, VERSION, &mut raw)?;
        let (ptr, len) = if whole {
            self.write_bytes(&smartmodule_glue::encode_input(&raw, 0, 0, VERSION)?)?
        } else {
            self.write(&SmartModuleInput::new(raw, 0, 0))?
        };
        *self.store.data_mut() = None;
        let code = self
            .transform
            .call(&mut self.store, (ptr, len, VERSION as u32))?;
        if code < 0 {
            return Err(anyhow!("the module returned {code}"));
        }
        let (out_ptr, out_len) = self.store.data().context("no output")?;
        let mut bytes = vec![0u8; out_len as usize];
        self.memory
            .read(&self.store, out_ptr as usize, &mut bytes)?;
        let mut output = SmartModuleOutput::default();
        output.decode(&mut std::io::Cursor::new(bytes), VERSION)?;
        if let Some(e) = output.error {
            return Err(anyhow!("the module refused a record: {e}"));
        }
        Ok(output.successes)
    }
}
