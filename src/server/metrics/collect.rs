//! The reactor's side of a scrape. The endpoint thread sends a reply
//! channel and wakes the reactor; between turns the reactor samples the
//! queues `QUEUES_PER_TURN` at a time (10,000 queues cost it 100 short
//! pauses, not one long one), then answers every scrape that asked
//! meanwhile with the same snapshot.

use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use super::{QueueSample, ServerSample, Slice, Snapshot};

/// Queues sampled per turn of the reactor while a snapshot is taken...
const QUEUES_PER_TURN: usize = 100;
/// ...and the time they may take: a queue whose pages are not in the
/// cache costs a read from disk.
const TIME_PER_TURN: Duration = Duration::from_millis(1);

/// Where a scrape waits for its snapshot.
pub type Answer = SyncSender<Arc<Snapshot>>;

/// Scrapes asked for and the snapshot being taken for them.
pub struct Scrapes {
    /// Scrapes sent by the endpoint thread, not seen yet.
    asked: Receiver<Answer>,
    /// Scrapes waiting for the snapshot being taken.
    waiting: Vec<Answer>,
    /// The queues sampled so far, in name order; `None` between snapshots.
    queues: Option<Vec<QueueSample>>,
}

impl Scrapes {
    pub fn new(asked: Receiver<Answer>) -> Scrapes {
        Scrapes {
            asked,
            waiting: Vec::new(),
            queues: None,
        }
    }

    /// Takes the scrapes asked for since the last call (after a wake-up);
    /// a snapshot starts if none is under way.
    pub fn take_asked(&mut self) {
        self.waiting.extend(self.asked.try_iter());
        if !self.waiting.is_empty() && self.queues.is_none() {
            self.queues = Some(Vec::new());
        }
    }

    /// Whether a snapshot is under way (the reactor then does not sleep).
    pub fn collecting(&self) -> bool {
        self.queues.is_some()
    }

    /// One slice: `sample(slice, out)` appends the queues of `slice` and
    /// says whether it reached the last. Returns whether every queue is
    /// in.
    pub fn step(&mut self, sample: impl FnOnce(Slice, &mut Vec<QueueSample>) -> bool) -> bool {
        let Some(queues) = self.queues.as_mut() else {
            return false;
        };
        let after = queues.last().map(|q| q.name.clone());
        let slice = Slice {
            after: after.as_deref(),
            max: QUEUES_PER_TURN,
            time: TIME_PER_TURN,
        };
        sample(slice, queues)
    }

    /// Ends the snapshot with the server's values and answers every
    /// scrape waiting for it (one that gave up is skipped).
    pub fn finish(&mut self, server: ServerSample) {
        let queues = self.queues.take().unwrap_or_default();
        let snapshot = Arc::new(Snapshot { queues, server });
        for answer in self.waiting.drain(..) {
            let _ = answer.try_send(snapshot.clone());
        }
    }
}
