//! Rate-limited logging for errors that can repeat without end: on a full
//! or failing disk every log flush, every transaction and Berkeley DB's own
//! message for every write fail the same way, many times a second.
//!
//! Each message has a kind (a short fixed string, such as `"log flush"`).
//! A kind is logged at most once per second; the repeats in between are
//! counted, and the count is added to the next line of that kind
//! (`... (41 more like this not logged)`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one line per kind in this interval.
const INTERVAL: Duration = Duration::from_secs(1);
/// Kinds remembered at most; past this the table starts afresh (kinds
/// come from a few call sites and Berkeley DB's message numbers).
const MAX_KINDS: usize = 256;

/// When a kind was last logged, and how many of it were not logged since.
struct Seen {
    logged: Instant,
    suppressed: u64,
}

static SEEN: Mutex<Option<HashMap<String, Seen>>> = Mutex::new(None);

/// How many lines of `kind` went unlogged since its last line, or `None`
/// when this one must not be logged either.
fn admit(kind: &str, now: Instant) -> Option<u64> {
    let mut table = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let table = table.get_or_insert_with(HashMap::new);
    if let Some(seen) = table.get_mut(kind) {
        if now.duration_since(seen.logged) < INTERVAL {
            seen.suppressed += 1;
            return None;
        }
        seen.logged = now;
        return Some(std::mem::take(&mut seen.suppressed));
    }
    if table.len() >= MAX_KINDS {
        table.clear();
    }
    let seen = Seen {
        logged: now,
        suppressed: 0,
    };
    table.insert(kind.to_owned(), seen);
    Some(0)
}

/// Logs `message` at `level` for `target` unless `kind` was logged less
/// than a second ago. Use through [`error!`].
pub fn log(level: log::Level, target: &str, kind: &str, message: fmt::Arguments<'_>) {
    if !log::log_enabled!(target: target, level) {
        return;
    }
    match admit(kind, Instant::now()) {
        None => {}
        Some(0) => log::log!(target: target, level, "{message}"),
        Some(n) => log::log!(target: target, level, "{message} ({n} more like this not logged)"),
    }
}

/// `error!(kind, format, args...)`: `log::error!`, at most once per second
/// for each `kind`.
macro_rules! error {
    ($kind:expr, $($arg:tt)+) => {
        $crate::log_limit::log(
            ::log::Level::Error,
            module_path!(),
            $kind,
            format_args!($($arg)+),
        )
    };
}
pub(crate) use error;

/// Checks something the server relies on and never expects to be false: a
/// violation panics in debug builds (the tests run those), and in release
/// builds is logged as an error, at most once a second, and serving goes on.
macro_rules! invariant {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            if cfg!(debug_assertions) {
                panic!("invariant violated: {}", format_args!($($arg)+));
            }
            $crate::log_limit::error!(
                "invariant",
                "invariant violated: {}",
                format_args!($($arg)+)
            );
        }
    };
}
pub(crate) use invariant;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_a_second_are_counted_and_reported_later() {
        let t0 = Instant::now();
        assert_eq!(admit("test kind a", t0), Some(0));
        assert_eq!(admit("test kind a", t0 + Duration::from_millis(10)), None);
        assert_eq!(admit("test kind a", t0 + Duration::from_millis(900)), None);
        // Another kind is not held back by the first.
        assert_eq!(
            admit("test kind b", t0 + Duration::from_millis(900)),
            Some(0)
        );
        assert_eq!(
            admit("test kind a", t0 + Duration::from_millis(1000)),
            Some(2)
        );
        assert_eq!(
            admit("test kind a", t0 + Duration::from_millis(2500)),
            Some(0)
        );
    }
}
