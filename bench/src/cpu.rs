//! CPU time the server under test spends, for `--server-pid`: each of its
//! threads' time on a CPU (`/proc/PID/task/TID/schedstat`, in
//! nanoseconds) at the start and at the end of the measured window. Per
//! operation, the whole process's time says what a request costs; the
//! busiest thread's says how far the server can go on any number of cores.

use std::collections::HashMap;
use std::fs;
use std::io;

/// CPU nanoseconds of each thread of a process, by thread id, with the
/// thread's name.
pub struct Sample(HashMap<u32, (String, u64)>);

/// What a process spent between two samples.
pub struct Spent {
    /// Every thread's time, nanoseconds.
    pub total_ns: u64,
    /// The busiest thread's time, nanoseconds, and its name.
    pub busiest_ns: u64,
    pub busiest: String,
}

/// Each thread's CPU time of process `pid`, now.
pub fn sample(pid: u32) -> io::Result<Sample> {
    let mut threads = HashMap::new();
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?;
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread may end between the listing and the reads.
        let Ok(schedstat) = fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let ns = schedstat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let name = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        threads.insert(tid, (name.trim().to_string(), ns));
    }
    Ok(Sample(threads))
}

impl Sample {
    /// What was spent from `self` to `later`; a thread that started in
    /// between counts from zero.
    pub fn until(&self, later: &Sample) -> Spent {
        let mut spent = Spent {
            total_ns: 0,
            busiest_ns: 0,
            busiest: String::new(),
        };
        for (tid, (name, ns)) in &later.0 {
            let before = self.0.get(tid).map_or(0, |(_, ns)| *ns);
            let used = ns.saturating_sub(before);
            spent.total_ns += used;
            if used > spent.busiest_ns {
                spent.busiest_ns = used;
                spent.busiest = name.clone();
            }
        }
        spent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_spends_time_in_its_busiest_thread() {
        let pid = std::process::id();
        let before = sample(pid).expect("sample");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let spent = before.until(&sample(pid).expect("sample"));
        assert!(spent.busiest_ns > 0 && spent.total_ns >= spent.busiest_ns);
    }
}
