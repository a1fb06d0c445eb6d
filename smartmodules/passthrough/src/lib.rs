//! # passthrough
//!
//! A SmartModule that keeps every record unchanged: the engine's floor in benchmarks (what
//! any module costs before doing any work), with the same leak-free glue as the real ones.

use fluvio_smartmodule::dataplane::smartmodule::SmartModuleRecord;
use fluvio_smartmodule::Result;

/// `filter` export body: keep everything.
pub fn filter(_record: &SmartModuleRecord) -> Result<bool> {
    Ok(true)
}

smartmodule_glue::export_filter!(filter);
