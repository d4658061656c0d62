//! Cutting graphs (`shoal_core::cut`): closures, partitions and per-worker subDAGs, checked
//! against reference walks written in `common`.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::sample::Index;
use shoal_core::{Downstream, Graph, GraphData, GraphError, Hash16, Task, TaskId, Template};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Random start picks among `pool` (may repeat; empty if the pool is).
fn pick(pool: &[TaskId], picks: &[Index]) -> Vec<TaskId> {
    if pool.is_empty() {
        return vec![];
    }
    picks.iter().map(|i| pool[i.index(pool.len())]).collect()
}

/// Reference held set of `subdag_for(None, starts)`: the flexible descendant closure.
fn flexible_closure(d: &GraphData, starts: &[TaskId]) -> BTreeSet<TaskId> {
    reach(d, starts, |t| t.worker.is_none())
}

/// Reference held set of `subdag_for(Some(w), _)`: w's tasks plus the flexible closure below.
fn worker_closure(d: &GraphData, w: u32) -> BTreeSet<TaskId> {
    let mine: Vec<TaskId> = d
        .tasks
        .iter()
        .filter(|t| t.worker == Some(w))
        .map(|t| t.id)
        .collect();
    let mut held: BTreeSet<TaskId> = mine.iter().copied().collect();
    let children = child_map(d);
    let flex: HashSet<TaskId> = d
        .tasks
        .iter()
        .filter(|t| t.worker.is_none())
        .map(|t| t.id)
        .collect();
    let below: Vec<TaskId> = mine
        .iter()
        .flat_map(|m| children[m].iter().copied())
        .filter(|c| flex.contains(c))
        .collect();
    held.extend(flexible_closure(d, &below));
    held
}

/// Constant hashes a template refers to, in order, resolved through `consts`.
fn const_hashes(tpls: &[&Template], consts: &[Hash16]) -> Vec<Hash16> {
    let mut out = vec![];
    for t in tpls {
        t.for_each_const(&mut |c| out.push(consts[c as usize]));
    }
    out
}

fn templates(t: &Task) -> Vec<&Template> {
    t.args
        .iter()
        .chain(t.kwargs.iter().map(|(_, v)| v))
        .collect()
}

/// A `Downstream` as a sortable tuple.
fn key(x: Downstream) -> (TaskId, u32, Option<u32>, bool) {
    (x.id, x.ndeps, x.worker, x.held)
}

/// Checks a cut `sub` of the whole graph `g` against the reference `held` set:
/// exactly `held` is held (in the original storage order, with unchanged specs), stubs are
/// exactly the downstream tasks not held, tables are pruned to what held tasks use, outputs
/// are filtered, `downstream` agrees, and the cut round-trips through the codec.
fn check_cut(g: &Graph, sub: &Graph, held: &BTreeSet<TaskId>) -> Result<(), TestCaseError> {
    let d = g.data();
    let s = sub.data();

    // Held tasks, in original order.
    let want_order: Vec<TaskId> = d
        .tasks
        .iter()
        .filter(|t| held.contains(&t.id))
        .map(|t| t.id)
        .collect();
    let got_order: Vec<TaskId> = s.tasks.iter().map(|t| t.id).collect();
    prop_assert_eq!(got_order, want_order);

    // Specs survive the re-indexing of tables.
    for t in &s.tasks {
        let o = g.task(t.id).unwrap();
        prop_assert_eq!(&t.deps, &o.deps);
        prop_assert_eq!(t.worker, o.worker);
        prop_assert_eq!(sub.fn_of(t), g.fn_of(o));
        prop_assert_eq!(sub.options_of(t), g.options_of(o));
        prop_assert_eq!(sub.task_name(t), g.task_name(o));
        prop_assert_eq!(
            const_hashes(&templates(t), &s.consts),
            const_hashes(&templates(o), &d.consts)
        );
        let strip = |ts: Vec<&Template>| {
            ts.into_iter()
                .map(|x| {
                    let mut x = x.clone();
                    x.remap_consts(&|_| 0);
                    x
                })
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(strip(templates(t)), strip(templates(o)));
    }

    // Stubs: every downstream task not held, once, with its full deps and worker.
    let got_stubs: BTreeMap<TaskId, (Vec<TaskId>, Option<u32>)> = s
        .stubs
        .iter()
        .map(|x| (x.id, (x.deps.clone(), x.worker)))
        .collect();
    prop_assert_eq!(got_stubs.len(), s.stubs.len(), "a stub appears twice");
    prop_assert_eq!(got_stubs, expected_stubs(d, held));

    // Tables pruned: each entry is used by a held task, and none is duplicated.
    let used_fns: BTreeSet<u32> = s.tasks.iter().map(|t| t.func).collect();
    let used_opts: BTreeSet<u32> = s.tasks.iter().map(|t| t.opts).collect();
    let mut used_consts = BTreeSet::new();
    for t in &s.tasks {
        for tpl in templates(t) {
            tpl.for_each_const(&mut |c| {
                used_consts.insert(c);
            });
        }
    }
    prop_assert_eq!(used_fns, (0..s.fns.len() as u32).collect::<BTreeSet<_>>());
    prop_assert_eq!(
        used_opts,
        (0..s.options.len() as u32).collect::<BTreeSet<_>>()
    );
    prop_assert_eq!(
        used_consts,
        (0..s.consts.len() as u32).collect::<BTreeSet<_>>()
    );
    let distinct_hashes: HashSet<Hash16> = s.fns.iter().map(|f| f.hash).collect();
    prop_assert_eq!(distinct_hashes.len(), s.fns.len());
    let distinct_consts: HashSet<Hash16> = s.consts.iter().copied().collect();
    prop_assert_eq!(distinct_consts.len(), s.consts.len());

    // Outputs: the whole graph's outputs that are held, in order.
    let want_outputs: Vec<TaskId> = d
        .outputs
        .iter()
        .copied()
        .filter(|o| held.contains(o))
        .collect();
    prop_assert_eq!(sub.outputs(), &want_outputs[..]);

    // downstream(): held children and stubs, with the original dependency counts and workers.
    let children = child_map(d);
    for &id in held {
        let got: Vec<_> = sub.downstream(id).unwrap().into_iter().map(key).collect();
        let got_set: BTreeSet<_> = got.iter().copied().collect();
        prop_assert_eq!(got_set.len(), got.len(), "downstream of {} repeats", id);
        let want: BTreeSet<_> = children[&id]
            .iter()
            .map(|&c| {
                let ct = g.task(c).unwrap();
                (c, ct.deps.len() as u32, ct.worker, held.contains(&c))
            })
            .collect();
        prop_assert_eq!(got_set, want);
    }

    // Round trip through the wire format.
    let back = Graph::decode(&sub.encode()).unwrap();
    prop_assert_eq!(back.data(), s);
    Ok(())
}

/// A cut's stubs as a comparable set.
fn stub_set(g: &Graph) -> BTreeSet<(TaskId, Vec<TaskId>, Option<u32>)> {
    g.data()
        .stubs
        .iter()
        .map(|s| (s.id, s.deps.clone(), s.worker))
        .collect()
}

/// The `subdag_for(None, starts)` property.
fn subdag_flexible_property(d: GraphData, picks: Vec<Index>) -> Result<(), TestCaseError> {
    let g = Graph::new(d.clone()).unwrap();
    let flex: Vec<TaskId> = d
        .tasks
        .iter()
        .filter(|t| t.worker.is_none())
        .map(|t| t.id)
        .collect();
    let starts = pick(&flex, &picks);
    let held = flexible_closure(&d, &starts);
    let sub = g
        .subdag_for(None, &starts)
        .map_err(|e| TestCaseError::fail(format!("subdag_for(None, {starts:?}) failed: {e:?}")))?;
    check_cut(&g, &sub, &held)?;

    // Cutting the cut again from the same starts gives the same tasks and stubs.
    if !starts.is_empty() {
        let again = sub.subdag_for(None, &starts).unwrap();
        prop_assert_eq!(ids(again.tasks()), held);
        prop_assert_eq!(stub_set(&again), stub_set(&sub));
    }
    Ok(())
}

/// The `subdag_for(Some(w), [])` property, as above.
fn subdag_worker_property(d: GraphData, w: u32) -> Result<(), TestCaseError> {
    let g = Graph::new(d.clone()).unwrap();
    let held = worker_closure(&d, w);
    let sub = g
        .subdag_for(Some(w), &[])
        .map_err(|e| TestCaseError::fail(format!("subdag_for(Some({w}), []) failed: {e:?}")))?;
    check_cut(&g, &sub, &held)?;

    // The pinned worker can hand its flexible work on: cutting its subDAG from a flexible task
    // it holds gives the same held tasks and stubs as cutting the whole graph.
    let flex_held: Vec<TaskId> = sub
        .tasks()
        .iter()
        .filter(|t| t.worker.is_none())
        .map(|t| t.id)
        .collect();
    if let Some(&s) = flex_held.first() {
        let from_sub = sub.subdag_for(None, &[s]).unwrap();
        let from_whole = g.subdag_for(None, &[s]).unwrap();
        prop_assert_eq!(ids(from_sub.tasks()), ids(from_whole.tasks()));
        prop_assert_eq!(stub_set(&from_sub), stub_set(&from_whole));
    }
    Ok(())
}

proptest! {
    /// `closure(starts)` is exactly the BFS descendant closure (pins ignored), in graph order.
    #[test]
    fn closure_matches_reference(
        d in arb_dag(60, 3),
        picks in prop::collection::vec(any::<Index>(), 0..5),
    ) {
        let g = Graph::new(d.clone()).unwrap();
        let all: Vec<TaskId> = d.tasks.iter().map(|t| t.id).collect();
        let starts = pick(&all, &picks);
        let got = g.closure(&starts).unwrap();
        let want = reach(&d, &starts, |_| true);
        let want_order: Vec<TaskId> = all.iter().copied().filter(|x| want.contains(x)).collect();
        prop_assert_eq!(got, want_order);
    }

    /// After a plan, `partition` puts every task in exactly one group, the group of the
    /// worker it was assigned to (or `None`), groups sorted and tasks in graph order.
    #[test]
    fn partition_after_plan(
        d in arb_dag(60, 0),
        assignment in prop::collection::vec((any::<Index>(), 0u32..5), 0..80),
    ) {
        let mut g = Graph::new(d.clone()).unwrap();
        let all: Vec<TaskId> = d.tasks.iter().map(|t| t.id).collect();
        let last: BTreeMap<TaskId, u32> =
            assignment.iter().map(|(i, w)| (all[i.index(all.len())], *w)).collect();
        let pairs: Vec<(TaskId, u32)> = last.into_iter().collect();
        pin(&mut g, &pairs).unwrap();
        let mut want: HashMap<TaskId, Option<u32>> = all.iter().map(|&t| (t, None)).collect();
        for &(t, w) in &pairs {
            want.insert(t, Some(w));
        }

        let groups = g.partition();
        let keys: Vec<Option<u32>> = groups.iter().map(|(w, _)| *w).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(keys, sorted);
        let mut seen = HashSet::new();
        for (w, members) in &groups {
            prop_assert!(!members.is_empty());
            for t in members {
                prop_assert!(seen.insert(*t), "task {} in two groups", t);
                prop_assert_eq!(want[t], *w);
                prop_assert_eq!(g.task(*t).unwrap().worker, *w);
            }
            let order: Vec<TaskId> = all.iter().copied().filter(|t| members.contains(t)).collect();
            prop_assert_eq!(members, &order);
        }
        prop_assert_eq!(seen.len(), all.len());
    }

    /// `subdag_for(None, starts)` holds exactly the flexible closure, with correct stubs,
    /// pruned tables, downstream info and a codec round trip; held tasks and stubs may depend
    /// on other stubs (boundary inputs).
    #[test]
    fn subdag_flexible(
        d in arb_dag(40, 3),
        picks in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        subdag_flexible_property(d, picks)?;
    }

    /// The same property on graphs with no pinned task: there can be no stubs at all.
    #[test]
    fn subdag_flexible_unpinned(
        d in arb_dag(40, 0),
        picks in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        subdag_flexible_property(d, picks)?;
    }

    /// `subdag_for(Some(w), [])` holds w's tasks plus the flexible closure below them, with
    /// the same checks as above.
    #[test]
    fn subdag_worker(d in arb_dag(40, 3), w in 0u32..4) {
        subdag_worker_property(d, w)?;
    }
}

/// Chain a (flexible) -> b (pinned to 1) -> c (flexible): the flexible walk stops at b, which
/// travels as a stub; worker 1 gets b and c.
#[test]
fn walk_stops_at_pinned_tasks() {
    let mut d = data(vec![task(1, &[]), pinned(task(2, &[1]), 1), task(3, &[2])]);
    d.outputs = vec![3];
    let g = Graph::new(d).unwrap();

    let sub = g.subdag_for(None, &[1]).unwrap();
    assert_eq!(ids(sub.tasks()), BTreeSet::from([1]));
    assert_eq!(sub.data().stubs, vec![stub(2, &[1], Some(1))]);
    assert!(sub.outputs().is_empty());
    assert_eq!(
        sub.downstream(1).unwrap(),
        vec![Downstream {
            id: 2,
            ndeps: 1,
            worker: Some(1),
            held: false
        }]
    );
    assert_eq!(sub.check_complete(), Err(GraphError::NotWhole(2)));

    let sub = g.subdag_for(Some(1), &[]).unwrap();
    assert_eq!(ids(sub.tasks()), BTreeSet::from([2, 3]));
    assert!(sub.data().stubs.is_empty());
    assert_eq!(sub.outputs(), &[3]);
    // b's input (task 1) is a boundary input: allowed, but not complete.
    assert_eq!(
        sub.check_complete(),
        Err(GraphError::ForeignDependency { task: 2, dep: 1 })
    );

    // A worker with no task gets an empty graph.
    assert!(g.subdag_for(Some(9), &[]).unwrap().is_empty());
    // No starts: an empty graph.
    assert!(g.subdag_for(None, &[]).unwrap().is_empty());
}

/// A flexible cut cannot start at a pinned task, nor at an unknown one.
#[test]
fn bad_starts() {
    let g = Graph::new(data(vec![task(1, &[]), pinned(task(2, &[1]), 0)])).unwrap();
    assert_eq!(
        g.subdag_for(None, &[1, 2]).unwrap_err(),
        GraphError::PinnedStart(2)
    );
    assert_eq!(
        g.subdag_for(None, &[1, 42]).unwrap_err(),
        GraphError::UnknownTask(42)
    );
    assert_eq!(
        g.subdag_for(Some(0), &[42]).unwrap_err(),
        GraphError::UnknownTask(42)
    );
    assert_eq!(g.closure(&[42]).unwrap_err(), GraphError::UnknownTask(42));
}

/// Tables are pruned and re-indexed: a cut using only function 2, options 1 and constant 3
/// carries one entry of each, and they resolve to the same function/options/constant.
#[test]
fn tables_are_pruned() {
    let mut a = task(1, &[]);
    a.func = 0;
    a.args = vec![Template::Const(0), Template::Const(4)];
    let mut b = task(2, &[1]);
    b.func = 2;
    b.opts = 1;
    b.kwargs = vec![(
        "x".into(),
        Template::List(vec![Template::Const(3), Template::Const(3)]),
    )];
    let g = Graph::new(full_tables(vec![a, b])).unwrap();
    let sub = g.subdag_for(None, &[2]).unwrap();
    let s = sub.data();
    assert_eq!(s.fns, vec![g.data().fns[2].clone()]);
    assert_eq!(s.options, vec![g.data().options[1].clone()]);
    assert_eq!(s.consts, vec![g.data().consts[3]]);
    let t = &s.tasks[0];
    assert_eq!((t.func, t.opts), (0, 0));
    assert_eq!(
        t.kwargs[0].1,
        Template::List(vec![Template::Const(0), Template::Const(0)])
    );
    assert_eq!(sub.task_name(t), "opt1");
}

/// H (flexible) -> S (pinned) and T (flexible) depends on both H and S. The flexible closure
/// of H is {H, T}; S is downstream of H and not held, so it is a stub — but T depends on it,
/// and `Graph::new` refuses a dependency on a stub, so the cut fails.
#[test]
fn cut_where_held_task_depends_on_stub() {
    let g = Graph::new(data(vec![
        task(1, &[]),
        pinned(task(2, &[1]), 7),
        task(3, &[1, 2]),
    ]))
    .unwrap();
    let sub = g.subdag_for(None, &[1]).unwrap(); // Err(BadDependency { task: 3, dep: 2 })
    assert_eq!(ids(sub.tasks()), BTreeSet::from([1, 3]));
    assert_eq!(sub.data().stubs, vec![stub(2, &[1], Some(7))]);

    // The same shape from a pinned worker's side.
    let g = Graph::new(data(vec![
        pinned(task(1, &[]), 0),
        pinned(task(2, &[1]), 7),
        task(3, &[1, 2]),
    ]))
    .unwrap();
    let sub = g.subdag_for(Some(0), &[]).unwrap();
    assert_eq!(ids(sub.tasks()), BTreeSet::from([1, 3]));
}

/// H (flexible) has two pinned children Y and Z, and Z also depends on Y. Both become stubs,
/// and the stub Z depends on the stub Y, which `Graph::new` refuses, so the cut fails.
#[test]
fn cut_where_stub_depends_on_stub() {
    let g = Graph::new(data(vec![
        task(1, &[]),
        pinned(task(2, &[1]), 7),
        pinned(task(3, &[1, 2]), 8),
    ]))
    .unwrap();
    let sub = g.subdag_for(None, &[1]).unwrap(); // Err(BadDependency { task: 3, dep: 2 })
    assert_eq!(ids(sub.tasks()), BTreeSet::from([1]));
    assert_eq!(sub.data().stubs.len(), 2);
}
