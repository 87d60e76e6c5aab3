//! Repeated releases on one connection: the first release of each credential is written at once, later ones are counted and written as one line when the connection ends or the daemon locks.

use super::Record;
use std::sync::{Mutex, MutexGuard};

/// Credentials counted per connection; releases of any further credential on the same
/// connection are written one line each, so memory stays bounded whatever a peer asks.
pub const MAX_COUNTED: usize = 16;

/// The first-release record of a credential on a connection, and the releases since.
struct Counted {
    first: Record,
    repeats: u64,
}

/// Counted releases of every open connection.
#[derive(Default)]
pub(super) struct Repeats {
    open: Mutex<crate::FastMap<u64, Vec<Counted>>>,
}

impl Repeats {
    fn open(&self) -> MutexGuard<'_, crate::FastMap<u64, Vec<Counted>>> {
        // Nothing panics while holding it: the data is a map of counters.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a release of `origin` in `scope` on connection `conn` when one is already
    /// recorded there; otherwise builds its record with `first` and keeps a copy to count
    /// the ones that follow. The record to write, which the caller writes before it answers
    /// the request; `None` for a repeat, which was only counted.
    pub(super) fn note(
        &self,
        conn: u64,
        origin: &str,
        scope: Option<&str>,
        first: impl FnOnce() -> Record,
    ) -> Option<Record> {
        let mut open = self.open();
        let list = open.entry(conn).or_default();
        let same = |c: &&mut Counted| {
            c.first.origin.as_deref() == Some(origin) && c.first.scope.as_deref() == scope
        };
        if let Some(c) = list.iter_mut().find(same) {
            c.repeats += 1;
            return None;
        }
        let rec = first();
        if list.len() < MAX_COUNTED {
            list.push(Counted {
                first: rec.clone(),
                repeats: 0,
            });
        }
        Some(rec)
    }

    /// Forgets connection `conn`; the count lines to write for it.
    pub(super) fn close(&self, conn: u64) -> Vec<Record> {
        let list = self.open().remove(&conn).unwrap_or_default();
        summaries(list)
    }

    /// Forgets every connection's counts (at lock); the count lines to write.
    pub(super) fn take_all(&self) -> Vec<Record> {
        let all = std::mem::take(&mut *self.open());
        all.into_values().flat_map(summaries).collect()
    }
}

/// One line per counted credential that was released again: its first record, timed now,
/// with the number of releases after the first.
fn summaries(list: Vec<Counted>) -> Vec<Record> {
    // Most connections release once and repeat nothing: no time to format for them.
    if list.iter().all(|c| c.repeats == 0) {
        return Vec::new();
    }
    let now = super::now();
    list.into_iter()
        .filter(|c| c.repeats > 0)
        .map(|c| Record {
            time: now.clone(),
            repeats: Some(c.repeats),
            ..c.first
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Event;

    fn rec(origin: &str) -> Record {
        Record {
            origin: Some(origin.into()),
            ..Record::new(Event::Release)
        }
    }

    #[test]
    fn first_is_written_repeats_counted_per_connection_and_scope() {
        let r = Repeats::default();
        assert!(r.note(1, "a.example", None, || rec("a.example")).is_some());
        for _ in 0..3 {
            assert!(r.note(1, "a.example", None, || unreachable!()).is_none());
        }
        // Another scope, another connection: a first release each.
        let scoped = || Record {
            scope: Some("/srv/shop".into()),
            ..rec("a.example")
        };
        assert!(r.note(1, "a.example", Some("/srv/shop"), scoped).is_some());
        assert!(r.note(2, "a.example", None, || rec("a.example")).is_some());
        let lines = r.close(1);
        assert_eq!(lines.len(), 1, "only what was repeated: {lines:?}");
        assert_eq!(lines[0].repeats, Some(3));
        assert_eq!(lines[0].origin.as_deref(), Some("a.example"));
        assert!(r.close(1).is_empty(), "closed once");
        // Connection 2 is still open: a lock writes nothing for it (no repeat yet), then
        // its next release is a first again.
        assert!(r.take_all().is_empty());
        assert!(r.note(2, "a.example", None, || rec("a.example")).is_some());
    }

    #[test]
    fn a_connection_counts_a_bounded_number_of_credentials() {
        let r = Repeats::default();
        let name = |i: usize| format!("o{i}.example");
        for round in 0..3 {
            for i in 0..MAX_COUNTED + 5 {
                let o = name(i);
                let written = r.note(9, &o, None, || rec(&o)).is_some();
                // Past the bound every release is written, never dropped.
                assert_eq!(written, round == 0 || i >= MAX_COUNTED, "{round} {i}");
            }
        }
        let lines = r.close(9);
        assert_eq!(lines.len(), MAX_COUNTED);
        assert!(lines.iter().all(|l| l.repeats == Some(2)));
    }
}
