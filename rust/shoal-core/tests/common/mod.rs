//! Shared helpers for the shoal-core integration tests: hand-built graphs, a random-DAG
//! strategy, and reference implementations (written independently of `shoal_core::cut`).
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::Index;
use shoal_core::{
    FnRef, Graph, GraphData, GraphError, Hash16, Stub, Task, TaskId, TaskOptions, TaskPlan,
    Template, WorkerId,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

pub const NFNS: u32 = 4;
pub const NOPTS: u32 = 3;
pub const NCONSTS: u32 = 5;

pub fn fnref(name: &str) -> FnRef {
    FnRef {
        hash: Hash16::of(name.as_bytes()),
        name: name.to_owned(),
        qualname: name.to_owned(),
    }
}

/// A task using function 0 and options 0, with one `Slot(k)` argument per dependency.
pub fn task(id: TaskId, deps: &[TaskId]) -> Task {
    Task {
        id,
        func: 0,
        opts: 0,
        args: (0..deps.len() as u32).map(Template::Slot).collect(),
        kwargs: vec![],
        deps: deps.to_vec(),
        worker: None,
    }
}

pub fn pinned(mut t: Task, w: WorkerId) -> Task {
    t.worker = Some(w);
    t
}

/// Pins tasks to workers through the plan table (every other task becomes flexible).
pub fn pin(g: &mut Graph, pairs: &[(TaskId, WorkerId)]) -> Result<(), GraphError> {
    let plan: Vec<(TaskId, TaskPlan)> = pairs
        .iter()
        .map(|&(t, w)| {
            let p = TaskPlan {
                worker: Some(w),
                ..TaskPlan::default()
            };
            (t, p)
        })
        .collect();
    g.apply_plan(&plan, &[])
}

pub fn stub(id: TaskId, deps: &[TaskId], worker: Option<WorkerId>) -> Stub {
    Stub {
        id,
        deps: deps.to_vec(),
        worker,
    }
}

/// Graph data with one function, one option set and no constants.
pub fn data(tasks: Vec<Task>) -> GraphData {
    GraphData {
        fns: vec![fnref("f")],
        options: vec![TaskOptions::default()],
        consts: vec![],
        tasks,
        stubs: vec![],
        outputs: vec![],
        maps: vec![],
        plan: Default::default(),
    }
}

/// Full tables: `NFNS` functions, `NOPTS` option sets and `NCONSTS` constants, all distinct.
pub fn full_tables(tasks: Vec<Task>) -> GraphData {
    GraphData {
        fns: (0..NFNS).map(|i| fnref(&format!("fn{i}"))).collect(),
        options: (0..NOPTS)
            .map(|i| TaskOptions {
                retries: i,
                memory_mb: Some(100 + i),
                timeout_s: Some(f64::from(i) + 0.5),
                name: (i % 2 == 1).then(|| format!("opt{i}")),
            })
            .collect(),
        consts: (0..NCONSTS)
            .map(|i| Hash16::of(format!("const{i}").as_bytes()))
            .collect(),
        tasks,
        stubs: vec![],
        outputs: vec![],
        maps: vec![],
        plan: Default::default(),
    }
}

/// Id of the `i`-th generated task: sparse and offset so ids never equal positions.
pub fn gid(i: usize) -> TaskId {
    i as TaskId * 3 + 10
}

/// Random whole DAG with up to `max_n` tasks: task `i` depends on a random subset of lower
/// tasks, tasks are stored in a shuffled order, use random functions/options/constants, and
/// (when `max_workers > 0`) about a third of them are pinned to one of `max_workers` workers.
pub fn arb_dag(max_n: usize, max_workers: u32) -> impl Strategy<Value = GraphData> {
    (1..=max_n)
        .prop_flat_map(move |n| {
            (
                prop::collection::vec(prop::collection::vec(any::<Index>(), 0..4), n),
                prop::collection::vec((any::<u8>(), 0..max_workers.max(1)), n),
                Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
                prop::collection::vec(
                    (0..NFNS, 0..NOPTS, prop::collection::vec(0..NCONSTS, 0..3)),
                    n,
                ),
                prop::collection::vec(any::<bool>(), n),
            )
        })
        .prop_map(move |(picks, workers, order, uses, outs)| {
            let n = order.len();
            let mut tasks = Vec::with_capacity(n);
            for &i in &order {
                let mut deps: Vec<TaskId> = Vec::new();
                if i > 0 {
                    for p in &picks[i] {
                        let d = gid(p.index(i));
                        if !deps.contains(&d) {
                            deps.push(d);
                        }
                    }
                }
                let (func, opts, consts) = &uses[i];
                let mut args: Vec<Template> = vec![Template::List(
                    (0..deps.len() as u32).map(Template::Slot).collect(),
                )];
                args.extend(consts.iter().map(|&c| Template::Const(c)));
                let (r, w) = workers[i];
                let worker = (max_workers > 0 && r % 3 == 0).then_some(w);
                tasks.push(Task {
                    id: gid(i),
                    func: *func,
                    opts: *opts,
                    args,
                    kwargs: vec![(
                        "k".to_owned(),
                        Template::Dict(vec![(Template::Int(i as i64), Template::Nil)]),
                    )],
                    deps,
                    worker,
                });
            }
            let mut d = full_tables(tasks);
            d.outputs = (0..n).filter(|&i| outs[i]).map(gid).collect();
            d
        })
}

/// Task id -> ids of the tasks (not stubs) that depend on it, built from the raw data.
pub fn child_map(d: &GraphData) -> HashMap<TaskId, Vec<TaskId>> {
    let mut m: HashMap<TaskId, Vec<TaskId>> = HashMap::new();
    for t in &d.tasks {
        m.entry(t.id).or_default();
    }
    for t in &d.tasks {
        for &dep in &t.deps {
            if let Some(v) = m.get_mut(&dep) {
                v.push(t.id);
            }
        }
    }
    m
}

/// BFS reference: `starts` plus everything reachable from them through children accepted by
/// `follow` (the starts themselves are always included).
pub fn reach(d: &GraphData, starts: &[TaskId], follow: impl Fn(&Task) -> bool) -> BTreeSet<TaskId> {
    let children = child_map(d);
    let by_id: HashMap<TaskId, &Task> = d.tasks.iter().map(|t| (t.id, t)).collect();
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<TaskId> = starts.iter().copied().collect();
    while let Some(id) = queue.pop_front() {
        if !seen.insert(id) {
            continue;
        }
        for &c in &children[&id] {
            if !seen.contains(&c) && follow(by_id[&c]) {
                queue.push_back(c);
            }
        }
    }
    seen
}

/// Reference stubs of a cut holding `held`: every task outside `held` that depends on a held
/// task, as (deps, worker) of the original task.
pub fn expected_stubs(
    d: &GraphData,
    held: &BTreeSet<TaskId>,
) -> BTreeMap<TaskId, (Vec<TaskId>, Option<WorkerId>)> {
    d.tasks
        .iter()
        .filter(|t| !held.contains(&t.id) && t.deps.iter().any(|x| held.contains(x)))
        .map(|t| (t.id, (t.deps.clone(), t.worker)))
        .collect()
}

pub fn ids(tasks: &[Task]) -> BTreeSet<TaskId> {
    tasks.iter().map(|t| t.id).collect()
}
