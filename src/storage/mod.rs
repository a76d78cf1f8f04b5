//! Queue storage on Berkeley DB (docs/STORAGE.md): the environment,
//! `queue.list`, one DB_QUEUE database per queue, and the background chores.

mod chores;
pub mod queue_list;
mod queues;

pub use chores::{ChoreSchedule, Chores};
pub use queue_list::Counts;
pub use queues::QueueStore;
