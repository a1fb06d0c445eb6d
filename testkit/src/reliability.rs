//! The fault matrix's bookkeeping: each scenario counts the records offered and the records a
//! reader found (by their source offset), and reports missing and duplicate ones. With
//! `RELIABILITY_LOG` set (by `./reliability.sh`), each count is appended to that file as a JSON
//! line, from which `docs/RELIABILITY.md` is written.

use std::collections::BTreeMap;
use std::io::Write;

/// What one scenario found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub offered: usize,
    pub found: usize,
    pub missing: usize,
    pub duplicates: usize,
}

impl Count {
    /// Count the `found` offsets against offsets `0..offered`.
    pub fn of(offered: usize, found: impl IntoIterator<Item = i64>) -> Self {
        let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
        let mut n = 0;
        for o in found {
            *seen.entry(o).or_default() += 1;
            n += 1;
        }
        let missing = (0..offered as i64)
            .filter(|o| !seen.contains_key(o))
            .count();
        let duplicates = seen.values().map(|c| c - 1).sum::<usize>();
        Self {
            offered,
            found: n,
            missing,
            duplicates,
        }
    }

    /// Append this count as a row of the matrix (when `RELIABILITY_LOG` is set) and return it.
    pub fn report(self, component: &str, scenario: &str, reader: &str) -> Self {
        eprintln!(
            "reliability: {component}: {scenario}: offered {}, found {} ({reader}), missing {}, duplicates {}",
            self.offered, self.found, self.missing, self.duplicates
        );
        if let Some(path) = std::env::var_os("RELIABILITY_LOG") {
            let line = serde_json::json!({
                "component": component,
                "scenario": scenario,
                "reader": reader,
                "offered": self.offered,
                "found": self.found,
                "missing": self.missing,
                "duplicates": self.duplicates,
            });
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open RELIABILITY_LOG");
            writeln!(f, "{line}").expect("write RELIABILITY_LOG");
        }
        self
    }

    /// Panic unless every offered record was found exactly once.
    pub fn assert_exactly_once(&self, what: &str) {
        assert!(
            self.missing == 0 && self.duplicates == 0 && self.found == self.offered,
            "{what}: {self:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_missing_and_duplicates() {
        assert_eq!(
            Count::of(4, [0, 1, 1, 3]),
            Count {
                offered: 4,
                found: 4,
                missing: 1,
                duplicates: 1
            }
        );
        Count::of(3, [2, 0, 1]).assert_exactly_once("all there");
        let r = std::panic::catch_unwind(|| Count::of(2, [0]).assert_exactly_once("one missing"));
        assert!(r.is_err());
    }
}
