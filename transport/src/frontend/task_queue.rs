//! DescribeTaskQueue: the exact backlog (count and age of the oldest task), add and dispatch
//! rates, and recent pollers, straight from the task-queue partition actors. Temporal can only
//! approximate the backlog; a Sundial partition holds its whole backlog, so the count is exact.
//!
//! Both request modes are served: the legacy one (`pollers`, `stats` when `report_stats`,
//! `task_queue_status` when `include_task_queue_status`) and the enhanced one the `temporal` CLI
//! uses (`versions_info[""]`, the unversioned queue, with one entry per requested task-queue
//! type).

use std::collections::HashMap;

use sundial_actors::matching_stats::PartitionStats;
use sundial_engine::api::enums::v1::{DescribeTaskQueueMode, TaskQueueType};
use sundial_engine::api::taskqueue::v1::{
    PollerInfo, TaskQueueStats, TaskQueueStatus, TaskQueueTypeInfo, TaskQueueVersionInfo,
};
use sundial_engine::time::duration;

use super::*;

// The enhanced mode and the legacy status are deprecated in the API but still what the CLI uses.
#[allow(deprecated)]
impl Frontend {
    pub(super) async fn describe_task_queue_impl(
        &self,
        request: Request<DescribeTaskQueueRequest>,
    ) -> Result<Response<DescribeTaskQueueResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let queue = self.task_queue_name(&req.task_queue)?;
        let now = self.node.clock.now_ms();
        let mut response = DescribeTaskQueueResponse::default();
        if req.api_mode == DescribeTaskQueueMode::Enhanced as i32 {
            let types = if req.task_queue_types.is_empty() {
                vec![
                    TaskQueueType::Workflow as i32,
                    TaskQueueType::Activity as i32,
                ]
            } else {
                req.task_queue_types.clone()
            };
            let mut types_info = HashMap::new();
            for task_type in types {
                let stats = self.partition_stats(&ns, &queue, task_type).await?;
                types_info.insert(
                    task_type,
                    TaskQueueTypeInfo {
                        pollers: if req.report_pollers {
                            pollers(&stats)
                        } else {
                            Vec::new()
                        },
                        stats: req.report_stats.then(|| queue_stats(&stats, now)),
                    },
                );
            }
            response.versions_info.insert(
                String::new(),
                TaskQueueVersionInfo {
                    types_info,
                    task_reachability: 0,
                },
            );
            return Ok(Response::new(response));
        }
        let task_type = match req.task_queue_type {
            0 => TaskQueueType::Workflow as i32,
            t => t,
        };
        let stats = self.partition_stats(&ns, &queue, task_type).await?;
        response.pollers = pollers(&stats);
        if req.report_stats {
            response.stats = Some(queue_stats(&stats, now));
        }
        if req.include_task_queue_status {
            response.task_queue_status = Some(TaskQueueStatus {
                backlog_count_hint: stats.backlog_count as i64,
                ..Default::default()
            });
        }
        Ok(Response::new(response))
    }

    async fn partition_stats(
        &self,
        ns: &str,
        queue: &str,
        task_type: i32,
    ) -> Result<PartitionStats, Status> {
        // Only workflow and activity queues hold tasks here (no Nexus): any other type has
        // nothing to report, and must not load a partition per value a client sends.
        let holds_tasks = [
            TaskQueueType::Workflow as i32,
            TaskQueueType::Activity as i32,
        ];
        if !holds_tasks.contains(&task_type) {
            return Ok(PartitionStats::default());
        }
        let key = Matching::key(ns, queue, task_type);
        let stats = self.node.matching.describe_task_queue(key).await;
        Ok(stats.map_err(to_status)?.unwrap_or_default())
    }
}

fn queue_stats(stats: &PartitionStats, now_ms: i64) -> TaskQueueStats {
    let age_ms = stats.oldest_enqueued_ms.map_or(0, |t| (now_ms - t).max(0));
    TaskQueueStats {
        approximate_backlog_count: stats.backlog_count as i64,
        approximate_backlog_age: Some(duration(age_ms)),
        tasks_add_rate: stats.tasks_add_rate,
        tasks_dispatch_rate: stats.tasks_dispatch_rate,
        ..Default::default()
    }
}

fn pollers(stats: &PartitionStats) -> Vec<PollerInfo> {
    stats
        .recent_pollers
        .iter()
        .map(|(identity, at)| PollerInfo {
            identity: identity.clone(),
            last_access_time: Some(sundial_engine::time::timestamp(*at)),
            ..Default::default()
        })
        .collect()
}
