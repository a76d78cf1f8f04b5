//! Keeping a full disk from turning into a crash, a hang or a loss (README,
//! Design: "A full disk").
//!
//! - Region files. Berkeley DB maps them into memory and extends them as
//!   its caches and tables grow, leaving holes; touching a page of a hole
//!   the disk cannot provide kills the process with SIGBUS.
//!   [`reserve_regions`] allocates every region file up to the size it is
//!   mapped at, once, at start.
//! - Log files. Berkeley DB creates each one sparse. [`LogReserve`]
//!   allocates the file being written in full, so writing the log can fail
//!   for lack of space only where it moves on to a new file.
//! - Free space. [`DiskSpace`] lets sets use only the free space beyond
//!   what the next log file and the cache's unwritten pages will need, so
//!   gets, checkpoints and a clean stop still work once sets are refused.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bdb::{self, Env, DEFAULT_LOG_FILE_SIZE};
use crate::log_limit;
use crate::os;

/// Free space kept besides the next log file and the dirty cache: the log
/// buffer, checkpoint records, queue files' meta pages.
const MARGIN: u64 = 4 << 20;
/// Disk space one new queue may take (its file, a first extent, the log).
const QUEUE_CREATION: u64 = 256 << 10;
/// How often the dirty part of the cache is measured (it walks the cache).
const DIRTY_SAMPLE: Duration = Duration::from_secs(1);
/// How often a log file that could not be allocated is tried again.
const LOG_RETRY: Duration = Duration::from_secs(1);

const MB: u64 = 1 << 20;

/// Allocates every Berkeley DB region file of the environment open in this
/// process (`__db.NNN` in `home`) up to the length it is mapped at (the
/// region's maximum size), without changing the file sizes. Returns the
/// bytes reserved. Fails when the filesystem has no room for them; a
/// filesystem that cannot preallocate is only warned about.
pub fn reserve_regions(home: &Path) -> Result<u64, String> {
    let home = fs::canonicalize(home).map_err(|e| format!("{}: {e}", home.display()))?;
    let maps = fs::read_to_string("/proc/self/maps")
        .map_err(|e| format!("can't list the region files' mappings: {e}"))?;
    let regions = region_mappings(&maps, &home);
    let needed: u64 = regions.values().sum();
    let mut reserved = 0;
    for (path, len) in regions {
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| format!("can't open region file {}: {e}", path.display()))?;
        match os::allocate(&file, len) {
            Ok(()) => reserved += len,
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                log::warn!(
                    "{}: the filesystem cannot preallocate ({e}); Berkeley DB may be killed \
                     by SIGBUS if the disk fills up",
                    path.display()
                );
            }
            Err(e) => {
                let free = os::free_bytes(&home).unwrap_or(0) + reserved;
                return Err(format!(
                    "the Berkeley DB region files need {} MB in {} and {} MB are free \
                     ({}: {e}); free some space (-m sets the largest, the cache)",
                    needed.div_ceil(MB),
                    home.display(),
                    free / MB,
                    path.display()
                ));
            }
        }
    }
    Ok(reserved)
}

/// The region files in `home` among the mappings listed in `maps` (the
/// text of /proc/self/maps), each with the end of its furthest mapping.
fn region_mappings(maps: &str, home: &Path) -> BTreeMap<PathBuf, u64> {
    let mut regions = BTreeMap::new();
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let mut fields = line.splitn(6, ' ');
        let (Some(range), Some(_), Some(offset), Some(_), Some(_), Some(path)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let path = Path::new(path.trim_start());
        // A removed file shows as "<path> (deleted)"; it is not ours.
        let is_region = path.parent() == Some(home)
            && path.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("__db.") && !n.ends_with(" (deleted)")
            });
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let parse = |hex: &str| u64::from_str_radix(hex, 16).ok();
        let (Some(start), Some(end), Some(offset)) = (parse(start), parse(end), parse(offset))
        else {
            continue;
        };
        if is_region && end > start {
            let reach = regions.entry(path.to_path_buf()).or_insert(0);
            *reach = (*reach).max(offset + (end - start));
        }
    }
    regions
}

/// How much of the free disk space sets may still use.
pub struct DiskSpace {
    /// The home: its filesystem is the one measured.
    home: PathBuf,
    /// For the log file size and the dirty part of the cache.
    env: Env,
    /// Kept free besides the dirty cache: a log file and the margin.
    base: u64,
    /// Bytes of cache pages not yet written, as last measured.
    dirty: u64,
    /// Page bytes of the messages stored since (not in `dirty` yet).
    since: u64,
    /// When `dirty` was measured.
    sampled: Option<Instant>,
}

impl DiskSpace {
    pub fn new(home: &Path, env: &Env) -> DiskSpace {
        DiskSpace {
            home: home.to_path_buf(),
            env: env.clone(),
            base: base_kept_free(env),
            dirty: 0,
            since: 0,
            sampled: None,
        }
    }

    /// Bytes that new messages and queues may take on disk now: the free
    /// space minus what must stay free (the next log file, the cache's
    /// unwritten pages, a margin).
    pub fn budget(&mut self) -> u64 {
        if self.sampled.is_none_or(|t| t.elapsed() >= DIRTY_SAMPLE) {
            self.sampled = Some(Instant::now());
            match self.env.dirty_cache_bytes() {
                Ok(bytes) => {
                    self.dirty = bytes;
                    self.since = 0;
                }
                Err(e) => log_limit::error!("cache stat", "measuring the cache failed: {e}"),
            }
        }
        match os::free_bytes(&self.home) {
            Ok(free) => free.saturating_sub(self.base + self.dirty + self.since),
            Err(e) => {
                log_limit::error!("statvfs", "measuring the free disk space failed: {e}");
                u64::MAX
            }
        }
    }

    /// Counts `bytes` of queue pages that committed messages will take
    /// once written (until the next measure of the cache includes them).
    pub fn charge(&mut self, bytes: u64) {
        self.since += bytes;
    }

    /// The free space below which sets are refused, measured now (the
    /// metrics page's `memcacheq_disk_refusal_threshold_bytes`).
    pub fn kept_free(env: &Env) -> u64 {
        base_kept_free(env) + env.dirty_cache_bytes().unwrap_or(0)
    }

    /// What a message in records of `record_len` bytes may take on disk:
    /// its log record and its place on a queue page.
    pub fn message_cost(record_len: usize) -> u64 {
        2 * record_len as u64 + 256
    }

    /// What creating a queue may take on disk.
    pub fn queue_cost() -> u64 {
        QUEUE_CREATION
    }
}

/// What must stay free besides the cache's unwritten pages: the next log
/// file and a margin.
fn base_kept_free(env: &Env) -> u64 {
    u64::from(env.log_file_size().unwrap_or(DEFAULT_LOG_FILE_SIZE)) + MARGIN
}

/// Keeps the log file being written allocated in full.
pub struct LogReserve {
    /// The environment whose log this is.
    env: Env,
    /// Bytes of a full log file.
    file_size: u64,
    /// Number of the newest log file known to be allocated in full.
    reserved: u32,
    /// A log file that could not be allocated, and when that was tried.
    short: Option<(u32, Instant)>,
}

impl LogReserve {
    pub fn new(env: &Env) -> LogReserve {
        LogReserve {
            env: env.clone(),
            file_size: u64::from(env.log_file_size().unwrap_or(DEFAULT_LOG_FILE_SIZE)),
            reserved: 0,
            short: None,
        }
    }

    /// The number of the log file now being written if it is allocated in
    /// full, so that what is logged into it can always be written; `None`
    /// if it is not. A new log file is allocated here (flushing the log
    /// first if Berkeley DB has not created it yet); one that could not be
    /// is tried again at most once a second.
    pub fn check(&mut self) -> Option<u32> {
        let file = match self.env.log_tail_file() {
            Ok(file) => file,
            Err(e) => {
                log_limit::error!("log stat", "reading the log position failed: {e}");
                return None;
            }
        };
        if file == self.reserved {
            return Some(file);
        }
        if let Some((short, tried)) = self.short {
            if short == file && tried.elapsed() < LOG_RETRY {
                return None;
            }
        }
        match self.allocate(file) {
            Ok(()) => {
                self.reserved = file;
                self.short = None;
                Some(file)
            }
            Err(e) => {
                log_limit::error!(
                    "log reserve",
                    "can't allocate log file {file} in full ({e}); writing the log may fail"
                );
                self.short = Some((file, Instant::now()));
                None
            }
        }
    }

    fn allocate(&self, file: u32) -> io::Result<()> {
        let path = self.env.log_file_path(file).map_err(bdb_io)?;
        let open = || OpenOptions::new().write(true).open(&path);
        let handle = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Berkeley DB creates a log file when it first writes to it.
                self.env.flush_log().map_err(bdb_io)?;
                open()?
            }
            other => other?,
        };
        os::allocate(&handle, self.file_size)
    }
}

fn bdb_io(e: bdb::Error) -> io::Error {
    io::Error::other(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_mappings_keep_the_home_s_region_files_at_their_longest() {
        let maps = "\
7f0000000000-7f0002f80000 rw-s 00000000 00:2f 12 /srv/q/__db.001
7f0003000000-7f0003100000 rw-s 00000000 00:2f 13 /srv/q/__db.002
7f0004000000-7f0004001000 rw-s 00001000 00:2f 13 /srv/q/__db.002
7f0005000000-7f0005001000 rw-s 00000000 00:2f 14 /srv/other/__db.001
7f0006000000-7f0006001000 rw-s 00000000 00:2f 15 /srv/q/jobs
7f0007000000-7f0007001000 r-xp 00000000 00:00 0 
7f0008000000-7f0008001000 rw-s 00000000 00:2f 16 /srv/q/__db.003 (deleted)
";
        let got = region_mappings(maps, Path::new("/srv/q"));
        let want: BTreeMap<PathBuf, u64> = [
            (PathBuf::from("/srv/q/__db.001"), 0x2f8_0000),
            (PathBuf::from("/srv/q/__db.002"), 0x10_0000),
        ]
        .into();
        assert_eq!(got, want);
    }
}
