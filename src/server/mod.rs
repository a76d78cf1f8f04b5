//! Starting and stopping the server, in two layers:
//!
//! - [`run`]: the process. Limits, sockets, the daemon and its pid file,
//!   the home's lock, the user, signal handlers, opening the storage and
//!   reserving its region files, the Berkeley DB chores; then [`serve`];
//!   then the shutdown (the last log flush and checkpoint).
//! - [`serve`] (or [`Server`]): serving. The reactor, its connections, the
//!   group-commit executor and the log flusher, on sockets and a store it
//!   is given, until told to stop; what a test runs in-process.

mod command_class;
mod connection;
mod datagrams;
mod executor;
#[cfg(test)]
mod executor_tests;
mod gather;
mod get_slices;
mod held_turns;
mod io_threads;
mod leases;
mod log_flusher;
mod metrics;
mod reactor;
mod replication;
mod site;
mod socket;
mod waiting;

use std::fs::DirBuilder;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::bdb::{Env, EnvConfig, QueueFormat};
use crate::config::Config;
use crate::fatal;
use crate::os;
use crate::queue_name::NameRules;
use crate::storage::{
    self, CacheWatch, ChoreSchedule, Chores, HomeLock, HomeLockError, QueueStore,
};
use executor::Executor;
use mio::net::UdpSocket;
use reactor::Reactor;
use replication::Replication;
use site::{Site, StoreSettings};
use socket::Listener;
pub use socket::Listeners;

/// Lockers, locks, lock objects and transactions, as the original sets.
const LOCK_TABLE_SIZE: u32 = 40000;

/// Descriptors needed beside client connections (listeners, database
/// files, logs).
const SPARE_FILES: u64 = 256;

/// When a turn's replies may leave (-N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The default: a turn commits without flushing, and its replies wait
    /// until the log flusher has flushed the log past its commit.
    FlushBeforeReply,
    /// -N (the environment opened with DB_TXN_NOSYNC): replies leave right
    /// after the commit while the log file being written is allocated in
    /// full, and wait for a flush only while it is not.
    NoSync,
}

/// What `stats queue` lists (-Z).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStatsFormat {
    /// `STAT <name> <set>/<get>` per queue, as MemcacheQ 0.2.1.
    Counters,
    /// `STAT <name>` per queue, as MemcacheQ 0.1.x (for Zend_Queue).
    NamesOnly,
}

/// Reliable reads (`get <q>/open`, docs/PROTOCOL.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadSettings {
    /// --lease-timeout: how long an open message stays leased.
    pub lease_timeout: Option<Duration>,
    /// --max-deliveries: times a message may be opened without being
    /// closed before it moves to `<q>.dead`; 0 is unlimited.
    pub max_deliveries: u32,
}

/// What serving takes from the command line; the rest of it is about the
/// process (sockets, user, daemon) or the storage (`QueueStore::open`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// -c: connections served at once; one more is answered `SERVER_ERROR
    /// too many open connections` and closed.
    pub max_connections: usize,
    /// -t: threads doing socket work, the reactor included (`io_threads`);
    /// reported by `stats` as `threads`.
    pub threads: u32,
    /// -N: whether replies wait for the log flush.
    pub durability: Durability,
    /// -Z: the `stats queue` listing.
    pub queue_stats: QueueStatsFormat,
    /// --lease-timeout and --max-deliveries: reliable reads.
    pub reads: ReadSettings,
    /// --report-version: what `version` and `stats` report instead of 0.2.1.
    pub report_version: Option<String>,
}

impl From<&Config> for ServeOptions {
    fn from(config: &Config) -> ServeOptions {
        ServeOptions {
            max_connections: config.max_connections,
            threads: config
                .threads
                .unwrap_or_else(crate::config::default_threads),
            durability: if config.nosync {
                Durability::NoSync
            } else {
                Durability::FlushBeforeReply
            },
            queue_stats: if config.names_only_stats {
                QueueStatsFormat::NamesOnly
            } else {
                QueueStatsFormat::Counters
            },
            reads: ReadSettings {
                lease_timeout: (config.lease_timeout_secs > 0)
                    .then(|| Duration::from_secs(config.lease_timeout_secs)),
                max_deliveries: config.max_deliveries,
            },
            report_version: config.report_version.clone(),
        }
    }
}

impl Default for ServeOptions {
    /// The original's defaults, as with no flags.
    fn default() -> ServeOptions {
        ServeOptions::from(&Config::default())
    }
}

fn listen_address(config: &Config, port: u16) -> Result<SocketAddr, String> {
    let host = config.listen_addr.as_deref().unwrap_or("0.0.0.0");
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("can't resolve -l {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("-l {host} names no address"))
}

fn seconds(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

/// The sockets of the command line: TCP (or a unix socket) and UDP, and
/// the metrics page's.
fn bind(config: &Config) -> Result<Listeners, String> {
    let listeners = bind_clients(config)?;
    let Some(addr) = &config.metrics_listen else {
        return Ok(listeners);
    };
    let listener = std::net::TcpListener::bind(addr.as_str())
        .map_err(|e| format!("failed to listen on --metrics-listen {addr}: {e}"))?;
    Ok(listeners.with_metrics(listener))
}

/// The sockets clients reach: TCP (or a unix socket) and UDP.
fn bind_clients(config: &Config) -> Result<Listeners, String> {
    if let Some(path) = &config.socket_path {
        let listener = Listener::bind_unix(path, config.socket_mask)
            .map_err(|e| format!("failed to listen on unix socket {}: {e}", path.display()))?;
        return Ok(Listeners::new(listener, None));
    }
    let addr = listen_address(config, config.port)?;
    let tcp = Listener::bind_tcp(addr).map_err(|e| format!("failed to listen on {addr}: {e}"))?;
    let udp = if config.udp_port == 0 {
        None
    } else {
        let addr = listen_address(config, config.udp_port)?;
        let socket =
            UdpSocket::bind(addr).map_err(|e| format!("failed to listen on udp {addr}: {e}"))?;
        Some(socket)
    };
    Ok(Listeners::new(tcp, udp))
}

/// Runs the server until a stop signal; `Err` carries the message to print.
pub fn run(config: Config) -> Result<(), String> {
    libdb_sys::check_runtime_version()?;
    if let Err(e) = os::raise_open_files(config.max_connections as u64 + SPARE_FILES) {
        log::warn!(
            "can't raise the open-file limit for -c {}: {e}",
            config.max_connections
        );
    }
    if config.max_core {
        os::raise_core_limit().map_err(|e| format!("failed to ensure corefile creation: {e}"))?;
    }
    let listeners = bind(&config)?;
    let daemon = if config.daemonize {
        let ready = os::daemonize().map_err(|e| format!("failed to daemonize: {e}"))?;
        if !config.max_core {
            std::env::set_current_dir("/").map_err(|e| format!("can't chdir to /: {e}"))?;
        }
        Some(ready)
    } else {
        None
    };
    // A home that exists is locked before the pid file is written, so a
    // refused second server leaves the running one's pid file alone. Only
    // a busy home is fatal here: any other failure is retried as the -u
    // user once the home is created.
    let home_lock = match HomeLock::acquire(&config.home) {
        Ok(lock) => Some(lock),
        Err(e @ HomeLockError::InUse { .. }) => return Err(refusal(&e)),
        Err(HomeLockError::Io { .. }) => None,
    };
    let pid_file = config.pid_file.as_ref().filter(|_| config.daemonize);
    if let Some(path) = pid_file {
        // A stale file from a crashed run is simply replaced.
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("could not write pid file {}: {e}", path.display()))?;
    }
    let served = serve_home(&config, daemon, listeners, home_lock);
    if let Some(path) = pid_file {
        if let Err(e) = std::fs::remove_file(path) {
            log::warn!("could not remove pid file {}: {e}", path.display());
        }
    }
    served
}

/// The message of a second server refused on a busy home.
fn refusal(e: &HomeLockError) -> String {
    format!("{e}; not starting a second server on it")
}

/// Everything after the sockets: privileges, the home, storage and the
/// chores; then serving until a stop signal; then the shutdown. `home_lock`
/// is the home's lock if `run` could take it already.
fn serve_home(
    config: &Config,
    daemon: Option<os::DaemonReady>,
    listeners: Listeners,
    home_lock: Option<HomeLock>,
) -> Result<(), String> {
    if os::is_root() {
        let user = config
            .user
            .as_deref()
            .ok_or("can't run as root without the -u switch")?;
        os::switch_user(user).map_err(|e| format!("failed to switch to user {user}: {e}"))?;
        if config.max_core {
            os::allow_core_dumps().map_err(|e| format!("failed to keep core dumps on: {e}"))?;
        }
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&config.home)
        .map_err(|e| format!("can't create home {}: {e}", config.home.display()))?;
    // Held until the environment is closed: opening it runs recovery,
    // which must never happen under a live server.
    let home_lock = match home_lock {
        Some(lock) => lock,
        None => HomeLock::acquire(&config.home).map_err(|e| match e {
            HomeLockError::InUse { .. } => refusal(&e),
            HomeLockError::Io { .. } => e.to_string(),
        })?,
    };
    let settings = store_settings(config);
    let options = ServeOptions::from(config);
    let site = match &config.replication {
        None => {
            let store = open_store(config)?;
            Site::standalone(executor_for(store, &options), settings)
        }
        Some(rep) => {
            let client_address = client_address(config, &listeners, &rep.listen.host);
            let replication = Replication::new(rep.clone(), client_address);
            let env = open_replicated_env(config, &replication)?;
            replication
                .start_address_thread(env.clone())
                .map_err(|e| format!("can't start the replication thread: {e}"))?;
            Site::replicated(env, replication, settings)
        }
    };
    let reserved = storage::reserve_regions(&config.home)?;
    log::info!("reserved {} MB for the region files", reserved >> 20);
    let chores = start_chores(config, site.env(), site.cache_watch())?;

    let signals = os::stop_signals().map_err(|e| format!("can't install signal handlers: {e}"))?;
    let server = Server::new(listeners, site, &options, signals)
        .map_err(|e| format!("can't start the event loop: {e}"))?;
    log::info!("serving, home {}", config.home.display());
    if let Some(ready) = daemon {
        ready
            .serving(if config.verbosity > 0 {
                os::StdStreams::Keep
            } else {
                os::StdStreams::ToDevNull
            })
            .map_err(|e| format!("failed to detach: {e}"))?;
    }
    let served = server.run();

    // Shutdown: chores first, then the log is flushed (with -N the last
    // commits may be in memory only; a checkpoint that fails on a full
    // disk would leave them there), then a last checkpoint, then the
    // handles close in order (queues, queue.list, the environment) as
    // they drop; after that checkpoint they close without syncing each
    // file again.
    chores.stop();
    let site = served.map_err(|e| format!("event loop failed: {e}"))?;
    if let Some(replication) = site.replication() {
        replication.stop();
    }
    if fatal::reason().is_none() {
        let env = site.env();
        if let Err(e) = env.flush_log() {
            log::error!("final log flush failed: {e}");
        }
        if let Err(e) = env.checkpoint_for_shutdown() {
            log::error!("final checkpoint failed: {e}");
        }
    }
    drop(site);
    drop(home_lock);
    if let Some(reason) = fatal::reason() {
        return Err(format!(
            "{reason}; exiting, recovery runs at the next start"
        ));
    }
    log::info!("stopped");
    Ok(())
}

fn queue_format(config: &Config) -> QueueFormat {
    QueueFormat {
        record_len: config.record_len,
        page_size: config.page_size,
        extent_pages: config.extent_pages,
    }
}

fn env_config(config: &Config) -> EnvConfig {
    EnvConfig {
        cache_bytes: config.cache_mb * 1024 * 1024,
        log_buffer_bytes: config.log_buffer_kb * 1024,
        lock_table_size: LOCK_TABLE_SIZE,
        nosync: config.nosync,
        auto_remove_logs: config.auto_remove_logs,
    }
}

/// How the command line says the queues are opened and served.
fn store_settings(config: &Config) -> StoreSettings {
    let options = ServeOptions::from(config);
    StoreSettings {
        home: config.home.clone(),
        cache_bytes: config.cache_mb * 1024 * 1024,
        format: queue_format(config),
        names: NameRules::new(config.record_len, config.page_size, config.extent_pages),
        queue_stats: options.queue_stats,
        durability: options.durability,
        reads: options.reads,
    }
}

fn env_error(config: &Config, e: impl std::fmt::Display) -> String {
    format!(
        "can't open the Berkeley DB environment in {}: {e}",
        config.home.display()
    )
}

/// Opens (creating and recovering) the environment in the home and every
/// queue it holds, as the command line says.
fn open_store(config: &Config) -> Result<QueueStore, String> {
    let names = NameRules::new(config.record_len, config.page_size, config.extent_pages);
    QueueStore::open(
        &config.home,
        &env_config(config),
        queue_format(config),
        names,
    )
    .map_err(|e| env_error(config, e))
}

/// Opens the environment as a site of its replication group and starts
/// replicating; the queues open once this site is the master.
fn open_replicated_env(config: &Config, replication: &Replication) -> Result<Env, String> {
    let env = Env::open(
        &config.home,
        &env_config(config),
        Some(replication.env_config()),
    )
    .map_err(|e| env_error(config, e))?;
    env.start_replication()
        .map_err(|e| format!("can't start replication on {}: {e}", config.home.display()))?;
    os::tcp_nodelay_everywhere();
    log::info!("replicating as {}", replication.site_name());
    Ok(env)
}

/// The address memcache clients reach this site at, for a replica's
/// refusals: the TCP address it listens on, with the replication host
/// when it listens on every interface (or the unix socket's path).
fn client_address(config: &Config, listeners: &Listeners, rep_host: &str) -> String {
    if let Some(path) = &config.socket_path {
        return path.display().to_string();
    }
    let port = listeners.tcp_port().unwrap_or(config.port);
    match config.listen_addr.as_deref() {
        Some(host) if host != "0.0.0.0" && host != "::" => format!("{host}:{port}"),
        _ => format!("{rep_host}:{port}"),
    }
}

fn executor_for(store: QueueStore, options: &ServeOptions) -> Executor {
    Executor::new(store, options.queue_stats, options.durability).with_reads(options.reads)
}

/// Starts the checkpoint, trickle and deadlock-detection threads (-C, -T,
/// -e, -D); trickle also runs when the store's writes fill the cache with
/// dirty pages.
fn start_chores(config: &Config, env: &Env, watch: Option<CacheWatch>) -> Result<Chores, String> {
    let schedule = ChoreSchedule {
        checkpoint: seconds(config.checkpoint_secs),
        trickle: seconds(config.trickle_secs),
        trickle_percent: config.trickle_percent,
        deadlock_detect: (config.deadlock_ms > 0)
            .then(|| Duration::from_millis(config.deadlock_ms)),
    };
    Chores::start_watching(env, schedule, watch.as_ref())
        .map_err(|e| format!("can't start the background chores: {e}"))
}

/// Serves the clients of `listeners` with the queues of `store` until
/// `stop` turns readable (a byte arrives on it, or its other end is
/// closed), then finishes the turn in progress, sends every reply it owes,
/// and gives the store back.
///
/// This is serving alone, as a test can run it in-process on port 0: the
/// process's set-up (privileges, daemon, pid file, the home's lock, signal
/// handlers, region reservation) and its shutdown (the last log flush and
/// checkpoint, on the store returned) are `run`'s. So are the Berkeley DB
/// chores (checkpoint, memp_trickle, deadlock detection): they look after
/// the environment for as long as it is open, whoever uses it, and must
/// stop before the last checkpoint; serving does not need them to be
/// correct (its one transaction at a time never deadlocks with itself).
/// The log flusher does belong here, as replies wait for it; it is
/// stopped before `serve` returns.
///
/// Berkeley DB asking for recovery stops serving through
/// `os::request_stop`, a write to the process's signal pipe, which `run`
/// passes as `stop`. Under another `stop`, serving goes on (every storage
/// command failing) until its caller stops it.
pub fn serve(
    listeners: Listeners,
    store: QueueStore,
    options: &ServeOptions,
    stop: UnixStream,
) -> io::Result<QueueStore> {
    let settings = StoreSettings {
        home: store.home().to_path_buf(),
        cache_bytes: 0,
        format: store.format(),
        names: store.name_rules(),
        queue_stats: options.queue_stats,
        durability: options.durability,
        reads: options.reads,
    };
    let site = Site::standalone(executor_for(store, options), settings);
    let site = Server::new(listeners, site, options, stop)?.run()?;
    Ok(site
        .into_store()
        .expect("a server on its own keeps its queues"))
}

/// [`serve`] in two steps, for a caller with something to do once the
/// event loop is set up and before it runs: a daemon tells its parent
/// that it serves only then, so a failure to start is still reported.
pub struct Server {
    reactor: Reactor,
}

impl Server {
    /// Registers the sockets and `stop`, and starts the log flusher.
    pub fn new(
        listeners: Listeners,
        site: Site,
        options: &ServeOptions,
        stop: UnixStream,
    ) -> io::Result<Server> {
        stop.set_nonblocking(true)?;
        let stop = mio::net::UnixStream::from_std(stop);
        let reactor = Reactor::new(listeners, stop, site, options)?;
        Ok(Server { reactor })
    }

    /// Serves until `stop` turns readable; see [`serve`].
    pub fn run(self) -> io::Result<Site> {
        self.reactor.run()
    }
}
