//! Test pauses: `COMPOSER_KEYD_TEST_PAUSE=POINT[@N]` holds the process at the Nth time it reaches `POINT` (the first when `@N` is absent), so a crash test can kill it there. Debug builds only: release builds compile every hook to nothing.
//!
//! A pause says `test hook: paused at POINT` on stderr (the daemon's log), then sleeps
//! [`HOLD`], long enough for any test to act and short enough that a test that failed
//! to kill the process leaves nothing running for long.

/// The environment variable that names the pause point.
pub const ENV: &str = "COMPOSER_KEYD_TEST_PAUSE";

/// How long a pause holds the process.
pub const HOLD: std::time::Duration = std::time::Duration::from_secs(120);

/// Whether this arrival at `point` is the one `ENV` asks to pause at. Counts arrivals at the
/// named point only, once per process.
#[cfg(debug_assertions)]
fn due(point: &str) -> bool {
    use std::sync::atomic::{AtomicU32, Ordering};
    static HITS: AtomicU32 = AtomicU32::new(0);
    let Ok(want) = std::env::var(ENV) else {
        return false;
    };
    let (name, nth) = parse(&want);
    name == point && HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth
}

/// `POINT[@N]` → (POINT, N); a missing or bad `N` is 1.
#[cfg_attr(not(debug_assertions), allow(dead_code))]
fn parse(want: &str) -> (&str, u32) {
    match want.split_once('@') {
        Some((n, k)) => (n, k.parse().ok().filter(|&k| k > 0).unwrap_or(1)),
        None => (want, 1),
    }
}

/// Holds this thread at `point` when asked to (a blocking thread or a synchronous step).
#[inline]
pub fn pause(point: &str) {
    #[cfg(debug_assertions)]
    if due(point) {
        eprintln!("composer-keyd: test hook: paused at {point}");
        std::thread::sleep(HOLD);
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

/// [`pause`] for async code: holds this task, not the runtime's thread.
#[inline]
pub async fn pause_async(point: &str) {
    #[cfg(debug_assertions)]
    if due(point) {
        eprintln!("composer-keyd: test hook: paused at {point}");
        tokio::time::sleep(HOLD).await;
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_grammar_is_point_then_an_optional_count() {
        assert_eq!(
            super::parse("vault-before-rename"),
            ("vault-before-rename", 1)
        );
        assert_eq!(
            super::parse("state-before-rename@2"),
            ("state-before-rename", 2)
        );
        assert_eq!(super::parse("x@0"), ("x", 1));
        assert_eq!(super::parse("x@y"), ("x", 1));
    }
}
