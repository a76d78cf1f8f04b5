//! The kinds of sockets clients reach us on: TCP, or a unix socket (-s),
//! and UDP (-U).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use crate::os;

/// Connections the kernel queues until we accept them, as MemcacheQ 0.2.1
/// asks (mio asks 128 for TCP, and somaxconn for a unix socket). Beyond
/// it a burst of clients has connections dropped and retried a second or
/// more later. The kernel caps it at net.core.somaxconn.
pub const BACKLOG: i32 = 1024;

/// Where clients reach the server.
pub struct Listeners {
    /// Connections: TCP, or a unix socket (-s).
    pub(super) stream: Listener,
    /// Datagrams (-U), if any.
    pub(super) udp: Option<UdpSocket>,
    /// The metrics page (--metrics-listen), if any.
    pub(super) metrics: Option<std::net::TcpListener>,
}

impl Listeners {
    pub(super) fn new(stream: Listener, udp: Option<UdpSocket>) -> Listeners {
        Listeners {
            stream,
            udp,
            metrics: None,
        }
    }

    /// Also serves the metrics page on `listener`.
    pub fn with_metrics(mut self, listener: std::net::TcpListener) -> Listeners {
        self.metrics = Some(listener);
        self
    }

    /// TCP connections accepted on `listener`, bound and listening; no
    /// UDP. Its backlog is raised to 1,024, as the server's own.
    pub fn tcp(listener: std::net::TcpListener) -> io::Result<Listeners> {
        listener.set_nonblocking(true)?;
        os::set_listen_backlog(listener.as_raw_fd(), BACKLOG)?;
        let listener = Listener::Tcp(TcpListener::from_std(listener));
        Ok(Listeners::new(listener, None))
    }

    /// The TCP port connections are accepted on (the one bound for -p 0).
    pub fn tcp_port(&self) -> Option<u16> {
        match &self.stream {
            Listener::Tcp(l) => l.local_addr().ok().map(|a| a.port()),
            Listener::Unix(_) => None,
        }
    }
}

/// A listening socket.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A client connection's socket.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    /// Binds and listens on the TCP address `addr`.
    pub fn bind_tcp(addr: SocketAddr) -> io::Result<Listener> {
        let listener = TcpListener::bind(addr)?;
        os::set_listen_backlog(listener.as_raw_fd(), BACKLOG)?;
        Ok(Listener::Tcp(listener))
    }

    /// Binds the unix socket `path`, replacing a stale socket file left by
    /// a previous run, with permissions `mask`.
    pub fn bind_unix(path: &Path, mask: u32) -> io::Result<Listener> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ))
            }
            Err(_) => {}
        }
        let listener = UnixListener::bind(path)?;
        os::set_listen_backlog(listener.as_raw_fd(), BACKLOG)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mask))?;
        Ok(Listener::Unix(listener))
    }

    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                // Replies are written whole; waiting to coalesce only adds
                // latency.
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
            Listener::Unix(l) => Ok(Stream::Unix(l.accept()?.0)),
        }
    }
}

macro_rules! delegate_source {
    ($ty:ident, $($variant:ident),+) => {
        impl Source for $ty {
            fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
                match self { $($ty::$variant(s) => s.register(r, t, i)),+ }
            }
            fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
                match self { $($ty::$variant(s) => s.reregister(r, t, i)),+ }
            }
            fn deregister(&mut self, r: &Registry) -> io::Result<()> {
                match self { $($ty::$variant(s) => s.deregister(r)),+ }
            }
        }
    };
}
delegate_source!(Listener, Tcp, Unix);
delegate_source!(Stream, Tcp, Unix);

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
