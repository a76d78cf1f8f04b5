//! Process-level operating system calls that std does not offer: signals,
//! user switching, resource limits, CPU times, forking and the listen
//! backlog.
//!
//! The crate denies `unsafe` code; this module and `bdb` (every call into
//! Berkeley DB) are the two that allow it, and every `unsafe` block here
//! carries a `// SAFETY:` comment.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// Write end of the signal pipe; -1 until installed.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_stop_signal(signal: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe just drops the
        // byte, and one pending byte is enough to stop.
        unsafe { libc::write(fd, &byte as *const u8 as *const libc::c_void, 1) };
    }
}

/// Makes the event loop stop as a stop signal does (from any thread).
pub fn request_stop() {
    on_stop_signal(0);
}

/// Bytes an unprivileged process may still allocate on the filesystem
/// holding `path` (statvfs: available blocks times the fragment size).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statvfs fills the zeroed struct it is given; the path is
    // NUL-terminated and outlives the call.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return Err(io::Error::last_os_error());
        }
        st
    };
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Allocates disk blocks for the first `len` bytes of `file` without
/// changing its size (fallocate with FALLOC_FL_KEEP_SIZE), so that writing
/// them, or touching them through a mapping, cannot fail for lack of space.
pub fn allocate(file: &File, len: u64) -> io::Result<()> {
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    loop {
        // SAFETY: fallocate on a descriptor `file` keeps open for the call.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Routes SIGTERM, SIGINT and SIGQUIT to the returned socket (one byte per
/// signal) and ignores SIGPIPE.
pub fn stop_signals() -> io::Result<UnixStream> {
    let (read_end, write_end) = UnixStream::pair()?;
    read_end.set_nonblocking(true)?;
    write_end.set_nonblocking(true)?;
    let write_fd: RawFd = write_end.into_raw_fd();
    SIGNAL_PIPE.store(write_fd, Ordering::Relaxed);
    // SAFETY: installs a handler that only calls write(2); sigaction is
    // given a fully initialised struct.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_stop_signal as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT] {
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    Ok(read_end)
}

/// Sets the backlog of the listening socket `fd` by calling listen(2)
/// again, which Linux (and the BSDs) allow on a socket already listening.
pub fn set_listen_backlog(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen(2) on a descriptor the caller owns; no memory is
    // passed.
    if unsafe { libc::listen(fd, backlog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the socket `fd` a send timeout (SO_SNDTIMEO): a blocking write
/// that makes no progress for `timeout` fails instead of waiting for good.
/// Linux copies it from a listening socket to the sockets it accepts.
pub fn set_send_timeout(fd: RawFd, timeout: std::time::Duration) -> io::Result<()> {
    let value = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: setsockopt(2) on a descriptor the caller owns, with a
    // timeval on the stack of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            &value as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Turns Nagle's algorithm off on every TCP socket of the process.
/// Berkeley DB's replication manager leaves it on for its connections, so
/// of two small messages sent back to back (a log record, then a request
/// about it) the second waits for the peer's delayed acknowledgement of
/// the first: 40 ms on Linux. Sockets that already have it off, and
/// descriptors that are not TCP sockets, are left as they are.
pub fn tcp_nodelay_everywhere() {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in fds.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads one int from `on`, which outlives the
        // call; on a descriptor that is not a TCP socket (or no longer
        // open) it fails, and the failure is ignored.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                &on as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Whether the process runs with root's real or effective user id.
pub fn is_root() -> bool {
    // SAFETY: getuid and geteuid cannot fail.
    unsafe { libc::getuid() == 0 || libc::geteuid() == 0 }
}

/// Switches to `user`: its group, its supplementary groups, then its uid.
pub fn switch_user(user: &str) -> io::Result<()> {
    let name = CString::new(user).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: getpwnam returns NULL or a pointer to a static entry that we
    // read before any other passwd call.
    let (uid, gid) = unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("can't find the user {user} to switch to"),
            ));
        }
        ((*pw).pw_uid, (*pw).pw_gid)
    };
    // SAFETY: plain system calls with valid arguments; checked below.
    unsafe {
        if libc::setgid(gid) != 0
            || libc::initgroups(name.as_ptr(), gid) != 0
            || libc::setuid(uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises the open-file limit to at least `wanted` descriptors.
pub fn raise_open_files(wanted: u64) -> io::Result<()> {
    // SAFETY: getrlimit/setrlimit on a zeroed struct of the right type.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur >= wanted {
            return Ok(());
        }
        limit.rlim_cur = wanted;
        limit.rlim_max = limit.rlim_max.max(wanted);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// User and system CPU time of this process as `seconds.microseconds`.
pub fn cpu_times() -> (String, String) {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let fmt = |t: libc::timeval| format!("{}.{:06}", t.tv_sec, t.tv_usec);
    (fmt(usage.ru_utime), fmt(usage.ru_stime))
}

/// Raises the core-file size limit as far as allowed (-r); fails when the
/// soft limit is still 0 afterwards, since no core could be written.
pub fn raise_core_limit() -> io::Result<()> {
    // SAFETY: getrlimit/setrlimit on a zeroed struct of the right type.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_CORE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        let unlimited = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        if libc::setrlimit(libc::RLIMIT_CORE, &unlimited) != 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_CORE, &limit);
        }
        if libc::getrlimit(libc::RLIMIT_CORE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur == 0 {
            return Err(io::Error::other("the core-file size limit stays at 0"));
        }
    }
    Ok(())
}

/// What a daemon does with its standard streams once it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdStreams {
    /// Keep them (-v): messages still reach the terminal.
    Keep,
    /// Point them at /dev/null, detaching from the terminal.
    ToDevNull,
}

/// Held by a daemon child until it serves; tells the waiting parent.
pub struct DaemonReady(UnixStream);

impl DaemonReady {
    /// Lets the parent exit 0, then does `streams`.
    pub fn serving(mut self, streams: StdStreams) -> io::Result<()> {
        use std::io::Write;
        self.0.write_all(b"1")?;
        if streams == StdStreams::ToDevNull {
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
            for target in [0, 1, 2] {
                // SAFETY: dup2 onto the standard descriptors; `null` stays
                // open for the call.
                if unsafe { libc::dup2(fd, target) } < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

/// Forks (-d). The parent waits until the child calls
/// [`DaemonReady::serving`], then exits 0, or exits 1 when the child dies
/// first (its error went to the shared stderr). The child starts a new
/// session and goes on. Must be called before any thread is started.
pub fn daemonize() -> io::Result<DaemonReady> {
    use std::io::Read;
    let (mut parent_end, child_end) = UnixStream::pair()?;
    // SAFETY: the process is single-threaded here, so the child is a
    // complete copy.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            drop(parent_end);
            // SAFETY: setsid has no memory-safety preconditions.
            if unsafe { libc::setsid() } < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(DaemonReady(child_end))
        }
        _ => {
            drop(child_end);
            let mut byte = [0u8; 1];
            let code = match parent_end.read(&mut byte) {
                Ok(1) if byte[0] == b'1' => 0,
                _ => 1,
            };
            std::process::exit(code)
        }
    }
}

/// Lets the kernel write core files again after a uid change, which
/// otherwise turns them off (-r with -u).
pub fn allow_core_dumps() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_DUMPABLE, 1) has no memory effects.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
