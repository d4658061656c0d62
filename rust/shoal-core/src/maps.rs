//! Map tasks: `shoal.map(fn, xs, *args)`, whose width is known only at run time.
//!
//! In the frozen graph a map is one task: its function, options and argument template are those
//! of every element, and `deps[0]` is its *mapped input*. A map whose mapped input is another map
//! runs element-wise after it; the maps linked that way form a *chain* (a tree, in general) whose
//! first map is its *root*. The root's mapped input is the chain's *source*: a task returning a
//! list. Every other dependency of a map is *broadcast*: each element receives the whole value.
//!
//! Counting (see [`Graph::downstream`](crate::Graph::downstream)):
//!
//! - an edge from a static task into a map counts down the chain's root, which is ready once the
//!   source and every broadcast input of the whole chain are done (`group_deps` of them). The
//!   worker that runs the root *expands* the chain: it learns the width N from the source's value
//!   and creates N elements of each map;
//! - the element-wise edge from a map to the next map of its chain is never counted as a whole:
//!   element i of the next map waits for element i of this one only (no barrier);
//! - an edge from a map to a static task counts once, when the last of the map's N elements is
//!   done (its *gather*); that task receives the N element outputs as a list.
//!
//! Element ids and the gather counters live in the Python runtime: this module only fixes the
//! graph-level facts, once, at freeze time (a subDAG may hold a map without its root).

use crate::error::GraphError;
use crate::graph::{GraphData, Task, TaskId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The most maps one graph may hold: element ids are derived from `ord` and must stay exact in
/// the server's Lua numbers (see `shoal/runtime/elements.py`).
pub const MAX_MAPS: usize = 11_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapSpec {
    /// The map task.
    pub id: TaskId,
    /// Dense index among the run's maps; element ids are derived from it.
    pub ord: u32,
    /// The first map of this map's chain (itself for a root).
    pub root: TaskId,
    /// Distinct static inputs of the whole chain (its source and broadcast inputs): the number
    /// of completions the root waits for before it expands.
    pub group_deps: u32,
}

/// Builds the map table of a whole graph from the ids of its map tasks. `tasks` must be in
/// dependency order (a freeze's output) and every map must have a mapped input.
pub fn link(tasks: &[Task], map_ids: &[TaskId]) -> Result<Vec<MapSpec>, GraphError> {
    if map_ids.is_empty() {
        return Ok(Vec::new());
    }
    if map_ids.len() > MAX_MAPS {
        return Err(GraphError::TooManyMaps(map_ids.len()));
    }
    let by_id: HashMap<TaskId, &Task> = tasks.iter().map(|t| (t.id, t)).collect();
    let is_map: HashSet<TaskId> = map_ids.iter().copied().collect();
    let mut sorted = map_ids.to_vec();
    sorted.sort_unstable();
    let mut root_of: HashMap<TaskId, TaskId> = HashMap::with_capacity(sorted.len());
    // Per chain root: (map, static input) pairs; the distinct inputs are the root's count.
    let mut inputs: HashMap<TaskId, Vec<(TaskId, TaskId)>> = HashMap::new();
    for &m in &sorted {
        let t = by_id.get(&m).ok_or(GraphError::UnknownTask(m))?;
        let (&first, rest) = t.deps.split_first().ok_or(GraphError::MapWithoutInput(m))?;
        let (root, own) = if is_map.contains(&first) {
            let root = *root_of.get(&first).ok_or(GraphError::Cycle(m))?;
            (root, rest)
        } else {
            (m, t.deps.as_slice())
        };
        root_of.insert(m, root);
        inputs
            .entry(root)
            .or_default()
            .extend(own.iter().map(|&d| (m, d)));
    }
    // A chain that takes one of its own maps whole, or anything that waits for one of them,
    // could never expand: contract each chain to its root and look for a cycle.
    for (&root, group) in &inputs {
        if let Some(&(map, input)) = group
            .iter()
            .find(|(_, d)| root_of.get(d).is_some_and(|&r| r == root))
        {
            return Err(GraphError::MapOwnChain { map, input });
        }
    }
    check_contracted(tasks, &root_of, &inputs)?;
    let distinct = |root: TaskId| {
        let mut seen: Vec<TaskId> = inputs[&root].iter().map(|&(_, d)| d).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len() as u32
    };
    Ok(sorted
        .iter()
        .enumerate()
        .map(|(ord, &m)| MapSpec {
            id: m,
            ord: ord as u32,
            root: root_of[&m],
            group_deps: distinct(root_of[&m]),
        })
        .collect())
}

/// Kahn's algorithm over the graph with each chain contracted to its root. On a cycle, names a
/// map and the input of its chain that waits for the chain.
fn check_contracted(
    tasks: &[Task],
    root_of: &HashMap<TaskId, TaskId>,
    inputs: &HashMap<TaskId, Vec<(TaskId, TaskId)>>,
) -> Result<(), GraphError> {
    let rep = |t: TaskId| root_of.get(&t).copied().unwrap_or(t);
    let mut edges: HashMap<TaskId, Vec<TaskId>> = HashMap::new();
    let mut indeg: HashMap<TaskId, u32> = HashMap::new();
    let mut seen: HashSet<(TaskId, TaskId)> = HashSet::new();
    for t in tasks {
        let to = rep(t.id);
        indeg.entry(to).or_insert(0);
        for &d in &t.deps {
            let from = rep(d);
            if from != to && seen.insert((from, to)) {
                edges.entry(from).or_default().push(to);
                *indeg.entry(to).or_insert(0) += 1;
            }
        }
    }
    let mut stack: Vec<TaskId> = indeg
        .iter()
        .filter(|(_, &n)| n == 0)
        .map(|(&t, _)| t)
        .collect();
    let mut done: HashSet<TaskId> = HashSet::with_capacity(indeg.len());
    while let Some(t) = stack.pop() {
        done.insert(t);
        for &c in edges.get(&t).map_or(&[][..], |v| v.as_slice()) {
            let n = indeg.get_mut(&c).expect("every edge end has a degree");
            *n -= 1;
            if *n == 0 {
                stack.push(c);
            }
        }
    }
    if done.len() == indeg.len() {
        return Ok(());
    }
    // Every cycle passes through a chain (the graph without maps is acyclic). Name an input of
    // a chain that the chain itself reaches: that input waits for the chain. (Tasks merely
    // waiting behind a cycle are stuck too, but not reachable from their own chain.)
    let reaches = |from: TaskId, to: TaskId| {
        let mut seen = HashSet::new();
        let mut stack = vec![from];
        while let Some(t) = stack.pop() {
            for &c in edges.get(&t).map_or(&[][..], |v| v.as_slice()) {
                if c == to {
                    return true;
                }
                if !done.contains(&c) && seen.insert(c) {
                    stack.push(c);
                }
            }
        }
        false
    };
    let mut roots: Vec<&TaskId> = inputs.keys().filter(|r| !done.contains(r)).collect();
    roots.sort_unstable();
    for &root in roots {
        let mut group = inputs[&root].clone();
        group.sort_unstable();
        if let Some(&(map, input)) = group.iter().find(|&&(_, d)| reaches(root, rep(d))) {
            return Err(GraphError::MapOwnChain { map, input });
        }
    }
    Err(GraphError::Cycle(roots_fallback(&indeg, &done)))
}

/// A task on the stalled part of the graph (only if no chain could be blamed: not expected).
fn roots_fallback(indeg: &HashMap<TaskId, u32>, done: &HashSet<TaskId>) -> TaskId {
    indeg
        .keys()
        .filter(|t| !done.contains(t))
        .min()
        .copied()
        .unwrap_or(0)
}

/// Validates the map table of `data` against the graph (`pos`: task id -> position in
/// `data.tasks`, or `tasks.len() + i` for `data.stubs[i]`) and indexes it by map id.
///
/// The table of a cut may hold specs of boundary inputs (a worker gathering a map's elements
/// needs its `ord`); the maps the graph knows must have a mapped input, and a map below a
/// root must run element-wise after a map of its own chain, whose root is its own root and
/// takes a mapped input that is not a map.
pub(crate) fn index(
    data: &GraphData,
    pos: &HashMap<TaskId, usize>,
) -> Result<HashMap<TaskId, usize>, GraphError> {
    let n = data.tasks.len();
    let mapped_input = |id: TaskId| match pos.get(&id) {
        Some(&p) if p < n => data.tasks[p].deps.first().copied(),
        Some(&p) => data.stubs[p - n].deps.first().copied(),
        None => None,
    };
    let mut map_pos = HashMap::with_capacity(data.maps.len());
    let mut ords = HashSet::with_capacity(data.maps.len());
    for (i, m) in data.maps.iter().enumerate() {
        // Element ids are derived from `ord`: unique, and small enough for Lua numbers.
        let sane = (m.ord as usize) < MAX_MAPS && m.group_deps >= 1;
        if !sane || !ords.insert(m.ord) {
            return Err(GraphError::BadMap(m.id));
        }
        let has_input = !pos.contains_key(&m.id) || mapped_input(m.id).is_some();
        if !has_input || map_pos.insert(m.id, i).is_some() {
            return Err(GraphError::BadMap(m.id));
        }
    }
    for m in &data.maps {
        if m.root != m.id {
            let parent = mapped_input(m.id).and_then(|d| map_pos.get(&d));
            let held = matches!(pos.get(&m.id), Some(&p) if p < n);
            if parent.is_some_and(|&q| data.maps[q].root != m.root) || (held && parent.is_none()) {
                return Err(GraphError::BadMap(m.id));
            }
        }
        if let Some(&r) = map_pos.get(&m.root) {
            let root = &data.maps[r];
            let input = mapped_input(root.id);
            if root.root != root.id || input.is_some_and(|d| map_pos.contains_key(&d)) {
                return Err(GraphError::BadMap(m.id));
            }
        }
    }
    Ok(map_pos)
}
