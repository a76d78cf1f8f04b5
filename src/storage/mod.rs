//! Queue storage on Berkeley DB (SPEC.md section 3): the environment,
//! `queue.list`, one DB_QUEUE database per queue, the background chores,
//! and the lock that keeps a second process from opening a live home.

mod chores;
mod home_lock;
mod queues;
pub mod record;

pub use chores::{ChoreSchedule, Chores};
pub use home_lock::{HomeLock, HomeLockError};
pub use queues::{Counts, QueueStore};
