//! The plan table: what a planner decided, travelling with the graph.
//!
//! - per task: the worker it is pinned to (kept on the task itself, [`Task::worker`], because
//!   cutting and counting need it on every edge), the [`Size`] it needs, and its
//!   [`Optimization`]s;
//! - per worker: its size (so a worker that invokes a pinned peer for the first time can ask the
//!   platform for the right one).
//!
//! Optimizations are typed values with parameters: a `kind` name and named [`Param`]s. The core
//! stores and cuts them but never interprets them, so a new kind is written in Python alone: no
//! codec, wire or binding change.
//!
//! Entries are sorted by id and unique; a cut keeps the entries of the tasks it holds and the
//! sizes of the workers its tasks and stubs name.
//!
//! [`Task::worker`]: crate::graph::Task::worker

use crate::error::GraphError;
use crate::graph::{GraphData, TaskId, WorkerId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Resources a task needs or a worker has. `None` leaves the platform's default.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Size {
    pub memory_mb: Option<u32>,
    /// Share of one CPU (1.0 = one core).
    pub cpu: Option<f64>,
}

/// One typed parameter of an optimization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Param {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tasks(Vec<TaskId>),
}

/// An optimization attached to a task: a kind and its parameters, in the order given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Optimization {
    pub kind: String,
    pub params: Vec<(String, Param)>,
}

/// The planned size and optimizations of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedTask {
    pub task: TaskId,
    pub size: Option<Size>,
    pub optimizations: Vec<Optimization>,
}

/// The planned size of one worker.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlannedWorker {
    pub worker: WorkerId,
    pub size: Size,
}

/// The whole table; empty when no planner ran.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Plan {
    pub tasks: Vec<PlannedTask>,
    pub workers: Vec<PlannedWorker>,
}

/// A planner's decision for one task, as [`Graph::apply_plan`](crate::Graph::apply_plan) takes
/// it: the worker too.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskPlan {
    pub worker: Option<WorkerId>,
    pub size: Option<Size>,
    pub optimizations: Vec<Optimization>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.workers.is_empty()
    }

    /// Position of each task entry by id.
    pub(crate) fn index(&self) -> HashMap<TaskId, usize> {
        self.tasks
            .iter()
            .enumerate()
            .map(|(i, p)| (p.task, i))
            .collect()
    }

    pub fn worker_size(&self, worker: WorkerId) -> Option<Size> {
        self.workers
            .binary_search_by_key(&worker, |w| w.worker)
            .ok()
            .map(|i| self.workers[i].size)
    }

    /// The entries a cut keeps: tasks it holds, workers its tasks and stubs name.
    pub(crate) fn cut(&self, data: &GraphData) -> Plan {
        if self.is_empty() {
            return Plan::default();
        }
        let held: HashSet<TaskId> = data.tasks.iter().map(|t| t.id).collect();
        let named: HashSet<WorkerId> = data
            .tasks
            .iter()
            .filter_map(|t| t.worker)
            .chain(data.stubs.iter().filter_map(|s| s.worker))
            .collect();
        Plan {
            tasks: self
                .tasks
                .iter()
                .filter(|p| held.contains(&p.task))
                .cloned()
                .collect(),
            workers: self
                .workers
                .iter()
                .filter(|w| named.contains(&w.worker))
                .copied()
                .collect(),
        }
    }
}

/// Checks that every task entry names a held task, once, in ascending order, and that worker
/// entries are ascending and unique, with sane sizes.
pub(crate) fn check(data: &GraphData, held: impl Fn(TaskId) -> bool) -> Result<(), GraphError> {
    let plan = &data.plan;
    for pair in plan.tasks.windows(2) {
        if pair[0].task >= pair[1].task {
            return Err(GraphError::BadPlan(format!(
                "task {} is planned twice or out of order",
                pair[1].task
            )));
        }
    }
    for p in &plan.tasks {
        if !held(p.task) {
            return Err(GraphError::BadPlan(format!(
                "the plan names task {}, which the graph does not hold",
                p.task
            )));
        }
        if let Some(s) = &p.size {
            check_size(s, &format!("task {}", p.task))?;
        }
    }
    for pair in plan.workers.windows(2) {
        if pair[0].worker >= pair[1].worker {
            return Err(GraphError::BadPlan(format!(
                "worker {} is planned twice or out of order",
                pair[1].worker
            )));
        }
    }
    for w in &plan.workers {
        check_size(&w.size, &format!("worker {}", w.worker))?;
    }
    Ok(())
}

fn check_size(s: &Size, whose: &str) -> Result<(), GraphError> {
    if s.memory_mb == Some(0) {
        return Err(GraphError::BadPlan(format!(
            "the size of {whose} has 0 MB of memory"
        )));
    }
    if let Some(cpu) = s.cpu {
        if !(cpu.is_finite() && cpu > 0.0) {
            return Err(GraphError::BadPlan(format!(
                "the size of {whose} has a CPU share of {cpu}; it must be a positive number"
            )));
        }
    }
    Ok(())
}
