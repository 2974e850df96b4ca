//! Removing sandbox containers by label: every `pincer.sandbox=1` container at start (the
//! leftovers of a crash), and this instance's own at shutdown.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};

use crate::ExecutorError;

/// Force-removes every container (running or not) carrying `label` (`key=value`); returns
/// how many were removed.
pub async fn reap(docker: &Docker, label: &str) -> Result<usize, ExecutorError> {
    let filters = HashMap::from([("label".to_owned(), vec![label.to_owned()])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|source| ExecutorError::Docker {
            action: "list sandbox containers",
            source,
        })?;
    let mut removed = 0;
    for id in containers.into_iter().filter_map(|c| c.id) {
        match remove(docker, &id).await {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "cannot remove a sandbox container")
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, label, "removed sandbox containers");
    }
    Ok(removed)
}

/// Force-removes one container (and its anonymous volumes); a container already gone is
/// not an error.
pub async fn remove(docker: &Docker, id: &str) -> Result<(), ExecutorError> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        // 409: removal already in progress (e.g. the reaper and the call raced).
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(source) => Err(ExecutorError::Docker {
            action: "remove the sandbox container",
            source,
        }),
    }
}
