//! Queue storage on Berkeley DB (SPEC.md section 3): the environment,
//! `queue.list`, one DB_QUEUE database per queue, the background chores,
//! and what keeps a full disk from becoming a crash or a loss (`space`).

mod chores;
mod queues;
pub mod record;
mod space;

pub use chores::{ChoreSchedule, Chores};
pub use queues::{Counts, QueueStore};
pub use space::{reserve_regions, DiskSpace, LogReserve};
