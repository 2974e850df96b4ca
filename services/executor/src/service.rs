//! The gRPC `ExecutorService`: parse and validate the request, prepare the workspace, pass
//! the exec approval gate ([`crate::approval::gate`]), run it in the sandbox backend, answer. Each call runs in its own tracked task, so a caller
//! hanging up cannot leave a container behind and shutdown can wait for calls in flight.
//!
//! The file tools ([`crate::files`]) and `web_fetch` ([`crate::web`]) follow the same
//! shape: the tool's switch, the grant keys, `*Plan::validate` (grant first), then the
//! work in a tracked task (file work on the blocking pool).
//!
//! Background processes ([`crate::process`]): the exec switch and the backend's support
//! first, then the grant (`process`); a start passes the workspace and the exec approval
//! gate like `exec`, the other calls act on a process of the grant's agent and session.

use std::sync::Arc;

use pincer_proto::v1::executor_service_server::ExecutorService;
use pincer_proto::v1::{
    ApplyPatchRequest, ApplyPatchResponse, EditFileRequest, EditFileResponse, ExecRequest,
    ExecResponse, ListDirRequest, ListDirResponse, ProcessKillRequest, ProcessKillResponse,
    ProcessListRequest, ProcessListResponse, ProcessPollRequest, ProcessPollResponse,
    ProcessStartRequest, ProcessStartResponse, ProcessWriteRequest, ProcessWriteResponse,
    ReadFileRequest, ReadFileResponse, WebFetchRequest, WebFetchResponse, WriteFileRequest,
    WriteFileResponse,
};
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::ExecutorError;
use crate::approval::gate::{ApprovalLink, ExecGate};
use crate::files::{
    ApplyPatchPlan, EditFilePlan, FileTools, ListDirPlan, ReadFilePlan, WriteFilePlan,
};
use crate::grant::{Clock, GrantKeys, Tool, key_id_of};
use crate::grant_keys::KeySet;
use crate::plan::{ExecLimits, ExecPlan};
use crate::process::plan::{validate_kill, validate_list, validate_poll, validate_write};
use crate::process::{KILL_WAIT, ProcessStartPlan, Processes, STDIN_WAIT};
use crate::sandbox::Sandbox;
use crate::web::{WebFetchPlan, WebFetchTool};
use crate::workspace::Workspaces;

/// Whether `tools.exec.enabled` lets the executor run exec at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecSwitch {
    /// Calls are served (still subject to each call's grant).
    Enabled,
    /// Every call is refused, whatever its grant says.
    Disabled,
}

/// The service implementation over a sandbox backend `B`.
pub struct ExecutorApi<B> {
    backend: Arc<B>,
    gate: Arc<ExecGate<B>>,
    workspaces: Arc<Workspaces>,
    limits: ExecLimits,
    switch: ExecSwitch,
    clock: Arc<dyn Clock>,
    keys: Arc<KeySet>,
    tasks: TaskTracker,
    /// `None` when `tools.files.enabled` is false.
    files: Option<Arc<FileTools>>,
    /// `None` when `tools.webFetch.enabled` is false.
    web: Option<Arc<WebFetchTool>>,
    /// `None` when the backend cannot run background processes.
    processes: Option<Arc<Processes>>,
}

impl<B: Sandbox> ExecutorApi<B> {
    /// A service running calls on `backend` in `workspaces`; call tasks are tracked in
    /// `tasks` (wait on it at shutdown).
    pub fn new(
        backend: Arc<B>,
        workspaces: Workspaces,
        limits: ExecLimits,
        switch: ExecSwitch,
        clock: Arc<dyn Clock>,
        keys: Arc<KeySet>,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            gate: Arc::new(ExecGate::new(Arc::clone(&backend), None)),
            backend,
            workspaces: Arc::new(workspaces),
            limits,
            switch,
            clock,
            keys,
            tasks,
            files: None,
            web: None,
            processes: None,
        }
    }

    /// Serves the `process` tool with `processes` (`None`: the backend cannot, and every
    /// call is refused with `FailedPrecondition`).
    pub fn with_processes(mut self, processes: Option<Arc<Processes>>) -> Self {
        self.processes = processes;
        self
    }

    /// Serves the file tools (`tools.files.enabled`) and `web_fetch`
    /// (`tools.webFetch.enabled`); `None` refuses every call of that tool.
    pub fn with_tools(mut self, files: Option<FileTools>, web: Option<WebFetchTool>) -> Self {
        self.files = files.map(Arc::new);
        self.web = web.map(Arc::new);
        self
    }

    /// Asks the owner through `link` when an exec call needs approval (without one, nobody
    /// can be asked and `askFallback` decides).
    pub fn with_approvals(mut self, link: Option<Arc<dyn ApprovalLink>>) -> Self {
        self.gate = Arc::new(ExecGate::new(Arc::clone(&self.backend), link));
        self
    }

    /// Runs one call (the RPC without the transport).
    pub async fn exec_call(&self, request: ExecRequest) -> Result<ExecResponse, ExecutorError> {
        if self.switch == ExecSwitch::Disabled {
            return Err(ExecutorError::ExecDisabled);
        }
        self.keys.ensure(key_id_of(request.grant.as_ref())).await;
        let plan = match ExecPlan::from(request).validate(
            self.limits,
            self.keys.as_ref(),
            self.clock.as_ref(),
        ) {
            Ok(p) => p,
            Err(e) => {
                // The audit trail of refusals (an append-only audit log comes later).
                tracing::warn!(reason = %e, "exec refused");
                return Err(e);
            }
        };
        let workspaces = Arc::clone(&self.workspaces);
        let backend = Arc::clone(&self.backend);
        let gate = Arc::clone(&self.gate);
        let handle = self.tasks.spawn(async move {
            let for_prepare = plan.clone();
            let workspace =
                tokio::task::spawn_blocking(move || workspaces.prepare(&for_prepare)).await??;
            let plan = match gate.admit(plan, &workspace).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(reason = %e, "exec not approved");
                    return Err(e.into());
                }
            };
            backend.run(plan, workspace).await
        });
        let outcome = handle.await??;
        tracing::info!(
            exit_code = outcome.exit_code,
            timed_out = outcome.timed_out,
            truncated = outcome.output_truncated,
            duration_ms = u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
            "exec finished"
        );
        Ok(outcome.into())
    }
}

impl<B: Sandbox> ExecutorApi<B> {
    /// Runs one file-tool call: the switch, the grant keys, `validate` (grant first),
    /// then `run` on the blocking pool in a tracked task.
    async fn file_call<P, R>(
        &self,
        tool: Tool,
        key_id: Option<&str>,
        validate: impl FnOnce(&dyn GrantKeys, &dyn Clock) -> Result<P, ExecutorError>,
        run: fn(&FileTools, &P) -> Result<R, ExecutorError>,
    ) -> Result<R, ExecutorError>
    where
        P: Send + 'static,
        R: Send + 'static,
    {
        let Some(files) = &self.files else {
            return Err(ExecutorError::FilesDisabled);
        };
        self.keys.ensure(key_id).await;
        let plan = validate(self.keys.as_ref(), self.clock.as_ref())
            .inspect_err(|e| tracing::warn!(tool = tool.name(), reason = %e, "call refused"))?;
        let files = Arc::clone(files);
        let result = self
            .tasks
            .spawn_blocking(move || run(&files, &plan))
            .await?;
        match &result {
            Ok(_) => tracing::info!(tool = tool.name(), "file call finished"),
            Err(e) => tracing::info!(tool = tool.name(), error = %e, "file call failed"),
        }
        result
    }

    /// `ReadFile` without the transport.
    pub async fn read_file_call(
        &self,
        request: ReadFileRequest,
    ) -> Result<ReadFileResponse, ExecutorError> {
        let key_id = request.grant.as_ref().map(|g| g.key_id.clone());
        let plan = ReadFilePlan::from(request);
        self.file_call(
            Tool::ReadFile,
            key_id.as_deref(),
            |k, c| plan.validate(k, c),
            |f, p| f.read(p),
        )
        .await
    }

    /// `WriteFile` without the transport.
    pub async fn write_file_call(
        &self,
        request: WriteFileRequest,
    ) -> Result<WriteFileResponse, ExecutorError> {
        let key_id = request.grant.as_ref().map(|g| g.key_id.clone());
        let plan = WriteFilePlan::from(request);
        self.file_call(
            Tool::WriteFile,
            key_id.as_deref(),
            |k, c| plan.validate(k, c),
            |f, p| f.write(p),
        )
        .await
    }

    /// `EditFile` without the transport.
    pub async fn edit_file_call(
        &self,
        request: EditFileRequest,
    ) -> Result<EditFileResponse, ExecutorError> {
        let key_id = request.grant.as_ref().map(|g| g.key_id.clone());
        let plan = EditFilePlan::from(request);
        self.file_call(
            Tool::EditFile,
            key_id.as_deref(),
            |k, c| plan.validate(k, c),
            |f, p| f.edit(p),
        )
        .await
    }

    /// `ApplyPatch` without the transport.
    pub async fn apply_patch_call(
        &self,
        request: ApplyPatchRequest,
    ) -> Result<ApplyPatchResponse, ExecutorError> {
        let key_id = request.grant.as_ref().map(|g| g.key_id.clone());
        let plan = ApplyPatchPlan::from(request);
        self.file_call(
            Tool::ApplyPatch,
            key_id.as_deref(),
            |k, c| plan.validate(k, c),
            |f, p| f.apply_patch(p),
        )
        .await
    }

    /// `ListDir` without the transport.
    pub async fn list_dir_call(
        &self,
        request: ListDirRequest,
    ) -> Result<ListDirResponse, ExecutorError> {
        let key_id = request.grant.as_ref().map(|g| g.key_id.clone());
        let plan = ListDirPlan::from(request);
        self.file_call(
            Tool::ListDir,
            key_id.as_deref(),
            |k, c| plan.validate(k, c),
            |f, p| f.list(p),
        )
        .await
    }

    /// `WebFetch` without the transport.
    pub async fn web_fetch_call(
        &self,
        request: WebFetchRequest,
    ) -> Result<WebFetchResponse, ExecutorError> {
        let Some(web) = &self.web else {
            return Err(ExecutorError::WebFetchDisabled);
        };
        self.keys.ensure(key_id_of(request.grant.as_ref())).await;
        let plan = WebFetchPlan::from(request)
            .validate(self.keys.as_ref(), self.clock.as_ref())
            .inspect_err(|e| tracing::warn!(tool = "web_fetch", reason = %e, "call refused"))?;
        let web = Arc::clone(web);
        let result = self
            .tasks
            .spawn(async move { web.fetch(&plan).await })
            .await?;
        match &result {
            Ok(page) => tracing::info!(
                status = page.status,
                truncated = page.truncated,
                "web_fetch finished"
            ),
            // The guard's messages name the host and the rule, never the path or query.
            Err(e) => tracing::warn!(error = %e, "web_fetch failed"),
        }
        result
    }
}

impl<B: Sandbox> ExecutorApi<B> {
    /// The registry, when this executor serves background processes at all.
    fn processes(&self) -> Result<Arc<Processes>, ExecutorError> {
        if self.switch == ExecSwitch::Disabled {
            return Err(ExecutorError::ExecDisabled);
        }
        self.processes
            .clone()
            .ok_or(ExecutorError::ProcessesUnavailable)
    }

    /// `ProcessStart` without the transport: checked like `exec` (grant for `process`),
    /// a place reserved under the limits, the workspace prepared, the exec approval gate
    /// passed, then the command started in the background.
    pub async fn process_start_call(
        &self,
        request: ProcessStartRequest,
    ) -> Result<ProcessStartResponse, ExecutorError> {
        let processes = self.processes()?;
        self.keys.ensure(key_id_of(request.grant.as_ref())).await;
        let plan = ProcessStartPlan::from(request)
            .validate(self.keys.as_ref(), self.clock.as_ref())
            .inspect_err(|e| tracing::warn!(reason = %e, "process start refused"))?;
        let slot = processes
            .reserve(plan.exec().agent_id())
            .inspect_err(|e| tracing::warn!(reason = %e, "process start refused"))?;
        let workspaces = Arc::clone(&self.workspaces);
        let gate = Arc::clone(&self.gate);
        let started_at_ms = self.clock.now_ms();
        let entry = self
            .tasks
            .spawn(async move {
                let (exec, session_key) = plan.into_parts();
                let for_prepare = exec.clone();
                let workspace =
                    tokio::task::spawn_blocking(move || workspaces.prepare(&for_prepare)).await??;
                let exec = gate
                    .admit(exec, &workspace)
                    .await
                    .inspect_err(|e| tracing::warn!(reason = %e, "process start not approved"))?;
                processes
                    .start(slot, exec, workspace, session_key, started_at_ms)
                    .await
            })
            .await??;
        tracing::info!(process = %entry.id(), agent = entry.agent().as_str(), "process started");
        Ok(ProcessStartResponse {
            process: Some(entry.info(&entry.state())),
        })
    }

    /// `ProcessPoll` without the transport.
    pub async fn process_poll_call(
        &self,
        request: ProcessPollRequest,
    ) -> Result<ProcessPollResponse, ExecutorError> {
        let processes = self.processes()?;
        self.keys.ensure(key_id_of(request.grant.as_ref())).await;
        let plan = validate_poll(request, self.keys.as_ref(), self.clock.as_ref())?;
        let entry = processes.find(&plan.owner, &plan.id)?;
        let (state, out) = entry.poll(plan.wait).await;
        Ok(ProcessPollResponse {
            process: Some(entry.info(&state)),
            stdout: out.stdout,
            stderr: out.stderr,
            stdout_dropped_bytes: out.stdout_dropped,
            stderr_dropped_bytes: out.stderr_dropped,
        })
    }

    /// `ProcessWrite` without the transport (the write runs on the blocking pool).
    pub async fn process_write_call(
        &self,
        request: ProcessWriteRequest,
    ) -> Result<ProcessWriteResponse, ExecutorError> {
        let processes = self.processes()?;
        self.keys.ensure(key_id_of(request.grant.as_ref())).await;
        let plan = validate_write(request, self.keys.as_ref(), self.clock.as_ref())?;
        let entry = processes.find(&plan.owner, &plan.id)?;
        let writer = Arc::clone(&entry);
        let written = self
            .tasks
            .spawn_blocking(move || writer.write(&plan.data, plan.close_stdin, STDIN_WAIT))
            .await??;
        Ok(ProcessWriteResponse {
            process: Some(entry.info(&entry.state())),
            bytes_written: u32::try_from(written).unwrap_or(u32::MAX),
        })
    }

    /// `ProcessKill` without the transport: waits (bounded) until everything is gone.
    pub async fn process_kill_call(
        &self,
        request: ProcessKillRequest,
    ) -> Result<ProcessKillResponse, ExecutorError> {
        let processes = self.processes()?;
        self.keys.ensure(key_id_of(request.grant.as_ref())).await;
        let plan = validate_kill(request, self.keys.as_ref(), self.clock.as_ref())?;
        let entry = processes.find(&plan.owner, &plan.id)?;
        let state = entry.kill(KILL_WAIT).await;
        tracing::info!(process = %entry.id(), "process killed");
        Ok(ProcessKillResponse {
            process: Some(entry.info(&state)),
        })
    }

    /// `ProcessList` without the transport.
    pub async fn process_list_call(
        &self,
        request: ProcessListRequest,
    ) -> Result<ProcessListResponse, ExecutorError> {
        let processes = self.processes()?;
        self.keys.ensure(key_id_of(request.grant.as_ref())).await;
        let owner = validate_list(request, self.keys.as_ref(), self.clock.as_ref())?;
        Ok(ProcessListResponse {
            processes: processes
                .list(&owner)
                .iter()
                .map(|e| e.info(&e.state()))
                .collect(),
        })
    }
}

/// Runs `call` inside a span for `tool` and maps its error to a status.
async fn answer<R>(
    tool: &'static str,
    session: &str,
    call: impl std::future::Future<Output = Result<R, ExecutorError>>,
) -> Result<Response<R>, Status> {
    let span = tracing::info_span!("tool", tool, session = %session);
    call.instrument(span)
        .await
        .map(Response::new)
        .map_err(Status::from)
}

#[tonic::async_trait]
impl<B: Sandbox> ExecutorService for ExecutorApi<B> {
    async fn exec(&self, request: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        let request = request.into_inner();
        let span = tracing::info_span!("exec", session = %request.session_key);
        self.exec_call(request)
            .instrument(span)
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn read_file(
        &self,
        request: Request<ReadFileRequest>,
    ) -> Result<Response<ReadFileResponse>, Status> {
        let r = request.into_inner();
        let session = r.session_key.clone();
        answer("read_file", &session, self.read_file_call(r)).await
    }

    async fn write_file(
        &self,
        request: Request<WriteFileRequest>,
    ) -> Result<Response<WriteFileResponse>, Status> {
        let r = request.into_inner();
        let session = r.session_key.clone();
        answer("write_file", &session, self.write_file_call(r)).await
    }

    async fn edit_file(
        &self,
        request: Request<EditFileRequest>,
    ) -> Result<Response<EditFileResponse>, Status> {
        let r = request.into_inner();
        let session = r.session_key.clone();
        answer("edit_file", &session, self.edit_file_call(r)).await
    }

    async fn apply_patch(
        &self,
        request: Request<ApplyPatchRequest>,
    ) -> Result<Response<ApplyPatchResponse>, Status> {
        let r = request.into_inner();
        let session = r.session_key.clone();
        answer("apply_patch", &session, self.apply_patch_call(r)).await
    }

    async fn list_dir(
        &self,
        request: Request<ListDirRequest>,
    ) -> Result<Response<ListDirResponse>, Status> {
        let r = request.into_inner();
        let session = r.session_key.clone();
        answer("list_dir", &session, self.list_dir_call(r)).await
    }

    async fn web_fetch(
        &self,
        request: Request<WebFetchRequest>,
    ) -> Result<Response<WebFetchResponse>, Status> {
        let r = request.into_inner();
        let session = r.session_key.clone();
        answer("web_fetch", &session, self.web_fetch_call(r)).await
    }

    async fn process_start(
        &self,
        request: Request<ProcessStartRequest>,
    ) -> Result<Response<ProcessStartResponse>, Status> {
        let r = request.into_inner();
        let session = r.session_key.clone();
        answer("process_start", &session, self.process_start_call(r)).await
    }

    async fn process_poll(
        &self,
        request: Request<ProcessPollRequest>,
    ) -> Result<Response<ProcessPollResponse>, Status> {
        let r = request.into_inner();
        let session = r.session_key.clone();
        answer("process_poll", &session, self.process_poll_call(r)).await
    }

    async fn process_write(
        &self,
        request: Request<ProcessWriteRequest>,
    ) -> Result<Response<ProcessWriteResponse>, Status> {
        let r = request.into_inner();
        let session = r.session_key.clone();
        answer("process_write", &session, self.process_write_call(r)).await
    }

    async fn process_kill(
        &self,
        request: Request<ProcessKillRequest>,
    ) -> Result<Response<ProcessKillResponse>, Status> {
        let r = request.into_inner();
        let session = r.session_key.clone();
        answer("process_kill", &session, self.process_kill_call(r)).await
    }

    async fn process_list(
        &self,
        request: Request<ProcessListRequest>,
    ) -> Result<Response<ProcessListResponse>, Status> {
        let r = request.into_inner();
        let session = r.session_key.clone();
        answer("process_list", &session, self.process_list_call(r)).await
    }
}
