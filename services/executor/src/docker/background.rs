//! Background processes (the `process` tool) on the Docker backend: one container per
//! process, with exactly the throwaway posture ([`posture::process_body`]: the call
//! container's body plus an open, once-only stdin and the label
//! [`posture::PROCESS_LABEL`]).
//!
//! The start creates the container, attaches to it (stdin, stdout, stderr) before starting
//! it, and returns once it runs. A supervisor task then streams the output into a ring of
//! [`OUTPUT_RING_BYTES`] unread bytes per stream, waits for the exit within the process's
//! wall-clock limit, and on the limit or a kill SIGKILLs the container (tini and its whole
//! pid namespace). Only once the output has ended and the container is removed does the
//! process read as ended, so "ended" means nothing it started is alive and every byte is
//! buffered. Dropping the handle kills too; the executor's shutdown reaps whatever is left
//! by its instance label.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, StartContainerOptions,
};
use futures::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::run::{KILL_GRACE, NOT_STARTED_EXIT_CODE, OutputStream, ensure_image, kill, wait_exit};
use super::{DockerBackend, DockerSettings, docker_error, posture, reaper};
use crate::ExecutorError;
use crate::plan::ValidatedExecPlan;
use crate::process::OUTPUT_RING_BYTES;
use crate::sandbox::{
    BackgroundEnd, BackgroundOutput, BackgroundProcess, BackgroundState, SpawnBackground,
};
use crate::workspace::PreparedWorkspace;

/// After the exit, how long the output stream may take to end.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How often a wait failing in transport is asked again.
const WAIT_RETRIES: u32 = 5;

type Stdin = Pin<Box<dyn AsyncWrite + Send>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `fut` on the runtime behind `rt` and blocks this (blocking-pool) thread until it is
/// done. The future runs on the runtime's own workers, so this works on any runtime flavour.
fn on_runtime<F>(rt: &Handle, fut: F) -> Result<F::Output, ExecutorError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(rt.block_on(rt.spawn(fut))?)
}

impl SpawnBackground for DockerBackend {
    fn spawn_background(
        &self,
        plan: &ValidatedExecPlan,
        workspace: &PreparedWorkspace,
        wake: Arc<Notify>,
    ) -> Result<Box<dyn BackgroundProcess>, ExecutorError> {
        let rt = Handle::try_current()
            .map_err(|_| ExecutorError::DockerProtocol("no runtime to start the process on"))?;
        let binds = self.binds(plan, workspace)?;
        let backend = self.clone();
        let plan = plan.clone();
        let process = on_runtime(&rt, async move {
            let docker = backend.client().await?.clone();
            start(backend, docker, plan, binds, wake).await
        })??;
        Ok(Box::new(DockerBackground {
            rt,
            shared: process.0,
            stdin: process.1,
        }))
    }
}

/// One stream's unread bytes, at most [`OUTPUT_RING_BYTES`]; older bytes are dropped and
/// counted.
#[derive(Default)]
struct Ring {
    bytes: VecDeque<u8>,
    dropped: u64,
}

impl Ring {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let excess = self.bytes.len().saturating_sub(OUTPUT_RING_BYTES);
        if excess > 0 {
            self.bytes.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    fn take(&mut self) -> (Vec<u8>, u64) {
        let bytes = std::mem::take(&mut self.bytes).into();
        (bytes, std::mem::take(&mut self.dropped))
    }
}

/// What the handle and the supervisor share.
struct Shared {
    stdout: Mutex<Ring>,
    stderr: Mutex<Ring>,
    end: Mutex<Option<(BackgroundEnd, Duration)>>,
    /// Cancelled to ask for the kill.
    kill: CancellationToken,
    wake: Arc<Notify>,
}

/// The stdin writer, taken (and shut down) when stdin is closed.
type StdinSlot = Arc<tokio::sync::Mutex<Option<Stdin>>>;

/// Creates, attaches and starts the container, then hands it to a supervisor task.
async fn start(
    backend: DockerBackend,
    docker: Docker,
    plan: ValidatedExecPlan,
    binds: super::CallBinds,
    wake: Arc<Notify>,
) -> Result<(Arc<Shared>, StdinSlot), ExecutorError> {
    let settings = backend.settings();
    ensure_image(&docker, settings).await?;
    let name = format!("pincer-proc-{}", uuid::Uuid::new_v4().simple());
    let body = posture::process_body(settings, &plan, binds.as_binds(), backend.instance_id());
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name),
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(docker_error(settings, "create the process container"))?;
    let id = created.id;
    tracing::debug!(container = %id, agent = plan.agent_id().as_str(), "process container created");
    let shared = Arc::new(Shared {
        stdout: Mutex::new(Ring::default()),
        stderr: Mutex::new(Ring::default()),
        end: Mutex::new(None),
        kill: CancellationToken::new(),
        wake,
    });
    match attach_and_start(&docker, settings, &id, &shared, &plan).await {
        Ok((output, stdin, started)) => {
            let stdin: StdinSlot = Arc::new(tokio::sync::Mutex::new(stdin));
            let supervisor = Supervisor {
                docker,
                settings: settings.clone(),
                id,
                shared: Arc::clone(&shared),
                limit: plan.timeout(),
                started,
            };
            tokio::spawn(supervisor.run(output));
            Ok((shared, stdin))
        }
        Err(e) => {
            if let Err(r) = reaper::remove(&docker, &id).await {
                tracing::warn!(container = %id, error = %r, "cannot remove the process container; the reaper will");
            }
            Err(e)
        }
    }
}

/// Attaches (stdin included) before the start, so no output is missed; returns the output,
/// stdin (`None` when the program could not be started: it reads as exited 127, with the
/// engine's reason on stderr, as for a call) and the start time.
async fn attach_and_start(
    docker: &Docker,
    settings: &DockerSettings,
    id: &str,
    shared: &Shared,
    plan: &ValidatedExecPlan,
) -> Result<(Option<OutputStream>, Option<Stdin>, Instant), ExecutorError> {
    let attached = docker
        .attach_container(
            id,
            Some(AttachContainerOptions {
                stdin: true,
                stdout: true,
                stderr: true,
                stream: true,
                logs: false,
                ..Default::default()
            }),
        )
        .await
        .map_err(docker_error(settings, "attach to the process container"))?;
    let started = Instant::now();
    match docker
        .start_container(id, None::<StartContainerOptions>)
        .await
    {
        Ok(()) => Ok((Some(attached.output), Some(attached.input), started)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 400,
            message,
        }) => {
            let program = plan.argv().first().map(String::as_str).unwrap_or_default();
            lock(&shared.stderr).push(format!("cannot start {program:?}: {message}\n").as_bytes());
            Ok((None, None, started))
        }
        Err(e) => Err(docker_error(settings, "start the process container")(e)),
    }
}

/// Watches one process container until it is gone.
struct Supervisor {
    docker: Docker,
    settings: DockerSettings,
    id: String,
    shared: Arc<Shared>,
    limit: Duration,
    started: Instant,
}

impl Supervisor {
    async fn run(self, output: Option<OutputStream>) {
        let Some(output) = output else {
            // Never started: nothing runs; remove the container and report 127.
            self.remove().await;
            self.finish(
                BackgroundEnd::Exited(NOT_STARTED_EXIT_CODE),
                self.started.elapsed(),
            );
            return;
        };
        let exited = CancellationToken::new();
        let reader = tokio::spawn(read_output(
            output,
            Arc::clone(&self.shared),
            exited.clone(),
        ));
        let end = self.wait().await;
        let duration = self.started.elapsed();
        exited.cancel();
        if let Err(e) = reader.await {
            tracing::warn!(error = %e, "process output reader failed");
        }
        self.remove().await;
        self.finish(end, duration);
    }

    /// Waits for the exit, the wall-clock limit or a kill.
    async fn wait(&self) -> BackgroundEnd {
        let deadline = tokio::time::Instant::from_std(self.started) + self.limit;
        let wait = self.wait_code();
        tokio::select! {
            code = wait => match code {
                Ok(code) => BackgroundEnd::Exited(i32::try_from(code).unwrap_or(-1)),
                Err(e) => BackgroundEnd::Failed(e.to_string()),
            },
            () = tokio::time::sleep_until(deadline) => self.kill(BackgroundEnd::TimedOut).await,
            () = self.shared.kill.cancelled() => self.kill(BackgroundEnd::Killed).await,
        }
    }

    /// The exit code from the engine's wait. A process may outlive one client request, so a
    /// wait that fails in transport (not an answer from the engine) is asked again a few
    /// times; the wall-clock limit and kills stay armed meanwhile.
    async fn wait_code(&self) -> Result<i64, ExecutorError> {
        let mut retries = 0;
        loop {
            match wait_exit(&self.docker, &self.settings, &self.id).await {
                Err(ExecutorError::DockerUnavailable { source, .. }) if retries < WAIT_RETRIES => {
                    retries += 1;
                    tracing::warn!(container = %self.id, error = %source, "process wait failed; waiting again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                other => return other,
            }
        }
    }

    /// SIGKILLs the container (tini and its whole pid namespace) and waits for the engine
    /// to report it stopped; the removal that follows is forced in any case.
    async fn kill(&self, how: BackgroundEnd) -> BackgroundEnd {
        if let Err(e) = kill(&self.docker, &self.settings, &self.id).await {
            tracing::warn!(container = %self.id, error = %e, "cannot kill the process container; removing it");
            return how;
        }
        if tokio::time::timeout(
            KILL_GRACE,
            wait_exit(&self.docker, &self.settings, &self.id),
        )
        .await
        .is_err()
        {
            tracing::warn!(container = %self.id, "process container not reported stopped after SIGKILL");
        }
        how
    }

    async fn remove(&self) {
        if let Err(e) = reaper::remove(&self.docker, &self.id).await {
            tracing::warn!(container = %self.id, error = %e, "cannot remove the process container; the reaper will");
        }
    }

    fn finish(&self, how: BackgroundEnd, duration: Duration) {
        *lock(&self.shared.end) = Some((how, duration));
        self.shared.wake.notify_waiters();
    }
}

/// Reads the multiplexed output into the rings until it ends (the container exited) or a
/// short grace after `exited`.
async fn read_output(mut output: OutputStream, shared: Arc<Shared>, exited: CancellationToken) {
    let deadline = async {
        exited.cancelled().await;
        tokio::time::sleep(DRAIN_GRACE).await;
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            item = output.next() => match item {
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                    lock(&shared.stdout).push(&message);
                    shared.wake.notify_waiters();
                }
                Some(Ok(LogOutput::StdErr { message })) => {
                    lock(&shared.stderr).push(&message);
                    shared.wake.notify_waiters();
                }
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "process output stream failed; output may be incomplete");
                    break;
                }
                None => break,
            },
            () = &mut deadline => {
                tracing::warn!("process output did not end after the exit; output may be incomplete");
                break;
            }
        }
    }
}

/// A background process in its own container.
struct DockerBackground {
    rt: Handle,
    shared: Arc<Shared>,
    stdin: StdinSlot,
}

impl BackgroundProcess for DockerBackground {
    fn take_output(&self) -> BackgroundOutput {
        let (stdout, stdout_dropped) = lock(&self.shared.stdout).take();
        let (stderr, stderr_dropped) = lock(&self.shared.stderr).take();
        BackgroundOutput {
            stdout,
            stderr,
            stdout_dropped,
            stderr_dropped,
        }
    }

    fn write_stdin(&self, data: &[u8], wait: Duration) -> Result<usize, ExecutorError> {
        if lock(&self.shared.end).is_some() {
            return Err(ExecutorError::StdinClosed);
        }
        let stdin = Arc::clone(&self.stdin);
        let data = data.to_vec();
        on_runtime(&self.rt, async move {
            let mut slot = stdin.lock().await;
            let Some(writer) = slot.as_mut() else {
                return Err(ExecutorError::StdinClosed);
            };
            let deadline = tokio::time::Instant::now() + wait;
            let mut written = 0;
            while written < data.len() {
                match tokio::time::timeout_at(deadline, writer.write(&data[written..])).await {
                    Ok(Ok(0) | Err(_)) if written == 0 => return Err(ExecutorError::StdinClosed),
                    Ok(Ok(0) | Err(_)) | Err(_) => break,
                    Ok(Ok(n)) => written += n,
                }
            }
            match tokio::time::timeout_at(deadline, writer.flush()).await {
                Ok(Err(_)) if written == 0 => Err(ExecutorError::StdinClosed),
                _ => Ok(written),
            }
        })?
    }

    fn close_stdin(&self) {
        let stdin = Arc::clone(&self.stdin);
        let closed = on_runtime(&self.rt, async move {
            if let Some(mut writer) = stdin.lock().await.take() {
                // Half-closes the attach connection: with `StdinOnce` the engine closes
                // the container's stdin, and the command reads end-of-file.
                let _ = tokio::time::timeout(Duration::from_secs(5), writer.shutdown()).await;
            }
        });
        if let Err(e) = closed {
            tracing::warn!(error = %e, "cannot close the process's stdin");
        }
    }

    fn kill(&self) {
        self.shared.kill.cancel();
    }

    fn state(&self) -> BackgroundState {
        match &*lock(&self.shared.end) {
            None => BackgroundState::Running,
            Some((how, duration)) => BackgroundState::Ended {
                how: how.clone(),
                duration: *duration,
            },
        }
    }
}

impl Drop for DockerBackground {
    fn drop(&mut self) {
        self.shared.kill.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_bytes_and_counts_the_rest() {
        let mut ring = Ring::default();
        ring.push(b"abc");
        assert_eq!(ring.take(), (b"abc".to_vec(), 0));
        ring.push(&vec![b'x'; OUTPUT_RING_BYTES]);
        ring.push(b"yz");
        let (bytes, dropped) = ring.take();
        assert_eq!(dropped, 2);
        assert_eq!(bytes.len(), OUTPUT_RING_BYTES);
        assert!(bytes.ends_with(b"xyz"));
        assert_eq!(ring.take(), (Vec::new(), 0));
    }
}
