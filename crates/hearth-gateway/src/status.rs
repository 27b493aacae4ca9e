//! What the gateway reports about the node and a function's instances.

use std::time::SystemTime;

use hearth_agent::{CellKey, InstanceState};
use hearth_types::FunctionId;

use crate::Gateway;

/// What [`Gateway::node_status`] reports.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub memory_limit_mb: u64,
    pub memory_committed_mb: u64,
    pub prewarmed: Vec<(CellKey, usize)>,
    pub prewarm_budget_mb: u32,
}

/// One live instance, for listings.
#[derive(Debug, Clone)]
pub struct InstanceInfo {
    pub id: String,
    pub version: u32,
    pub state: InstanceState,
    pub started_at: SystemTime,
    pub requests_served: u64,
    pub last_used: SystemTime,
}

impl Gateway {
    /// The node's memory for instances (limit, committed) and its stem cells (ready per
    /// key, budget).
    pub fn node_status(&self) -> NodeStatus {
        let memory = &self.inner.launcher.memory;
        let (prewarmed, prewarm_budget_mb) = self.inner.launcher.factory.stem_cells();
        NodeStatus {
            memory_limit_mb: memory.limit_mb,
            memory_committed_mb: memory.committed_mb(),
            prewarmed,
            prewarm_budget_mb,
        }
    }

    /// Live instances of a function, all versions, oldest first.
    pub fn instances(&self, function: FunctionId) -> Vec<InstanceInfo> {
        let mut out: Vec<InstanceInfo> = self
            .inner
            .routes
            .of_function(function)
            .iter()
            .flat_map(|p| {
                p.instances().into_iter().map(|t| InstanceInfo {
                    id: t.instance.id().to_owned(),
                    version: p.key.1,
                    state: t.instance.state(),
                    started_at: t.instance.started_at(),
                    requests_served: t.instance.requests_served(),
                    last_used: t.last_used(),
                })
            })
            .collect();
        out.sort_by_key(|i| i.started_at);
        out
    }
}
