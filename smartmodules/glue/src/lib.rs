//! # smartmodule-glue
//!
//! The wasm exports of a SmartModule, written by hand with the ABI of `fluvio-smartmodule`'s
//! `#[smartmodule]` macro, minus its leak: the macro's glue gives the host its output buffer
//! and never frees it (the host never calls `dealloc`), so guest memory grows with every call
//! until the store limit, after which every call traps. Here each output buffer is kept until
//! the next call and freed then: memory stays flat however many records go through.
//!
//! Use: `export_init!(my_init); export_filter!(my_filter);` (or `export_filter_map!`). The
//! functions are plain Rust, testable natively; the exports exist only on `wasm32`.

use std::collections::BTreeMap;

use fluvio_smartmodule::dataplane::smartmodule::SmartModuleExtraParams;

pub use fluvio_smartmodule;

/// Every `with:` parameter, by name (the params type offers lookups only; its encoding starts
/// with the map, so decoding that back gives all of them).
pub fn params_map(params: &SmartModuleExtraParams) -> BTreeMap<String, String> {
    use fluvio_smartmodule::dataplane::core::{Decoder, Encoder};
    let mut buf = Vec::new();
    if params.encode(&mut buf, 0).is_err() {
        return BTreeMap::new();
    }
    BTreeMap::<String, String>::decode_from(&mut std::io::Cursor::new(buf), 0).unwrap_or_default()
}

#[cfg(target_arch = "wasm32")]
mod exports {
    use std::cell::RefCell;

    use fluvio_smartmodule::dataplane::core::{Decoder, Encoder};
    use fluvio_smartmodule::dataplane::record::{Record, RecordData};
    use fluvio_smartmodule::dataplane::smartmodule::{
        SmartModuleExtraParams, SmartModuleInitErrorStatus, SmartModuleInitInput,
        SmartModuleInitOutput, SmartModuleInitRuntimeError, SmartModuleInput, SmartModuleKind,
        SmartModuleOutput, SmartModuleRecord, SmartModuleTransformErrorStatus,
        SmartModuleTransformRuntimeError,
    };

    thread_local! {
        /// The output handed to the host last; replaced (and so freed) on the next call.
        static LAST_OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    unsafe extern "C" {
        fn copy_records(ptr: i32, len: i32);
    }

    fn hand_over(out: Vec<u8>) {
        let (ptr, len) = (out.as_ptr() as i32, out.len() as i32);
        LAST_OUTPUT.with(|last| *last.borrow_mut() = out);
        // SAFETY: the host copies `len` bytes at `ptr` out of our memory; they stay valid
        // until our next call.
        unsafe { copy_records(ptr, len) }
    }

    /// # Safety
    /// `ptr`/`len` must be a buffer the host filled after `alloc(len)`.
    unsafe fn input(
        ptr: *mut u8,
        len: usize,
        version: i16,
    ) -> Option<(Vec<SmartModuleRecord>, i64)> {
        // SAFETY: the host wrote `len` bytes into a buffer of capacity `len` from `alloc`.
        let data = unsafe { Vec::from_raw_parts(ptr, len, len) };
        let mut input = SmartModuleInput::default();
        Decoder::decode(&mut input, &mut std::io::Cursor::new(data), version).ok()?;
        let base_offset = input.base_offset();
        Some((
            input.try_into_smartmodule_records(version).ok()?,
            base_offset,
        ))
    }

    fn output(mut output: SmartModuleOutput, version: i16) -> i32 {
        let mut out = Vec::new();
        if Encoder::encode(&mut output, &mut out, version).is_err() {
            return SmartModuleTransformErrorStatus::EncodingOutput as i32;
        }
        let n = output.successes.len() as i32;
        hand_over(out);
        n
    }

    /// The body of a `filter` export.
    ///
    /// # Safety
    /// Called by the SmartModule engine with a buffer from `alloc`.
    pub unsafe fn run_filter(
        ptr: *mut u8,
        len: usize,
        version: i16,
        f: impl Fn(&SmartModuleRecord) -> fluvio_smartmodule::Result<bool>,
    ) -> i32 {
        let Some((records, base_offset)) = (unsafe { input(ptr, len, version) }) else {
            return SmartModuleTransformErrorStatus::DecodingBaseInput as i32;
        };
        let mut out = SmartModuleOutput {
            successes: Vec::with_capacity(records.len()),
            error: None,
        };
        for record in records {
            match f(&record) {
                Ok(true) => out.successes.push(record.into()),
                Ok(false) => {}
                Err(err) => {
                    let record: Record = record.into();
                    out.error = Some(SmartModuleTransformRuntimeError::new(
                        &record,
                        base_offset,
                        SmartModuleKind::Filter,
                        err,
                    ));
                    break;
                }
            }
        }
        output(out, version)
    }

    /// The body of a `filter_map` export.
    ///
    /// # Safety
    /// Called by the SmartModule engine with a buffer from `alloc`.
    pub unsafe fn run_filter_map(
        ptr: *mut u8,
        len: usize,
        version: i16,
        f: impl Fn(
            &SmartModuleRecord,
        ) -> fluvio_smartmodule::Result<Option<(Option<RecordData>, RecordData)>>,
    ) -> i32 {
        let Some((records, base_offset)) = (unsafe { input(ptr, len, version) }) else {
            return SmartModuleTransformErrorStatus::DecodingBaseInput as i32;
        };
        let mut out = SmartModuleOutput {
            successes: Vec::with_capacity(records.len()),
            error: None,
        };
        for record in records {
            match f(&record) {
                Ok(Some((key, value))) => {
                    let mut r: Record = record.into();
                    r.key = key;
                    r.value = value;
                    out.successes.push(r);
                }
                Ok(None) => {}
                Err(err) => {
                    let record: Record = record.into();
                    out.error = Some(SmartModuleTransformRuntimeError::new(
                        &record,
                        base_offset,
                        SmartModuleKind::FilterMap,
                        err,
                    ));
                    break;
                }
            }
        }
        output(out, version)
    }

    /// The body of the `init` export.
    ///
    /// # Safety
    /// Called by the SmartModule engine with a buffer from `alloc`.
    pub unsafe fn run_init(
        ptr: *mut u8,
        len: usize,
        version: i16,
        f: impl FnOnce(SmartModuleExtraParams) -> fluvio_smartmodule::Result<()>,
    ) -> i32 {
        // SAFETY: as in `input`.
        let data = unsafe { Vec::from_raw_parts(ptr, len, len) };
        let mut input = SmartModuleInitInput::default();
        if Decoder::decode(&mut input, &mut std::io::Cursor::new(data), version).is_err() {
            return SmartModuleInitErrorStatus::DecodingInput as i32;
        }
        match f(input.params) {
            Ok(()) => 0,
            Err(err) => {
                let out_struct = SmartModuleInitOutput {
                    error: SmartModuleInitRuntimeError::new(err),
                };
                let mut out = Vec::new();
                if Encoder::encode(&out_struct, &mut out, version).is_err() {
                    return SmartModuleInitErrorStatus::EncodingOutput as i32;
                }
                hand_over(out);
                SmartModuleInitErrorStatus::InitError as i32
            }
        }
    }
}

#[cfg(target_arch = "wasm32")]
pub use exports::{run_filter, run_filter_map, run_init};

/// Export `init` calling `fn(SmartModuleExtraParams) -> Result<()>`.
#[macro_export]
macro_rules! export_init {
    ($f:ident) => {
        #[cfg(target_arch = "wasm32")]
        mod __sm_init {
            #[unsafe(no_mangle)]
            #[allow(clippy::missing_safety_doc)]
            pub unsafe fn init(ptr: *mut u8, len: usize, version: i16) -> i32 {
                unsafe { $crate::run_init(ptr, len, version, super::$f) }
            }
        }
    };
}

/// Export `filter` calling `fn(&SmartModuleRecord) -> Result<bool>`.
#[macro_export]
macro_rules! export_filter {
    ($f:ident) => {
        #[cfg(target_arch = "wasm32")]
        mod __sm_filter {
            #[unsafe(no_mangle)]
            #[allow(clippy::missing_safety_doc)]
            pub unsafe fn filter(ptr: *mut u8, len: usize, version: i16) -> i32 {
                unsafe { $crate::run_filter(ptr, len, version, super::$f) }
            }
        }
    };
}

/// Export `filter_map` calling `fn(&SmartModuleRecord) -> Result<Option<(Option<RecordData>, RecordData)>>`.
#[macro_export]
macro_rules! export_filter_map {
    ($f:ident) => {
        #[cfg(target_arch = "wasm32")]
        mod __sm_filter_map {
            #[unsafe(no_mangle)]
            #[allow(clippy::missing_safety_doc)]
            pub unsafe fn filter_map(ptr: *mut u8, len: usize, version: i16) -> i32 {
                unsafe { $crate::run_filter_map(ptr, len, version, super::$f) }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_map_lists_every_parameter() {
        let mut m = BTreeMap::new();
        m.insert("keywords".to_string(), "rust,data".to_string());
        m.insert("typo".to_string(), "x".to_string());
        let params = SmartModuleExtraParams::new(m.clone(), None);
        assert_eq!(params_map(&params), m);
    }
}
