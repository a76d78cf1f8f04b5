//! Keeping a full disk from turning into a crash (README, Design: "A full
//! disk").
//!
//! Berkeley DB maps its region files into memory and extends them as its
//! caches and tables grow, leaving holes; touching a page of a hole the
//! disk cannot provide kills the process with SIGBUS. [`reserve_regions`]
//! allocates every region file up to the size it is mapped at, once, at
//! start.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use crate::os;

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
