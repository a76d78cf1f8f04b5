use super::key::GetKey;
use super::reply::{self, Reply};

/// One parsed request, ready to execute.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// `set`: append `record` (already in the on-disk layout) to `queue`.
    Set { queue: Vec<u8>, record: Vec<u8> },
    /// `get` (or `gets`, with `cas`): take the oldest message off each
    /// named queue, in order, or do what the key's options say.
    Get {
        keys: Vec<GetKey>,
        /// `gets`: each `VALUE` line also carries the message's record
        /// number as its cas unique.
        cas: bool,
    },
    /// `delete`: remove a queue and all its messages.
    Delete { queue: Vec<u8> },
    /// `stats`: the general counters.
    Stats,
    /// `stats queue`: per-queue counters.
    StatsQueue,
    /// `stats replication`: this site's place in its replication group
    /// (`ERROR` on a server without replication, as any unknown `stats`).
    StatsReplication,
    /// `stats reset`: zero the general counters.
    StatsReset,
    /// `version`.
    Version,
    /// `verbosity <n>`: accepted and ignored, as the original does.
    Verbosity,
    /// `db_checkpoint`: force a Berkeley DB checkpoint.
    Checkpoint,
    /// `db_archive`: remove log files no longer needed.
    Archive,
    /// `dump_stats`: Kestrel's per-queue report.
    DumpStats,
    /// `flush <q>`: drop every message of a queue, keep the queue.
    Flush { queue: Vec<u8> },
    /// `quit`: close the connection without a reply.
    Quit,
    /// Binary `Noop` and meta `mn`: runs nothing; its answer marks that
    /// every request before it has been answered.
    Noop,
    /// A request answered without running anything.
    Refused(Refusal),
}

/// Why a request is answered without running anything, and how.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// Answered with a fixed reply; the connection goes on.
    Reply(Reply<'static>),
    /// Answered, then the connection is closed: the rest of its input
    /// cannot be framed (a line too long).
    ReplyAndClose(Reply<'static>),
    /// A `set` whose data block arrived without its `\r\n`: counted as a
    /// set command, answered `CLIENT_ERROR bad data chunk`.
    BadDataChunk,
}

impl Refusal {
    /// What the client is told.
    pub fn reply(&self) -> Reply<'static> {
        match self {
            Refusal::Reply(reply) | Refusal::ReplyAndClose(reply) => *reply,
            Refusal::BadDataChunk => reply::BAD_CHUNK,
        }
    }
}

impl std::fmt::Display for Command {
    /// A one-line summary for -vv logging (never the message data).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |q: &[u8]| String::from_utf8_lossy(q).into_owned();
        match self {
            Command::Set { queue, record } => {
                write!(f, "set {} ({} byte record)", name(queue), record.len())
            }
            Command::Get { keys, cas } => {
                let names: Vec<String> = keys.iter().map(|k| name(&k.key)).collect();
                let verb = if *cas { "gets" } else { "get" };
                write!(f, "{verb} {}", names.join(" "))
            }
            Command::Delete { queue } => write!(f, "delete {}", name(queue)),
            Command::Refused(refusal) => {
                let reply = refusal.reply().to_vec();
                write!(f, "refused: {}", String::from_utf8_lossy(&reply).trim_end())
            }
            other => write!(f, "{other:?}"),
        }
    }
}
