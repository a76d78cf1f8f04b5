//! Operations: the process-level flags (`-d -P -u -r -c -s -a -l -U -t -h -i`),
//! the signals, and the seeds' full init-script command line.
//!
//! Every server here is started the way an init script starts it, with
//! the launcher of tests/common/daemon.rs: the real binary with
//! `-d -P FILE`, the launcher must exit 0 once the daemon serves, and the
//! daemon is found through its pid file. The effects are checked from
//! outside: `/proc/PID/...`, the sockets, the files on disk.

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::binary_frames;
use common::daemon::{is_root, launch_in, skip_unless_root, start_tcp, user_ids, Site};
use common::{listening_ports, output_text, server_binary, show, value_reply, Client, END, STORED};

/// Asserts a set and a get round-trip on `client`.
fn round_trip(client: &mut Client, queue: &str, body: &[u8]) {
    client.set(queue, 0, body);
    let msg = client.get(queue).expect("the message just set");
    assert_eq!(show(&msg.body), show(body));
}

/// Writes `request` on any stream (TCP, IPv6, unix socket) and reads up to
/// `reply_len` bytes of reply.
fn exchange(stream: &mut (impl Read + Write), request: &[u8], reply_len: usize) -> Vec<u8> {
    stream.write_all(request).expect("write");
    let mut got = vec![0u8; reply_len];
    let mut have = 0;
    while have < reply_len {
        match stream.read(&mut got[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read after {}: {e}", show(&got[..have])),
        }
    }
    got.truncate(have);
    got
}

/// The set+get exchange on a raw stream and its exact expected bytes.
fn raw_round_trip(stream: &mut (impl Read + Write), queue: &str, body: &[u8]) {
    let mut request = common::set_cmd(queue.as_bytes(), 0, body);
    request.extend_from_slice(format!("get {queue}\r\n").as_bytes());
    let mut expected = STORED.to_vec();
    expected.extend(value_reply(queue.as_bytes(), "0", body));
    expected.extend_from_slice(END);
    let got = exchange(stream, &request, expected.len());
    assert_eq!(show(&got), show(&expected));
}

// ---------------------------------------------------------------------------
// -d and -P
// ---------------------------------------------------------------------------

/// -d: the launcher exits 0 only once the daemon serves; the daemon leads
/// its own session, sits in /, has stdio on /dev/null; -P holds its pid
/// and goes away on SIGTERM, which ends the daemon with status 0.
#[test]
fn daemon_detaches_writes_pid_file_and_removes_it_on_sigterm() {
    let site = Site::new("daemon");
    let (mut daemon, port) = start_tcp(&site, &["-u", "root"]);

    // Serving as soon as the launcher returned: no retry loop.
    let mut client = Client::connect(port);
    round_trip(&mut client, "daemonq", b"detached");

    assert_eq!(
        daemon.stat_field(6),
        daemon.pid.to_string(),
        "daemon is not its session leader (setsid)"
    );
    assert_eq!(
        daemon.link("cwd"),
        Path::new("/"),
        "-d without -r chdirs to /"
    );
    for fd in 0..3 {
        assert_eq!(
            daemon.link(&format!("fd/{fd}")),
            Path::new("/dev/null"),
            "fd {fd} of a daemon without -v"
        );
    }
    assert_eq!(
        fs::read_to_string(&daemon.pid_file).unwrap(),
        format!("{}\n", daemon.pid)
    );

    drop(client);
    daemon.stop_with(libc::SIGTERM);
    assert!(!daemon.pid_file.exists(), "pid file left after SIGTERM");
}

/// -d -v keeps stdout and stderr (the init script's log) instead of
/// /dev/null; the log shows the daemon's messages.
#[test]
fn daemon_with_verbose_keeps_its_log() {
    let site = Site::new("daemon-v");
    let (mut daemon, _port) = start_tcp(&site, &["-u", "root", "-v"]);
    for fd in [1, 2] {
        assert_eq!(
            daemon.link(&format!("fd/{fd}")),
            site.log(),
            "fd {fd} with -v"
        );
    }
    daemon.stop_with(libc::SIGTERM);
    let log = fs::read_to_string(site.log()).unwrap();
    assert!(log.contains("serving"), "log of -d -v:\n{log}");
}

/// A daemon that fails after the fork (here: the home is a regular file)
/// makes the launcher exit 1, its message reaches the launcher's stderr,
/// and no pid file is left behind.
#[test]
fn daemon_start_failure_exits_1_with_the_message() {
    let site = Site::new("daemon-fail");
    let not_a_dir = site.path().join("file");
    fs::write(&not_a_dir, b"x").unwrap();
    let args: Vec<String> = [
        "-d",
        "-u",
        "root",
        "-p",
        "0",
        "-P",
        &site.pid_file().display().to_string(),
        "-H",
        &not_a_dir.join("home").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let launch = launch_in(site.path(), &site.log(), &args, &[]);
    assert_eq!(launch.status.code(), Some(1), "log:\n{}", launch.log_text());
    assert!(
        launch.log_text().contains("can't create home"),
        "log:\n{}",
        launch.log_text()
    );
    assert!(!site.pid_file().exists(), "pid file left by a failed start");
}

/// A stale pid file (from a crash) is overwritten with the new pid.
#[test]
fn stale_pid_file_is_overwritten() {
    let site = Site::new("stale-pid");
    fs::write(site.pid_file(), "999999999\nleftover junk\n").unwrap();
    let (mut daemon, _port) = start_tcp(&site, &["-u", "root"]);
    assert_eq!(
        fs::read_to_string(site.pid_file()).unwrap(),
        format!("{}\n", daemon.pid)
    );
    daemon.stop_with(libc::SIGTERM);
    assert!(!site.pid_file().exists());
}

// ---------------------------------------------------------------------------
// -u
// ---------------------------------------------------------------------------

/// -u nobody: uid, gid and supplementary groups are nobody's, the data
/// files belong to nobody, and the pid file (in a directory nobody can
/// write) is still removed after the switch.
#[test]
fn user_switch_sets_ids_groups_and_file_owner() {
    if skip_unless_root("user_switch") {
        return;
    }
    let (uid, gid) = user_ids("nobody");
    let site = Site::owned_by("user", "nobody");
    let (mut daemon, port) = start_tcp(&site, &["-u", "nobody"]);

    let ids = |key: &str| -> Vec<u32> {
        daemon
            .status_field(key)
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    assert_eq!(ids("Uid"), vec![uid; 4], "real, effective, saved, fs uid");
    assert_eq!(ids("Gid"), vec![gid; 4], "real, effective, saved, fs gid");
    let out = Command::new("id").args(["-G", "nobody"]).output().unwrap();
    let mut expected: Vec<u32> = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    expected.sort();
    let mut groups = ids("Groups");
    groups.sort();
    assert_eq!(groups, expected, "supplementary groups (initgroups)");
    assert!(!groups.contains(&0), "root's group 0 kept after -u nobody");

    let mut client = Client::connect(port);
    round_trip(&mut client, "owned", b"by nobody");
    for name in common::list_dir(&site.home()) {
        let meta = fs::metadata(site.home().join(&name)).unwrap();
        assert_eq!(meta.uid(), uid, "{name} not owned by nobody");
    }
    drop(client);
    daemon.stop_with(libc::SIGTERM);
    assert!(!site.pid_file().exists(), "pid file left after -u nobody");
}

/// Root without -u is refused with the original's message and exit 1.
#[test]
fn root_without_u_is_refused() {
    if skip_unless_root("root_without_u") {
        return;
    }
    let site = Site::new("root");
    let launch = launch_in(
        site.path(),
        &site.log(),
        &site.daemon_args(&["-p", "0"]),
        &[],
    );
    assert_eq!(launch.status.code(), Some(1), "log:\n{}", launch.log_text());
    assert!(
        launch
            .log_text()
            .contains("can't run as root without the -u switch"),
        "log:\n{}",
        launch.log_text()
    );
    assert!(!site.pid_file().exists());
}

// ---------------------------------------------------------------------------
// -r
// ---------------------------------------------------------------------------

/// -r raises the core-file limit (soft limit unlimited here) and keeps the
/// working directory; without -r the limit is left alone and cwd is /.
#[test]
#[allow(unsafe_code)] // getrlimit
fn core_limit_raised_and_cwd_kept_with_r() {
    let site = Site::new("core");
    let cwd = site.path().join("cwd");
    fs::create_dir(&cwd).unwrap();
    let mut daemon = site.start_in(&cwd, &["-u", "root", "-r", "-p", "0"]);
    let (soft, hard) = daemon.limit("Max core file size");
    assert_eq!(soft, hard, "soft core limit not raised to the hard limit");
    if hard == "unlimited" && is_root() {
        assert_eq!(soft, "unlimited");
    }
    assert_eq!(daemon.link("cwd"), cwd, "-d -r keeps the working directory");
    daemon.stop_with(libc::SIGTERM);

    // Without -r: the inherited soft limit stays, cwd is /.
    let mut ours: libc::rlimit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut ours) }, 0);
    let mut daemon = site.start_in(&cwd, &["-u", "root", "-p", "0"]);
    let (soft, _) = daemon.limit("Max core file size");
    let expected = if ours.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        ours.rlim_cur.to_string()
    };
    assert_eq!(soft, expected, "core limit changed without -r");
    assert_eq!(daemon.link("cwd"), Path::new("/"));
    daemon.stop_with(libc::SIGTERM);
}

/// -r with -u keeps the process dumpable after the uid change (the kernel
/// turns core dumps off on setuid otherwise): its /proc files then belong
/// to the user instead of root.
#[test]
fn core_dumps_stay_possible_after_switching_user() {
    if skip_unless_root("core_after_u") {
        return;
    }
    let site = Site::owned_by("coreu", "nobody");
    let (mut daemon, _) = start_tcp(&site, &["-u", "nobody", "-r"]);
    let owner = fs::metadata(format!("/proc/{}/environ", daemon.pid))
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap();
    assert_eq!(owner, user_ids("nobody").0, "process not dumpable after -u");
    daemon.stop_with(libc::SIGTERM);
}

/// -r fails loudly (exit 1) when the hard core limit is 0.
#[test]
fn core_limit_zero_hard_limit_is_refused() {
    let site = Site::new("core0");
    let args = site.daemon_args(&["-u", "root", "-r", "-p", "0"]);
    let launch = launch_in(
        site.path(),
        &site.log(),
        &args,
        &[(libc::RLIMIT_CORE, 0, 0)],
    );
    assert_eq!(launch.status.code(), Some(1), "log:\n{}", launch.log_text());
    assert!(
        launch.log_text().contains("core"),
        "no mention of the core limit:\n{}",
        launch.log_text()
    );
    assert!(!site.pid_file().exists());
}

// ---------------------------------------------------------------------------
// -c
// ---------------------------------------------------------------------------

/// -c N raises the open-file limit to at least N + 256: started with a
/// soft limit of 512 (hard limit unchanged), `-c 1024` ends with >= 1280.
#[test]
#[allow(unsafe_code)] // getrlimit
fn max_connections_raises_open_file_limit() {
    let mut ours = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(
        // SAFETY: getrlimit fills the struct it is given.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut ours) },
        0
    );
    if ours.rlim_max < 1280 {
        eprintln!(
            "open_file_limit: skipped, hard limit {} < 1280",
            ours.rlim_max
        );
        return;
    }
    let site = Site::new("nofile");
    let args = site.daemon_args(&["-u", "root", "-c", "1024", "-p", "0"]);
    let limits = [(libc::RLIMIT_NOFILE, 512, ours.rlim_max)];
    let launch = launch_in(site.path(), &site.log(), &args, &limits);
    assert!(launch.status.success(), "log:\n{}", launch.log_text());
    let mut daemon = site.adopt();
    let (soft, _) = daemon.limit("Max open files");
    let soft: u64 = soft.parse().expect("numeric open-file limit");
    assert!(soft >= 1280, "open-file limit {soft} < 1024 + 256");
    daemon.stop_with(libc::SIGTERM);
}

/// -c 2: the third connection gets the refusal and is closed; once one of
/// the two closes, a new connection is served again.
#[test]
fn max_connections_refuses_the_extra_connection_and_recovers() {
    let site = Site::new("maxconn");
    let (mut daemon, port) = start_tcp(&site, &["-u", "root", "-c", "2"]);
    let mut first = Client::connect(port);
    first.call(b"version\r\n", common::VERSION);
    let mut second = Client::connect(port);
    second.call(b"version\r\n", common::VERSION);

    let mut third = Client::connect(port);
    third.expect(b"SERVER_ERROR too many open connections\r\n");
    third.expect_closed();
    // The two accepted ones still work.
    first.call(b"version\r\n", common::VERSION);
    second.call(b"version\r\n", common::VERSION);

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = Client::connect(port);
        again.send(b"version\r\n");
        let line = again.try_read_line();
        if line.as_deref() == Some(&b"VERSION 0.2.1"[..]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no connection accepted after one closed; last reply {:?}",
            line.map(|l| show(&l))
        );
        thread::sleep(Duration::from_millis(50));
    }
    second.call(b"version\r\n", common::VERSION);
    drop(second);
    daemon.stop_with(libc::SIGTERM);
}

// ---------------------------------------------------------------------------
// -s and -a
// ---------------------------------------------------------------------------

/// -s FILE -a 640: a unix socket with exactly that mode replaces a stale
/// socket file, serves the protocol, and TCP and UDP are off.
#[test]
fn unix_socket_with_mask_replaces_a_stale_socket() {
    let site = Site::new("unix");
    let path = site.path().join("mcq.sock");
    // A stale socket file, as a crashed server leaves it.
    drop(UnixListener::bind(&path).unwrap());
    assert!(fs::metadata(&path).unwrap().file_type().is_socket());
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    drop(udp);

    let sock = path.display().to_string();
    let u = udp_port.to_string();
    let mut daemon = site.start(&["-u", "root", "-s", &sock, "-a", "640", "-p", "0", "-U", &u]);

    let meta = fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket(), "{sock} is not a socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o640, "socket mode");

    let mut stream = UnixStream::connect(&path).expect("connect to the unix socket");
    stream
        .set_read_timeout(Some(common::REPLY_TIMEOUT))
        .unwrap();
    raw_round_trip(&mut stream, "unixq", b"over a unix socket");
    binary_round_trip(&path);

    let tcp = listening_ports(daemon.pid as u32);
    assert!(tcp.is_empty(), "TCP ports {tcp:?} open despite -s");
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    probe
        .send_to(
            &udp_request(1, 0, 1, b"version\r\n"),
            ("127.0.0.1", udp_port),
        )
        .unwrap();
    let mut buf = [0u8; 2048];
    assert!(
        probe.recv_from(&mut buf).is_err(),
        "UDP answered despite -s"
    );

    drop(stream);
    daemon.stop_with(libc::SIGTERM);
}

/// Without -a the unix socket has mode 0700.
#[test]
fn unix_socket_default_mask_is_0700() {
    let site = Site::new("unix-default");
    let path = site.path().join("mcq.sock");
    let sock = path.display().to_string();
    let mut daemon = site.start(&["-u", "root", "-s", &sock]);
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "default socket mode {mode:o}");
    let mut stream = UnixStream::connect(&path).unwrap();
    stream
        .set_read_timeout(Some(common::REPLY_TIMEOUT))
        .unwrap();
    let got = exchange(&mut stream, b"version\r\n", common::VERSION.len());
    assert_eq!(show(&got), show(common::VERSION));
    drop(stream);
    daemon.stop_with(libc::SIGTERM);
}

// ---------------------------------------------------------------------------
// -l
// ---------------------------------------------------------------------------

/// Whether a TCP connection to `addr` is accepted within a second.
fn accepts(addr: &str, port: u16) -> bool {
    let addr = std::net::SocketAddr::new(addr.parse().unwrap(), port);
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// -l 127.0.0.1 listens there only: 127.0.0.2 (also loopback, reachable
/// when bound to every interface) and ::1 are refused.
#[test]
fn listen_on_one_ipv4_address() {
    let site = Site::new("listen4");
    // Control: bound to every IPv4 interface, 127.0.0.2 is reachable.
    let (mut all, port) = start_tcp(&site, &["-u", "root"]);
    assert!(
        accepts("127.0.0.2", port),
        "control: 127.0.0.2 not reachable"
    );
    all.stop_with(libc::SIGTERM);

    let (mut daemon, port) = start_tcp(&site, &["-u", "root", "-l", "127.0.0.1"]);
    let mut client = Client::connect(port);
    round_trip(&mut client, "v4", b"loopback only");
    assert!(
        !accepts("127.0.0.2", port),
        "-l 127.0.0.1 accepted on 127.0.0.2"
    );
    assert!(!accepts("::1", port), "-l 127.0.0.1 accepted on ::1");
    drop(client);
    daemon.stop_with(libc::SIGTERM);
}

/// -l ::1 serves over IPv6 and not on 127.0.0.1.
#[test]
fn listen_on_ipv6_loopback() {
    let site = Site::new("listen6");
    let (mut daemon, port) = start_tcp(&site, &["-u", "root", "-l", "::1"]);
    let mut stream = TcpStream::connect(("::1", port)).expect("connect [::1]");
    stream
        .set_read_timeout(Some(common::REPLY_TIMEOUT))
        .unwrap();
    raw_round_trip(&mut stream, "v6", b"over IPv6");
    assert!(!accepts("127.0.0.1", port), "-l ::1 accepted on 127.0.0.1");
    drop(stream);
    daemon.stop_with(libc::SIGTERM);
}

// ---------------------------------------------------------------------------
// -U
// ---------------------------------------------------------------------------

/// A datagram: the 8-byte header (request id, sequence, total, 0) + payload.
fn udp_request(id: u16, seq: u16, total: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in [id, seq, total, 0] {
        out.extend_from_slice(&field.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// One decoded reply datagram.
#[derive(Debug)]
struct Datagram {
    id: u16,
    seq: u16,
    total: u16,
    reserved: u16,
    payload: Vec<u8>,
}

fn recv_datagram(socket: &UdpSocket) -> Datagram {
    let mut buf = [0u8; 65536];
    let (n, _) = socket.recv_from(&mut buf).expect("a UDP reply");
    assert!(n >= 8, "datagram of {n} bytes has no header");
    let field = |i: usize| u16::from_be_bytes([buf[2 * i], buf[2 * i + 1]]);
    Datagram {
        id: field(0),
        seq: field(1),
        total: field(2),
        reserved: field(3),
        payload: buf[8..n].to_vec(),
    }
}

/// Sends one request datagram and collects the whole reply (all `total`
/// datagrams), checking every header; returns the payloads in order.
fn udp_call(socket: &UdpSocket, port: u16, id: u16, payload: &[u8]) -> Vec<Datagram> {
    socket
        .send_to(&udp_request(id, 0, 1, payload), ("127.0.0.1", port))
        .unwrap();
    let first = recv_datagram(socket);
    let total = first.total as usize;
    let mut all = vec![first];
    while all.len() < total {
        all.push(recv_datagram(socket));
    }
    all.sort_by_key(|d| d.seq);
    for (i, d) in all.iter().enumerate() {
        assert_eq!(
            (d.id, d.seq as usize, d.total as usize, d.reserved),
            (id, i, total, 0),
            "header of datagram {i}"
        );
        assert!(
            d.payload.len() <= 1400,
            "payload of {} bytes",
            d.payload.len()
        );
    }
    all
}

/// -U: set and get over UDP with memcache framing; a 3000-byte message
/// (-B 4096, with -A 8192 since a record must fit a page) comes back in 3
/// datagrams (1400 + 1400 + rest) whose payloads concatenate to the exact
/// TCP reply; multi-packet requests are refused, and so are requests whose
/// reply could be much larger than they are (no reflection amplifier).
#[test]
fn udp_framing_splits_large_replies_and_refuses_multi_packet_requests() {
    let site = Site::new("udp");
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = probe.local_addr().unwrap().port();
    drop(probe);
    let u = udp_port.to_string();
    let (mut daemon, _port) =
        start_tcp(&site, &["-u", "root", "-A", "8192", "-B", "4096", "-U", &u]);

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(common::REPLY_TIMEOUT))
        .unwrap();

    let small = udp_call(&socket, udp_port, 7, &common::set_cmd(b"udpq", 0, b"hi"));
    assert_eq!(small.len(), 1);
    assert_eq!(show(&small[0].payload), show(STORED));

    let body: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let stored = udp_call(&socket, udp_port, 8, &common::set_cmd(b"udpq", 5, &body));
    assert_eq!(show(&stored[0].payload), show(STORED));

    let hi = udp_call(&socket, udp_port, 0x1234, b"get udpq\r\n");
    let mut expected = value_reply(b"udpq", "0", b"hi");
    expected.extend_from_slice(END);
    assert_eq!(hi.len(), 1);
    assert_eq!(show(&hi[0].payload), show(&expected));

    let big = udp_call(&socket, udp_port, 0xbeef, b"get udpq\r\n");
    let mut expected = value_reply(b"udpq", "5", &body);
    expected.extend_from_slice(END);
    assert_eq!(
        big.len(),
        3,
        "datagrams for a {}-byte reply",
        expected.len()
    );
    assert_eq!(big[0].payload.len(), 1400);
    assert_eq!(big[1].payload.len(), 1400);
    let joined: Vec<u8> = big.iter().flat_map(|d| d.payload.clone()).collect();
    assert_eq!(show(&joined), show(&expected));

    let refusal = b"SERVER_ERROR multi-packet request not supported\r\n";
    for (id, seq, total) in [(21u16, 0u16, 2u16), (22, 1, 1)] {
        socket
            .send_to(
                &udp_request(id, seq, total, b"get udpq\r\n"),
                ("127.0.0.1", udp_port),
            )
            .unwrap();
        let d = recv_datagram(&socket);
        assert_eq!((d.id, d.seq, d.total, d.reserved), (id, 0, 1, 0));
        assert_eq!(show(&d.payload), show(refusal), "seq {seq} total {total}");
    }
    // Nothing was taken by the refused requests: the queue is empty and
    // the server still answers.
    let empty = udp_call(&socket, udp_port, 9, b"get udpq\r\n");
    assert_eq!(show(&empty[0].payload), show(END));

    // A reply may be at most 8 times its request, plus one message for a
    // get of one key: `stats` from a 15-byte datagram, or a get of several
    // queues, is refused before it runs, and takes nothing.
    let too_large = b"SERVER_ERROR reply too large for UDP\r\n";
    let stats = udp_call(&socket, udp_port, 10, b"stats\r\n");
    assert_eq!(stats.len(), 1);
    assert_eq!(show(&stats[0].payload), show(too_large));
    for q in [b"ua", b"ub", b"uc"] {
        let stored = udp_call(&socket, udp_port, 11, &common::set_cmd(q, 0, &body));
        assert_eq!(show(&stored[0].payload), show(STORED));
    }
    let several = udp_call(&socket, udp_port, 12, b"get ua ub uc\r\n");
    assert_eq!(show(&several[0].payload), show(too_large));
    for (id, q) in [(13, "ua"), (14, "ub"), (15, "uc")] {
        let one = udp_call(&socket, udp_port, id, format!("get {q}\r\n").as_bytes());
        let joined: Vec<u8> = one.iter().flat_map(|d| d.payload.clone()).collect();
        assert_eq!(
            show(&joined),
            show(&[&value_reply(q.as_bytes(), "0", &body)[..], END].concat())
        );
    }

    // Meta commands over UDP, answered in meta form.
    let meta = udp_call(&socket, udp_port, 16, b"ms um 2 F5 O7\r\nhi\r\n");
    assert_eq!(show(&meta[0].payload), "HD O7\\r\\n");
    let meta = udp_call(&socket, udp_port, 17, b"mg um v f k\r\n");
    assert_eq!(show(&meta[0].payload), "VA 2 f5 kum\\r\\nhi\\r\\n");
    let meta = udp_call(&socket, udp_port, 18, b"mg um v\r\nmn\r\n");
    assert_eq!(show(&meta[0].payload), "EN\\r\\nMN\\r\\n");

    daemon.stop_with(libc::SIGTERM);
}

/// Without -U nothing answers UDP on the TCP port.
#[test]
fn udp_is_off_by_default() {
    let site = Site::new("udp-off");
    let (mut daemon, port) = start_tcp(&site, &["-u", "root"]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket
        .send_to(&udp_request(1, 0, 1, b"version\r\n"), ("127.0.0.1", port))
        .unwrap();
    let mut buf = [0u8; 2048];
    assert!(socket.recv_from(&mut buf).is_err(), "UDP reply without -U");
    daemon.stop_with(libc::SIGTERM);
}

// ---------------------------------------------------------------------------
// -t, -h, -i, unknown flags
// ---------------------------------------------------------------------------

/// -t N is reported by `stats`; -t 0 is refused with exit 1.
#[test]
fn threads_flag_is_reported_and_zero_refused() {
    let site = Site::new("threads");
    let (mut daemon, port) = start_tcp(&site, &["-u", "root", "-t", "7"]);
    assert_eq!(Client::connect(port).stat("threads"), 7);
    daemon.stop_with(libc::SIGTERM);

    let out = Command::new(server_binary())
        .args(["-t", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("Number of threads must be greater than 0"),
        "stderr: {text}"
    );
}

/// -h lists every flag and exits 0; -i prints the license and exits 0;
/// -z is refused with `Illegal argument "z"` and exit 1.
#[test]
fn help_license_and_unknown_flag() {
    let out = Command::new(server_binary()).arg("-h").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in "aUpschivldruPtHmALCTSeDEBNR".chars() {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("-{flag}"))),
            "-h does not list -{flag}:\n{help}"
        );
    }

    let out = Command::new(server_binary()).arg("-i").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .to_lowercase()
            .contains("license"),
        "-i output: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = Command::new(server_binary()).arg("-z").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = output_text(&out);
    assert!(text.contains("Illegal argument \"z\""), "output: {text}");
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

/// SIGTERM, SIGINT and SIGQUIT each stop the daemon with exit status 0,
/// remove the pid file and keep the data; SIGPIPE is ignored.
#[test]
fn stop_signals_are_graceful_and_sigpipe_ignored() {
    let site = Site::new("signals");
    for (i, sig) in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT]
        .into_iter()
        .enumerate()
    {
        let (mut daemon, port) = start_tcp(&site, &["-u", "root"]);
        let ignored = u64::from_str_radix(&daemon.status_field("SigIgn"), 16).unwrap();
        assert_ne!(
            ignored & (1 << (libc::SIGPIPE - 1)),
            0,
            "SIGPIPE not ignored"
        );
        let mut client = Client::connect(port);
        if i > 0 {
            // The message set before the previous signal survived it.
            let msg = client.get("sigq").expect("message kept across the stop");
            assert_eq!(msg.body, format!("before {}", i - 1).into_bytes());
        }
        client.set("sigq", 0, format!("before {i}").as_bytes());
        drop(client);
        daemon.stop_with(sig);
        assert!(
            !site.pid_file().exists(),
            "pid file left after signal {sig}"
        );
    }
}

/// A second (and third) signal while the daemon shuts down does no harm:
/// it still exits 0 and the data is intact.
#[test]
fn repeated_stop_signals_are_harmless() {
    let site = Site::new("signals2");
    let (mut daemon, port) = start_tcp(&site, &["-u", "root"]);
    let mut client = Client::connect(port);
    client.set("twice", 0, b"kept");
    drop(client);
    daemon.signal(libc::SIGTERM);
    daemon.signal(libc::SIGTERM);
    let _ = unsafe_signal(daemon.pid, libc::SIGINT);
    let status = daemon.wait_exit();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "raw wait status {status:#x}; log:\n{}",
        fs::read_to_string(site.log()).unwrap_or_default()
    );
    assert!(!site.pid_file().exists());

    let (mut daemon, port) = start_tcp(&site, &["-u", "root"]);
    let msg = Client::connect(port).get("twice").expect("message kept");
    assert_eq!(msg.body, b"kept");
    daemon.stop_with(libc::SIGTERM);
}

/// kill(2) that tolerates a process that already exited.
#[allow(unsafe_code)]
fn unsafe_signal(pid: i32, sig: libc::c_int) -> i32 {
    // SAFETY: kill with plain integers.
    unsafe { libc::kill(pid, sig) }
}

// ---------------------------------------------------------------------------
// The seeds' command line
// ---------------------------------------------------------------------------

/// `memcacheq -d -r -u nobody -p PORT -c 1024 -H HOME -N -R -v -L 1024
/// -B 1024 -P PIDFILE > LOG 2>&1`: starts, serves, stops on SIGTERM, and
/// leaves a home that db5.3_recover has nothing to recover in and
/// db5.3_verify accepts.
#[test]
fn seeds_command_line_starts_serves_and_stops_cleanly() {
    if skip_unless_root("seeds_command_line") {
        return;
    }
    let site = Site::owned_by("seeds", "nobody");
    let home = site.home().display().to_string();
    let pid_file = site.pid_file().display().to_string();
    let args: Vec<String> = [
        "-d", "-r", "-u", "nobody", "-p", "0", "-c", "1024", "-H", &home, "-N", "-R", "-v", "-L",
        "1024", "-B", "1024", "-P", &pid_file,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let launch = launch_in(site.path(), &site.log(), &args, &[]);
    assert!(
        launch.status.success(),
        "seeds' command line failed ({}); log:\n{}",
        launch.status,
        launch.log_text()
    );
    let mut daemon = site.adopt();
    let port = daemon.tcp_port();
    let (uid, _) = user_ids("nobody");
    assert!(daemon.status_field("Uid").starts_with(&uid.to_string()));

    let mut client = Client::connect(port);
    for i in 0..20 {
        client.set("seedq", i, format!("message {i}").as_bytes());
    }
    for i in 0..10 {
        let msg = client.get("seedq").expect("a message");
        assert_eq!(msg.body, format!("message {i}").into_bytes());
        assert_eq!(msg.flags, i.to_string());
    }
    drop(client);

    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit();
    let log = fs::read_to_string(site.log()).unwrap_or_default();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "raw wait status {status:#x}; log:\n{log}"
    );
    assert!(
        !Path::new(&format!("/proc/{}", daemon.pid)).exists(),
        "pid still present"
    );
    assert!(!site.pid_file().exists(), "pid file left; log:\n{log}");

    // A cleanly closed environment: recovery finds the last checkpoint and
    // has no transaction to redo or undo. After a crash it prints
    // "Recovery starting from [f][o]" and a nonzero maximum transaction id.
    let recover = common::db_tool("recover", &["-h", &home, "-v"]);
    assert!(
        !recover.contains("Recovery starting from"),
        "db5.3_recover replayed the log of a cleanly stopped server:\n{recover}"
    );
    assert!(
        recover.contains("Maximum transaction ID 0 "),
        "db5.3_recover saw transactions:\n{recover}"
    );
    let verify = common::db_tool("verify", &["-h", &home, "seedq"]);
    assert!(verify.contains("succeeded"), "db5.3_verify:\n{verify}");
    let verify = common::db_tool("verify", &["-h", &home, "queue.list"]);
    assert!(verify.contains("succeeded"), "db5.3_verify:\n{verify}");
    // The 10 messages not taken are still there.
    assert_eq!(common::dump_lines(&site.home(), "seedq").len(), 10);
}

/// A binary `Set` and `Get` over the unix socket at `path`: the binary
/// protocol is chosen per connection there too (issue 17).
fn binary_round_trip(path: &Path) {
    let mut stream = UnixStream::connect(path).expect("connect to the unix socket");
    stream
        .set_read_timeout(Some(common::REPLY_TIMEOUT))
        .unwrap();
    let mut request = binary_frames::request(0x01, &[0, 0, 0, 9, 0, 0, 0, 0], b"binq", b"xyz", 1);
    request.extend(binary_frames::request(0x00, b"", b"binq", b"", 2));
    stream.write_all(&request).unwrap();
    // Stored, then the message with its flags and its record number as CAS.
    let mut want = binary_frames::response(0x01, 0, b"", b"", b"", 1, 0);
    want.extend(binary_frames::response(
        0x00,
        0,
        &[0, 0, 0, 9],
        b"",
        b"xyz",
        2,
        1,
    ));
    let mut got = vec![0; want.len()];
    stream.read_exact(&mut got).expect("the binary responses");
    assert_eq!(got, want);
}
