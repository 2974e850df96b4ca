//! The executor's background processes: which exist, whose they are, the limits, polling
//! with a wait, kill, and forgetting ended processes.
//!
//! - A process belongs to the agent and session that started it; a lookup with any other
//!   agent or session finds nothing (the same `NotFound` as an unknown id).
//! - At most [`MAX_RUNNING_PER_AGENT`] run per agent and [`MAX_RUNNING`] per executor
//!   (starts being set up count too: a slot is reserved before the approval step).
//! - Ended processes stay readable for [`KEEP_ENDED`], at most [`MAX_ENDED_PER_AGENT`] per
//!   agent (the oldest are forgotten first); their output stays bounded by the backend's
//!   ring.
//! - [`Processes::kill_all`] and [`Processes::shutdown`] end everything at the executor's
//!   drain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pincer_proto::v1::{ProcessInfo, ProcessState};
use tokio::sync::Notify;

use crate::ExecutorError;
use crate::plan::{AgentId, Command, ValidatedExecPlan};
use crate::process::plan::{ProcessId, ProcessOwner};
use crate::sandbox::{
    BackgroundEnd, BackgroundOutput, BackgroundProcess, BackgroundState, SpawnBackground,
};
use crate::workspace::PreparedWorkspace;

/// Most processes one agent may have running.
pub const MAX_RUNNING_PER_AGENT: usize = 8;
/// Most processes running on one executor.
pub const MAX_RUNNING: usize = 32;
/// How long an ended process stays readable.
pub const KEEP_ENDED: Duration = Duration::from_secs(10 * 60);
/// Most ended processes kept per agent.
pub const MAX_ENDED_PER_AGENT: usize = 16;
/// Longest command text kept for listing.
pub const MAX_COMMAND_TEXT: usize = 1000;

/// Every background process of this executor.
pub struct Processes {
    spawner: Arc<dyn SpawnBackground>,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    entries: HashMap<ProcessId, Arc<Entry>>,
    /// Starts in progress, per agent.
    reserved: HashMap<AgentId, usize>,
}

impl Table {
    fn running(&self, agent: Option<&AgentId>) -> usize {
        let reserved = match agent {
            Some(a) => self.reserved.get(a).copied().unwrap_or(0),
            None => self.reserved.values().sum(),
        };
        let running = self
            .entries
            .values()
            .filter(|e| agent.is_none_or(|a| &e.agent == a))
            .filter(|e| e.process.state() == BackgroundState::Running)
            .count();
        running + reserved
    }

    /// Forgets ended processes older than [`KEEP_ENDED`], and the oldest beyond
    /// [`MAX_ENDED_PER_AGENT`] per agent.
    fn prune(&mut self) {
        let mut ended: HashMap<AgentId, Vec<(Instant, ProcessId)>> = HashMap::new();
        for (id, e) in &self.entries {
            if let Some(at) = e.ended_at() {
                ended
                    .entry(e.agent.clone())
                    .or_default()
                    .push((at, id.clone()));
            }
        }
        for (_, mut list) in ended {
            list.sort();
            let excess = list.len().saturating_sub(MAX_ENDED_PER_AGENT);
            for (i, (at, id)) in list.into_iter().enumerate() {
                if i < excess || at.elapsed() >= KEEP_ENDED {
                    self.entries.remove(&id);
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A place for one start, held from validation to the spawn; released when dropped.
pub struct Slot {
    processes: Arc<Processes>,
    agent: AgentId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = lock(&self.processes.table);
        if let Some(n) = table.reserved.get_mut(&self.agent) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                table.reserved.remove(&self.agent);
            }
        }
    }
}

/// One background process.
pub struct Entry {
    id: ProcessId,
    agent: AgentId,
    session_key: String,
    command: String,
    cwd: String,
    started_at_ms: i64,
    started: Instant,
    process: Box<dyn BackgroundProcess>,
    wake: Arc<Notify>,
    /// One poll at a time, so "new since the previous poll" means one reader.
    polling: tokio::sync::Mutex<()>,
}

impl Processes {
    /// Background processes started through `spawner`.
    pub fn new(spawner: Arc<dyn SpawnBackground>) -> Arc<Self> {
        Arc::new(Self {
            spawner,
            table: Mutex::new(Table::default()),
        })
    }

    /// Reserves a place for a start by `agent`, or says which limit is reached.
    pub fn reserve(self: &Arc<Self>, agent: &AgentId) -> Result<Slot, ExecutorError> {
        let mut table = lock(&self.table);
        table.prune();
        if table.running(Some(agent)) >= MAX_RUNNING_PER_AGENT {
            return Err(ExecutorError::ProcessLimit {
                scope: "for this agent",
                limit: MAX_RUNNING_PER_AGENT,
            });
        }
        if table.running(None) >= MAX_RUNNING {
            return Err(ExecutorError::ProcessLimit {
                scope: "on this executor",
                limit: MAX_RUNNING,
            });
        }
        *table.reserved.entry(agent.clone()).or_insert(0) += 1;
        Ok(Slot {
            processes: Arc::clone(self),
            agent: agent.clone(),
        })
    }

    /// Starts `plan` (already validated and admitted) for `session_key` in `slot`.
    pub async fn start(
        self: &Arc<Self>,
        slot: Slot,
        plan: ValidatedExecPlan,
        workspace: PreparedWorkspace,
        session_key: String,
        started_at_ms: i64,
    ) -> Result<Arc<Entry>, ExecutorError> {
        let wake = Arc::new(Notify::new());
        let spawner = Arc::clone(&self.spawner);
        let for_spawn = Arc::clone(&wake);
        let plan_for_spawn = plan.clone();
        let process = tokio::task::spawn_blocking(move || {
            spawner.spawn_background(&plan_for_spawn, &workspace, for_spawn)
        })
        .await??;
        let mut table = lock(&self.table);
        let mut id = ProcessId::random();
        while table.entries.contains_key(&id) {
            id = ProcessId::random();
        }
        let entry = Arc::new(Entry {
            id: id.clone(),
            agent: plan.agent_id().clone(),
            session_key,
            command: command_text(plan.command()),
            cwd: plan.cwd().to_string(),
            started_at_ms,
            started: Instant::now(),
            process,
            wake,
            polling: tokio::sync::Mutex::new(()),
        });
        table.entries.insert(id, Arc::clone(&entry));
        drop(table);
        // The entry counts as running now; the reservation goes.
        drop(slot);
        Ok(entry)
    }

    /// The process `id` of `owner`; `NotFound` for an unknown id and for another agent's
    /// or session's process alike.
    pub fn find(&self, owner: &ProcessOwner, id: &ProcessId) -> Result<Arc<Entry>, ExecutorError> {
        let mut table = lock(&self.table);
        table.prune();
        table
            .entries
            .get(id)
            .filter(|e| e.agent == owner.agent && e.session_key == owner.session_key)
            .cloned()
            .ok_or_else(|| ExecutorError::ProcessNotFound { id: id.to_string() })
    }

    /// `owner`'s processes, oldest first.
    pub fn list(&self, owner: &ProcessOwner) -> Vec<Arc<Entry>> {
        let mut table = lock(&self.table);
        table.prune();
        let mut list: Vec<Arc<Entry>> = table
            .entries
            .values()
            .filter(|e| e.agent == owner.agent && e.session_key == owner.session_key)
            .cloned()
            .collect();
        list.sort_by(|a, b| a.started.cmp(&b.started).then_with(|| a.id.cmp(&b.id)));
        list
    }

    /// Asks every running process to be killed (returns at once).
    pub fn kill_all(&self) {
        let entries: Vec<Arc<Entry>> = lock(&self.table).entries.values().cloned().collect();
        for e in entries {
            e.process.kill();
        }
    }

    /// Kills everything, waits up to `limit` for it all to end, then forgets every process.
    pub async fn shutdown(&self, limit: Duration) {
        self.kill_all();
        let deadline = tokio::time::Instant::now() + limit;
        while lock(&self.table).running(None) > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("background processes still running after the drain");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let entries = std::mem::take(&mut lock(&self.table).entries);
        drop(entries);
    }
}

impl Entry {
    /// The id.
    pub fn id(&self) -> &ProcessId {
        &self.id
    }

    /// The agent it belongs to.
    pub fn agent(&self) -> &AgentId {
        &self.agent
    }

    /// Running, or how it ended.
    pub fn state(&self) -> BackgroundState {
        self.process.state()
    }

    fn ended_at(&self) -> Option<Instant> {
        match self.process.state() {
            BackgroundState::Running => None,
            BackgroundState::Ended { duration, .. } => Some(self.started + duration),
        }
    }

    /// The output since the previous poll, waiting up to `wait` for some (or the end).
    pub async fn poll(&self, wait: Duration) -> (BackgroundState, BackgroundOutput) {
        let _one_reader = self.polling.lock().await;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // State first: once it says ended, every byte of output is already buffered.
            let state = self.process.state();
            let output = self.process.take_output();
            if !output.is_empty()
                || state != BackgroundState::Running
                || tokio::time::Instant::now() >= deadline
            {
                return (state, output);
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Kills the process and waits up to `wait` for it to end.
    pub async fn kill(&self, wait: Duration) -> BackgroundState {
        self.process.kill();
        self.wait_end(wait).await
    }

    /// Waits up to `wait` for the process to end.
    pub async fn wait_end(&self, wait: Duration) -> BackgroundState {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let state = self.process.state();
            if state != BackgroundState::Running || tokio::time::Instant::now() >= deadline {
                return state;
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Writes to stdin (blocking: run it on the blocking pool), then closes stdin when
    /// asked.
    pub fn write(&self, data: &[u8], close: bool, wait: Duration) -> Result<usize, ExecutorError> {
        let written = if data.is_empty() {
            0
        } else {
            self.process.write_stdin(data, wait)?
        };
        if close {
            self.process.close_stdin();
        }
        Ok(written)
    }

    /// The process on the wire, in `state`.
    pub fn info(&self, state: &BackgroundState) -> ProcessInfo {
        let (state, exit_code, duration, error) = match state {
            BackgroundState::Running => (
                ProcessState::Running,
                -1,
                self.started.elapsed(),
                String::new(),
            ),
            BackgroundState::Ended { how, duration } => {
                let (s, code, error) = match how {
                    BackgroundEnd::Exited(code) => (ProcessState::Exited, *code, String::new()),
                    BackgroundEnd::TimedOut => (ProcessState::TimedOut, -1, String::new()),
                    BackgroundEnd::Killed => (ProcessState::Killed, -1, String::new()),
                    BackgroundEnd::Failed(why) => (ProcessState::Failed, -1, why.clone()),
                };
                (s, code, *duration, error)
            }
        };
        ProcessInfo {
            process_id: self.id.to_string(),
            state: state.into(),
            exit_code,
            command: self.command.clone(),
            cwd: self.cwd.clone(),
            started_at_ms: self.started_at_ms,
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            error,
        }
    }
}

/// The command as the caller sent it, cut at [`MAX_COMMAND_TEXT`] bytes.
fn command_text(command: &Command) -> String {
    let text = match command {
        Command::Shell(line) => line.clone(),
        Command::Argv(args) => args.join(" "),
    };
    if text.len() <= MAX_COMMAND_TEXT {
        return text;
    }
    let mut end = MAX_COMMAND_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
