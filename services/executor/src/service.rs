//! The gRPC `ExecutorService`: parse and validate the request, prepare the workspace, run
//! it in the sandbox backend, answer. Each call runs in its own tracked task, so a caller
//! hanging up cannot leave a container behind and shutdown can wait for calls in flight.

use std::sync::Arc;

use pincer_proto::v1::executor_service_server::ExecutorService;
use pincer_proto::v1::{ExecRequest, ExecResponse};
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::ExecutorError;
use crate::grant::{Clock, key_id_of};
use crate::grant_keys::KeySet;
use crate::plan::{ExecLimits, ExecPlan};
use crate::sandbox::Sandbox;
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
    workspaces: Arc<Workspaces>,
    limits: ExecLimits,
    switch: ExecSwitch,
    clock: Arc<dyn Clock>,
    keys: Arc<KeySet>,
    tasks: TaskTracker,
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
            backend,
            workspaces: Arc::new(workspaces),
            limits,
            switch,
            clock,
            keys,
            tasks,
        }
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
        let handle = self.tasks.spawn(async move {
            let for_prepare = plan.clone();
            let workspace =
                tokio::task::spawn_blocking(move || workspaces.prepare(&for_prepare)).await??;
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
}
