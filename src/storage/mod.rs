//! Queue storage on Berkeley DB (docs/STORAGE.md): the environment,
//! `queue.list`, one DB_QUEUE database per queue, and the background chores.

mod chores;
mod queues;
pub mod record;

pub use chores::{ChoreSchedule, Chores};
pub use queues::{Counts, QueueStore};
