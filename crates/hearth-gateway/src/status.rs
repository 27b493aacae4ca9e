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
    /// Memory in use now, in MB, when the sandbox measures it.
    pub memory_used_mb: Option<u64>,
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

    /// Its metrics.
    pub fn metrics(&self) -> &crate::Metrics {
        &self.inner.metrics
    }

    /// The levels this node knows (instances by state, requests waiting, stem cells,
    /// memory); the caller adds the functions and the event queue's.
    pub fn metric_levels(&self) -> crate::Levels {
        use std::collections::BTreeMap;
        let mut instances: BTreeMap<(hearth_types::FunctionName, &'static str), usize> = BTreeMap::new();
        let mut waiting: BTreeMap<hearth_types::FunctionName, usize> = BTreeMap::new();
        for p in self.inner.routes.all() {
            let function = p.template.function.clone();
            for t in p.instances() {
                *instances.entry((function.clone(), t.instance.state().as_str())).or_default() += 1;
            }
            *waiting.entry(function).or_default() += p.waiting();
        }
        let node = self.node_status();
        crate::Levels {
            instances: instances.into_iter().map(|((f, s), n)| (f, s, n)).collect(),
            activator_queue: waiting.into_iter().collect(),
            stem_cells: node.prewarmed.iter().map(|(k, n)| (k.runtime.to_string(), k.memory_mb, *n)).collect(),
            memory_limit_bytes: node.memory_limit_mb * 1024 * 1024,
            memory_committed_bytes: node.memory_committed_mb * 1024 * 1024,
            ..Default::default()
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
                    memory_used_mb: t.instance.memory_used_mb(),
                })
            })
            .collect();
        out.sort_by_key(|i| i.started_at);
        out
    }
}
