//! One call in one container: check the image, create the container, attach to its output,
//! start it, wait for the exit within the wall-clock limit (kill on expiry), collect the
//! capped output, and always remove the container.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, KillContainerOptions, StartContainerOptions,
    WaitContainerOptions,
};
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{DockerSettings, docker_error, posture, reaper};
use crate::ExecutorError;
use crate::plan::ValidatedExecPlan;
use crate::sandbox::{CappedOutput, ExecOutcome};

/// After a kill, how long to wait for the engine to report the container stopped.
pub(super) const KILL_GRACE: Duration = Duration::from_secs(10);
/// After the exit, how long the output stream may take to end.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

pub(super) type OutputStream =
    Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// Runs `plan` in a new container mounting `binds`.
pub(super) async fn run_container(
    docker: &Docker,
    settings: &DockerSettings,
    instance_id: &str,
    plan: &ValidatedExecPlan,
    binds: posture::Binds<'_>,
) -> Result<ExecOutcome, ExecutorError> {
    ensure_image(docker, settings).await?;
    let name = format!("pincer-sbx-{}", uuid::Uuid::new_v4().simple());
    let body = posture::container_body(settings, plan, binds, instance_id);
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name),
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(docker_error(settings, "create the sandbox container"))?;
    tracing::debug!(container = %created.id, agent = plan.agent_id().as_str(), turn = plan.turn_id(), "sandbox created");
    let result = drive(docker, settings, &created.id, plan).await;
    if let Err(e) = reaper::remove(docker, &created.id).await {
        tracing::warn!(container = %created.id, error = %e, "cannot remove the sandbox; the reaper will at next start");
    }
    result
}

pub(super) async fn ensure_image(
    docker: &Docker,
    settings: &DockerSettings,
) -> Result<(), ExecutorError> {
    match docker.inspect_image(&settings.image).await {
        Ok(_) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Err(ExecutorError::ImageMissing {
            image: settings.image.clone(),
        }),
        Err(e) => Err(docker_error(settings, "inspect the sandbox image")(e)),
    }
}

/// How the process ended.
enum Exit {
    Code(i64),
    TimedOut,
    /// The engine could not start the program (not found, not executable): reported like a
    /// shell would, as exit code 127 with the engine's reason on stderr.
    NotStarted(String),
}

/// The exit code for a program that could not be started (as in a shell).
pub(super) const NOT_STARTED_EXIT_CODE: i32 = 127;

async fn drive(
    docker: &Docker,
    settings: &DockerSettings,
    id: &str,
    plan: &ValidatedExecPlan,
) -> Result<ExecOutcome, ExecutorError> {
    // Attach before start so no output is missed.
    let attached = docker
        .attach_container(
            id,
            Some(AttachContainerOptions {
                stdout: true,
                stderr: true,
                stream: true,
                logs: false,
                ..Default::default()
            }),
        )
        .await
        .map_err(docker_error(settings, "attach to the sandbox"))?;
    let exited = CancellationToken::new();
    let collect = collect_output(attached.output, settings.max_output_bytes, exited.clone());
    let supervise = async {
        let result = start_and_wait(docker, settings, id, plan.timeout()).await;
        exited.cancel();
        result
    };
    let ((stdout, mut stderr), supervised) = tokio::join!(collect, supervise);
    let (exit, duration) = supervised?;
    let (exit_code, timed_out) = match exit {
        Exit::Code(code) => (i32::try_from(code).unwrap_or(-1), false),
        Exit::TimedOut => (-1, true),
        Exit::NotStarted(reason) => {
            let program = plan.argv().first().map(String::as_str).unwrap_or_default();
            stderr.push(format!("cannot start {program:?}: {reason}\n").as_bytes());
            (NOT_STARTED_EXIT_CODE, false)
        }
    };
    let output_truncated = stdout.truncated() || stderr.truncated();
    Ok(ExecOutcome {
        exit_code,
        stdout: stdout.into_bytes(),
        stderr: stderr.into_bytes(),
        timed_out,
        output_truncated,
        duration,
    })
}

async fn start_and_wait(
    docker: &Docker,
    settings: &DockerSettings,
    id: &str,
    limit: Duration,
) -> Result<(Exit, Duration), ExecutorError> {
    let started = Instant::now();
    match docker
        .start_container(id, None::<StartContainerOptions>)
        .await
    {
        Ok(()) => {}
        // 400: the runtime could not exec the program; that is the command's fault.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 400,
            message,
        }) => return Ok((Exit::NotStarted(message), started.elapsed())),
        Err(e) => return Err(docker_error(settings, "start the sandbox")(e)),
    }
    let exit = match tokio::time::timeout(limit, wait_exit(docker, settings, id)).await {
        Ok(code) => Exit::Code(code?),
        Err(_) => {
            kill(docker, settings, id).await?;
            // The kill is synchronous in the engine; this only confirms it.
            if tokio::time::timeout(KILL_GRACE, wait_exit(docker, settings, id))
                .await
                .is_err()
            {
                tracing::warn!(container = %id, "sandbox not reported stopped after SIGKILL");
            }
            Exit::TimedOut
        }
    };
    Ok((exit, started.elapsed()))
}

pub(super) async fn wait_exit(
    docker: &Docker,
    settings: &DockerSettings,
    id: &str,
) -> Result<i64, ExecutorError> {
    let mut wait = docker.wait_container(id, None::<WaitContainerOptions>);
    match wait.next().await {
        Some(Ok(status)) => Ok(status.status_code),
        // bollard reports a non-zero exit as an error; it is a normal outcome here.
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(docker_error(settings, "wait for the sandbox")(e)),
        None => Err(ExecutorError::DockerProtocol(
            "the engine ended the wait without an exit status",
        )),
    }
}

/// SIGKILL to the container's init kills the whole process tree (its pid namespace).
pub(super) async fn kill(
    docker: &Docker,
    settings: &DockerSettings,
    id: &str,
) -> Result<(), ExecutorError> {
    let options = KillContainerOptions {
        signal: "SIGKILL".to_owned(),
    };
    match docker.kill_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        // Not running any more (exited just at the limit) or already gone.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => Ok(()),
        Err(e) => Err(docker_error(settings, "kill the sandbox at its timeout")(e)),
    }
}

/// Reads the multiplexed output until it ends (the container exited) or until a short grace
/// after `exited`; keeps `cap` bytes of each stream and discards the rest while still reading.
async fn collect_output(
    mut output: OutputStream,
    cap: usize,
    exited: CancellationToken,
) -> (CappedOutput, CappedOutput) {
    let mut stdout = CappedOutput::new(cap);
    let mut stderr = CappedOutput::new(cap);
    let deadline = async {
        exited.cancelled().await;
        tokio::time::sleep(DRAIN_GRACE).await;
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            item = output.next() => match item {
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                    stdout.push(&message);
                }
                Some(Ok(LogOutput::StdErr { message })) => stderr.push(&message),
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "sandbox output stream failed; output may be incomplete");
                    break;
                }
                None => break,
            },
            () = &mut deadline => {
                tracing::warn!("sandbox output did not end after the exit; output may be incomplete");
                break;
            }
        }
    }
    (stdout, stderr)
}
