/// One parsed request, ready to execute.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// `set`: append `record` (already in the on-disk layout) to `queue`.
    Set { queue: Vec<u8>, record: Vec<u8> },
    /// `get` (or `gets`, with `cas`): take the oldest message off each
    /// named queue, in order.
    Get {
        queues: Vec<Vec<u8>>,
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
    /// A `set` whose data block arrived without its `\r\n`: counted as a
    /// set command, answered `CLIENT_ERROR bad data chunk`.
    BadDataChunk,
    /// `quit`: close the connection without a reply.
    Quit,
    /// A request answered by a fixed reply without touching storage.
    Reply(&'static [u8]),
    /// A fixed reply after which the connection is closed.
    ReplyAndClose(&'static [u8]),
}

impl std::fmt::Display for Command {
    /// A one-line summary for -vv logging (never the message data).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |q: &[u8]| String::from_utf8_lossy(q).into_owned();
        match self {
            Command::Set { queue, record } => {
                write!(f, "set {} ({} byte record)", name(queue), record.len())
            }
            Command::Get { queues, cas } => {
                let names: Vec<String> = queues.iter().map(|q| name(q)).collect();
                let verb = if *cas { "gets" } else { "get" };
                write!(f, "{verb} {}", names.join(" "))
            }
            Command::Delete { queue } => write!(f, "delete {}", name(queue)),
            Command::Reply(text) | Command::ReplyAndClose(text) => {
                write!(f, "refused: {}", String::from_utf8_lossy(text).trim_end())
            }
            other => write!(f, "{other:?}"),
        }
    }
}
