//! Namespace RPCs and the default namespace.

use std::collections::HashMap;

use sundial_actors::{Error, Namespaces};
use sundial_engine::api::{
    enums::v1::NamespaceState,
    namespace::v1::{NamespaceConfig, NamespaceInfo, namespace_info::Capabilities},
    replication::v1::{ClusterReplicationConfig, NamespaceReplicationConfig},
    workflowservice::v1::{
        DescribeNamespaceResponse, RegisterNamespaceRequest, UpdateNamespaceRequest,
    },
};
use sundial_engine::time::{duration, duration_ms, validate_and_cap};
use tonic::Status;

use crate::status::{invalid, to_status};

/// Temporal's `errInvalidRetentionPeriod`, for a retention that is not a valid duration.
const INVALID_RETENTION: &str = "A valid retention period is not set on request.";

/// Default retention (Temporal's start-dev uses one day).
const DEFAULT_RETENTION_MS: i64 = 24 * 3600 * 1000;
/// Name of the only cluster of a single node.
pub const CLUSTER_NAME: &str = "active";

/// What this server can do, as SDK workers read it from DescribeNamespace.
fn capabilities() -> Capabilities {
    Capabilities {
        // Not implemented yet: SDKs fall back to plain paths when these are false.
        eager_workflow_start: true,
        sync_update: true,
        async_update: true,
        worker_heartbeats: false,
        worker_poll_complete_on_shutdown: false,
        poller_autoscaling: false,
        ..Default::default()
    }
}

fn description(
    id: &str,
    name: &str,
    text: &str,
    owner: &str,
    data: HashMap<String, String>,
    retention_ms: i64,
) -> DescribeNamespaceResponse {
    DescribeNamespaceResponse {
        namespace_info: Some(NamespaceInfo {
            name: name.to_string(),
            state: NamespaceState::Registered as i32,
            description: text.to_string(),
            owner_email: owner.to_string(),
            data,
            id: id.to_string(),
            capabilities: Some(capabilities()),
            supports_schedules: false,
            ..Default::default()
        }),
        config: Some(NamespaceConfig {
            workflow_execution_retention_ttl: Some(duration(retention_ms)),
            ..Default::default()
        }),
        replication_config: Some(NamespaceReplicationConfig {
            active_cluster_name: CLUSTER_NAME.to_string(),
            clusters: vec![ClusterReplicationConfig {
                cluster_name: CLUSTER_NAME.to_string(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        failover_version: 0,
        is_global_namespace: false,
        ..Default::default()
    }
}

/// Creates `name` unless it exists.
pub async fn ensure(namespaces: &Namespaces, name: &str) -> Result<(), Error> {
    match namespaces.get(name).await {
        Ok(_) => Ok(()),
        Err(Error::NamespaceNotFound(_)) => {
            let id = uuid::Uuid::new_v4().to_string();
            let d = description(&id, name, "", "", HashMap::new(), DEFAULT_RETENTION_MS);
            match namespaces.create(id, d).await {
                Ok(()) | Err(Error::Storage(sundial_storage::Error::AlreadyExists(_))) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// RegisterNamespace.
pub async fn register(
    namespaces: &Namespaces,
    req: RegisterNamespaceRequest,
) -> Result<(), Status> {
    if req.namespace.is_empty() {
        return Err(invalid("Namespace is not set on request."));
    }
    let mut retention = req.workflow_execution_retention_period;
    validate_and_cap(retention.as_mut()).map_err(|_| invalid(INVALID_RETENTION))?;
    let retention = match duration_ms(retention.as_ref()) {
        0 => DEFAULT_RETENTION_MS,
        ms if ms < 3600 * 1000 => {
            return Err(invalid(
                "WorkflowExecutionRetentionPeriod must be at least 1 hour.",
            ));
        }
        ms => ms,
    };
    if namespaces.get(&req.namespace).await.is_ok() {
        return Err(Status::already_exists("Namespace already exists."));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let d = description(
        &id,
        &req.namespace,
        &req.description,
        &req.owner_email,
        req.data,
        retention,
    );
    namespaces.create(id, d).await.map_err(|e| match e {
        Error::Storage(sundial_storage::Error::AlreadyExists(_)) => {
            Status::already_exists("Namespace already exists.")
        }
        e => to_status(e),
    })
}

/// UpdateNamespace.
pub async fn update(
    namespaces: &Namespaces,
    req: UpdateNamespaceRequest,
) -> Result<DescribeNamespaceResponse, Status> {
    let ns = namespaces.get(&req.namespace).await.map_err(to_status)?;
    let mut d = ns.description.clone();
    if let (Some(update), Some(info)) = (req.update_info, d.namespace_info.as_mut()) {
        if !update.description.is_empty() {
            info.description = update.description;
        }
        if !update.owner_email.is_empty() {
            info.owner_email = update.owner_email;
        }
        info.data.extend(update.data);
    }
    if let (Some(config), Some(current)) = (req.config, d.config.as_mut())
        && let Some(mut retention) = config.workflow_execution_retention_ttl
    {
        validate_and_cap(Some(&mut retention)).map_err(|_| invalid(INVALID_RETENTION))?;
        if duration_ms(Some(&retention)) < 3600 * 1000 {
            return Err(invalid(
                "WorkflowExecutionRetentionPeriod must be at least 1 hour.",
            ));
        }
        current.workflow_execution_retention_ttl = Some(retention);
    }
    namespaces.update(&ns, d.clone()).await.map_err(to_status)?;
    Ok(d)
}
