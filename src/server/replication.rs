//! This site's place in a replication group (--rep-*, README
//! "Replication"): its role as Berkeley DB's events tell it, the master's
//! client address, and the acknowledgement of commits by other sites.
//!
//! Acknowledgements. Berkeley DB's replication manager waits for other
//! sites' acknowledgements inside the commit itself (`__log_put` of the
//! commit record sends it and waits, DB_TXN_NOSYNC or not), so with any
//! acknowledgement policy of its own the reactor would wait for replicas
//! at every turn. The group therefore runs with Berkeley DB's policy
//! DB_REPMGR_ACKS_NONE (commits return at once, their log records already
//! on their way), and the log flusher confirms instead, beside the reactor:
//! once a turn's commit is on the local disk, it asks other sites over
//! repmgr's message channels whether they hold its transaction on their
//! disk (identified by its commit token, checked with DB_ENV->txn_applied,
//! `Confirmer`), until `--rep-ack` sites have said yes or
//! `--rep-ack-timeout` has passed. Elections pick the site with the newest
//! log, so a commit a majority holds survives any election. A site that
//! answers that the transaction is not in its history, and never will be,
//! tells this one it was superseded by another master.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use mio::Waker;

use crate::bdb::{Channel, CommitToken, Confirmation, Env, RepConfig, RepEvent};
use crate::config::{AckPolicy, RepOptions};
use crate::log_limit;

/// How long asking the master for its client address may take.
const ADDRESS_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between rounds of confirmation requests that were not yet met.
const CONFIRM_PAUSE: Duration = Duration::from_millis(2);
/// The longest one confirmation request may take, so that a site that
/// died unnoticed does not use up the time the others could answer in.
const CONFIRM_REQUEST: Duration = Duration::from_millis(250);

/// What this site may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The master: serves everything.
    Master,
    /// A replica of a known master: serves what reads only.
    Replica,
    /// No master is known (an election is under way).
    Electing,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Replica => "replica",
            Role::Electing => "electing",
        }
    }
}

#[derive(Default)]
struct State {
    /// Whether Berkeley DB made this site the master.
    master: AtomicBool,
    /// Counts Berkeley DB's role events.
    role_events: AtomicU64,
    /// Set (to the count of role events then, plus one) when another site
    /// answered that a commit of this one is not in its history: another
    /// master was elected while this one was away (frozen, cut off).
    /// Berkeley DB steps it down once a message of the new generation
    /// reaches it; until then the server stops acting as master itself,
    /// so nothing more is committed that will be rolled back. Any later
    /// role event ends it, including one that came while the answer was
    /// on its way (0: not superseded).
    superseded: AtomicU64,
    /// The master's site id, or -1.
    master_eid: AtomicI32,
    /// Commits whose acknowledgement policy was not met.
    perm_failed: AtomicU64,
    /// The master's client address, with the site id it belongs to.
    master_address: Mutex<Option<(i32, String)>>,
    /// Tells the address thread that the master changed.
    master_changed: Condvar,
    /// Wakes the reactor when the role changes.
    waker: OnceLock<Arc<Waker>>,
    /// Set at shutdown: the address thread ends.
    stopping: AtomicBool,
}

/// The group as this site sees it; clones share it.
#[derive(Clone)]
pub struct Replication {
    state: Arc<State>,
    options: Arc<RepOptions>,
    /// The address memcache clients use for this site.
    client_address: Arc<str>,
}

impl Replication {
    pub fn new(options: RepOptions, client_address: String) -> Replication {
        let state = State::default();
        state.master_eid.store(-1, Ordering::SeqCst);
        Replication {
            state: Arc::new(state),
            options: Arc::new(options),
            client_address: client_address.into(),
        }
    }

    /// What `Env::open` needs to make this a site of the group.
    pub fn env_config(&self) -> RepConfig {
        let events = self.clone();
        RepConfig {
            local: self.options.listen.clone(),
            peers: self.options.peers.clone(),
            priority: self.options.priority,
            client_address: self.client_address.to_string(),
            on_event: Box::new(move |event| events.on_event(event)),
        }
    }

    /// Starts the thread that learns the master's client address, for the
    /// refusals of a replica.
    pub fn start_address_thread(&self, env: Env) -> std::io::Result<()> {
        let replication = self.clone();
        thread::Builder::new()
            .name("rep-address".into())
            .spawn(move || replication.learn_master_addresses(&env))?;
        Ok(())
    }

    /// This site's replication address, for the log.
    pub fn site_name(&self) -> String {
        self.options.listen.to_string()
    }

    /// Ends the address thread (at shutdown).
    pub fn stop(&self) {
        let _guard = self.lock_address();
        self.state.stopping.store(true, Ordering::SeqCst);
        self.state.master_changed.notify_all();
    }

    /// Wakes the reactor through `waker` whenever the role changes.
    pub fn set_waker(&self, waker: Arc<Waker>) {
        let _ = self.state.waker.set(waker);
    }

    pub fn role(&self) -> Role {
        let events = self.state.role_events.load(Ordering::SeqCst);
        if self.state.superseded.load(Ordering::SeqCst) == events + 1 {
            Role::Electing
        } else if self.state.master.load(Ordering::SeqCst) {
            Role::Master
        } else if self.state.master_eid.load(Ordering::SeqCst) >= 0 {
            Role::Replica
        } else {
            Role::Electing
        }
    }

    fn on_event(&self, event: RepEvent) {
        let s = &self.state;
        if !matches!(event, RepEvent::StartupDone | RepEvent::Connections) {
            s.role_events.fetch_add(1, Ordering::SeqCst);
        }
        match event {
            RepEvent::Master => {
                s.master.store(true, Ordering::SeqCst);
                log::warn!("replication: this site is now the master");
            }
            RepEvent::Client => s.master.store(false, Ordering::SeqCst),
            RepEvent::NewMaster(eid) => {
                // The same site may come back as master on another client
                // port: its address is asked for again.
                *self.lock_address() = None;
                s.master_eid.store(eid, Ordering::SeqCst);
                log::warn!("replication: the group has a new master (site {eid})");
            }
            RepEvent::DupMaster | RepEvent::MasterLost => {
                s.master.store(false, Ordering::SeqCst);
                s.master_eid.store(-1, Ordering::SeqCst);
                log::warn!("replication: no master; an election follows");
            }
            RepEvent::Panic => {
                crate::fatal::check("replication", crate::bdb::Error::RunRecovery);
                return;
            }
            RepEvent::Connections => {
                crate::os::tcp_nodelay_everywhere();
                return;
            }
            RepEvent::StartupDone => return,
        }
        s.master_changed.notify_all();
        self.wake_reactor();
    }

    /// Wakes the reactor to follow a change of role.
    fn wake_reactor(&self) {
        if let Some(waker) = self.state.waker.get() {
            if let Err(e) = waker.wake() {
                log::error!("waking the reactor failed: {e}");
            }
        }
    }

    /// The master's client address, if known.
    pub fn master_address(&self) -> Option<String> {
        match self.role() {
            Role::Master => Some(self.client_address.to_string()),
            Role::Electing => None,
            Role::Replica => {
                let eid = self.state.master_eid.load(Ordering::SeqCst);
                let known = self.lock_address();
                known
                    .as_ref()
                    .filter(|(e, _)| *e == eid)
                    .map(|(_, a)| a.clone())
            }
        }
    }

    fn lock_address(&self) -> std::sync::MutexGuard<'_, Option<(i32, String)>> {
        self.state
            .master_address
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The reply to a command that would change data on a site that is
    /// not the master.
    pub fn refusal(&self) -> Vec<u8> {
        let master = self.master_address().unwrap_or_default();
        format!("SERVER_ERROR not the master; master is {master}\r\n").into_bytes()
    }

    /// Other sites this one is connected to.
    pub fn connected_sites(&self, env: &Env) -> u64 {
        let sites = env.rep_sites().unwrap_or_default();
        sites.iter().filter(|s| s.connected).count() as u64
    }

    /// Commits whose --rep-ack was not met in time.
    pub fn perm_failed(&self) -> u64 {
        self.state.perm_failed.load(Ordering::Relaxed)
    }

    /// The reply to `stats replication`.
    pub fn report(&self, env: &Env) -> Vec<u8> {
        let sites = env.rep_sites().unwrap_or_default();
        let elections = env.rep_elections().unwrap_or(0);
        let lines = [
            ("role", self.role().name().to_string()),
            ("master", self.master_address().unwrap_or_default()),
            ("sites", (sites.len() + 1).to_string()),
            ("connected", self.connected_sites(env).to_string()),
            ("perm_failed", self.perm_failed().to_string()),
            ("elections", elections.to_string()),
        ];
        let mut out = Vec::new();
        for (name, value) in lines {
            out.extend_from_slice(format!("STAT {name} {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"END\r\n");
        out
    }

    /// The address thread: whenever a replica's master changes, asks it
    /// for its client address.
    fn learn_master_addresses(&self, env: &Env) {
        loop {
            let eid = {
                let mut known = self.lock_address();
                loop {
                    if self.state.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let eid = self.state.master_eid.load(Ordering::SeqCst);
                    let wanted = self.role() == Role::Replica
                        && known.as_ref().is_none_or(|(e, _)| *e != eid);
                    if wanted {
                        break eid;
                    }
                    known = self
                        .state
                        .master_changed
                        .wait(known)
                        .unwrap_or_else(|e| e.into_inner());
                }
            };
            match env.ask_master_address(ADDRESS_TIMEOUT) {
                Ok(address) if !address.is_empty() => {
                    log::info!("replication: the master serves clients at {address}");
                    *self.lock_address() = Some((eid, address));
                }
                Ok(_) | Err(_) => thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

/// Confirms commits with other sites (the log flusher's, see the top of
/// this module), over channels kept open between requests.
pub struct Confirmer {
    replication: Replication,
    /// An open channel to each site asked so far, by site id.
    channels: HashMap<i32, Channel>,
}

impl Confirmer {
    pub fn new(replication: Replication) -> Confirmer {
        Confirmer {
            replication,
            channels: HashMap::new(),
        }
    }

    /// Whether as many other sites as `--rep-ack` asks hold the
    /// transaction of `token` (and so everything before it) on their
    /// disks, asking them for at most
    /// `--rep-ack-timeout`. Run by the log flusher, never by the reactor.
    /// A site that is no longer the master confirms nothing (and counts no
    /// failure: the election decides what becomes of its last commits).
    pub fn confirm(&mut self, env: &Env, token: &CommitToken) -> Confirmation {
        let r = self.replication.clone();
        let events = r.state.role_events.load(Ordering::SeqCst);
        let confirmed = self.ask_sites(env, token);
        if confirmed == Confirmation::Superseded
            && r.state.superseded.swap(events + 1, Ordering::SeqCst) != events + 1
        {
            log::warn!(
                "replication: another site was elected master meanwhile; not serving as master"
            );
            r.wake_reactor();
        }
        if confirmed != Confirmation::Yes && r.role() == Role::Master {
            r.state.perm_failed.fetch_add(1, Ordering::Relaxed);
            log_limit::error!(
                "acknowledgement",
                "a commit was not acknowledged by --rep-ack {:?} sites in time",
                r.options.ack
            );
        }
        confirmed
    }

    fn ask_sites(&mut self, env: &Env, token: &CommitToken) -> Confirmation {
        let r = self.replication.clone();
        let deadline = Instant::now() + Duration::from_millis(r.options.ack_timeout_ms);
        let mut yes: Vec<i32> = Vec::new();
        // Asked even once this site is no longer master: whether other
        // sites hold the transaction decides what becomes of the turn.
        loop {
            let Ok(sites) = env.rep_sites() else {
                return Confirmation::No;
            };
            let needed = match r.options.ack {
                AckPolicy::None => 0,
                AckPolicy::One => 1,
                // A majority of the group counts this site too.
                AckPolicy::Quorum => sites.len().div_ceil(2),
                AckPolicy::All => sites.len(),
            };
            for site in sites.iter().filter(|s| s.connected) {
                if yes.len() >= needed || yes.contains(&site.eid) {
                    continue;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let wait = left.min(CONFIRM_REQUEST);
                match self.ask(env, site.eid, token, wait) {
                    Ok(Confirmation::Yes) => yes.push(site.eid),
                    Ok(Confirmation::Superseded) => return Confirmation::Superseded,
                    Ok(Confirmation::No) => {}
                    // A channel that failed is opened anew next time.
                    Err(_) => {
                        self.channels.remove(&site.eid);
                    }
                }
            }
            if yes.len() >= needed {
                return Confirmation::Yes;
            }
            if Instant::now() >= deadline {
                return Confirmation::No;
            }
            thread::sleep(CONFIRM_PAUSE);
        }
    }

    fn ask(
        &mut self,
        env: &Env,
        eid: i32,
        token: &CommitToken,
        wait: Duration,
    ) -> crate::bdb::Result<Confirmation> {
        let channel = match self.channels.entry(eid) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(slot) => slot.insert(env.channel(eid)?),
        };
        channel.confirm(token, wait)
    }
}
