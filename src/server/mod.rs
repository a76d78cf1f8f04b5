//! Starting and stopping the server: sockets, privileges, storage, the
//! chores, and the reactor in between.

mod connection;
mod executor;
mod log_flusher;
mod reactor;

use std::fs::DirBuilder;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::os::unix::fs::DirBuilderExt;
use std::time::Duration;

use crate::bdb::{EnvConfig, QueueFormat};
use crate::config::Config;
use crate::os;
use crate::protocol::Parser;
use crate::queue_name::NameRules;
use crate::stats::Stats;
use crate::storage::{ChoreSchedule, Chores, QueueStore};
use executor::Executor;
use reactor::Reactor;

/// Lockers, locks, lock objects and transactions, as the original sets.
const LOCK_TABLE_SIZE: u32 = 40000;

/// Descriptors needed beside client connections (listeners, database
/// files, logs).
const SPARE_FILES: u64 = 256;

fn listen_address(config: &Config) -> Result<SocketAddr, String> {
    let host = config.listen_addr.as_deref().unwrap_or("0.0.0.0");
    (host, config.port)
        .to_socket_addrs()
        .map_err(|e| format!("can't resolve -l {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("-l {host} names no address"))
}

fn seconds(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

/// Runs the server until a stop signal; `Err` carries the message to print.
pub fn run(config: Config) -> Result<(), String> {
    for (set, flag) in [
        (config.daemonize, "-d"),
        (config.max_core, "-r"),
        (config.pid_file.is_some(), "-P"),
        (config.socket_path.is_some(), "-s"),
        (config.udp_port != 0, "-U"),
    ] {
        if set {
            log::warn!("{flag} is accepted but not supported yet; ignoring it");
        }
    }
    libdb_sys::check_runtime_version()?;
    if let Err(e) = os::raise_open_files(config.max_connections as u64 + SPARE_FILES) {
        log::warn!(
            "can't raise the open-file limit for -c {}: {e}",
            config.max_connections
        );
    }
    let addr = listen_address(&config)?;
    let listener =
        StdListener::bind(addr).map_err(|e| format!("failed to listen on {addr}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    if os::is_root() {
        let user = config
            .user
            .as_deref()
            .ok_or("can't run as root without the -u switch")?;
        os::switch_user(user).map_err(|e| format!("failed to switch to user {user}: {e}"))?;
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&config.home)
        .map_err(|e| format!("can't create home {}: {e}", config.home.display()))?;

    let format = QueueFormat {
        record_len: config.record_len,
        page_size: config.page_size,
        extent_pages: config.extent_pages,
    };
    let names = NameRules::new(config.record_len, config.page_size, config.extent_pages);
    let env_config = EnvConfig {
        cache_bytes: config.cache_mb * 1024 * 1024,
        log_buffer_bytes: config.log_buffer_kb * 1024,
        lock_table_size: LOCK_TABLE_SIZE,
        nosync: config.nosync,
        auto_remove_logs: config.auto_remove_logs,
    };
    let store = QueueStore::open(&config.home, &env_config, format, names).map_err(|e| {
        format!(
            "can't open the Berkeley DB environment in {}: {e}",
            config.home.display()
        )
    })?;
    let chores = Chores::start(
        store.env(),
        ChoreSchedule {
            checkpoint: seconds(config.checkpoint_secs),
            trickle: seconds(config.trickle_secs),
            trickle_percent: config.trickle_percent,
            deadlock_detect: (config.deadlock_ms > 0)
                .then(|| Duration::from_millis(config.deadlock_ms)),
        },
    )
    .map_err(|e| format!("can't start the background chores: {e}"))?;

    let signals = os::stop_signals().map_err(|e| format!("can't install signal handlers: {e}"))?;
    let reactor = Reactor::new(
        mio::net::TcpListener::from_std(listener),
        mio::net::UnixStream::from_std(signals),
        Parser::new(names, config.record_len),
        Executor::new(store, config.names_only_stats, !config.nosync),
        Stats::new(config.threads),
        &config,
    )
    .map_err(|e| format!("can't start the event loop: {e}"))?;
    log::info!("listening on {addr}, home {}", config.home.display());
    let served = reactor.run();

    // Shutdown: chores first, then a last checkpoint, then the handles
    // close in order (queues, queue.list, the environment) as they drop.
    chores.stop();
    let executor = served.map_err(|e| format!("event loop failed: {e}"))?;
    if let Err(e) = executor.store().env().checkpoint() {
        log::error!("final checkpoint failed: {e}");
    }
    drop(executor);
    log::info!("stopped");
    Ok(())
}
