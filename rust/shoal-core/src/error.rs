//! Errors of the core, with messages written for the person who built the graph.

use crate::graph::TaskId;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum GraphError {
    DuplicateTask(TaskId),
    DuplicateOutput(TaskId),
    UnknownOutput(TaskId),
    UnknownTask(TaskId),
    /// `task` depends on `dep`, which is not part of the graph.
    ForeignDependency {
        task: TaskId,
        dep: TaskId,
    },
    /// A self-dependency or a repeated dependency.
    BadDependency {
        task: TaskId,
        dep: TaskId,
    },
    BadIndex {
        task: TaskId,
        what: &'static str,
        index: u32,
    },
    /// A cycle runs through this task.
    Cycle(TaskId),
    /// A whole graph was expected but this one holds a stub (a cut subDAG).
    NotWhole(TaskId),
    /// A flexible cut was asked to start at a pinned task.
    PinnedStart(TaskId),
    /// More map tasks than element ids can be derived for.
    TooManyMaps(usize),
    /// A map task without a mapped input.
    MapWithoutInput(TaskId),
    /// Map task `map` takes `input`, which waits for the map's own chain.
    MapOwnChain {
        map: TaskId,
        input: TaskId,
    },
    /// A map task cannot be pinned to a worker (its elements are spread by width).
    PinnedMap(TaskId),
    /// The map table names a task the graph does not hold, or names it twice.
    BadMap(TaskId),
    /// The plan table is inconsistent with the graph (the message says how).
    BadPlan(String),
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphError::DuplicateTask(t) => write!(f, "task id {t} appears twice in the graph"),
            GraphError::DuplicateOutput(t) => write!(f, "task {t} is requested as an output twice"),
            GraphError::UnknownOutput(t) => write!(f, "output task {t} is not in the graph"),
            GraphError::UnknownTask(t) => write!(f, "task {t} is not in the graph"),
            GraphError::ForeignDependency { task, dep } => write!(
                f,
                "task {task} depends on task {dep}, which is not part of this graph (a node from outside the graph)"
            ),
            GraphError::BadDependency { task, dep } => {
                write!(f, "task {task} has an invalid dependency on {dep} (itself, or listed twice)")
            }
            GraphError::BadIndex { task, what, index } => {
                write!(f, "task {task} refers to {what} {index}, which does not exist")
            }
            GraphError::Cycle(t) => write!(f, "the graph has a cycle through task {t}"),
            GraphError::NotWhole(t) => write!(f, "expected a whole graph, but task {t} is a stub of a cut subDAG"),
            GraphError::PinnedStart(t) => {
                write!(f, "task {t} is pinned to a worker and cannot start a flexible subDAG")
            }
            GraphError::TooManyMaps(n) => write!(
                f,
                "the graph holds {n} shoal.map calls; at most {} are supported per graph",
                crate::maps::MAX_MAPS
            ),
            GraphError::MapWithoutInput(t) => write!(f, "map task {t} has no mapped input"),
            GraphError::MapOwnChain { map, input } => write!(
                f,
                "shoal.map task {map} takes task {input}, which waits for the map's own chain \
                 (directly or through other tasks): a chain cannot consume its own results"
            ),
            GraphError::PinnedMap(t) => write!(
                f,
                "task {t} is a shoal.map and cannot be pinned to a worker (its elements run \
                 on as many workers as its width needs)"
            ),
            GraphError::BadMap(t) => write!(f, "the map table names task {t}, which is not a map task of this graph"),
            GraphError::BadPlan(m) => write!(f, "invalid plan: {m}"),
        }
    }
}

impl std::error::Error for GraphError {}

/// A payload that cannot be decoded: truncated, corrupt, unknown version or kind.
#[derive(Debug, Clone, PartialEq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}
