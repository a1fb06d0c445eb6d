//! # smartmodule-glue
//!
//! The wasm exports of a SmartModule, written by hand with the ABI of `fluvio-smartmodule`'s
//! `#[smartmodule]` macro, minus its leak: the macro's glue gives the host its output buffer
//! and never frees it (the host never calls `dealloc`), so guest memory grows with every call
//! until the store limit, after which every call traps. Here each output buffer is kept until
//! the next call and freed then: memory stays flat however many records go through.
//!
//! Records go in and out with their bytes copied whole ([`decode_input`], [`encode_records`]):
//! the generic codec reads and writes keys and values one byte at a time, which in wasm cost a
//! 4 KB tweet more than everything the module then did with it.
//!
//! Use: `export_init!(my_init); export_filter!(my_filter);` (or `export_filter_map!`). The
//! functions are plain Rust, testable natively; the exports exist only on `wasm32`.

use std::collections::BTreeMap;

use fluvio_smartmodule::dataplane::core::{Decoder, Encoder, EncoderVarInt};
use fluvio_smartmodule::dataplane::record::Record;
use fluvio_smartmodule::dataplane::smartmodule::{
    SmartModuleExtraParams, SmartModuleInput, SmartModuleOutput,
};
use fluvio_smartmodule::SmartModuleRecord;

pub use fluvio_smartmodule;

/// Append `records` encoded as `Vec<Record>`'s encoder does (a 4-byte count, then each
/// record behind its varint length), with keys and values copied whole.
pub fn encode_records(
    records: &[Record],
    version: i16,
    out: &mut Vec<u8>,
) -> Result<(), std::io::Error> {
    fn data(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), std::io::Error> {
        (bytes.len() as i64).encode_varint(out)?;
        out.extend_from_slice(bytes);
        Ok(())
    }
    out.extend_from_slice(&(records.len() as u32).to_be_bytes());
    let mut inner = Vec::new();
    for r in records {
        inner.clear();
        r.preamble.encode(&mut inner, version)?;
        match &r.key {
            Some(key) => {
                true.encode(&mut inner, version)?;
                data(key, &mut inner)?;
            }
            None => false.encode(&mut inner, version)?,
        }
        data(&r.value, &mut inner)?;
        r.headers.encode_varint(&mut inner)?;
        (inner.len() as i64).encode_varint(out)?;
        out.extend_from_slice(&inner);
    }
    Ok(())
}

/// Encode a module's output as its encoder does, the records by [`encode_records`].
pub fn encode_output(output: &SmartModuleOutput, version: i16) -> Result<Vec<u8>, std::io::Error> {
    let size: usize = output.successes.iter().map(|r| r.value.len() + 32).sum();
    let mut out = Vec::with_capacity(size + 16);
    encode_records(&output.successes, version, &mut out)?;
    output.error.encode(&mut out, version)?;
    Ok(out)
}

/// Encode a `SmartModuleInput` whose `raw_bytes` are `raw` (records as [`encode_records`]
/// writes them) as its encoder does, with those bytes copied whole: `base_offset` (8 bytes),
/// then `raw_bytes` (a 4-byte length and the bytes), then the small fields the generic encoder
/// writes for `version`. The inverse of [`decode_input`]; the engine encodes `raw_bytes` one
/// byte at a time.
pub fn encode_input(
    raw: &[u8],
    base_offset: i64,
    base_timestamp: i64,
    version: i16,
) -> Result<Vec<u8>, std::io::Error> {
    let mut around = Vec::new();
    SmartModuleInput::new(Vec::new(), base_offset, base_timestamp).encode(&mut around, version)?;
    let len = u32::try_from(raw.len()).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "an input over 4 GiB")
    })?;
    let mut out = Vec::with_capacity(around.len() + raw.len());
    out.extend_from_slice(&around[..8]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(raw);
    out.extend_from_slice(&around[12..]);
    Ok(out)
}

/// Decode an encoded `SmartModuleInput` into its records and base offset, as the generic
/// decoder would. Its first fields are `base_offset` (8 bytes) and `raw_bytes` (a 4-byte
/// length and the encoded records); the records are decoded straight from that slice, and the
/// small fields around it by the generic decoder, whatever the version.
pub fn decode_input(data: &[u8], version: i16) -> Option<(Vec<SmartModuleRecord>, i64)> {
    let len = i32::from_be_bytes(data.get(8..12)?.try_into().ok()?);
    let len = usize::try_from(len).unwrap_or(0);
    let raw = data.get(12..12usize.checked_add(len)?)?;
    let mut rest = Vec::with_capacity(data.len() - len);
    rest.extend_from_slice(&data[..8]);
    rest.extend_from_slice(&0i32.to_be_bytes());
    rest.extend_from_slice(&data[12 + len..]);
    let mut input = SmartModuleInput::default();
    Decoder::decode(&mut input, &mut std::io::Cursor::new(rest), version).ok()?;
    let mut records: Vec<Record> = Vec::new();
    Decoder::decode(&mut records, &mut std::io::Cursor::new(raw), version).ok()?;
    let (base_offset, base_timestamp) = (input.base_offset(), input.base_timestamp());
    Some((
        records
            .into_iter()
            .map(|r| SmartModuleRecord::new(r, base_offset, base_timestamp))
            .collect(),
        base_offset,
    ))
}

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
        SmartModuleInitOutput, SmartModuleInitRuntimeError, SmartModuleKind, SmartModuleOutput,
        SmartModuleRecord, SmartModuleTransformErrorStatus, SmartModuleTransformRuntimeError,
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
        super::decode_input(&data, version)
    }

    fn output(output: SmartModuleOutput, version: i16) -> i32 {
        let Ok(out) = super::encode_output(&output, version) else {
            return SmartModuleTransformErrorStatus::EncodingOutput as i32;
        };
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
    fn decode_input_reads_what_the_generic_decoder_reads() {
        use fluvio_smartmodule::dataplane::core::{Decoder, Encoder};
        let mut records = vec![
            Record::new_key_value("k1".as_bytes().to_vec(), vec![b'x'; 300]),
            Record::new("second"),
            Record::new(Vec::new()),
        ];
        records[1].preamble.set_offset_delta(1);
        records[2].preamble.set_offset_delta(2);
        records[2].preamble.set_timestamp_delta(9);
        for version in [14, 16, 20, 21, 22, 23, 25] {
            let mut input = SmartModuleInput::try_from_records(records.clone(), version).unwrap();
            input.set_base_offset(40);
            input.set_base_timestamp(1_700_000_000_000);
            let mut data = Vec::new();
            input.encode(&mut data, version).unwrap();
            let (got, base) = decode_input(&data, version).expect("decodes");
            let want = SmartModuleInput::decode_from(&mut std::io::Cursor::new(&data), version)
                .unwrap()
                .try_into_smartmodule_records(version)
                .unwrap();
            assert_eq!(base, 40, "v{version}");
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "v{version}");
            assert_eq!(got.len(), 3);
            // Cut short anywhere: no panic, no records.
            for cut in [0, 7, 11, 12, 100, data.len() - 1] {
                assert!(
                    decode_input(&data[..cut], version).is_none(),
                    "v{version} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn encode_input_writes_what_the_generic_encoder_writes() {
        let mut records = [
            Record::new_key_value(b"key".to_vec(), vec![7u8; 70_000]),
            Record::new(b"v".to_vec()),
            Record::new(Vec::new()),
        ];
        records[1].preamble.set_offset_delta(1);
        records[2].preamble.set_offset_delta(2);
        for version in [14, 16, 20, 21, 22, 23, 25] {
            for records in [&records[..], &[]] {
                let mut raw = Vec::new();
                encode_records(records, version, &mut raw).unwrap();
                let mut generic = Vec::new();
                SmartModuleInput::new(raw.clone(), 40, 1_700_000_000_000)
                    .encode(&mut generic, version)
                    .unwrap();
                let whole = encode_input(&raw, 40, 1_700_000_000_000, version).unwrap();
                assert_eq!(whole, generic, "v{version}, {} records", records.len());
                let (decoded, base) = decode_input(&whole, version).expect("decodes");
                assert_eq!((decoded.len(), base), (records.len(), 40), "v{version}");
            }
        }
    }

    #[test]
    fn encode_output_writes_what_the_generic_encoder_writes() {
        use fluvio_smartmodule::dataplane::smartmodule::{
            SmartModuleKind, SmartModuleTransformRuntimeError,
        };
        let mut records = vec![
            Record::new_key_value(b"key".to_vec(), vec![7u8; 70_000]),
            Record::new(b"v".to_vec()),
            Record::new(Vec::new()),
            Record::new_key_value(Vec::new(), vec![1u8; 200]),
        ];
        records[1].preamble.set_offset_delta(300);
        records[2].preamble.set_timestamp_delta(-5);
        let error = SmartModuleTransformRuntimeError::new(
            &records[1],
            40,
            SmartModuleKind::Filter,
            fluvio_smartmodule::eyre!("bad record"),
        );
        for (successes, error) in [
            (records.clone(), None),
            (records[1..3].to_vec(), Some(error)),
            (Vec::new(), None),
        ] {
            let output = SmartModuleOutput { successes, error };
            for version in [14, 22, 25] {
                let mut generic = Vec::new();
                output.encode(&mut generic, version).unwrap();
                assert_eq!(
                    encode_output(&output, version).unwrap(),
                    generic,
                    "v{version}"
                );
            }
        }
    }

    #[test]
    fn params_map_lists_every_parameter() {
        let mut m = BTreeMap::new();
        m.insert("keywords".to_string(), "rust,data".to_string());
        m.insert("typo".to_string(), "x".to_string());
        let params = SmartModuleExtraParams::new(m.clone(), None);
        assert_eq!(params_map(&params), m);
    }
}
