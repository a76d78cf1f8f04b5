//! The one error the server does not try to survive: Berkeley DB saying
//! that the environment needs recovery (`DB_RUNRECOVERY`, after a panic).
//! No call on the environment can succeed any more. Whichever thread sees
//! it first records it here and stops the event loop as a stop signal
//! would; the server then exits with status 1 and this reason, and the
//! service manager's restart runs recovery (every start does).

use std::sync::OnceLock;

use crate::bdb;
use crate::os;

static NEEDS_RECOVERY: OnceLock<String> = OnceLock::new();

/// Whether `error`, met while doing `what`, means the environment needs
/// recovery; the first such error stops the server.
pub fn check(what: &str, error: bdb::Error) -> bool {
    if error != bdb::Error::RunRecovery {
        return false;
    }
    let reason = format!("Berkeley DB needs recovery ({what}: {error})");
    if NEEDS_RECOVERY.set(reason.clone()).is_ok() {
        log::error!("{reason}; stopping, recovery runs at the next start");
        os::request_stop();
    }
    true
}

/// Why the server must exit with a failure, once it must.
pub fn reason() -> Option<&'static str> {
    NEEDS_RECOVERY.get().map(String::as_str)
}
