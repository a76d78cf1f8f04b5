//! What the server must know about a command before running it, declared
//! once: how it runs, how large its reply may grow, and what it asks of
//! the transport. The executor, the reactor, the UDP side and the waiting
//! requests all read it here.

use std::time::Duration;

use crate::protocol::{Command, Refusal};

/// How a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// Stores or takes records: in the turn's shared transaction, with
    /// the `set`s and `get`s around it (group commit).
    Shared,
    /// On its own, seeing committed state: the run of shared commands
    /// before it commits first.
    Alone,
}

/// What a command's reply holds, for an upper bound of its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplySize {
    /// One line.
    Line,
    /// `stats`.
    Stats,
    /// A `VALUE` block per key, and `END`.
    PerKey(usize),
    /// A `stats queue` line per queue.
    QueueStats,
    /// A `dump_stats` block per queue.
    QueueDumps,
}

/// What the server must know about a command before running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub execution: Execution,
    /// Records it may store or take, each holding a lock to the commit.
    pub records: usize,
    pub reply: ReplySize,
    /// The connection closes once it is answered (`quit`, a line that
    /// cannot be framed).
    pub closes: bool,
    /// It needs a connection (a lease or a wait), so UDP refuses it.
    pub needs_connection: bool,
    /// How long it may wait for a message (`/t=`).
    pub wait: Option<Duration>,
    /// Whether it changes what is stored: refused by a replica.
    pub changes_data: bool,
}

/// The class of `command`.
pub fn class_of(command: &Command) -> Class {
    let line = Class {
        execution: Execution::Alone,
        records: 0,
        reply: ReplySize::Line,
        closes: false,
        needs_connection: false,
        wait: None,
        changes_data: false,
    };
    match command {
        Command::Set { .. } => Class {
            execution: Execution::Shared,
            records: 1,
            changes_data: true,
            ..line
        },
        Command::Get { keys, .. } => Class {
            execution: Execution::Shared,
            records: keys.len(),
            reply: ReplySize::PerKey(keys.len()),
            needs_connection: keys.iter().any(|k| !k.options.is_plain()),
            wait: keys.first().and_then(|k| k.options.wait),
            changes_data: keys.iter().any(|k| !k.options.is_peek_only()),
            ..line
        },
        // Counted as a set command, as the original counts it.
        Command::Refused(Refusal::BadDataChunk) => Class {
            execution: Execution::Shared,
            ..line
        },
        Command::Refused(Refusal::ReplyAndClose(_)) | Command::Quit => Class {
            execution: Execution::Shared,
            closes: true,
            ..line
        },
        Command::Refused(Refusal::Reply(_))
        | Command::Version
        | Command::Verbosity
        | Command::Noop => Class {
            execution: Execution::Shared,
            ..line
        },
        Command::Stats | Command::StatsReplication => Class {
            reply: ReplySize::Stats,
            ..line
        },
        Command::StatsQueue => Class {
            reply: ReplySize::QueueStats,
            ..line
        },
        Command::DumpStats => Class {
            reply: ReplySize::QueueDumps,
            ..line
        },
        Command::Delete { .. } | Command::Flush { .. } => Class {
            changes_data: true,
            ..line
        },
        Command::StatsReset | Command::Checkpoint | Command::Archive => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::GetKey;

    #[test]
    fn gets_with_options_need_a_connection_and_only_t_waits() {
        let get = |keys: &[&str]| Command::Get {
            keys: keys
                .iter()
                .map(|k| GetKey::parse(k.as_bytes()).expect("key"))
                .collect(),
            cas: false,
        };
        let plain = class_of(&get(&["a", "b"]));
        assert_eq!(
            (plain.records, plain.needs_connection, plain.wait),
            (2, false, None)
        );
        assert_eq!(plain.reply, ReplySize::PerKey(2));
        let waits = class_of(&get(&["a/t=500"]));
        assert!(waits.needs_connection);
        assert_eq!(waits.wait, Some(Duration::from_millis(500)));
        assert!(class_of(&get(&["a/open"])).wait.is_none());
        assert!(class_of(&Command::Quit).closes);
        assert_eq!(class_of(&Command::DumpStats).execution, Execution::Alone);
    }
}
