//! Per-session containers (`executor.docker.reuse: "session"`): the calls of one session
//! run, one `docker exec` each ([`super::exec`]), in one long-lived container made with the
//! posture of a throwaway call container ([`posture::session_body`]).
//!
//! Containers are keyed by (agent, session, workspace access, egress): a read-only call
//! never runs in a container whose workspace is mounted read-write, a call without egress
//! never in one with the proxy's relay, and two sessions never share one.
//! A container is made by the key's first call (concurrent first calls wait for it), and
//! retired — force-removed, which kills everything in it — when:
//!
//! - no call used it for the idle timeout (a sweeper task checks a few times per timeout);
//! - a timed-out call could not be confirmed killed ([`super::exec::ExecRun::confined`]);
//! - it stopped (e.g. its idle command was killed): the next call makes a new one;
//! - [`Pool::forget_all`] (shutdown; the caller then removes every container of this
//!   executor by label) or [`MAX_SESSION_CONTAINERS`] were reached and it was the least
//!   recently used idle one.
//!
//! Leftovers of a crash carry `pincer.sandbox=1` like every sandbox and are reaped at start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{CreateContainerOptions, StartContainerOptions};

use super::exec::{ExecFailure, run_exec};
use super::{DockerSettings, docker_error, posture, reaper, run};
use crate::ExecutorError;
use crate::plan::{AgentId, ValidatedExecPlan};
use crate::sandbox::ExecOutcome;

/// Most session containers one executor keeps. When all are busy, a new session's calls
/// get throwaway containers until one is retired.
pub const MAX_SESSION_CONTAINERS: usize = 64;

/// What a call needs from the backend.
pub(super) struct Call<'a> {
    pub docker: &'a Docker,
    pub settings: &'a DockerSettings,
    pub instance_id: &'a str,
    pub plan: &'a ValidatedExecPlan,
    /// What its container mounts, as the engine sees it.
    pub binds: posture::Binds<'a>,
}

/// Which container a call runs in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    agent: AgentId,
    session: String,
    read_only: bool,
    egress: bool,
}

impl Key {
    fn of(plan: &ValidatedExecPlan) -> Self {
        Self {
            agent: plan.agent_id().clone(),
            session: plan.session_key().to_owned(),
            read_only: plan.workspace_read_only(),
            egress: plan.egress(),
        }
    }
}

/// One key's container: its id once made. The async lock makes concurrent first calls
/// wait for one container instead of making several.
#[derive(Debug, Default)]
struct Slot {
    container: tokio::sync::Mutex<Option<String>>,
}

#[derive(Debug)]
struct Entry {
    slot: Arc<Slot>,
    /// Calls holding a [`Lease`] on it.
    in_use: usize,
    /// When the last call ended (or the first began).
    last_used: Instant,
}

#[derive(Debug)]
struct State {
    entries: Mutex<HashMap<Key, Entry>>,
    idle: Duration,
    sweeper_started: AtomicBool,
}

impl State {
    /// The map; a panic while it was held leaves it usable (every change is one step).
    fn entries(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes out the entries idle for at least `idle` and returns their containers.
    fn take_expired(&self, now: Instant) -> Vec<String> {
        let mut entries = self.entries();
        let expired: Vec<Key> = entries
            .iter()
            .filter(|(_, e)| e.in_use == 0 && now.duration_since(e.last_used) >= self.idle)
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|key| take_idle(&mut entries, &key))
            .flatten()
            .collect()
    }
}

/// Removes the idle entry `key` and returns its container (if one was made); `None` when
/// the slot is locked (cannot happen without a lease, but then it stays).
fn take_idle(entries: &mut HashMap<Key, Entry>, key: &Key) -> Option<Option<String>> {
    let entry = entries.get(key)?;
    let container = entry.slot.container.try_lock().ok()?.take();
    entries.remove(key);
    Some(container)
}

/// The session containers of one backend.
#[derive(Debug)]
pub(super) struct Pool {
    state: Arc<State>,
}

impl Pool {
    /// An empty pool whose containers are retired after `idle` without a call.
    pub fn new(idle: Duration) -> Self {
        Self {
            state: Arc::new(State {
                entries: Mutex::new(HashMap::new()),
                idle,
                sweeper_started: AtomicBool::new(false),
            }),
        }
    }

    /// Runs the call in its session's container; `None` when the pool is full of busy
    /// containers (the caller runs it in a throwaway container).
    pub async fn run(&self, call: Call<'_>) -> Option<Result<ExecOutcome, ExecutorError>> {
        let (lease, evicted) = self.lease(Key::of(call.plan))?;
        if let Some(id) = evicted {
            remove(
                call.docker,
                &id,
                "the least recently used session container",
            )
            .await;
        }
        self.start_sweeper(call.docker);
        Some(lease.run(&call).await)
    }

    /// Forgets every container (the caller removes them by label). Calls in flight finish
    /// in theirs; the next call of a session makes a new one.
    pub fn forget_all(&self) {
        self.state.entries().clear();
    }

    /// Takes a lease on `key`'s entry, making the entry if needed. When the pool is full,
    /// the least recently used idle entry is taken out and its container returned for
    /// removal; `None` when every entry is busy.
    fn lease(&self, key: Key) -> Option<(Lease, Option<String>)> {
        let mut entries = self.state.entries();
        let mut evicted = None;
        if !entries.contains_key(&key) && entries.len() >= MAX_SESSION_CONTAINERS {
            let oldest = entries
                .iter()
                .filter(|(_, e)| e.in_use == 0)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())?;
            evicted = take_idle(&mut entries, &oldest)?;
        }
        let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
            slot: Arc::default(),
            in_use: 0,
            last_used: Instant::now(),
        });
        entry.in_use += 1;
        entry.last_used = Instant::now();
        let lease = Lease {
            state: Arc::clone(&self.state),
            key,
            slot: Arc::clone(&entry.slot),
        };
        Some((lease, evicted))
    }

    /// Starts the idle sweeper once, on the first session call (it needs the runtime).
    /// It ends when the pool is dropped.
    fn start_sweeper(&self, docker: &Docker) {
        if self.state.sweeper_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let state = Arc::downgrade(&self.state);
        let period =
            (self.state.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        tokio::spawn(sweep(state, docker.clone(), period));
    }
}

/// Retires idle containers every `period` until the pool is gone.
async fn sweep(state: Weak<State>, docker: Docker, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Some(state) = state.upgrade() else {
            return;
        };
        let expired = state.take_expired(Instant::now());
        drop(state);
        for id in expired {
            remove(&docker, &id, "an idle session container").await;
        }
    }
}

async fn remove(docker: &Docker, id: &str, what: &str) {
    match reaper::remove(docker, id).await {
        Ok(()) => tracing::debug!(container = id, "removed {what}"),
        Err(e) => tracing::warn!(
            container = id,
            error = %e,
            "cannot remove {what}; the reaper will at shutdown or next start"
        ),
    }
}

/// A call's hold on its entry: the entry is not retired while leased.
struct Lease {
    state: Arc<State>,
    key: Key,
    slot: Arc<Slot>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut entries = self.state.entries();
        // Gone after `forget_all`.
        if let Some(entry) = entries.get_mut(&self.key) {
            entry.in_use = entry.in_use.saturating_sub(1);
            entry.last_used = Instant::now();
        }
    }
}

impl Lease {
    /// Runs the call, making the container first if needed; a container found gone is
    /// replaced once.
    async fn run(&self, call: &Call<'_>) -> Result<ExecOutcome, ExecutorError> {
        let mut replaced = false;
        loop {
            let container = self.container(call).await?;
            match run_exec(call.docker, call.settings, &container, call.plan).await {
                Ok(run) => {
                    if !run.confined {
                        self.retire(
                            call.docker,
                            &container,
                            "a session container whose timed-out call could not be killed",
                        )
                        .await;
                    }
                    return Ok(run.outcome);
                }
                Err(ExecFailure::ContainerGone) if !replaced => {
                    tracing::info!(container = %container, "the session's container stopped; making a new one");
                    self.retire(call.docker, &container, "a stopped session container")
                        .await;
                    replaced = true;
                }
                Err(ExecFailure::ContainerGone) => {
                    return Err(ExecutorError::DockerProtocol(
                        "the session's new container stopped before the call could run",
                    ));
                }
                Err(ExecFailure::Failed(e)) => return Err(e),
            }
        }
    }

    /// The key's container, made and started if there is none.
    async fn container(&self, call: &Call<'_>) -> Result<String, ExecutorError> {
        let mut container = self.slot.container.lock().await;
        if let Some(id) = container.as_ref() {
            return Ok(id.clone());
        }
        let id = create(call).await?;
        *container = Some(id.clone());
        Ok(id)
    }

    /// Takes `id` out of the slot (if it is still there) and removes it.
    async fn retire(&self, docker: &Docker, id: &str, what: &str) {
        {
            let mut container = self.slot.container.lock().await;
            if container.as_deref() == Some(id) {
                *container = None;
            }
        }
        remove(docker, id, what).await;
    }
}

/// Makes and starts a session container for the call's key.
async fn create(call: &Call<'_>) -> Result<String, ExecutorError> {
    let (docker, settings, plan) = (call.docker, call.settings, call.plan);
    run::ensure_image(docker, settings).await?;
    let body = posture::session_body(
        settings,
        plan.agent_id(),
        plan.workspace_read_only(),
        call.binds,
        call.instance_id,
    );
    let name = format!("pincer-sbx-{}", uuid::Uuid::new_v4().simple());
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name),
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(docker_error(
            settings,
            "create the session's sandbox container",
        ))?;
    if let Err(e) = docker
        .start_container(&created.id, None::<StartContainerOptions>)
        .await
    {
        remove(
            docker,
            &created.id,
            "a session container that did not start",
        )
        .await;
        return Err(docker_error(
            settings,
            "start the session's sandbox container",
        )(e));
    }
    tracing::debug!(
        container = %created.id,
        agent = plan.agent_id().as_str(),
        read_only = plan.workspace_read_only(),
        "session container started"
    );
    Ok(created.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(session: &str, read_only: bool) -> Key {
        Key {
            agent: AgentId::parse("main").unwrap(),
            session: session.to_owned(),
            read_only,
            egress: false,
        }
    }

    fn give_container(lease: &Lease, id: &str) {
        *lease.slot.container.try_lock().unwrap() = Some(id.to_owned());
    }

    #[test]
    fn one_entry_per_key_and_leases_keep_it() {
        let pool = Pool::new(Duration::from_secs(60));
        let (a, _) = pool.lease(key("s1", false)).unwrap();
        let (b, _) = pool.lease(key("s1", false)).unwrap();
        assert!(Arc::ptr_eq(&a.slot, &b.slot), "one container per key");
        let (ro, _) = pool.lease(key("s1", true)).unwrap();
        let (other, _) = pool.lease(key("s2", false)).unwrap();
        assert!(!Arc::ptr_eq(&a.slot, &ro.slot), "access is part of the key");
        assert!(!Arc::ptr_eq(&a.slot, &other.slot), "sessions never share");
        give_container(&a, "c1");
        drop(a);
        // Still leased by b: never expired, however old.
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(pool.state.take_expired(later).is_empty());
        assert!(pool.state.entries().contains_key(&key("s1", false)));
        drop(b);
        drop((ro, other));
        let mut expired = pool.state.take_expired(later);
        expired.sort();
        // Only the entry that got a container returns one; all three are gone.
        assert_eq!(expired, ["c1"]);
        assert!(pool.state.entries().is_empty());
    }

    #[test]
    fn recently_used_entries_are_kept() {
        let pool = Pool::new(Duration::from_secs(60));
        let (a, _) = pool.lease(key("s1", false)).unwrap();
        give_container(&a, "c1");
        drop(a);
        assert!(pool.state.take_expired(Instant::now()).is_empty());
        let expired = pool
            .state
            .take_expired(Instant::now() + Duration::from_secs(61));
        assert_eq!(expired, ["c1"]);
    }

    #[test]
    fn a_full_pool_evicts_the_least_recently_used_idle_entry() {
        let pool = Pool::new(Duration::from_secs(60));
        let mut busy = Vec::new();
        for i in 0..MAX_SESSION_CONTAINERS {
            let (lease, evicted) = pool.lease(key(&format!("s{i}"), false)).unwrap();
            assert!(evicted.is_none());
            give_container(&lease, &format!("c{i}"));
            busy.push(lease);
        }
        // All busy: a new session gets no entry (a throwaway container instead).
        assert!(pool.lease(key("new", false)).is_none());
        // An existing key still gets its lease.
        assert!(pool.lease(key("s3", false)).is_some());
        // Free two; the one freed first is the least recently used.
        let s5 = busy.remove(5);
        drop(s5);
        std::thread::sleep(Duration::from_millis(5));
        let s7 = busy.remove(6);
        drop(s7);
        let (_new, evicted) = pool.lease(key("new", false)).unwrap();
        assert_eq!(evicted.as_deref(), Some("c5"));
        assert_eq!(pool.state.entries().len(), MAX_SESSION_CONTAINERS);
    }

    #[test]
    fn forget_all_empties_the_pool_and_leases_still_drop() {
        let pool = Pool::new(Duration::from_secs(60));
        let (a, _) = pool.lease(key("s1", false)).unwrap();
        pool.forget_all();
        drop(a);
        assert!(pool.state.entries().is_empty());
    }
}
