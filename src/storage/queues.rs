//! The set of queues: one DB_QUEUE database each, named in `queue.list`
//! with their set and get counters.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use super::chores::CacheWatch;
use super::deliveries::{self, Deliveries};
use super::error::{Error, Result};
use super::queue_list::{self, Counts};
use crate::bdb::{Database, Env, EnvConfig, IfMissing, QueueFormat, Txn, QUEUE_PAGE_HEADER};
use crate::queue_name::NameRules;

/// Messages a queue must hold (as last committed) for the dirty pages of
/// an extent file it leaves to be written at once: a short queue's head
/// soon empties the extent file, which Berkeley DB then removes, pages
/// and all.
const DEEP_QUEUE: u64 = 1024;

struct Queue {
    /// The open DB_QUEUE database.
    db: Database,
    /// Its record length, which may differ from -B for older queues.
    record_len: usize,
    /// Where its records fall in its extent files, if it has any.
    extents: Option<Extents>,
    /// Counters as last committed.
    counts: Counts,
}

/// Every queue of one environment. Owned by the reactor thread.
pub struct QueueStore {
    /// The environment's home, whose filesystem holds every queue.
    home: PathBuf,
    env: Env,
    /// `queue.list`.
    list: Database,
    /// Open queues by name, in `queue.list` (byte) order.
    queues: BTreeMap<Vec<u8>, Queue>,
    /// The format of queues created from now on.
    format: QueueFormat,
    /// Which names may be looked up and which created.
    names: NameRules,
    /// The longest record of any queue, and so of any message a `get` can
    /// return.
    max_record_len: usize,
    /// How often handed-out messages have been handed out.
    deliveries: Deliveries,
    /// Counts the messages stored and held, for the trickle chore.
    watch: CacheWatch,
}

impl QueueStore {
    /// Opens the environment in `home` and every queue `queue.list` names.
    pub fn open(
        home: &Path,
        env_config: &EnvConfig,
        format: QueueFormat,
        names: NameRules,
    ) -> Result<QueueStore> {
        let env = Env::open(home, env_config, None)?;
        let store = QueueStore::open_in(env, home, env_config.cache_bytes, format, names)?;
        log::info!(
            "opened {} queue(s) in {}",
            store.queue_count(),
            home.display()
        );
        Ok(store)
    }

    /// Opens every queue `queue.list` names in `env`, an environment
    /// opened in `home` with a cache of `cache_bytes`. On a replica,
    /// nothing is created: a database that has not arrived yet fails with
    /// ENOENT.
    pub fn open_in(
        env: Env,
        home: &Path,
        cache_bytes: u64,
        format: QueueFormat,
        names: NameRules,
    ) -> Result<QueueStore> {
        let list = Database::open_btree(&env, queue_list::FILE_NAME.as_bytes())?;
        let mut store = QueueStore {
            home: home.to_path_buf(),
            env,
            list,
            queues: BTreeMap::new(),
            format,
            names,
            max_record_len: format.record_len as usize,
            deliveries: Deliveries::default(),
            watch: CacheWatch::for_cache(cache_bytes, u64::from(format.record_len)),
        };
        let has_counts = home.join(deliveries::FILE_NAME).exists();
        store.deliveries = Deliveries::open(&store.env, has_counts)?;
        for (name, counts) in queue_list::entries(&store.list)? {
            if !names.is_safe(&name) {
                log::warn!(
                    "queue.list names {:?}, which is not a safe file name; leaving it alone",
                    String::from_utf8_lossy(&name)
                );
                continue;
            }
            let db = Database::open_queue(&store.env, None, &name, format, IfMissing::Create)?;
            store.watch.held(counts.waiting());
            store.add_open(&name, db, counts)?;
        }
        Ok(store)
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    /// What tells the trickle chore how much the queues have written.
    pub fn cache_watch(&self) -> &CacheWatch {
        &self.watch
    }

    /// The directory the environment was opened in.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The format of queues created from now on (-B, -A, -E).
    pub fn format(&self) -> QueueFormat {
        self.format
    }

    /// The rules queue names follow under this store's format.
    pub fn name_rules(&self) -> NameRules {
        self.names
    }

    /// How many queues there are.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// The longest record of any queue.
    pub fn max_record_len(&self) -> usize {
        self.max_record_len
    }

    pub fn contains(&self, name: &[u8]) -> bool {
        self.queues.contains_key(name)
    }

    /// Every queue with its committed counters, in name order.
    pub fn counts(&self) -> impl Iterator<Item = (&[u8], Counts)> {
        self.queues.iter().map(|(n, q)| (n.as_slice(), q.counts))
    }

    /// The queues after the name `after` (every queue when `None`), with
    /// their committed counters, in name order.
    pub fn counts_after<'a>(
        &'a self,
        after: Option<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a [u8], Counts)> + 'a {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.queues
            .range::<[u8], _>((from, Bound::Unbounded))
            .map(|(n, q)| (n.as_slice(), q.counts))
    }

    /// Creates a queue: its database and its `queue.list` entry commit
    /// together or not at all.
    pub fn create(&mut self, name: &[u8]) -> Result<()> {
        let txn = self.env.begin()?;
        let db =
            match Database::open_queue(&self.env, Some(&txn), name, self.format, IfMissing::Create)
            {
                Ok(db) => db,
                Err(e) => {
                    txn.abort()?;
                    return Err(e.into());
                }
            };
        let listed = self
            .list
            .put(&txn, &queue_list::key(name), &Counts::default().encode());
        if let Err(e) = listed {
            // Berkeley DB wants a handle opened in a transaction closed
            // only after that transaction ends.
            let aborted = txn.abort();
            drop(db);
            aborted?;
            return Err(e.into());
        }
        txn.commit()?;
        self.add_open(name, db, Counts::default())
    }

    /// Starts serving an open queue database.
    fn add_open(&mut self, name: &[u8], db: Database, counts: Counts) -> Result<()> {
        let record_len = db.record_len()?;
        let extents = Extents::of(db.page_size()?, record_len, db.extent_pages()?);
        let record_len = record_len as usize;
        self.max_record_len = self.max_record_len.max(record_len);
        let queue = Queue {
            db,
            record_len,
            extents,
            counts,
        };
        self.queues.insert(name.to_vec(), queue);
        Ok(())
    }

    /// Removes a queue, its messages and its `queue.list` entry in one
    /// transaction; `Ok(false)` when there is no such queue.
    pub fn delete(&mut self, name: &[u8]) -> Result<bool> {
        let Some(queue) = self.queues.remove(name) else {
            return Ok(false);
        };
        let counts = queue.counts;
        // Berkeley DB removes a database only once every handle is closed.
        drop(queue);
        let result = self.env.begin().map_err(Error::from).and_then(|txn| {
            self.env.remove_database(&txn, name)?;
            self.list.delete(&txn, &queue_list::key(name))?;
            self.deliveries.clear_queue(&txn, name)?;
            Ok(txn.commit()?)
        });
        if let Err(e) = result {
            let db = Database::open_queue(&self.env, None, name, self.format, IfMissing::Fail)?;
            self.add_open(name, db, counts)?;
            return Err(e);
        }
        self.deliveries.forget_queue(name);
        self.watch.taken(counts.waiting());
        Ok(true)
    }

    /// Appends a record in `txn`; returns its record number, `None` when
    /// the queue's records are too short for it. The queue must exist.
    pub fn append(&self, txn: &Txn<'_>, name: &[u8], record: &[u8]) -> Result<Option<u32>> {
        let queue = self.queue(name)?;
        if record.len() > queue.record_len {
            return Ok(None);
        }
        let recno = queue.db.append(txn, record)?;
        self.watch.stored(1);
        if queue.extents.is_some_and(|e| e.ends_extent(recno))
            && queue.counts.waiting() >= DEEP_QUEUE
        {
            // Berkeley DB has just closed the extent file, whose dirty
            // pages the reactor can no longer write to make room, and
            // whose messages wait to be taken.
            self.watch.extent_closed();
        }
        Ok(Some(recno))
    }

    /// Reads into `buf` the oldest record of `name` that is not open,
    /// without taking it; `None` when there is none (or no such queue).
    /// `last_open_from` as for `Database::first_not_open`.
    pub fn first_not_open(
        &self,
        txn: &Txn<'_>,
        name: &[u8],
        buf: &mut Vec<u8>,
        last_open_from: impl FnMut(u32) -> Option<u32>,
    ) -> Result<Option<u32>> {
        let Some(queue) = self.queues.get(name) else {
            return Ok(None);
        };
        buf.resize(queue.record_len, 0);
        Ok(queue.db.first_not_open(txn, buf, last_open_from)?)
    }

    /// Deletes record `recno` of `name` in `txn`; `Ok(false)` when it is
    /// not there.
    pub fn remove(&self, txn: &Txn<'_>, name: &[u8], recno: u32) -> Result<bool> {
        let removed = self.queue(name)?.db.delete_record(txn, recno)?;
        self.watch.taken(u64::from(removed));
        Ok(removed)
    }

    /// Drops every message of queue `name` (open ones too) and their
    /// delivery counts in one transaction, keeping the queue; returns how
    /// many there were (0 when there is no such queue).
    pub fn flush(&mut self, name: &[u8]) -> Result<u32> {
        let Some(queue) = self.queues.get(name) else {
            return Ok(0);
        };
        let txn = self.env.begin()?;
        let dropped = queue.db.truncate(&txn)?;
        self.deliveries.clear_queue(&txn, name)?;
        let taken = Counts {
            set: 0,
            get: i64::from(dropped),
        };
        self.save_counts(&txn, name, taken)?;
        txn.commit()?;
        self.add_counts(name, taken);
        self.deliveries.forget_queue(name);
        self.watch.taken(u64::from(dropped));
        Ok(dropped)
    }

    /// The delivery counts of handed-out messages.
    pub fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }

    /// The delivery counts, to change them.
    pub fn deliveries_mut(&mut self) -> (&mut Deliveries, &Env) {
        (&mut self.deliveries, &self.env)
    }

    /// The record length of queue `name`, if it exists.
    pub fn record_len(&self, name: &[u8]) -> Option<usize> {
        self.queues.get(name).map(|q| q.record_len)
    }

    /// Takes the oldest record of `name` off in `txn` into `buf`; returns
    /// its record number, `None` when the queue is missing or empty.
    pub fn consume(&self, txn: &Txn<'_>, name: &[u8], buf: &mut Vec<u8>) -> Result<Option<u32>> {
        let Some(queue) = self.queues.get(name) else {
            return Ok(None);
        };
        buf.resize(queue.record_len, 0);
        let taken = queue.db.consume(txn, buf)?;
        self.watch.taken(u64::from(taken.is_some()));
        Ok(taken)
    }

    /// Writes `name`'s counters plus `delta` into `queue.list` in `txn`.
    pub fn save_counts(&self, txn: &Txn<'_>, name: &[u8], delta: Counts) -> Result<()> {
        let c = self.queue(name)?.counts;
        let total = Counts {
            set: c.set + delta.set,
            get: c.get + delta.get,
        };
        Ok(self
            .list
            .put(txn, &queue_list::key(name), &total.encode())?)
    }

    /// Adds a committed `delta` to the in-memory counters.
    pub fn add_counts(&mut self, name: &[u8], delta: Counts) {
        if let Some(q) = self.queues.get_mut(name) {
            q.counts.set += delta.set;
            q.counts.get += delta.get;
        }
    }

    fn queue(&self, name: &[u8]) -> Result<&Queue> {
        self.queues.get(name).ok_or(Error::NoSuchQueue)
    }
}

/// Where a queue's records fall in its extent files, as Berkeley DB lays
/// them out: page 0 of the queue's own file holds the metadata, record `n`
/// is on page 1 + (n - 1) / records per page, and extent file `k` holds
/// pages k * pages per extent + 1 to (k + 1) * pages per extent. A page
/// holds a header (`QUEUE_PAGE_HEADER`), then records of one flag byte and the record
/// length, each rounded up to 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extents {
    records_per_page: u32,
    pages: u32,
}

impl Extents {
    /// The layout of a queue of pages of `page_size` bytes and records of
    /// `record_len`, with `pages` per extent file; `None` without extents.
    fn of(page_size: u32, record_len: u32, pages: u32) -> Option<Extents> {
        let slot = (record_len + 1).next_multiple_of(4);
        let records_per_page = page_size.saturating_sub(QUEUE_PAGE_HEADER) / slot;
        (pages > 0 && records_per_page > 0).then_some(Extents {
            records_per_page,
            pages,
        })
    }

    /// Whether record `recno` is the last one of its extent file: once it
    /// is appended, Berkeley DB closes the file ("leaving the extent"), so
    /// that only memp_trickle or a checkpoint can write its dirty pages
    /// from then on.
    fn ends_extent(self, recno: u32) -> bool {
        let per_extent = u64::from(self.records_per_page) * u64::from(self.pages);
        u64::from(recno) % per_extent == 0 || recno == u32::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::Extents;

    #[test]
    fn berkeley_db_leaves_an_extent_after_its_last_record() {
        // The defaults: 3 records of 1024 bytes per 4096-byte page, 16384
        // pages per extent.
        let e = Extents::of(4096, 1024, 16384).unwrap();
        assert_eq!(e.records_per_page, 3);
        assert!(!e.ends_extent(1));
        assert!(!e.ends_extent(49151));
        assert!(e.ends_extent(49152));
        assert!(!e.ends_extent(49153));
        assert!(e.ends_extent(2 * 49152));
        assert!(e.ends_extent(u32::MAX));
        // 100-byte records: (4096 - 28) / 104.
        assert_eq!(Extents::of(4096, 100, 4).unwrap().records_per_page, 39);
        assert_eq!(Extents::of(4096, 1024, 0), None);
    }
}
