//! The frozen task graph: plain data (ids, edges, tables) plus the indexes built on load.
//!
//! A [`Graph`] is either a whole run's graph (every dependency is inside it) or a *subDAG* cut for
//! one worker: its tasks carry full specs, dependencies outside it are boundary inputs the worker
//! fetches, and downstream tasks it does not hold appear as [`Stub`]s (id, dependency count,
//! worker) so the worker can still count them down and hand them on.
//!
//! Tasks refer to shared tables by index: functions (hash + name), option sets, and large
//! constants (content hashes). Task ids are global to a run and survive cutting.

use crate::error::GraphError;
use crate::hash::Hash16;
use crate::maps::MapSpec;
use crate::plan::{Plan, PlannedTask, PlannedWorker, TaskPlan};
use crate::template::Template;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

pub type TaskId = u32;
pub type WorkerId = u32;

/// A function of the run's function table: content hash of its pickled blob, display name
/// (`__name__`) and qualified name (`module:qualname`); hash and qualified name together are
/// the function's identity in metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FnRef {
    pub hash: Hash16,
    pub name: String,
    pub qualname: String,
}

/// Per-task options (`@shoal.task(...)` or `.options(...)`); `None` means "the default".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskOptions {
    pub retries: u32,
    pub memory_mb: Option<u32>,
    pub timeout_s: Option<f64>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    /// Index into [`Graph::fns`].
    pub func: u32,
    /// Index into [`Graph::options`].
    pub opts: u32,
    pub args: Vec<Template>,
    pub kwargs: Vec<(String, Template)>,
    /// Distinct upstream task ids; `Template::Slot(i)` is the output of `deps[i]`.
    pub deps: Vec<TaskId>,
    /// The worker a planner pinned this task to; `None` = flexible.
    pub worker: Option<WorkerId>,
}

/// A downstream task held elsewhere: enough to count it down and route it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stub {
    pub id: TaskId,
    pub deps: Vec<TaskId>,
    pub worker: Option<WorkerId>,
}

/// What goes on the wire.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GraphData {
    pub fns: Vec<FnRef>,
    pub options: Vec<TaskOptions>,
    pub consts: Vec<Hash16>,
    pub tasks: Vec<Task>,
    pub stubs: Vec<Stub>,
    /// Requested outputs held by this graph.
    pub outputs: Vec<TaskId>,
    /// The map tasks among `tasks` and `stubs` (see [`crate::maps`]); absent in older payloads.
    pub maps: Vec<MapSpec>,
    /// What a planner decided (see [`crate::plan`]); empty without one.
    pub plan: Plan,
}

/// A validated graph with its indexes.
#[derive(Debug, Clone)]
pub struct Graph {
    data: GraphData,
    /// Task id -> position in `data.tasks`, or `tasks.len() + i` for `data.stubs[i]`.
    pos: HashMap<TaskId, usize>,
    /// Per task position: positions (tasks or stubs) of its downstream tasks in this graph.
    children: Vec<Vec<usize>>,
    /// Boundary inputs (ids not held as tasks) -> positions of the held tasks that consume them;
    /// built on first use, since most cuts are never asked.
    outside: std::sync::OnceLock<HashMap<TaskId, Vec<usize>>>,
    /// Map task id -> position in `data.maps`.
    map_pos: HashMap<TaskId, usize>,
    /// Task id -> position in `data.plan.tasks`.
    plan_pos: HashMap<TaskId, usize>,
}

/// One downstream edge as the completion logic needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downstream {
    pub id: TaskId,
    pub ndeps: u32,
    pub worker: Option<WorkerId>,
    /// Whether this graph holds the task's full spec (it may run here).
    pub held: bool,
}

/// The first dependency that is the task itself or listed twice (linear time: fan-ins of
/// thousands are common).
fn first_repeat(id: TaskId, deps: &[TaskId]) -> Option<TaskId> {
    if deps.len() <= 16 {
        let repeat = |&(k, &d): &(usize, &TaskId)| d == id || deps[..k].contains(&d);
        return deps.iter().enumerate().find(repeat).map(|(_, &d)| d);
    }
    let mut seen = std::collections::HashSet::with_capacity(deps.len());
    deps.iter().copied().find(|&d| d == id || !seen.insert(d))
}

impl Graph {
    /// Validates `data` and builds the indexes. Dependencies outside the graph are allowed
    /// (boundary inputs of a subDAG); use [`Graph::check_complete`] for a whole run's graph.
    pub fn new(data: GraphData) -> Result<Graph, GraphError> {
        let n = data.tasks.len();
        let mut pos = HashMap::with_capacity(n + data.stubs.len());
        for (i, t) in data.tasks.iter().enumerate() {
            if pos.insert(t.id, i).is_some() {
                return Err(GraphError::DuplicateTask(t.id));
            }
        }
        for (i, s) in data.stubs.iter().enumerate() {
            if pos.insert(s.id, n + i).is_some() {
                return Err(GraphError::DuplicateTask(s.id));
            }
        }
        let mut children = vec![Vec::new(); n];
        for (i, t) in data.tasks.iter().enumerate() {
            let bad = |what: &'static str, index: u32| GraphError::BadIndex {
                task: t.id,
                what,
                index,
            };
            if t.func as usize >= data.fns.len() {
                return Err(bad("function", t.func));
            }
            if t.opts as usize >= data.options.len() {
                return Err(bad("options", t.opts));
            }
            let mut problem = None;
            let mut check = |tpl: &Template| {
                tpl.for_each_slot(&mut |s| {
                    if s as usize >= t.deps.len() {
                        problem.get_or_insert(bad("slot", s));
                    }
                });
                tpl.for_each_const(&mut |c| {
                    if c as usize >= data.consts.len() {
                        problem.get_or_insert(bad("constant", c));
                    }
                });
            };
            t.args.iter().for_each(&mut check);
            t.kwargs.iter().for_each(|(_, v)| check(v));
            if let Some(e) = problem {
                return Err(e);
            }
            if let Some(d) = first_repeat(t.id, &t.deps) {
                return Err(GraphError::BadDependency { task: t.id, dep: d });
            }
            for &d in &t.deps {
                // A dependency on a stub (a task held elsewhere) is a boundary input, like one
                // outside the graph: it is fetched, and it adds no edge here.
                if let Some(&p) = pos.get(&d) {
                    if p < n {
                        children[p].push(i);
                    }
                }
            }
        }
        for (i, s) in data.stubs.iter().enumerate() {
            if let Some(d) = first_repeat(s.id, &s.deps) {
                return Err(GraphError::BadDependency { task: s.id, dep: d });
            }
            for &d in &s.deps {
                if let Some(&p) = pos.get(&d) {
                    if p < n {
                        children[p].push(n + i);
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::with_capacity(data.outputs.len());
        for &o in &data.outputs {
            if !seen.insert(o) {
                return Err(GraphError::DuplicateOutput(o));
            }
            match pos.get(&o) {
                Some(&p) if p < n => {}
                _ => return Err(GraphError::UnknownOutput(o)),
            }
        }
        let map_pos = crate::maps::index(&data, &pos)?;
        crate::plan::check(&data, |id| matches!(pos.get(&id), Some(&p) if p < n))?;
        let plan_pos = data.plan.index();
        let g = Graph {
            data,
            pos,
            children,
            outside: std::sync::OnceLock::new(),
            map_pos,
            plan_pos,
        };
        g.topo_order()?;
        Ok(g)
    }

    pub fn data(&self) -> &GraphData {
        &self.data
    }
    pub fn into_data(self) -> GraphData {
        self.data
    }
    pub fn tasks(&self) -> &[Task] {
        &self.data.tasks
    }
    pub fn len(&self) -> usize {
        self.data.tasks.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.tasks.is_empty()
    }
    pub fn outputs(&self) -> &[TaskId] {
        &self.data.outputs
    }

    pub fn task(&self, id: TaskId) -> Result<&Task, GraphError> {
        match self.pos.get(&id) {
            Some(&p) if p < self.data.tasks.len() => Ok(&self.data.tasks[p]),
            _ => Err(GraphError::UnknownTask(id)),
        }
    }

    pub fn contains(&self, id: TaskId) -> bool {
        matches!(self.pos.get(&id), Some(&p) if p < self.data.tasks.len())
    }

    /// Display name: the `name` option, else the function's name.
    pub fn task_name(&self, t: &Task) -> &str {
        let o = &self.data.options[t.opts as usize];
        o.name
            .as_deref()
            .unwrap_or(&self.data.fns[t.func as usize].name)
    }

    pub fn options_of(&self, t: &Task) -> &TaskOptions {
        &self.data.options[t.opts as usize]
    }

    pub fn fn_of(&self, t: &Task) -> &FnRef {
        &self.data.fns[t.func as usize]
    }

    /// The downstream tasks of `id` that this graph knows (held tasks and stubs), as counted
    /// when `id` completes. Maps change the picture (see [`crate::maps`]): an edge into a map
    /// counts down its chain's root, and a map's element-wise edge to the next map is left out.
    pub fn downstream(&self, id: TaskId) -> Result<Vec<Downstream>, GraphError> {
        let n = self.data.tasks.len();
        let p = match self.pos.get(&id) {
            Some(&p) if p < n => p,
            _ => return Err(GraphError::UnknownTask(id)),
        };
        if self.map_pos.is_empty() {
            return Ok(self.children[p].iter().map(|&c| self.describe(c)).collect());
        }
        let from_map = self.map_pos.contains_key(&id);
        let mut out: Vec<Downstream> = Vec::new();
        for &c in &self.children[p] {
            let d = self.describe(c);
            let Some(m) = self.map_spec(d.id) else {
                out.push(d);
                continue;
            };
            if from_map && self.deps_at(c).first() == Some(&id) {
                continue; // element-wise: counted per element, never as a whole
            }
            if out.iter().any(|o| o.id == m.root) {
                continue; // one input counts once for its chain
            }
            out.push(Downstream {
                id: m.root,
                ndeps: m.group_deps,
                worker: None,
                held: self.contains(m.root),
            });
        }
        Ok(out)
    }

    fn deps_at(&self, p: usize) -> &[TaskId] {
        let n = self.data.tasks.len();
        if p < n {
            &self.data.tasks[p].deps
        } else {
            &self.data.stubs[p - n].deps
        }
    }

    /// The map spec of `id`, if it is a map task this graph knows.
    pub fn map_spec(&self, id: TaskId) -> Option<&MapSpec> {
        self.map_pos.get(&id).map(|&i| &self.data.maps[i])
    }

    fn describe(&self, p: usize) -> Downstream {
        let n = self.data.tasks.len();
        if p < n {
            let t = &self.data.tasks[p];
            Downstream {
                id: t.id,
                ndeps: t.deps.len() as u32,
                worker: t.worker,
                held: true,
            }
        } else {
            let s = &self.data.stubs[p - n];
            Downstream {
                id: s.id,
                ndeps: s.deps.len() as u32,
                worker: s.worker,
                held: false,
            }
        }
    }

    /// The held tasks that consume `id`'s output, whether `id` is held here or a boundary input.
    pub fn consumers(&self, id: TaskId) -> Vec<TaskId> {
        let n = self.data.tasks.len();
        let positions: &[usize] = match self.pos.get(&id) {
            Some(&p) if p < n => &self.children[p],
            _ => self.outside().get(&id).map_or(&[], |v| v.as_slice()),
        };
        positions
            .iter()
            .filter(|&&p| p < n)
            .map(|&p| self.data.tasks[p].id)
            .collect()
    }

    fn outside(&self) -> &HashMap<TaskId, Vec<usize>> {
        self.outside.get_or_init(|| {
            let n = self.data.tasks.len();
            let mut map: HashMap<TaskId, Vec<usize>> = HashMap::new();
            for (i, t) in self.data.tasks.iter().enumerate() {
                for d in &t.deps {
                    if !matches!(self.pos.get(d), Some(&p) if p < n) {
                        map.entry(*d).or_default().push(i);
                    }
                }
            }
            map
        })
    }

    /// The graph's shape, independent of its size: every distinct pair of a task's function
    /// and the set of its inputs' functions (as indexes into the function table; `None` for an
    /// input the graph does not hold), sorted. A pairwise tree of 64 leaves and one of 1,024
    /// have the same shape; a tree and a fan-out do not.
    pub fn shape(&self) -> Vec<(u32, Vec<Option<u32>>)> {
        // One buffer for every task's input functions; a kind is copied only when it is new
        // (a million tasks have a handful of kinds).
        let mut kinds: HashSet<(u32, Vec<Option<u32>>)> = HashSet::new();
        let mut key = (0u32, Vec::new());
        for t in &self.data.tasks {
            key.0 = t.func;
            key.1.clear();
            key.1.extend(t.deps.iter().map(|d| match self.pos.get(d) {
                Some(&p) if p < self.data.tasks.len() => Some(self.data.tasks[p].func),
                _ => None,
            }));
            key.1.sort_unstable();
            key.1.dedup();
            if !kinds.contains(&key) {
                kinds.insert(key.clone());
            }
        }
        let mut sorted: Vec<_> = kinds.into_iter().collect();
        sorted.sort_unstable();
        sorted
    }

    /// Ids of the tasks pinned to `worker`.
    pub fn tasks_of(&self, worker: WorkerId) -> Vec<TaskId> {
        self.data
            .tasks
            .iter()
            .filter(|t| t.worker == Some(worker))
            .map(|t| t.id)
            .collect()
    }

    /// Errors unless every dependency of every task is inside the graph (a whole run's graph).
    pub fn check_complete(&self) -> Result<(), GraphError> {
        for t in &self.data.tasks {
            for &d in &t.deps {
                if !self.contains(d) {
                    return Err(GraphError::ForeignDependency { task: t.id, dep: d });
                }
            }
        }
        match self.data.stubs.first() {
            Some(s) => Err(GraphError::NotWhole(s.id)),
            None => Ok(()),
        }
    }

    /// Tasks in dependency order (Kahn); a cycle is an error naming a task on it.
    pub fn topo_order(&self) -> Result<Vec<TaskId>, GraphError> {
        let n = self.data.tasks.len();
        let mut indeg = vec![0u32; n];
        for t in &self.data.tasks {
            for &d in &t.deps {
                if let Some(&p) = self.pos.get(&d) {
                    if p < n {
                        let me = self.pos[&t.id];
                        indeg[me] += 1;
                    }
                }
            }
        }
        let mut stack: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).rev().collect();
        let mut order = Vec::with_capacity(n);
        while let Some(p) = stack.pop() {
            order.push(self.data.tasks[p].id);
            for &c in self.children[p].iter().rev() {
                if c < n {
                    indeg[c] -= 1;
                    if indeg[c] == 0 {
                        stack.push(c);
                    }
                }
            }
        }
        if order.len() != n {
            return Err(GraphError::Cycle(self.task_on_cycle(&indeg)));
        }
        Ok(order)
    }

    /// After Kahn's algorithm stalls, every task left has a left-over dependency; following
    /// those from any of them must revisit a task, and the first one revisited is on a cycle.
    fn task_on_cycle(&self, indeg: &[u32]) -> TaskId {
        let n = self.data.tasks.len();
        let stuck = |p: usize| p < n && indeg[p] > 0;
        let Some(mut p) = (0..n).find(|&p| stuck(p)) else {
            return 0;
        };
        let mut seen = vec![false; n];
        while !seen[p] {
            seen[p] = true;
            let next = self.data.tasks[p]
                .deps
                .iter()
                .filter_map(|d| self.pos.get(d).copied())
                .find(|&q| stuck(q));
            match next {
                Some(q) => p = q,
                None => break,
            }
        }
        self.data.tasks[p].id
    }

    /// Tasks with no dependency at all.
    pub fn roots(&self) -> Vec<TaskId> {
        self.data
            .tasks
            .iter()
            .filter(|t| t.deps.is_empty())
            .map(|t| t.id)
            .collect()
    }

    /// Longest-path depth of each task from the roots, in `tasks()` order (for drawing).
    pub fn levels(&self) -> Result<Vec<u32>, GraphError> {
        let mut level: HashMap<TaskId, u32> = HashMap::with_capacity(self.len());
        for id in self.topo_order()? {
            let t = self.task(id)?;
            let l = t
                .deps
                .iter()
                .filter_map(|d| level.get(d))
                .map(|l| l + 1)
                .max()
                .unwrap_or(0);
            level.insert(id, l);
        }
        Ok(self.data.tasks.iter().map(|t| level[&t.id]).collect())
    }

    /// Replaces the plan table (see [`crate::plan`]): every task named gets its worker, size
    /// and optimizations; tasks not named become flexible, with none. Unknown ids, map tasks
    /// given a worker and bad sizes are errors, and leave the graph unchanged.
    pub fn apply_plan(
        &mut self,
        tasks: &[(TaskId, TaskPlan)],
        workers: &[PlannedWorker],
    ) -> Result<(), GraphError> {
        let mut data = self.data.clone();
        data.tasks.iter_mut().for_each(|t| t.worker = None);
        let mut planned = Vec::new();
        let mut seen = std::collections::HashSet::with_capacity(tasks.len());
        for (id, p) in tasks {
            if !seen.insert(*id) {
                return Err(GraphError::BadPlan(format!("task {id} is planned twice")));
            }
            if p.worker.is_some() && self.map_pos.contains_key(id) {
                return Err(GraphError::PinnedMap(*id));
            }
            let pos = self.position(*id).ok_or(GraphError::UnknownTask(*id))?;
            data.tasks[pos].worker = p.worker;
            if p.size.is_some() || !p.optimizations.is_empty() {
                planned.push(PlannedTask {
                    task: *id,
                    size: p.size,
                    optimizations: p.optimizations.clone(),
                });
            }
        }
        planned.sort_by_key(|p| p.task);
        let mut workers = workers.to_vec();
        workers.sort_by_key(|w| w.worker);
        data.plan = Plan {
            tasks: planned,
            workers,
        };
        *self = Graph::new(data)?;
        Ok(())
    }

    /// A task's planned worker, size and optimizations (all empty when it was not planned).
    pub fn plan_of(&self, id: TaskId) -> Result<TaskPlan, GraphError> {
        let t = self.task(id)?;
        let entry = self.plan_pos.get(&id).map(|&i| &self.data.plan.tasks[i]);
        Ok(TaskPlan {
            worker: t.worker,
            size: entry.and_then(|e| e.size),
            optimizations: entry.map_or_else(Vec::new, |e| e.optimizations.clone()),
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.data.plan
    }

    pub(crate) fn position(&self, id: TaskId) -> Option<usize> {
        self.pos
            .get(&id)
            .copied()
            .filter(|&p| p < self.data.tasks.len())
    }

    pub(crate) fn children_of(&self, p: usize) -> &[usize] {
        &self.children[p]
    }
}
