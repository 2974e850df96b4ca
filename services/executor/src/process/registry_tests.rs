//! The registry over a fake backend: limits, scoping, polling with a wait, kill,
//! retention.

use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

/// A process whose output and end the test controls.
#[derive(Default)]
struct FakeState {
    stdout: Vec<u8>,
    end: Option<BackgroundState>,
    stdin: Vec<u8>,
}

#[derive(Default)]
struct FakeProcess {
    state: Mutex<FakeState>,
    wake: Mutex<Option<Arc<Notify>>>,
    killed: AtomicBool,
}

impl FakeProcess {
    fn emit(&self, bytes: &[u8]) {
        lock(&self.state).stdout.extend_from_slice(bytes);
        self.notify();
    }

    fn end(&self, how: BackgroundEnd) {
        lock(&self.state).end = Some(BackgroundState::Ended {
            how,
            duration: Duration::from_millis(5),
        });
        self.notify();
    }

    fn notify(&self) {
        if let Some(w) = lock(&self.wake).as_ref() {
            w.notify_waiters();
        }
    }
}

/// The fake's handle as the registry holds it (the test keeps another `Arc`).
struct Handle(Arc<FakeProcess>);

impl BackgroundProcess for Handle {
    fn take_output(&self) -> BackgroundOutput {
        BackgroundOutput {
            stdout: std::mem::take(&mut lock(&self.0.state).stdout),
            ..BackgroundOutput::default()
        }
    }
    fn write_stdin(&self, data: &[u8], _wait: Duration) -> Result<usize, ExecutorError> {
        lock(&self.0.state).stdin.extend_from_slice(data);
        Ok(data.len())
    }
    fn close_stdin(&self) {}
    fn kill(&self) {
        self.0.killed.store(true, Ordering::SeqCst);
        self.0.end(BackgroundEnd::Killed);
    }
    fn state(&self) -> BackgroundState {
        lock(&self.0.state)
            .end
            .clone()
            .unwrap_or(BackgroundState::Running)
    }
}

#[derive(Default)]
struct FakeSpawner {
    started: Mutex<Vec<Arc<FakeProcess>>>,
}

impl SpawnBackground for FakeSpawner {
    fn spawn_background(
        &self,
        _plan: &ValidatedExecPlan,
        _workspace: &PreparedWorkspace,
        wake: Arc<Notify>,
    ) -> Result<Box<dyn BackgroundProcess>, ExecutorError> {
        let p = Arc::new(FakeProcess::default());
        *lock(&p.wake) = Some(wake);
        lock(&self.started).push(Arc::clone(&p));
        Ok(Box::new(Handle(p)))
    }
}

fn agent(name: &str) -> AgentId {
    AgentId::parse(name).unwrap()
}

fn owner(agent_name: &str, session: &str) -> ProcessOwner {
    ProcessOwner {
        agent: agent(agent_name),
        session_key: session.into(),
    }
}

async fn start(
    p: &Arc<Processes>,
    agent_name: &str,
    session: &str,
) -> Result<Arc<Entry>, ExecutorError> {
    let slot = p.reserve(&agent(agent_name))?;
    let plan = ValidatedExecPlan::internal(
        agent(agent_name),
        vec!["sleep".into(), "9".into()],
        Duration::from_secs(9),
    );
    let ws = PreparedWorkspace {
        agent_id: agent(agent_name),
        agent_dir: "/nonexistent".into(),
    };
    p.start(slot, plan, ws, session.into(), 1).await
}

fn setup() -> (Arc<FakeSpawner>, Arc<Processes>) {
    let spawner = Arc::new(FakeSpawner::default());
    let processes = Processes::new(Arc::clone(&spawner) as Arc<dyn SpawnBackground>);
    (spawner, processes)
}

#[tokio::test]
async fn a_process_is_found_only_by_its_agent_and_session() {
    let (_, p) = setup();
    let e = start(&p, "main", "s1").await.unwrap();
    assert!(e.id().as_str().starts_with("proc_"));
    assert!(p.find(&owner("main", "s1"), e.id()).is_ok());
    for other in [owner("main", "s2"), owner("other", "s1")] {
        let err = p.find(&other, e.id()).err().unwrap();
        assert!(
            matches!(err, ExecutorError::ProcessNotFound { .. }),
            "{err}"
        );
    }
    let unknown = ProcessId::random();
    assert!(matches!(
        p.find(&owner("main", "s1"), &unknown),
        Err(ExecutorError::ProcessNotFound { .. })
    ));
    assert_eq!(p.list(&owner("main", "s1")).len(), 1);
    assert!(p.list(&owner("main", "s2")).is_empty());
    let info = e.info(&e.state());
    assert_eq!(info.state(), ProcessState::Running);
    assert_eq!(info.command, "sleep 9");
}

#[tokio::test]
async fn the_running_limits_hold_and_ended_processes_free_their_place() {
    let (spawner, p) = setup();
    for _ in 0..MAX_RUNNING_PER_AGENT {
        start(&p, "main", "s1").await.unwrap();
    }
    let err = start(&p, "main", "s2").await.err().unwrap();
    assert!(
        matches!(
            err,
            ExecutorError::ProcessLimit {
                limit: MAX_RUNNING_PER_AGENT,
                ..
            }
        ),
        "{err}"
    );
    // Another agent still may.
    start(&p, "other", "s1").await.unwrap();
    // A reservation counts before the process runs.
    let held: Vec<Slot> = (0..MAX_RUNNING_PER_AGENT - 1)
        .map(|_| p.reserve(&agent("third")).unwrap())
        .collect();
    assert!(p.reserve(&agent("third")).is_ok(), "the last place is free");
    drop(held);
    // Once one ends, there is room again.
    let first = lock(&spawner.started)[0].clone();
    first.end(BackgroundEnd::Exited(0));
    start(&p, "main", "s1").await.unwrap();
    // The executor-wide limit.
    let mut n = 0;
    let err = loop {
        match start(&p, &format!("a{n}"), "s").await {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            ExecutorError::ProcessLimit {
                limit: MAX_RUNNING,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn poll_waits_for_output_and_returns_what_is_new() {
    let (spawner, p) = setup();
    let e = start(&p, "main", "s1").await.unwrap();
    let fake = lock(&spawner.started)[0].clone();
    let (state, out) = e.poll(Duration::ZERO).await;
    assert_eq!((state, out.is_empty()), (BackgroundState::Running, true));
    let emitter = Arc::clone(&fake);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        emitter.emit(b"one\n");
    });
    let waited = Instant::now();
    let (_, out) = e.poll(Duration::from_secs(10)).await;
    assert_eq!(out.stdout, b"one\n");
    assert!(waited.elapsed() < Duration::from_secs(5));
    let (_, out) = e.poll(Duration::from_millis(20)).await;
    assert!(out.is_empty(), "nothing new");
    fake.emit(b"two\n");
    fake.end(BackgroundEnd::Exited(3));
    let (state, out) = e.poll(Duration::from_secs(10)).await;
    assert_eq!(out.stdout, b"two\n");
    assert!(matches!(
        state,
        BackgroundState::Ended {
            how: BackgroundEnd::Exited(3),
            ..
        }
    ));
    assert_eq!(e.info(&state).exit_code, 3);
}

#[tokio::test]
async fn kill_write_and_shutdown() {
    let (spawner, p) = setup();
    let e = start(&p, "main", "s1").await.unwrap();
    assert_eq!(e.write(b"hi", true, Duration::ZERO).unwrap(), 2);
    let fake = lock(&spawner.started)[0].clone();
    assert_eq!(lock(&fake.state).stdin, b"hi");
    let state = e.kill(Duration::from_secs(1)).await;
    assert_eq!(e.info(&state).state(), ProcessState::Killed);
    let other = start(&p, "main", "s1").await.unwrap();
    p.shutdown(Duration::from_secs(1)).await;
    assert!(matches!(
        other.state(),
        BackgroundState::Ended {
            how: BackgroundEnd::Killed,
            ..
        }
    ));
    assert!(
        p.list(&owner("main", "s1")).is_empty(),
        "forgotten after the drain"
    );
}

#[tokio::test]
async fn ended_processes_beyond_the_cap_are_forgotten_oldest_first() {
    let (spawner, p) = setup();
    let mut ids = Vec::new();
    for _ in 0..MAX_ENDED_PER_AGENT + 2 {
        let e = start(&p, "main", "s1").await.unwrap();
        let fake = lock(&spawner.started).last().cloned().unwrap();
        fake.end(BackgroundEnd::Exited(0));
        ids.push(e.id().clone());
        // Distinct end times.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let kept: Vec<ProcessId> = p
        .list(&owner("main", "s1"))
        .iter()
        .map(|e| e.id().clone())
        .collect();
    assert_eq!(kept.len(), MAX_ENDED_PER_AGENT);
    assert!(!kept.contains(&ids[0]) && !kept.contains(&ids[1]));
    assert!(kept.contains(ids.last().unwrap()));
}

#[test]
fn long_commands_are_cut_for_listing() {
    let long = "é".repeat(MAX_COMMAND_TEXT);
    let text = command_text(&Command::Shell(long));
    assert!(text.len() <= MAX_COMMAND_TEXT + "…".len());
    assert!(text.ends_with('…'));
    assert_eq!(
        command_text(&Command::Argv(vec!["a".into(), "b".into()])),
        "a b"
    );
}
