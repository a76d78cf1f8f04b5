//! Queue storage on Berkeley DB (docs/STORAGE.md): the environment,
//! `queue.list`, one DB_QUEUE database per queue, the background chores,
//! the lock that keeps a second process from opening a live home, and what
//! keeps a full disk from becoming a crash or a loss (`space`).

mod chores;
pub mod deliveries;
mod error;
mod home_lock;
pub mod queue_list;
mod queues;
mod space;

pub use chores::{CacheWatch, ChoreSchedule, Chores};
pub use error::{Error, Result};
pub use home_lock::{HomeLock, HomeLockError};
pub use queue_list::Counts;
pub use queues::QueueStore;
pub use space::{reserve_regions, DiskSpace, LogReserve};
