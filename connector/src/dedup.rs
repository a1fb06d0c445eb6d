//! A bounded window of recently seen tweet ids: reconnects and backfill re-deliver tweets,
//! and the window drops the repeats. Memory is fixed: the oldest id leaves when a new one comes.

use std::collections::{HashSet, VecDeque};

#[derive(Debug)]
pub struct DedupWindow {
    capacity: usize,
    seen: HashSet<u64>,
    order: VecDeque<u64>,
}

impl DedupWindow {
    /// `capacity` 0 disables deduplication.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: HashSet::with_capacity(capacity.min(1 << 20)),
            order: VecDeque::with_capacity(capacity.min(1 << 20)),
        }
    }

    /// Remember ids seen before this run (the keys at the end of the topic), oldest first.
    pub fn seed<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) -> usize {
        ids.into_iter().filter(|id| self.first_time(id)).count()
    }

    /// True the first time an id is seen (within the window), false for a repeat.
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.capacity == 0 {
            return true;
        }
        let key = key_of(id);
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

/// Numeric ids as they are; anything else hashed.
fn key_of(id: &str) -> u64 {
    id.parse().unwrap_or_else(|_| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        h.finish() | (1 << 63)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_repeats_within_the_window_only() {
        let mut w = DedupWindow::new(3);
        assert!(w.first_time("1"));
        assert!(w.first_time("2"));
        assert!(!w.first_time("1"));
        assert!(w.first_time("3"));
        assert!(w.first_time("4")); // "1" leaves the window
        assert!(w.first_time("1"));
        assert!(w.first_time("abc"));
        assert!(!w.first_time("abc"));
        let mut seeded = DedupWindow::new(3);
        assert_eq!(seeded.seed(["7", "8", "8"]), 2);
        assert!(!seeded.first_time("8") && seeded.first_time("9"));
        let mut off = DedupWindow::new(0);
        assert!(off.first_time("1") && off.first_time("1"));
    }
}
