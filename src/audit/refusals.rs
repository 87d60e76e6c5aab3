//! Refusals, rate-limited and aggregated: within an interval, the first refusal of a kind (event, uid, error kind, origin, request) is written at once and the rest are counted, written as one line with `similar` when the interval ends; past a budget of lines per interval, every further refusal is only counted, in one line. A flood of refused connections or requests costs the log a bounded number of lines per interval.

use super::Record;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The interval a refusal's count is gathered over.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Refusals written in full per interval, whatever their kind; the rest are counted.
pub const BUDGET: usize = 64;

/// What makes two refusals alike: the same peer uid refused the same way for the same request.
#[derive(PartialEq, Eq, Hash)]
struct Key {
    event: Option<super::Event>,
    uid: Option<u32>,
    /// The error kind's name (`ErrorKind` is a wire type without `Hash`).
    kind: Option<String>,
    origin: Option<String>,
    detail: Option<String>,
}

impl Key {
    fn of(rec: &Record) -> Key {
        Key {
            event: rec.event,
            uid: rec.uid,
            kind: rec.kind.map(|k| format!("{k:?}")),
            origin: rec.origin.clone(),
            detail: rec.detail.clone(),
        }
    }
}

/// The refusal written in full, and how many like it followed in the interval.
struct Seen {
    first: Record,
    similar: u64,
}

struct State {
    since: Instant,
    seen: crate::FastMap<Key, Seen>,
    /// Refusals past the budget: how many, and the first of them.
    over: Option<Seen>,
}

/// The refusals of the current interval.
pub(super) struct Refusals {
    state: Mutex<State>,
    interval: Duration,
}

impl Default for Refusals {
    fn default() -> Refusals {
        Refusals::every(INTERVAL)
    }
}

impl Refusals {
    pub(super) fn every(interval: Duration) -> Refusals {
        Refusals {
            state: Mutex::new(State {
                since: Instant::now(),
                seen: crate::FastMap::default(),
                over: None,
            }),
            interval,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it: a map of counters.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a refusal at `now`; the lines to write now: the counts of an interval that
    /// ended, then this refusal when it is the first of its kind within the budget.
    pub(super) fn note(&self, rec: Record, now: Instant) -> Vec<Record> {
        let mut st = self.state();
        let mut out = Vec::new();
        if now.saturating_duration_since(st.since) >= self.interval {
            out = summaries(&mut st);
            st.since = now;
        }
        let key = Key::of(&rec);
        if let Some(seen) = st.seen.get_mut(&key) {
            seen.similar += 1;
        } else if st.seen.len() < BUDGET {
            st.seen.insert(
                key,
                Seen {
                    first: rec.clone(),
                    similar: 0,
                },
            );
            out.push(rec);
        } else {
            match &mut st.over {
                Some(over) => over.similar += 1,
                None => {
                    st.over = Some(Seen {
                        first: Record {
                            reason: Some(format!(
                            "more than {BUDGET} kinds of refusal in {} s; these were only counted",
                            self.interval.as_secs()
                        )),
                            ..rec
                        },
                        similar: 0,
                    })
                }
            }
        }
        out
    }

    /// Ends the interval if it has run out at `now`, so that the count of a flood that has
    /// stopped is written within an interval or two: the count lines to write.
    pub(super) fn tick(&self, now: Instant) -> Vec<Record> {
        let mut st = self.state();
        if now.saturating_duration_since(st.since) < self.interval {
            return Vec::new();
        }
        st.since = now;
        summaries(&mut st)
    }

    /// Ends the interval now (at lock and at exit): the count lines to write.
    pub(super) fn flush(&self) -> Vec<Record> {
        let mut st = self.state();
        st.since = Instant::now();
        summaries(&mut st)
    }
}

/// One line per refusal that had followers in the interval, and one for those past the
/// budget; the interval's state starts again.
fn summaries(st: &mut State) -> Vec<Record> {
    let over = st.over.take().map(|o| Seen {
        similar: o.similar + 1,
        ..o
    });
    let seen = std::mem::take(&mut st.seen);
    let counted: Vec<Seen> = seen
        .into_values()
        .filter(|s| s.similar > 0)
        .chain(over)
        .collect();
    if counted.is_empty() {
        return Vec::new();
    }
    let now = super::now();
    counted
        .into_iter()
        .map(|s| Record {
            time: now.clone(),
            similar: Some(s.similar),
            ..s.first
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Event;
    use crate::protocol::ErrorKind;

    fn reject(uid: u32) -> Record {
        Record {
            uid: Some(uid),
            detail: Some("grant g".into()),
            ..Record::new(Event::RejectPeer)
        }
    }

    #[test]
    fn a_flood_costs_a_bounded_number_of_lines() {
        let r = Refusals::every(Duration::from_secs(60));
        let t0 = Instant::now();
        let mut written = 0;
        for i in 0..100_000u32 {
            // One peer again and again, and a thousand peers (or requests) once each.
            written += r.note(reject(i % 1000), t0).len();
        }
        assert_eq!(
            written, BUDGET,
            "the budget's first refusals, one line each"
        );
        // The interval ends: one count line per written kind, one for the rest.
        let lines = r.note(reject(7), t0 + Duration::from_secs(61));
        assert_eq!(lines.len(), BUDGET + 1 + 1, "{}", lines.len());
        let counted: u64 = lines[..BUDGET + 1]
            .iter()
            .map(|l| l.similar.expect("a count line"))
            .sum();
        assert_eq!(counted as usize + BUDGET, 100_000);
        assert_eq!(lines[BUDGET + 1].similar, None, "a new interval's first");
        assert!(r.flush().is_empty(), "nothing followed it");
        // A flood that stopped: its count comes out at the first tick after the interval.
        r.note(reject(1), t0);
        r.note(reject(1), t0);
        assert!(r.tick(t0 + Duration::from_secs(1)).is_empty());
        let later = r.tick(Instant::now() + Duration::from_secs(61));
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].similar, Some(1));
    }

    #[test]
    fn different_requests_are_each_written_once() {
        let r = Refusals::every(Duration::from_secs(60));
        let t0 = Instant::now();
        let req = |d: &str| Record {
            detail: Some(d.into()),
            kind: Some(ErrorKind::Forbidden),
            uid: Some(0),
            ..Record::new(Event::Refuse)
        };
        assert_eq!(r.note(req("POST /v1/migrate"), t0).len(), 1);
        assert_eq!(r.note(req("POST /v1/passwd"), t0).len(), 1);
        assert!(r.note(req("POST /v1/passwd"), t0).is_empty());
        let flushed = r.flush();
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].similar, Some(1));
        assert_eq!(flushed[0].detail.as_deref(), Some("POST /v1/passwd"));
    }
}
