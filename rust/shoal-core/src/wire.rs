//! The wire layout of a graph: columns instead of rows, ids and dependencies as differences.
//!
//! A row per task (`[id, func, opts, args, kwargs, deps, worker]`) interleaves unlike values, and
//! zstd finds little to share between neighbouring rows. Here every field is one column, so runs
//! of equal values (one function for a whole level, options that never change, no worker) are
//! adjacent and compress to almost nothing. Numbers are also made small and repetitive:
//!
//! - task ids are stored as the difference from the previous id; a whole graph's ids are
//!   0, 1, 2, … (all ones) and a cut keeps its ids in ascending order;
//! - a task's first dependency is stored as the difference from the previous task's first
//!   dependency (a fan-out's branches all write 0), each next one as the difference from the one
//!   before (a fan-in over tasks 1..1000 becomes a first difference and 999 ones);
//! - the rare fields (keyword arguments, pinned workers) are sparse `(position, value)` lists,
//!   and the plan table (see [`crate::plan`]) is keyed by task id;
//! - a slot is written as `next - index` (mod 2^32), where `next` counts the distinct slots met
//!   so far in the task's arguments: the freeze walk numbers slots by first appearance, so a new
//!   slot is always written 0 and a fan-in's list of a thousand slots is a thousand zeros.
//!
//! Decoding rebuilds [`GraphData`] and checks that the columns agree in length and that the
//! differences give valid ids, so a corrupt body is an error, never a panic.

use crate::graph::{FnRef, GraphData, Stub, Task, TaskId, TaskOptions, WorkerId};
use crate::hash::Hash16;
use crate::maps::MapSpec;
use crate::plan::Plan;
use crate::template::Template;
use serde::{Deserialize, Serialize};

/// What [`encode`](crate::Graph::encode) writes, borrowing from the graph.
#[derive(Serialize)]
struct WireOut<'a> {
    fns: &'a [FnRef],
    options: &'a [TaskOptions],
    consts: &'a [Hash16],
    ids: Vec<i64>,
    funcs: Vec<u32>,
    opts: Vec<u32>,
    args: Vec<Vec<Template>>,
    kwargs: Vec<(u32, Vec<(String, Template)>)>,
    ndeps: Vec<u32>,
    deps: Vec<i64>,
    workers: Vec<(u32, WorkerId)>,
    stubs: &'a [Stub],
    outputs: &'a [TaskId],
    maps: &'a [MapSpec],
    plan: &'a Plan,
}

/// What decoding reads.
#[derive(Deserialize)]
pub(crate) struct WireIn {
    fns: Vec<FnRef>,
    options: Vec<TaskOptions>,
    consts: Vec<Hash16>,
    ids: Vec<i64>,
    funcs: Vec<u32>,
    opts: Vec<u32>,
    args: Vec<Vec<Template>>,
    kwargs: Vec<(u32, Vec<(String, Template)>)>,
    ndeps: Vec<u32>,
    deps: Vec<i64>,
    workers: Vec<(u32, WorkerId)>,
    stubs: Vec<Stub>,
    outputs: Vec<TaskId>,
    maps: Vec<MapSpec>,
    plan: Plan,
}

pub(crate) fn to_wire(d: &GraphData) -> impl Serialize + '_ {
    let n = d.tasks.len();
    let mut ids = Vec::with_capacity(n);
    let mut ndeps = Vec::with_capacity(n);
    let mut deps = Vec::with_capacity(n * 2);
    let mut prev: i64 = -1;
    let mut prev_first: i64 = 0;
    for t in &d.tasks {
        let id = i64::from(t.id);
        ids.push(id - prev);
        prev = id;
        ndeps.push(t.deps.len() as u32);
        let mut last: i64 = 0;
        for (k, &dep) in t.deps.iter().enumerate() {
            let dep = i64::from(dep);
            if k == 0 {
                deps.push(prev_first - dep);
                prev_first = dep;
            } else {
                deps.push(dep - last);
            }
            last = dep;
        }
    }
    let mut args = Vec::with_capacity(n);
    let mut kwargs = Vec::new();
    for (p, t) in d.tasks.iter().enumerate() {
        let mut a = t.args.clone();
        let mut kw = t.kwargs.clone();
        code_slots(&mut a, &mut kw, false);
        args.push(a);
        if !kw.is_empty() {
            kwargs.push((p as u32, kw));
        }
    }
    WireOut {
        fns: &d.fns,
        options: &d.options,
        consts: &d.consts,
        ids,
        funcs: d.tasks.iter().map(|t| t.func).collect(),
        opts: d.tasks.iter().map(|t| t.opts).collect(),
        args,
        kwargs,
        ndeps,
        deps,
        workers: d
            .tasks
            .iter()
            .enumerate()
            .filter_map(|(p, t)| t.worker.map(|w| (p as u32, w)))
            .collect(),
        stubs: &d.stubs,
        outputs: &d.outputs,
        maps: &d.maps,
        plan: &d.plan,
    }
}

pub(crate) fn from_wire(w: WireIn) -> Result<GraphData, String> {
    let n = w.ids.len();
    for (what, len) in [
        ("functions", w.funcs.len()),
        ("options", w.opts.len()),
        ("arguments", w.args.len()),
        ("dependency counts", w.ndeps.len()),
    ] {
        if len != n {
            return Err(format!("{n} task ids but {len} {what}"));
        }
    }
    let total: u64 = w.ndeps.iter().map(|&k| u64::from(k)).sum();
    if total != w.deps.len() as u64 {
        return Err(format!(
            "dependency counts add up to {total}, {} dependencies",
            w.deps.len()
        ));
    }
    let as_id = |v: i64| TaskId::try_from(v).map_err(|_| format!("task id {v} out of range"));
    let mut tasks = Vec::with_capacity(n);
    let mut prev: i64 = -1;
    let mut prev_first: i64 = 0;
    let mut cursor = 0usize;
    let mut args = w.args.into_iter();
    for p in 0..n {
        let id = prev
            .checked_add(w.ids[p])
            .ok_or("task id overflow".to_string())?;
        prev = id;
        let k = w.ndeps[p] as usize;
        let mut deps = Vec::with_capacity(k);
        let mut last: i64 = 0;
        for (j, &diff) in w.deps[cursor..cursor + k].iter().enumerate() {
            let dep = if j == 0 {
                prev_first.checked_sub(diff)
            } else {
                last.checked_add(diff)
            }
            .ok_or("dependency id overflow".to_string())?;
            deps.push(as_id(dep)?);
            if j == 0 {
                prev_first = dep;
            }
            last = dep;
        }
        cursor += k;
        tasks.push(Task {
            id: as_id(id)?,
            func: w.funcs[p],
            opts: w.opts[p],
            args: args.next().unwrap_or_default(),
            kwargs: Vec::new(),
            deps,
            worker: None,
        });
    }
    let increasing = |positions: Vec<u32>| positions.windows(2).all(|w| w[0] < w[1]);
    if !increasing(w.kwargs.iter().map(|(p, _)| *p).collect())
        || !increasing(w.workers.iter().map(|(p, _)| *p).collect())
    {
        return Err("sparse columns out of order".into());
    }
    for (p, kwargs) in w.kwargs {
        tasks
            .get_mut(p as usize)
            .ok_or(format!("keyword arguments of task position {p} of {n}"))?
            .kwargs = kwargs;
    }
    for t in &mut tasks {
        code_slots(&mut t.args, &mut t.kwargs, true);
    }
    for (p, worker) in w.workers {
        tasks
            .get_mut(p as usize)
            .ok_or(format!("worker of task position {p} of {n}"))?
            .worker = Some(worker);
    }
    Ok(GraphData {
        fns: w.fns,
        options: w.options,
        consts: w.consts,
        tasks,
        stubs: w.stubs,
        outputs: w.outputs,
        maps: w.maps,
        plan: w.plan,
    })
}

/// Codes (or, `decode`, restores) a task's slot indices as `next - index`, mod 2^32: see the
/// module docs. Both directions walk the arguments, then the keyword arguments, in order.
fn code_slots(args: &mut [Template], kwargs: &mut [(String, Template)], decode: bool) {
    let mut next: u32 = 0;
    let mut code = |i: u32| {
        let (index, coded) = if decode {
            (next.wrapping_sub(i), i)
        } else {
            (i, next.wrapping_sub(i))
        };
        if index == next {
            next = next.wrapping_add(1);
        }
        if decode {
            index
        } else {
            coded
        }
    };
    args.iter_mut().for_each(|t| t.map_slots(&mut code));
    kwargs.iter_mut().for_each(|(_, t)| t.map_slots(&mut code));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::FnRef;
    use crate::hash::Hash16;

    fn task(id: TaskId, deps: Vec<TaskId>, args: Vec<Template>) -> Task {
        Task {
            id,
            func: 0,
            opts: 0,
            args,
            kwargs: vec![("k".into(), Template::List(vec![Template::Slot(0)]))],
            deps,
            worker: (id % 2 == 0).then_some(id),
        }
    }

    /// Slots repeated, out of first-appearance order, and inside keyword arguments round-trip.
    #[test]
    fn slots_in_any_order_round_trip() {
        use Template::Slot;
        let odd = vec![
            Slot(2),
            Template::Dict(vec![(Slot(0), Slot(2))]),
            Slot(1),
            Slot(0),
        ];
        let d = GraphData {
            fns: vec![FnRef {
                hash: Hash16::of(b"f"),
                name: "f".into(),
                qualname: "f".to_owned(),
            }],
            options: vec![TaskOptions::default()],
            consts: vec![],
            tasks: vec![
                task(7, vec![], vec![Template::Int(-3)]),
                task(3, vec![], vec![]),
                task(9, vec![3, 7, 1], odd),
            ],
            stubs: vec![],
            outputs: vec![9],
            maps: vec![],
            plan: Plan::default(),
        };
        let raw: WireIn = crate::codec::decode(crate::codec::Kind::Graph, &d.encode()).unwrap();
        assert_eq!(from_wire(raw).unwrap(), d);
    }
}
