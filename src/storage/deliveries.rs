//! How often each message has been handed out by `get <q>/open` without
//! being closed (docs/STORAGE.md, "queue.deliveries"), for
//! `--max-deliveries`. Kept in the btree `queue.deliveries` of the same
//! environment, written in the transactions that hand messages out, so the
//! counts survive restarts; mirrored in memory. The file is created on the
//! first count, so a home that never sees `/open` gains no file, and
//! MemcacheQ 0.2.1 ignores it.
//!
//! Key: the queue name, a NUL byte, the record number (big-endian u32).
//! Value: the count (little-endian u32).

use std::collections::HashMap;

use super::error::{Error, Result};
use crate::bdb::{Database, Env, Txn};

/// The database file, in the environment home (never a queue name).
pub const FILE_NAME: &str = "queue.deliveries";

/// Delivery counts of the messages handed out and not yet gone.
#[derive(Default)]
pub struct Deliveries {
    /// `queue.deliveries`, once it exists.
    db: Option<Database>,
    /// Committed counts by queue, then record number.
    counts: HashMap<Vec<u8>, HashMap<u32, u32>>,
}

fn key(queue: &[u8], recno: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(queue.len() + 5);
    key.extend_from_slice(queue);
    key.push(0);
    key.extend_from_slice(&recno.to_be_bytes());
    key
}

impl Deliveries {
    /// Reads the counts kept in `env`, if its home has the file.
    pub fn open(env: &Env, exists: bool) -> Result<Deliveries> {
        let mut deliveries = Deliveries::default();
        if !exists {
            return Ok(deliveries);
        }
        let db = Database::open_btree(env, FILE_NAME.as_bytes())?;
        for entry in db.cursor()? {
            let (key, value) = entry?;
            let Some((name, recno)) = split_key(&key) else {
                continue;
            };
            let count = value
                .get(..4)
                .and_then(|v| v.try_into().ok())
                .map_or(0, u32::from_le_bytes);
            deliveries
                .counts
                .entry(name.to_vec())
                .or_default()
                .insert(recno, count);
        }
        deliveries.db = Some(db);
        Ok(deliveries)
    }

    /// Whether `queue.deliveries` exists (is open).
    pub fn file_exists(&self) -> bool {
        self.db.is_some()
    }

    /// Creates `queue.deliveries` if it is missing, outside any turn's
    /// transaction (as a queue is created).
    pub fn ensure_file(&mut self, env: &Env) -> Result<()> {
        if self.db.is_none() {
            self.db = Some(Database::open_btree(env, FILE_NAME.as_bytes())?);
        }
        Ok(())
    }

    /// The committed count of a message (0 if never handed out).
    pub fn count(&self, queue: &[u8], recno: u32) -> u32 {
        self.counts
            .get(queue)
            .and_then(|c| c.get(&recno))
            .copied()
            .unwrap_or(0)
    }

    /// Writes a message's count in `txn` (0 removes it). A count above 0
    /// fails when the file could not be created (`ensure_file`): the
    /// message must not be handed out with a count kept in memory only.
    pub fn write(&self, txn: &Txn<'_>, queue: &[u8], recno: u32, count: u32) -> Result<()> {
        let Some(db) = &self.db else {
            // Without the file no count above 0 was ever written.
            return if count == 0 {
                Ok(())
            } else {
                Err(Error::NoDeliveriesFile)
            };
        };
        if count == 0 {
            db.delete(txn, &key(queue, recno))?;
        } else {
            db.put(txn, &key(queue, recno), &count.to_le_bytes())?;
        }
        Ok(())
    }

    /// Makes a committed count visible (0 removes it).
    pub fn apply(&mut self, queue: &[u8], recno: u32, count: u32) {
        if count == 0 {
            if let Some(c) = self.counts.get_mut(queue) {
                c.remove(&recno);
                if c.is_empty() {
                    self.counts.remove(queue);
                }
            }
        } else {
            self.counts
                .entry(queue.to_vec())
                .or_default()
                .insert(recno, count);
        }
    }

    /// Every message of `queue` leaves (the queue is flushed or deleted):
    /// removes their counts in `txn`. Once it commits, `forget_queue`.
    pub fn clear_queue(&self, txn: &Txn<'_>, queue: &[u8]) -> Result<()> {
        for &recno in self.counts.get(queue).into_iter().flat_map(HashMap::keys) {
            self.write(txn, queue, recno, 0)?;
        }
        Ok(())
    }

    /// The transaction of `clear_queue` committed.
    pub fn forget_queue(&mut self, queue: &[u8]) {
        self.counts.remove(queue);
    }
}

/// The queue name and record number of a key.
fn split_key(key: &[u8]) -> Option<(&[u8], u32)> {
    let (name, rest) = key.split_at(key.len().checked_sub(5)?);
    let recno = rest.get(1..)?.try_into().ok().map(u32::from_be_bytes)?;
    (rest[0] == 0).then_some((name, recno))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_queue_and_record_number() {
        let k = key(b"jobs", 258);
        assert_eq!(k, b"jobs\0\x00\x00\x01\x02");
        assert_eq!(split_key(&k), Some((&b"jobs"[..], 258)));
        assert_eq!(split_key(b"abc"), None);
    }
}
