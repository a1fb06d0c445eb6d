//! Test fixture: an identity `map` written with upstream's `#[smartmodule(map)]` macro. The
//! macro's glue never frees its output buffers, so guest memory grows with every call, as it
//! does in third-party modules: the source runtime must survive it.

use fluvio_smartmodule::{smartmodule, RecordData, Result, SmartModuleRecord};

#[smartmodule(map)]
pub fn map(record: &SmartModuleRecord) -> Result<(Option<RecordData>, RecordData)> {
    Ok((record.key().cloned(), record.value().clone()))
}
