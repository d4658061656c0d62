//! Cutting graphs: descendant closures, subDAGs for one worker, partition by worker id.
//!
//! A flexible worker receives the descendant closure of its start tasks, but the walk stops at
//! tasks pinned to a worker: those belong to someone else and travel as [`Stub`]s. A pinned worker
//! receives every task pinned to it plus the flexible closure below them, so it can hand flexible
//! work on by cutting again from what it holds. Every cut is re-validated and its tables (functions,
//! options, constants) are pruned to what its tasks use, which keeps small subDAGs small.
//! A cut that holds a map also holds its chain's root, which its completions may make ready.

use crate::error::GraphError;
use crate::graph::{Graph, GraphData, Stub, TaskId, WorkerId};
use std::collections::{BTreeMap, HashMap, HashSet};

impl Graph {
    fn positions(&self, ids: &[TaskId]) -> Result<Vec<usize>, GraphError> {
        ids.iter()
            .map(|&id| self.position(id).ok_or(GraphError::UnknownTask(id)))
            .collect()
    }

    /// Adds `starts` and everything below them reachable through tasks accepted by `follow` to
    /// `held` (positions). It visits only what it adds: a cut costs the subDAG, not the graph.
    fn mark_below(
        &self,
        starts: Vec<usize>,
        held: &mut HashSet<usize>,
        follow: impl Fn(usize) -> bool,
    ) {
        let n = self.len();
        let mut stack = starts;
        while let Some(p) = stack.pop() {
            if !held.insert(p) {
                continue;
            }
            for &c in self.children_of(p) {
                if c < n && !held.contains(&c) && follow(c) {
                    stack.push(c);
                }
            }
        }
    }

    /// The start tasks and all their descendants held by this graph, in graph order.
    pub fn closure(&self, starts: &[TaskId]) -> Result<Vec<TaskId>, GraphError> {
        let mut held = HashSet::new();
        self.mark_below(self.positions(starts)?, &mut held, |_| true);
        let tasks = self.tasks();
        Ok(in_order(&held).into_iter().map(|p| tasks[p].id).collect())
    }

    /// The subDAG a worker needs: see the module docs.
    pub fn subdag_for(
        &self,
        worker: Option<WorkerId>,
        starts: &[TaskId],
    ) -> Result<Graph, GraphError> {
        let tasks = self.tasks();
        let flexible = |p: usize| tasks[p].worker.is_none();
        let mut held = HashSet::new();
        let start_pos = self.positions(starts)?;
        match worker {
            None => {
                if let Some(&p) = start_pos.iter().find(|&&p| !flexible(p)) {
                    return Err(GraphError::PinnedStart(tasks[p].id));
                }
                self.mark_below(start_pos, &mut held, flexible);
            }
            Some(w) => {
                let mine: Vec<usize> = (0..self.len())
                    .filter(|&p| tasks[p].worker == Some(w))
                    .collect();
                held.extend(mine.iter().copied());
                let n = self.len();
                let below: Vec<usize> = mine
                    .iter()
                    .flat_map(|&p| self.children_of(p).iter().copied())
                    .filter(|&c| c < n && flexible(c))
                    .collect();
                self.mark_below(below, &mut held, flexible);
            }
        }
        // A completion that feeds a map readies its chain's root: the cut must hold it. Its
        // closure may reach maps of further chains, whose roots must come too.
        loop {
            let mut roots = Vec::new();
            for m in &self.data().maps {
                if m.root == m.id || !self.position(m.id).is_some_and(|p| held.contains(&p)) {
                    continue;
                }
                // A root outside this graph (a hand-made subgraph) cannot be added.
                if let Some(p) = self.position(m.root).filter(|p| !held.contains(p)) {
                    roots.push(p);
                }
            }
            if roots.is_empty() {
                break;
            }
            self.mark_below(roots, &mut held, flexible);
        }
        self.cut(&held)
    }

    /// A subgraph holding exactly `ids` (plus stubs for their downstream tasks left out).
    pub fn subgraph(&self, ids: &[TaskId]) -> Result<Graph, GraphError> {
        let held: HashSet<usize> = self.positions(ids)?.into_iter().collect();
        self.cut(&held)
    }

    /// Task ids grouped by worker (`None` = flexible); every task appears exactly once.
    pub fn partition(&self) -> Vec<(Option<WorkerId>, Vec<TaskId>)> {
        let mut groups: BTreeMap<Option<WorkerId>, Vec<TaskId>> = BTreeMap::new();
        for t in self.tasks() {
            groups.entry(t.worker).or_default().push(t.id);
        }
        groups.into_iter().collect()
    }

    fn cut(&self, held: &HashSet<usize>) -> Result<Graph, GraphError> {
        let src = self.data();
        let n = self.len();
        let mut fns = Remap::default();
        let mut opts = Remap::default();
        let mut consts = Remap::default();
        let mut tasks = Vec::new();
        let mut stubs = Vec::new();
        let mut stubbed = HashSet::new();
        for p in in_order(held) {
            let mut t = src.tasks[p].clone();
            t.func = fns.get(t.func);
            t.opts = opts.get(t.opts);
            let mut remap_consts = |tpl: &mut crate::template::Template| {
                let mut used = Vec::new();
                tpl.for_each_const(&mut |c| used.push(c));
                for c in used {
                    consts.get(c);
                }
                tpl.remap_consts(&|c| consts.peek(c));
            };
            t.args.iter_mut().for_each(&mut remap_consts);
            t.kwargs.iter_mut().for_each(|(_, v)| remap_consts(v));
            tasks.push(t);
            for &c in self.children_of(p) {
                if c < n && held.contains(&c) {
                    continue;
                }
                let stub = if c < n {
                    let ct = &src.tasks[c];
                    Stub {
                        id: ct.id,
                        deps: ct.deps.clone(),
                        worker: ct.worker,
                    }
                } else {
                    src.stubs[c - n].clone()
                };
                if stubbed.insert(stub.id) {
                    stubs.push(stub);
                }
            }
        }
        let data = GraphData {
            fns: fns
                .order
                .iter()
                .map(|&i| src.fns[i as usize].clone())
                .collect(),
            options: opts
                .order
                .iter()
                .map(|&i| src.options[i as usize].clone())
                .collect(),
            consts: consts
                .order
                .iter()
                .map(|&i| src.consts[i as usize])
                .collect(),
            tasks,
            stubs,
            outputs: src
                .outputs
                .iter()
                .copied()
                .filter(|&o| self.position(o).is_some_and(|p| held.contains(&p)))
                .collect(),
            maps: Vec::new(),
            plan: Default::default(),
        };
        let kept: HashSet<TaskId> = data
            .tasks
            .iter()
            .map(|t| t.id)
            .chain(data.stubs.iter().map(|s| s.id))
            .chain(data.tasks.iter().flat_map(|t| t.deps.iter().copied()))
            .collect();
        let data = GraphData {
            maps: src
                .maps
                .iter()
                .filter(|m| kept.contains(&m.id))
                .cloned()
                .collect(),
            plan: src.plan.cut(&data),
            ..data
        };
        Graph::new(data)
    }
}

/// Held positions in graph order (the order tasks keep in every cut).
fn in_order(held: &HashSet<usize>) -> Vec<usize> {
    let mut order: Vec<usize> = held.iter().copied().collect();
    order.sort_unstable();
    order
}

/// Old index -> new dense index, in order of first use.
#[derive(Default)]
struct Remap {
    map: HashMap<u32, u32>,
    order: Vec<u32>,
}

impl Remap {
    fn get(&mut self, old: u32) -> u32 {
        let next = self.order.len() as u32;
        *self.map.entry(old).or_insert_with(|| {
            self.order.push(old);
            next
        })
    }
    fn peek(&self, old: u32) -> u32 {
        self.map[&old]
    }
}
