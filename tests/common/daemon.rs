//! Starting the server the way an init script does: the real binary with
//! `-d -P FILE`, stdout and stderr appended to a log file; the launcher
//! must exit 0 once the daemon serves, and the daemon is found through its
//! pid file. For tests that check the process from outside (`/proc/PID`,
//! its sockets, its files).
//!
//! The test process makes itself a child subreaper (see [`launch_in`]), so
//! each daemon (whose parent exits) is re-parented to it; that lets a test
//! `waitpid` the daemon and see its exit status, and lets [`Daemon`]'s drop
//! kill and reap it so no process outlives the test.

use std::ffi::CString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{
    server_binary, set_limits, signal, test_threads, wait_for_listening_port, Limit, TempDir,
    STOP_TIMEOUT,
};

/// How long a launcher may take to exit (it waits for the daemon to serve).
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the tests run as root (they are meant to: -u needs it).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Skips (returns true, with a note) when not root.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("{test}: skipped, needs root");
    true
}

/// Uid and gid of `user` from the password database.
pub fn user_ids(user: &str) -> (u32, u32) {
    let name = CString::new(user).unwrap();
    // SAFETY: getpwnam returns NULL or a static entry read at once.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        assert!(!pw.is_null(), "no user {user}");
        ((*pw).pw_uid, (*pw).pw_gid)
    }
}

/// Gives `path` to `user` (and that user's group).
pub fn chown_to(path: &Path, user: &str) {
    let (uid, gid) = user_ids(user);
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// Makes this process the reaper of orphaned descendants (the daemons).
pub fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "prctl(PR_SET_CHILD_SUBREAPER)");
}

/// What a launcher run left behind.
pub struct Launch {
    /// Exit status of the launcher (the process started with -d).
    pub status: ExitStatus,
    /// What it and the daemon wrote to stdout/stderr (the log file).
    pub log: PathBuf,
}

impl Launch {
    /// The log file's text so far (empty if unreadable).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Runs `memcacheq <args>` with stdin from /dev/null and stdout and stderr
/// appended to `log`, as `memcacheq ... > LOG 2>&1` would, in `cwd`, and
/// waits for the launcher to exit. Each `(resource, soft, hard)` of
/// `limits` is set in the started process before it executes the binary.
pub fn launch_in(cwd: &Path, log: &Path, args: &[String], limits: &[Limit]) -> Launch {
    become_subreaper();
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log");
    let err = out.try_clone().expect("dup log");
    let mut cmd = Command::new(server_binary());
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    set_limits(&mut cmd, limits);
    let mut child = cmd.spawn().expect("spawn memcacheq");
    let deadline = Instant::now() + LAUNCH_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "memcacheq {} did not exit within {LAUNCH_TIMEOUT:?}; log:\n{}",
                args.join(" "),
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    Launch {
        status,
        log: log.to_path_buf(),
    }
}

/// A running daemon found through its pid file. Dropping it kills it with
/// SIGKILL and reaps it.
pub struct Daemon {
    /// Its process id, from the pid file.
    pub pid: i32,
    /// `Some` once it exited and was reaped.
    exited: Option<i32>,
    /// The pid file it was started with (-P).
    pub pid_file: PathBuf,
    /// The log its stdout and stderr go to.
    pub log: PathBuf,
}

impl Daemon {
    /// The process's `/proc` directory.
    pub fn proc(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}", self.pid))
    }

    /// A line of `/proc/PID/status` by its key, e.g. "Uid".
    pub fn status_field(&self, key: &str) -> String {
        let text = fs::read_to_string(self.proc().join("status")).expect("read status");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {key} in /proc/{}/status", self.pid))
            .trim()
            .to_string()
    }

    /// Soft and hard values of a `/proc/PID/limits` row, e.g.
    /// "Max core file size".
    pub fn limit(&self, name: &str) -> (String, String) {
        let text = fs::read_to_string(self.proc().join("limits")).expect("read limits");
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in limits:\n{text}"));
        let mut words = line[name.len()..].split_whitespace();
        (
            words.next().unwrap().to_string(),
            words.next().unwrap().to_string(),
        )
    }

    /// Where `/proc/PID/<link>` points (e.g. "cwd", "fd/0").
    pub fn link(&self, link: &str) -> PathBuf {
        fs::read_link(self.proc().join(link)).expect("read_link")
    }

    /// The TCP port the daemon listens on (it serves once its launcher
    /// exited 0, so the port is there or appears at once).
    pub fn tcp_port(&self) -> u16 {
        wait_for_listening_port(self.pid as u32, LAUNCH_TIMEOUT, |_| true)
            .unwrap_or_else(|| panic!("daemon {} listens on no TCP port", self.pid))
    }

    /// Field `n` (1-based, as in proc(5)) of `/proc/PID/stat`.
    pub fn stat_field(&self, n: usize) -> String {
        let text = fs::read_to_string(self.proc().join("stat")).expect("read stat");
        // The command name may hold spaces; fields resume after its ')'.
        let rest = &text[text.rfind(')').expect("comm") + 2..];
        rest.split_whitespace()
            .nth(n - 3)
            .expect("field")
            .to_string()
    }

    /// Sends `sig`.
    pub fn signal(&self, sig: libc::c_int) {
        signal(self.pid as u32, sig);
    }

    /// Non-blocking reap; the raw wait status once it exited.
    pub fn try_reap(&mut self) -> Option<i32> {
        if self.exited.is_none() {
            let mut status = 0;
            // SAFETY: waitpid on our (adopted) child with a valid pointer.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if rc == self.pid {
                self.exited = Some(status);
            } else if rc < 0 {
                panic!(
                    "waitpid({}): {} (not our child?)",
                    self.pid,
                    std::io::Error::last_os_error()
                );
            }
        }
        self.exited
    }

    /// Waits until the daemon is gone; panics after [`STOP_TIMEOUT`].
    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.try_reap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon {} still running {STOP_TIMEOUT:?} after the signal; log:\n{}",
                self.pid,
                fs::read_to_string(&self.log).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig`, waits for the exit and asserts it was `exit(0)`.
    pub fn stop_with(&mut self, sig: libc::c_int) {
        self.signal(sig);
        let status = self.wait_exit();
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "daemon did not exit 0 after signal {sig}: raw wait status {status:#x}; log:\n{}",
            fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited.is_none() {
            // SAFETY: kill and waitpid with plain integers.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                let mut status = 0;
                libc::waitpid(self.pid, &mut status, 0);
            }
        }
    }
}

/// A scratch directory for one daemon: `home/`, `memcacheq.pid`,
/// `memcacheq.log`; removed on drop.
pub struct Site {
    /// Owns the directory.
    dir: TempDir,
}

impl Site {
    /// A fresh site whose temp dir name contains `tag`.
    pub fn new(tag: &str) -> Site {
        let dir = TempDir::new(tag);
        fs::create_dir(dir.path().join("home")).expect("mkdir home");
        Site { dir }
    }

    /// A site whose directory and home belong to `user`.
    pub fn owned_by(tag: &str, user: &str) -> Site {
        let site = Site::new(tag);
        chown_to(site.dir.path(), user);
        chown_to(&site.home(), user);
        site
    }

    /// The site directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's home (-H).
    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    /// The pid file (-P).
    pub fn pid_file(&self) -> PathBuf {
        self.path().join("memcacheq.pid")
    }

    /// Where the daemon's stdout and stderr go.
    pub fn log(&self) -> PathBuf {
        self.path().join("memcacheq.log")
    }

    /// `-d -P <pid> -H <home> <extra>`.
    pub fn daemon_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "-d".into(),
            "-P".into(),
            self.pid_file().display().to_string(),
            "-H".into(),
            self.home().display().to_string(),
        ];
        args.extend(test_threads(extra));
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Starts a daemon with `-d -P -H` plus `extra`, run in the site
    /// directory, and returns it; panics with the log if the launcher does
    /// not exit 0.
    pub fn start(&self, extra: &[&str]) -> Daemon {
        self.start_in(self.path(), extra)
    }

    /// [`Site::start`] run in `cwd`.
    pub fn start_in(&self, cwd: &Path, extra: &[&str]) -> Daemon {
        let launch = launch_in(cwd, &self.log(), &self.daemon_args(extra), &[]);
        assert!(
            launch.status.success(),
            "memcacheq {} failed to start ({}); log:\n{}",
            extra.join(" "),
            launch.status,
            launch.log_text()
        );
        self.adopt()
    }

    /// The daemon named by the pid file.
    pub fn adopt(&self) -> Daemon {
        let text = fs::read_to_string(self.pid_file()).expect("pid file after a successful start");
        assert!(text.ends_with('\n'), "pid file {text:?} lacks its newline");
        let pid: i32 = text
            .trim_end()
            .parse()
            .unwrap_or_else(|_| panic!("pid file holds {text:?}"));
        let daemon = Daemon {
            pid,
            exited: None,
            pid_file: self.pid_file(),
            log: self.log(),
        };
        assert!(
            daemon.proc().exists(),
            "pid {pid} from the pid file is not running"
        );
        daemon
    }
}

/// A daemon of `site` on `-p 0` plus `extra`; the daemon and the port the
/// kernel gave it.
pub fn start_tcp(site: &Site, extra: &[&str]) -> (Daemon, u16) {
    let mut args = vec!["-p", "0"];
    args.extend_from_slice(extra);
    let daemon = site.start(&args);
    let port = daemon.tcp_port();
    (daemon, port)
}
