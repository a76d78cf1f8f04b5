//! Berkeley DB's replication manager (repmgr): starting a site of a
//! group, what it tells through events, what it says of the group, and the
//! one request the server's sites send one another over repmgr's message
//! channels, "is the log up to here on your disk?" (see
//! `server::replication` for why Berkeley DB's own acknowledgements are
//! not used).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::{self, NonNull};
use std::time::Duration;

use libdb_sys as sys;

use super::error::{check, Result};
use super::{c_string, method, non_null, CommitToken, Env};

/// A replication address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteAddress {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for SiteAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// What replication Berkeley DB runs in an environment.
pub struct RepConfig {
    /// This site's replication address (`--rep-listen`).
    pub local: SiteAddress,
    /// Members to contact at start (`--rep-peer`); none: this site creates
    /// the group.
    pub peers: Vec<SiteAddress>,
    /// Election priority; 0 never becomes master.
    pub priority: u32,
    /// The address memcache clients use for this site, answered to a site
    /// that asks for it (`ask_master_address`).
    pub client_address: String,
    /// Called, on one of repmgr's threads, for every replication event.
    pub on_event: Box<dyn Fn(RepEvent) + Send + Sync>,
}

/// The replication events the server acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepEvent {
    /// This site is now the master.
    Master,
    /// This site is now a replica.
    Client,
    /// The group has a new master, site `eid` (perhaps this one).
    NewMaster(i32),
    /// A replica has caught up with its master.
    StartupDone,
    /// Two masters met; this one is stepping down.
    DupMaster,
    /// The master went away, or an election could not be won.
    MasterLost,
    /// A connection to another site came up or went down.
    Connections,
    /// Berkeley DB needs recovery.
    Panic,
}

/// Another member of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepSite {
    pub eid: i32,
    pub address: SiteAddress,
    pub connected: bool,
}

/// What a site answered to "is the log up to here on your disk?".
/// Its discriminant is the one-byte answer on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Confirmation {
    /// Not (yet), or no answer.
    No = 0,
    Yes = 1,
    /// The transaction is not in the site's history and never will be:
    /// another master was elected without it, and it will be rolled back
    /// where it was committed.
    Superseded = 2,
}

/// Timings of the group (README, "Replication", "Failover").
const HEARTBEAT_SEND: Duration = Duration::from_millis(500);
const HEARTBEAT_MONITOR: Duration = Duration::from_millis(2000);
const ELECTION_TIMEOUT: Duration = Duration::from_millis(2000);
const ELECTION_RETRY: Duration = Duration::from_millis(1000);
const CONNECTION_RETRY: Duration = Duration::from_millis(1000);
/// repmgr's threads that process incoming messages: a confirmation
/// request may wait for the log to arrive, and others must apply it.
const MESSAGE_THREADS: i32 = 3;
/// How long a site answering a confirmation request waits for the log to
/// reach the position asked for.
const CONFIRM_WAIT: Duration = Duration::from_millis(50);

/// Request tags of the server's own messages between sites.
const ASK_CONFIRM: u8 = b'L';
const ASK_ADDRESS: u8 = b'A';

/// What the environment keeps for repmgr's callbacks, behind
/// DB_ENV->app_private.
pub(super) struct RepCallbacks {
    on_event: Box<dyn Fn(RepEvent) + Send + Sync>,
    client_address: Vec<u8>,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Configures `p` (created, not yet opened) for replication; returns what
/// its callbacks use, which must outlive the handle.
///
/// # Safety
///
/// `p` is a live DB_ENV handle, not yet opened.
pub(super) unsafe fn configure(
    p: *mut sys::DB_ENV,
    config: RepConfig,
) -> Result<Box<RepCallbacks>> {
    let callbacks = Box::new(RepCallbacks {
        on_event: config.on_event,
        client_address: config.client_address.into_bytes(),
    });
    // SAFETY: `p` is live (the caller's promise); the callbacks box lives
    // as long as the handle (EnvHandle drops it after closing the handle).
    unsafe {
        (*p).app_private = &*callbacks as *const RepCallbacks as *mut c_void;
        check(method!(p, set_event_notify, Some(on_event)))?;
        check(method!(p, repmgr_msg_dispatch, Some(on_message), 0))?;
        add_site(
            p,
            &config.local,
            sys::DB_LOCAL_SITE,
            config.peers.is_empty(),
        )?;
        for peer in &config.peers {
            add_site(p, peer, sys::DB_BOOTSTRAP_HELPER, true)?;
        }
        check(method!(p, rep_set_priority, config.priority))?;
        for (which, value) in [
            (sys::DB_REP_HEARTBEAT_SEND, HEARTBEAT_SEND),
            (sys::DB_REP_HEARTBEAT_MONITOR, HEARTBEAT_MONITOR),
            (sys::DB_REP_ELECTION_TIMEOUT, ELECTION_TIMEOUT),
            (sys::DB_REP_ELECTION_RETRY, ELECTION_RETRY),
            (sys::DB_REP_CONNECTION_RETRY, CONNECTION_RETRY),
        ] {
            check(method!(p, rep_set_timeout, which as c_int, micros(value)))?;
        }
        // A turn's log records go to the other sites in one message at its
        // commit, not in one send each from the reactor.
        check(method!(p, rep_set_config, sys::DB_REP_CONF_BULK, 1))?;
        // A group of two can elect a new master when one dies (README,
        // "Replication").
        check(method!(
            p,
            rep_set_config,
            sys::DB_REPMGR_CONF_2SITE_STRICT,
            0
        ))?;
        // Commits never wait for other sites: the log flusher asks them
        // instead (server::replication).
        check(method!(
            p,
            repmgr_set_ack_policy,
            sys::DB_REPMGR_ACKS_NONE as c_int
        ))?;
    }
    Ok(callbacks)
}

/// Adds a site to the handle's list; `flag` is DB_LOCAL_SITE or
/// DB_BOOTSTRAP_HELPER. A local site without peers creates the group.
///
/// # Safety
///
/// `p` is a live DB_ENV handle.
unsafe fn add_site(p: *mut sys::DB_ENV, site: &SiteAddress, flag: u32, on: bool) -> Result<()> {
    let host = c_string(site.host.as_bytes())?;
    let mut raw = ptr::null_mut();
    // SAFETY: a live handle, a NUL-terminated host outliving the call; the
    // DB_SITE handle is closed whatever happens to its configuration.
    unsafe {
        check(method!(
            p,
            repmgr_site,
            host.as_ptr(),
            u32::from(site.port),
            &mut raw,
            0
        ))?;
        let s = non_null(raw)?.as_ptr();
        let mut rc = method!(s, set_config, flag, 1);
        if rc == 0 && flag == sys::DB_LOCAL_SITE && on {
            rc = method!(s, set_config, sys::DB_GROUP_CREATOR, 1);
        }
        let closed = method!(s, close);
        check(rc)?;
        check(closed)
    }
}

unsafe extern "C" fn on_event(env: *mut sys::DB_ENV, event: u32, info: *mut c_void) {
    let event = match event {
        sys::DB_EVENT_REP_MASTER => RepEvent::Master,
        sys::DB_EVENT_REP_CLIENT => RepEvent::Client,
        sys::DB_EVENT_REP_NEWMASTER if !info.is_null() => {
            // SAFETY: Berkeley DB passes the new master's id as an int.
            RepEvent::NewMaster(unsafe { *(info as *const c_int) })
        }
        sys::DB_EVENT_REP_STARTUPDONE => RepEvent::StartupDone,
        sys::DB_EVENT_REP_DUPMASTER => RepEvent::DupMaster,
        sys::DB_EVENT_REP_MASTER_FAILURE | sys::DB_EVENT_REP_ELECTION_FAILED => {
            RepEvent::MasterLost
        }
        sys::DB_EVENT_REP_CONNECT_ESTD | sys::DB_EVENT_REP_CONNECT_BROKEN => RepEvent::Connections,
        sys::DB_EVENT_PANIC => RepEvent::Panic,
        _ => return,
    };
    // SAFETY: app_private was set by `configure` to callbacks that outlive
    // the handle.
    if let Some(callbacks) = unsafe { callbacks_of(env) } {
        (callbacks.on_event)(event);
    }
}

/// The callbacks `configure` left on `env`.
///
/// # Safety
///
/// `env` is a live handle configured by `configure`, or NULL.
unsafe fn callbacks_of<'a>(env: *mut sys::DB_ENV) -> Option<&'a RepCallbacks> {
    // SAFETY: the caller's promise.
    unsafe {
        env.as_ref()
            .and_then(|e| (e.app_private as *const RepCallbacks).as_ref())
    }
}

/// Answers another site's request (repmgr calls this on a message thread).
unsafe extern "C" fn on_message(
    env: *mut sys::DB_ENV,
    channel: *mut sys::DB_CHANNEL,
    request: *mut sys::DBT,
    count: u32,
    flags: u32,
) {
    if count == 0 || request.is_null() || flags & sys::DB_REPMGR_NEED_RESPONSE == 0 {
        return;
    }
    // SAFETY: Berkeley DB passes `count` live DBTs; we read the first.
    let asked = unsafe { dbt_bytes(&*request) };
    let answer: Vec<u8> = match asked.split_first() {
        Some((&ASK_ADDRESS, _)) => {
            // SAFETY: a live handle configured by `configure`.
            unsafe { callbacks_of(env) }.map_or_else(Vec::new, |c| c.client_address.clone())
        }
        // SAFETY: a live, open environment.
        Some((&ASK_CONFIRM, token)) => vec![unsafe { confirm_here(env, token) } as u8],
        _ => Vec::new(),
    };
    let mut reply = sys::DBT {
        data: answer.as_ptr() as *mut c_void,
        size: answer.len() as u32,
        ..Default::default()
    };
    // SAFETY: the channel Berkeley DB gave for the response; `reply`
    // points at bytes that outlive the call.
    if let Err(e) = check(unsafe { method!(channel, send_msg, &mut reply, 1, 0) }) {
        log::warn!("answering a replication request failed: {e}");
    }
}

/// Whether this site holds the transaction of `token` in its log, on
/// disk (DB_ENV->txn_applied, waiting a little for it to arrive). Berkeley
/// DB tells from its history of generations whether the transaction is in
/// this site's history at all: if not (its master was replaced before this
/// site got it, and it will be rolled back there), the asker is told it
/// was superseded.
///
/// # Safety
///
/// `env` is a live, open environment.
unsafe fn confirm_here(env: *mut sys::DB_ENV, token: &[u8]) -> Confirmation {
    // The token: format version, generation, environment id, log file and
    // offset, each a big-endian u32 (Berkeley DB's external form).
    let Ok(buf) = <[u8; 20]>::try_from(token) else {
        return Confirmation::No;
    };
    let mut token = sys::DB_TXN_TOKEN { buf };
    // SAFETY: the caller's promise; the token outlives the call.
    let rc = unsafe { method!(env, txn_applied, &mut token, micros(CONFIRM_WAIT), 0) };
    match rc {
        // Applied, or a transaction that changed nothing.
        0 | sys::DB_KEYEMPTY => {
            // SAFETY: the caller's promise; NULL flushes the whole log.
            if unsafe { method!(env, log_flush, ptr::null()) } == 0 {
                Confirmation::Yes
            } else {
                Confirmation::No
            }
        }
        // Not in this site's history. That settles it only once this site
        // knows the token's generation: a site still behind the election
        // that made the asker master says so of every commit of the new
        // generation (until it has synced with it).
        sys::DB_NOTFOUND => {
            let token_generation = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            // SAFETY: the caller's promise.
            match unsafe { generation_of(env) } {
                Some(here) if here >= token_generation => Confirmation::Superseded,
                _ => Confirmation::No,
            }
        }
        _ => Confirmation::No,
    }
}

/// The replication generation this site is in (DB_ENV->rep_stat).
///
/// # Safety
///
/// `env` is a live environment with replication.
unsafe fn generation_of(env: *mut sys::DB_ENV) -> Option<u32> {
    let mut raw: *mut sys::DB_REP_STAT = ptr::null_mut();
    // SAFETY: the caller's promise; the malloc'd result is read and freed
    // exactly once.
    unsafe {
        check(method!(env, rep_stat, &mut raw, 0)).ok()?;
        let stat = non_null(raw).ok()?;
        let generation = stat.as_ref().st_gen;
        libc::free(stat.as_ptr() as *mut c_void);
        Some(generation)
    }
}

/// The bytes of a DBT Berkeley DB filled.
///
/// # Safety
///
/// `dbt` describes `size` readable bytes at `data` (or none).
unsafe fn dbt_bytes(dbt: &sys::DBT) -> &[u8] {
    if dbt.data.is_null() || dbt.size == 0 {
        return &[];
    }
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts(dbt.data as *const u8, dbt.size as usize) }
}

/// A confirmation request: the tag, then the commit's token.
fn encode_confirm(token: &CommitToken) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + token.0.len());
    out.push(ASK_CONFIRM);
    out.extend_from_slice(&token.0);
    out
}

impl Env {
    /// Starts the replication manager on an environment opened with a
    /// `RepConfig`: this site joins (or creates) its group and takes part
    /// in elections.
    pub fn start_replication(&self) -> Result<()> {
        // SAFETY: a live, open environment configured for replication.
        let rc = unsafe {
            method!(
                self.as_ptr(),
                repmgr_start,
                MESSAGE_THREADS,
                sys::DB_REP_ELECTION
            )
        };
        // DB_REP_IGNORE: started already by another process of the home.
        if rc == sys::DB_REP_IGNORE {
            return Ok(());
        }
        check(rc)
    }

    /// How many elections this site took part in (DB_ENV->rep_stat).
    pub fn rep_elections(&self) -> Result<u64> {
        let mut raw: *mut sys::DB_REP_STAT = ptr::null_mut();
        // SAFETY: a live environment with replication; the malloc'd result
        // is read and freed exactly once.
        unsafe {
            check(method!(self.as_ptr(), rep_stat, &mut raw, 0))?;
            let stat = non_null(raw)?;
            let elections = stat.as_ref().st_elections as u64;
            libc::free(stat.as_ptr() as *mut c_void);
            Ok(elections)
        }
    }

    /// The other members of the group this site knows of.
    pub fn rep_sites(&self) -> Result<Vec<RepSite>> {
        let mut count: u32 = 0;
        let mut list: *mut sys::DB_REPMGR_SITE = ptr::null_mut();
        // SAFETY: a live environment; Berkeley DB mallocs `count` entries
        // (host strings inside the same block), freed once after reading.
        unsafe {
            check(method!(
                self.as_ptr(),
                repmgr_site_list,
                &mut count,
                &mut list
            ))?;
            if list.is_null() {
                return Ok(Vec::new());
            }
            let sites = std::slice::from_raw_parts(list, count as usize)
                .iter()
                .map(|s| RepSite {
                    eid: s.eid,
                    address: SiteAddress {
                        host: host_of(s.host),
                        port: s.port as u16,
                    },
                    connected: s.status == sys::DB_REPMGR_CONNECTED,
                })
                .collect();
            libc::free(list as *mut c_void);
            Ok(sites)
        }
    }

    /// A channel to site `eid` (or `DB_EID_MASTER`) for requests.
    pub fn channel(&self, eid: i32) -> Result<Channel> {
        let mut raw = ptr::null_mut();
        // SAFETY: a live environment with replication started; the handle
        // is owned by the Channel, which closes it.
        check(unsafe { method!(self.as_ptr(), repmgr_channel, eid, &mut raw, 0) })?;
        let channel = Channel {
            ptr: non_null(raw)?,
            _env: self.clone(),
        };
        // Its connection is new, and Nagle's algorithm would hold the
        // request behind the connection's greeting (`os`).
        crate::os::tcp_nodelay_everywhere();
        Ok(channel)
    }

    /// Asks the master for the address its memcache clients use.
    pub fn ask_master_address(&self, timeout: Duration) -> Result<String> {
        let answer = self
            .channel(sys::DB_EID_MASTER)?
            .request(&[ASK_ADDRESS], timeout)?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }
}

/// A repmgr message channel to one site, kept open between requests (each
/// channel has a connection of its own).
pub struct Channel {
    ptr: NonNull<sys::DB_CHANNEL>,
    /// Keeps the environment open while the channel is.
    _env: Env,
}

// SAFETY: a DB_CHANNEL may be used from any thread, one at a time; a
// Channel is not Sync, so it is.
unsafe impl Send for Channel {}

impl Channel {
    /// Asks the site whether it holds the transaction of `token` on its
    /// disk; waits at most `timeout`.
    pub fn confirm(&self, token: &CommitToken, timeout: Duration) -> Result<Confirmation> {
        let answer = self.request(&encode_confirm(token), timeout)?;
        Ok(match answer[..] {
            [1] => Confirmation::Yes,
            [2] => Confirmation::Superseded,
            _ => Confirmation::No,
        })
    }

    /// Sends one request and returns the answer.
    fn request(&self, request: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        let mut asked = sys::DBT {
            data: request.as_ptr() as *mut c_void,
            size: request.len() as u32,
            ..Default::default()
        };
        let mut answer = sys::DBT {
            flags: sys::DB_DBT_MALLOC,
            ..Default::default()
        };
        // SAFETY: a live channel; the request bytes outlive the call, and
        // the malloc'd answer is copied and freed once.
        unsafe {
            let rc = method!(
                self.ptr.as_ptr(),
                send_request,
                &mut asked,
                1,
                &mut answer,
                micros(timeout),
                0
            );
            let bytes = dbt_bytes(&answer).to_vec();
            if !answer.data.is_null() {
                libc::free(answer.data);
            }
            check(rc)?;
            Ok(bytes)
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        // SAFETY: a live channel, closed once.
        if let Err(e) = check(unsafe { method!(self.ptr.as_ptr(), close, 0) }) {
            log::warn!("closing a replication channel failed: {e}");
        }
    }
}

/// A host name Berkeley DB returned.
///
/// # Safety
///
/// `host` is NULL or a NUL-terminated string.
unsafe fn host_of(host: *const c_char) -> String {
    if host.is_null() {
        return String::new();
    }
    // SAFETY: the caller's promise.
    unsafe { CStr::from_ptr(host) }
        .to_string_lossy()
        .into_owned()
}
