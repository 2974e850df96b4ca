//! One call in a session's container: `docker exec` the command (through
//! [`posture::EXEC_WRAPPER`], so the first line of stdout is its pid), keep the capped
//! output until the exec's stream ends, and read the exit code from the exec's inspection.
//!
//! Every exec starts a new session in the container, so the wrapper's pid is the call's
//! session and process-group id. At the wall-clock limit a second exec
//! ([`posture::kill_config`]) kills that group and every process still in that session;
//! the outcome then says whether the call is confined (nothing of its session left). When
//! it is not — no pid was printed, the kill failed or the stream did not end — the caller
//! retires the whole container, which kills everything in it.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use futures::{Stream, StreamExt};

use super::{DockerSettings, docker_error, posture};
use crate::ExecutorError;
use crate::plan::ValidatedExecPlan;
use crate::sandbox::{CappedOutput, ExecOutcome};

/// How long the kill at the limit may take (create, start and run the kill script, with
/// its retries).
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times the kill is tried before the container is retired instead.
const KILL_ATTEMPTS: u32 = 5;
/// The pause between two kill attempts.
const KILL_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// After the kill, how long the call's stream may take to end. The engine closes an
/// exec's streams at most 2 s after its process exits, even when a background process
/// still holds them.
const KILL_DRAIN: Duration = Duration::from_secs(5);
/// How often the exec is inspected when its stream ended before the engine recorded the
/// exit.
const EXIT_POLL: Duration = Duration::from_millis(20);
/// The longest pid line the wrapper prints (`4194304\n` is the largest default pid).
const MAX_PID_LINE: usize = 12;

type OutputStream = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// How a call in a session's container ended.
#[derive(Debug)]
pub(super) struct ExecRun {
    /// What the caller gets.
    pub outcome: ExecOutcome,
    /// Whether nothing of the call can still be running in its own session (false: it
    /// timed out and the kill could not be confirmed; the container must go).
    pub confined: bool,
}

/// Why a call did not run.
#[derive(Debug)]
pub(super) enum ExecFailure {
    /// The container is gone or stopped (e.g. its idle command was killed): a new one may
    /// be made and the call retried; the command did not start.
    ContainerGone,
    /// Anything else.
    Failed(ExecutorError),
}

impl From<ExecutorError> for ExecFailure {
    fn from(e: ExecutorError) -> Self {
        Self::Failed(e)
    }
}

/// Runs `plan` in the running container `container`.
pub(super) async fn run_exec(
    docker: &Docker,
    settings: &DockerSettings,
    container: &str,
    plan: &ValidatedExecPlan,
) -> Result<ExecRun, ExecFailure> {
    let exec = match docker
        .create_exec(container, posture::exec_config(settings, plan))
        .await
    {
        Ok(exec) => exec,
        // 404: no such container; 409: not running (stopped, paused, restarting).
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => return Err(ExecFailure::ContainerGone),
        Err(e) => return Err(docker_error(settings, "create the call's exec")(e).into()),
    };
    let started = Instant::now();
    let output = attach(docker, settings, &exec.id).await?;
    let mut reader = ExecOutput::new(output, settings.max_output_bytes);
    let finished = tokio::time::timeout(plan.timeout(), async {
        reader.read_to_end().await;
        wait_exit(docker, settings, &exec.id).await
    })
    .await;
    let (exit_code, timed_out, confined) = match finished {
        Ok(code) => (i32::try_from(code?).unwrap_or(-1), false, true),
        Err(_) => {
            // When the kill fails the container is retired, which ends the stream too.
            let confined = kill_call(docker, settings, container, reader.pid()).await
                && match tokio::time::timeout(KILL_DRAIN, reader.read_to_end()).await {
                    Ok(()) => true,
                    Err(_) => {
                        tracing::warn!(container, "the call's output did not end after the kill");
                        false
                    }
                };
            (-1, true, confined)
        }
    };
    let duration = started.elapsed();
    let (stdout, stderr) = (reader.stdout, reader.stderr);
    let output_truncated = stdout.truncated() || stderr.truncated();
    Ok(ExecRun {
        outcome: ExecOutcome {
            exit_code,
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
            timed_out,
            output_truncated,
            duration,
        },
        confined,
    })
}

/// Starts exec `id` attached (stdout and stderr, multiplexed).
async fn attach(
    docker: &Docker,
    settings: &DockerSettings,
    id: &str,
) -> Result<OutputStream, ExecFailure> {
    let options = StartExecOptions {
        detach: false,
        tty: false,
        output_capacity: None,
    };
    match docker.start_exec(id, Some(options)).await {
        // The write half is dropped: the exec has no stdin.
        Ok(StartExecResults::Attached { output, .. }) => Ok(output),
        Ok(StartExecResults::Detached) => Err(ExecutorError::DockerProtocol(
            "the engine detached an exec that was started attached",
        )
        .into()),
        // The container stopped between the create and the start.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => Err(ExecFailure::ContainerGone),
        Err(e) => Err(docker_error(settings, "start the call's exec")(e).into()),
    }
}

/// The exec's exit code, once the engine has recorded it.
async fn wait_exit(
    docker: &Docker,
    settings: &DockerSettings,
    id: &str,
) -> Result<i64, ExecutorError> {
    loop {
        let inspected = docker
            .inspect_exec(id)
            .await
            .map_err(docker_error(settings, "inspect the call's exec"))?;
        match (inspected.running, inspected.exit_code) {
            (Some(false), Some(code)) => return Ok(code),
            (Some(false), None) => {
                return Err(ExecutorError::DockerProtocol(
                    "the engine reported an ended exec without an exit code",
                ));
            }
            _ => tokio::time::sleep(EXIT_POLL).await,
        }
    }
}

/// Kills the call whose wrapper printed `pid`; true when the kill script confirmed that
/// nothing of the call's session is left.
///
/// A call that filled the container's pids limit can make the kill's own exec fail to
/// start (the engine's in-container helper needs threads of its own), so a failed attempt
/// is retried, [`KILL_ATTEMPTS`] times at most, all within [`KILL_TIMEOUT`]. The script is
/// idempotent: it only signals what is still in the call's session.
async fn kill_call(
    docker: &Docker,
    settings: &DockerSettings,
    container: &str,
    pid: Option<u32>,
) -> bool {
    let Some(pid) = pid else {
        tracing::warn!(
            container,
            "the call timed out before printing its pid; its container is retired"
        );
        return false;
    };
    let attempts = async {
        for attempt in 1..=KILL_ATTEMPTS {
            match kill_once(docker, settings, container, pid).await {
                Ok(0) => return true,
                Ok(code) => tracing::warn!(
                    container,
                    pid,
                    code,
                    attempt,
                    "the kill script could not confirm the call's end"
                ),
                Err(e) => {
                    tracing::warn!(container, pid, attempt, error = %e, "cannot kill the timed-out call");
                }
            }
            tokio::time::sleep(KILL_RETRY_PAUSE).await;
        }
        false
    };
    tokio::time::timeout(KILL_TIMEOUT, attempts)
        .await
        .unwrap_or_else(|_| {
            tracing::warn!(
                container,
                pid,
                "the kill of the timed-out call did not finish"
            );
            false
        })
}

/// One run of the kill script; its exit code.
async fn kill_once(
    docker: &Docker,
    settings: &DockerSettings,
    container: &str,
    pid: u32,
) -> Result<i64, ExecutorError> {
    let exec = docker
        .create_exec(container, posture::kill_config(settings, pid))
        .await
        .map_err(docker_error(settings, "create the kill exec"))?;
    let mut output = match attach(docker, settings, &exec.id).await {
        Ok(output) => output,
        Err(ExecFailure::Failed(e)) => return Err(e),
        Err(ExecFailure::ContainerGone) => {
            return Err(ExecutorError::DockerProtocol(
                "the container stopped during the kill",
            ));
        }
    };
    while output.next().await.is_some() {}
    wait_exit(docker, settings, &exec.id).await
}

/// The exec's multiplexed output: the wrapper's pid line, then the command's capped
/// stdout and stderr. Reading is cancel-safe (all state is here), so a timeout may stop
/// it and a later call go on.
struct ExecOutput {
    stream: OutputStream,
    pid: PidLine,
    stdout: CappedOutput,
    stderr: CappedOutput,
    ended: bool,
}

impl ExecOutput {
    fn new(stream: OutputStream, cap: usize) -> Self {
        Self {
            stream,
            pid: PidLine::default(),
            stdout: CappedOutput::new(cap),
            stderr: CappedOutput::new(cap),
            ended: false,
        }
    }

    fn pid(&self) -> Option<u32> {
        self.pid.pid()
    }

    /// Reads until the stream ends (or fails).
    async fn read_to_end(&mut self) {
        while !self.ended {
            match self.stream.next().await {
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                    self.pid.feed(&message, &mut self.stdout);
                }
                Some(Ok(LogOutput::StdErr { message })) => self.stderr.push(&message),
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "exec output stream failed; output may be incomplete");
                    self.ended = true;
                }
                None => self.ended = true,
            }
        }
    }
}

/// The first line of an exec's stdout, which the wrapper fills with its pid.
#[derive(Debug, Default)]
struct PidLine {
    line: Vec<u8>,
    state: PidState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum PidState {
    /// Still reading the line.
    #[default]
    Reading,
    /// Read: the pid.
    Known(u32),
    /// The line was not a pid (cannot happen with the wrapper; then nothing is stripped).
    Absent,
}

impl PidLine {
    /// Takes a stdout chunk; what belongs to the command's output goes to `out`. A line
    /// that is not a pid is output as it came.
    fn feed(&mut self, chunk: &[u8], out: &mut CappedOutput) {
        if self.state != PidState::Reading {
            out.push(chunk);
            return;
        }
        match chunk.iter().position(|b| *b == b'\n') {
            Some(end) if self.line.len() + end <= MAX_PID_LINE => {
                self.line.extend_from_slice(&chunk[..end]);
                let pid = std::str::from_utf8(&self.line)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse().ok());
                match pid {
                    Some(pid) => {
                        self.state = PidState::Known(pid);
                        out.push(&chunk[end + 1..]);
                    }
                    None => {
                        self.state = PidState::Absent;
                        out.push(&self.line);
                        out.push(&chunk[end..]);
                    }
                }
            }
            None if self.line.len() + chunk.len() <= MAX_PID_LINE => {
                self.line.extend_from_slice(chunk);
            }
            _ => {
                self.state = PidState::Absent;
                out.push(&self.line);
                out.push(chunk);
            }
        }
    }

    fn pid(&self) -> Option<u32> {
        match self.state {
            PidState::Known(pid) => Some(pid),
            PidState::Reading | PidState::Absent => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(line: &mut PidLine, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = CappedOutput::new(1024);
        for chunk in chunks {
            line.feed(chunk, &mut out);
        }
        out.into_bytes()
    }

    #[test]
    fn the_pid_line_is_stripped_from_the_output() {
        let mut line = PidLine::default();
        assert_eq!(feed(&mut line, &[b"12"]), b"");
        assert_eq!(line.pid(), None);
        assert_eq!(feed(&mut line, &[b"3\nhello\n"]), b"hello\n");
        assert_eq!(line.pid(), Some(123));
        // Later chunks pass through untouched, digits and all.
        assert_eq!(feed(&mut line, &[b"456\n"]), b"456\n");
        assert_eq!(line.pid(), Some(123));

        let mut line = PidLine::default();
        assert_eq!(feed(&mut line, &[b"7\n", b"", b"x"]), b"x");
        assert_eq!(line.pid(), Some(7));
    }

    #[test]
    fn a_line_that_is_no_pid_is_output_as_it_came() {
        let mut line = PidLine::default();
        assert_eq!(feed(&mut line, &[b"ab", b"c\nrest"]), b"abc\nrest");
        assert_eq!(line.pid(), None);

        let mut line = PidLine::default();
        assert_eq!(feed(&mut line, &[b"\nrest"]), b"\nrest");
        assert_eq!(line.pid(), None);

        // Too long to be a pid: nothing is held back from then on.
        let mut line = PidLine::default();
        assert_eq!(
            feed(&mut line, &[b"123456", b"7890123", b"\n"]),
            b"1234567890123\n"
        );
        assert_eq!(line.pid(), None);
    }
}
