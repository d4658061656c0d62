//! Graph validation, indexes and ordering (`shoal_core::graph`).

mod common;

use common::*;
use proptest::prelude::*;
use shoal_core::{Downstream, Graph, GraphData, GraphError, TaskId, Template};
use std::collections::{BTreeSet, HashMap, HashSet};

fn err(d: GraphData) -> GraphError {
    Graph::new(d).expect_err("graph should be rejected")
}

/// A diamond 1 -> {2, 3} -> 4 with a tail output: builds, is complete, has sane indexes.
#[test]
fn valid_diamond_builds() {
    let mut d = data(vec![
        task(4, &[2, 3]),
        task(1, &[]),
        task(2, &[1]),
        task(3, &[1]),
    ]);
    d.outputs = vec![4];
    let g = Graph::new(d).unwrap();
    g.check_complete().unwrap();
    assert_eq!(g.len(), 4);
    assert!(!g.is_empty());
    assert_eq!(g.roots(), vec![1]);
    assert_eq!(g.outputs(), &[4]);
    assert_eq!(g.levels().unwrap(), vec![2, 0, 1, 1]);
    assert_eq!(g.task_name(g.task(4).unwrap()), "f");
    assert!(g.contains(3) && !g.contains(5));
    assert_eq!(g.task(5), Err(GraphError::UnknownTask(5)));
}

/// The empty graph is valid, complete and has an empty order.
#[test]
fn empty_graph_is_valid() {
    let g = Graph::new(GraphData::default()).unwrap();
    assert!(g.is_empty());
    g.check_complete().unwrap();
    assert_eq!(g.topo_order().unwrap(), Vec::<u32>::new());
}

/// Two tasks with the same id are rejected, as is a stub reusing a task's id.
#[test]
fn duplicate_task_id() {
    assert_eq!(
        err(data(vec![task(1, &[]), task(2, &[1]), task(1, &[])])),
        GraphError::DuplicateTask(1)
    );
    let mut d = data(vec![task(1, &[])]);
    d.stubs = vec![stub(1, &[], None)];
    assert_eq!(err(d), GraphError::DuplicateTask(1));
    let mut d = data(vec![task(1, &[])]);
    d.stubs = vec![stub(2, &[1], None), stub(2, &[1], Some(0))];
    assert_eq!(err(d), GraphError::DuplicateTask(2));
}

/// The same output requested twice is rejected.
#[test]
fn duplicate_output() {
    let mut d = data(vec![task(1, &[]), task(2, &[1])]);
    d.outputs = vec![2, 1, 2];
    assert_eq!(err(d), GraphError::DuplicateOutput(2));
}

/// An output that is not a held task (absent, or only a stub) is rejected.
#[test]
fn unknown_output() {
    let mut d = data(vec![task(1, &[])]);
    d.outputs = vec![1, 9];
    assert_eq!(err(d), GraphError::UnknownOutput(9));
    let mut d = data(vec![task(1, &[])]);
    d.stubs = vec![stub(2, &[1], None)];
    d.outputs = vec![2];
    assert_eq!(err(d), GraphError::UnknownOutput(2));
}

/// A slot beyond the task's dependency list is rejected, wherever it is nested.
#[test]
fn slot_index_out_of_range() {
    let bad = |task: u32, index: u32| GraphError::BadIndex {
        task,
        what: "slot",
        index,
    };
    let mut t = task(2, &[1]);
    t.args = vec![Template::Slot(0), Template::Slot(1)];
    assert_eq!(err(data(vec![task(1, &[]), t])), bad(2, 1));

    let mut t = task(1, &[]);
    t.args = vec![Template::Slot(0)];
    assert_eq!(err(data(vec![t])), bad(1, 0));

    let mut t = task(2, &[1]);
    t.kwargs = vec![(
        "x".into(),
        Template::Dict(vec![(
            Template::Str("k".into()),
            Template::Tuple(vec![Template::Set(vec![Template::Slot(7)])]),
        )]),
    )];
    assert_eq!(err(data(vec![task(1, &[]), t])), bad(2, 7));

    // A slot used as a dict key is still checked.
    let mut t = task(2, &[1]);
    t.args = vec![Template::Dict(vec![(Template::Slot(3), Template::Nil)])];
    assert_eq!(err(data(vec![task(1, &[]), t])), bad(2, 3));
}

/// Function, options and constant indices must exist in their tables.
#[test]
fn table_index_out_of_range() {
    let bad = |what: &'static str, index: u32| GraphError::BadIndex {
        task: 1,
        what,
        index,
    };
    let mut t = task(1, &[]);
    t.func = 1;
    assert_eq!(err(data(vec![t])), bad("function", 1));

    let mut t = task(1, &[]);
    t.opts = u32::MAX;
    assert_eq!(err(data(vec![t])), bad("options", u32::MAX));

    let mut t = task(1, &[]);
    t.args = vec![Template::List(vec![Template::Const(0)])];
    assert_eq!(err(data(vec![t])), bad("constant", 0));

    let mut t = task(1, &[]);
    t.kwargs = vec![(
        "c".into(),
        Template::FrozenSet(vec![Template::Const(NCONSTS)]),
    )];
    assert_eq!(err(full_tables(vec![t])), bad("constant", NCONSTS));

    // In range with full tables: accepted.
    let mut t = task(1, &[]);
    t.func = NFNS - 1;
    t.opts = NOPTS - 1;
    t.args = vec![Template::Const(NCONSTS - 1)];
    Graph::new(full_tables(vec![t])).unwrap();
}

/// A dependency on a stub (a task held elsewhere) is a boundary input: accepted, no edge here.
#[test]
fn dependency_on_stub() {
    let mut d = data(vec![task(1, &[]), task(3, &[1, 2])]);
    d.stubs = vec![stub(2, &[1], Some(0))];
    let g = Graph::new(d).unwrap();
    let ids: BTreeSet<u32> = g.downstream(1).unwrap().iter().map(|x| x.id).collect();
    assert_eq!(ids, BTreeSet::from([2, 3]));
    assert_eq!(g.topo_order().unwrap(), vec![1, 3]);
    let mut d = data(vec![task(1, &[])]);
    d.stubs = vec![stub(2, &[1], None), stub(3, &[1, 2], None)];
    assert!(Graph::new(d).is_ok());
}

/// A stub listing the same dependency twice is inconsistent and should be rejected like a task
/// with a repeated dependency; otherwise `downstream` reports the stub twice.
#[test]
fn stub_with_repeated_dependency_is_rejected() {
    let mut d = data(vec![task(1, &[])]);
    d.stubs = vec![stub(2, &[1, 1], None)];
    assert_eq!(err(d), GraphError::BadDependency { task: 2, dep: 1 });
}

/// Cycles of length 2, 3 and 50 are rejected as `Cycle`.
#[test]
fn cycles_are_rejected() {
    assert!(matches!(
        err(data(vec![task(1, &[2]), task(2, &[1])])),
        GraphError::Cycle(1 | 2)
    ));
    assert!(matches!(
        err(data(vec![
            task(0, &[]),
            task(1, &[0, 3]),
            task(2, &[1]),
            task(3, &[2])
        ])),
        GraphError::Cycle(1..=3)
    ));
    // A long ring, plus a boundary input: still a cycle.
    let ring: Vec<_> = (0..50)
        .map(|i| task(i, &[(i + 49) % 50, 1000 + i]))
        .collect();
    assert!(matches!(err(data(ring)), GraphError::Cycle(0..=49)));
}

/// `Cycle(t)` is documented to name a task *on* the cycle; a task merely downstream of the
/// cycle (stuck behind it) should not be named.
#[test]
fn cycle_error_names_a_task_on_the_cycle() {
    // 1 is downstream of the cycle 2 <-> 3 and is listed first.
    let e = err(data(vec![task(1, &[2]), task(2, &[3]), task(3, &[2])]));
    assert!(matches!(e, GraphError::Cycle(2 | 3)), "{e:?}");
}

/// `Graph::new` accepts dependencies outside the graph (boundary inputs); `check_complete`
/// reports them as foreign, and reports stubs as `NotWhole`.
#[test]
fn check_complete_errors() {
    let g = Graph::new(data(vec![task(1, &[]), task(2, &[1, 77])])).unwrap();
    assert_eq!(
        g.check_complete(),
        Err(GraphError::ForeignDependency { task: 2, dep: 77 })
    );
    assert_eq!(g.topo_order().unwrap(), vec![1, 2]);

    let mut d = data(vec![task(1, &[])]);
    d.stubs = vec![stub(2, &[1], Some(3))];
    let g = Graph::new(d).unwrap();
    assert_eq!(g.check_complete(), Err(GraphError::NotWhole(2)));
    // A stub is not a task of the graph.
    assert!(!g.contains(2));
    assert_eq!(g.task(2), Err(GraphError::UnknownTask(2)));
    assert_eq!(g.downstream(2), Err(GraphError::UnknownTask(2)));
    assert_eq!(g.topo_order().unwrap(), vec![1]);
}

/// A plan pins known tasks and refuses unknown ids, stubs and repeats, leaving the graph as it
/// was.
#[test]
fn plan_known_and_unknown() {
    let mut d = data(vec![task(1, &[]), task(2, &[1])]);
    d.stubs = vec![stub(3, &[2], None)];
    let mut g = Graph::new(d).unwrap();
    pin(&mut g, &[(2, 7), (1, 0)]).unwrap();
    assert_eq!(g.task(1).unwrap().worker, Some(0));
    assert_eq!(g.task(2).unwrap().worker, Some(7));
    assert_eq!(pin(&mut g, &[(9, 1)]), Err(GraphError::UnknownTask(9)));
    assert_eq!(pin(&mut g, &[(3, 1)]), Err(GraphError::UnknownTask(3)));
    assert!(matches!(
        pin(&mut g, &[(1, 1), (1, 2)]),
        Err(GraphError::BadPlan(_))
    ));
    assert_eq!(g.task(2).unwrap().worker, Some(7));
    // A new plan replaces the old one: task 2 is flexible again.
    pin(&mut g, &[(1, 3)]).unwrap();
    assert_eq!(g.task(2).unwrap().worker, None);
}

/// Checks that `order` is a permutation of the graph's tasks with every in-graph dependency
/// before its dependant.
fn assert_topological(d: &GraphData, order: &[u32]) {
    assert_eq!(order.len(), d.tasks.len());
    let at: HashMap<u32, usize> = order.iter().enumerate().map(|(i, &t)| (t, i)).collect();
    assert_eq!(at.len(), order.len(), "order repeats a task");
    for t in &d.tasks {
        for dep in &t.deps {
            if let Some(&p) = at.get(dep) {
                assert!(p < at[&t.id], "dep {dep} of {} comes after it", t.id);
            }
        }
    }
}

proptest! {
    /// Random DAGs (stored in shuffled order, sparse ids): the topological order is a
    /// permutation where every dependency precedes its dependant; levels are longest paths.
    #[test]
    fn topo_order_respects_dependencies(d in arb_dag(60, 3)) {
        let g = Graph::new(d.clone()).unwrap();
        g.check_complete().unwrap();
        let order = g.topo_order().unwrap();
        assert_topological(&d, &order);

        let levels = g.levels().unwrap();
        let level: HashMap<u32, u32> =
            d.tasks.iter().map(|t| t.id).zip(levels.iter().copied()).collect();
        for t in &d.tasks {
            let want = t.deps.iter().map(|x| level[x] + 1).max().unwrap_or(0);
            prop_assert_eq!(level[&t.id], want);
        }
        let roots: BTreeSet<u32> = g.roots().into_iter().collect();
        let want: BTreeSet<u32> = d.tasks.iter().filter(|t| t.deps.is_empty()).map(|t| t.id).collect();
        prop_assert_eq!(roots, want);
    }

    /// Adding one back edge (from a task to one of its descendants) to a random DAG makes it
    /// cyclic, and `Graph::new` reports `Cycle`.
    #[test]
    fn back_edge_makes_a_cycle(d in arb_dag(40, 0), pick in any::<prop::sample::Index>()) {
        let edges: Vec<(u32, u32)> = d.tasks.iter()
            .flat_map(|t| t.deps.iter().map(move |&x| (x, t.id)))
            .collect();
        prop_assume!(!edges.is_empty());
        let (up, down) = edges[pick.index(edges.len())];
        let mut d = d;
        let t = d.tasks.iter_mut().find(|t| t.id == up).unwrap();
        t.deps.push(down);
        prop_assert!(matches!(Graph::new(d), Err(GraphError::Cycle(_))));
    }

    /// `downstream(id)` on a whole graph lists exactly the tasks depending on `id`, each held,
    /// with its dependency count and worker.
    #[test]
    fn downstream_of_whole_graph(d in arb_dag(50, 3)) {
        let g = Graph::new(d.clone()).unwrap();
        let children = child_map(&d);
        for t in &d.tasks {
            let got: HashSet<(u32, u32, Option<u32>, bool)> = g.downstream(t.id).unwrap()
                .into_iter().map(|x| (x.id, x.ndeps, x.worker, x.held)).collect();
            let want: HashSet<_> = children[&t.id].iter().map(|c| {
                let ct = g.task(*c).unwrap();
                (*c, ct.deps.len() as u32, ct.worker, true)
            }).collect();
            prop_assert_eq!(g.downstream(t.id).unwrap().len(), want.len());
            prop_assert_eq!(got, want);
        }
    }
}

/// A 3000-task chain: no recursion blow-up in validation, ordering, levels or the codec.
#[test]
fn deep_chain() {
    const N: u32 = 3000;
    // Stored back to front so that storage order is the reverse of the dependency order.
    let tasks = (0..N)
        .rev()
        .map(|i| {
            if i == 0 {
                task(0, &[])
            } else {
                task(i, &[i - 1])
            }
        })
        .collect();
    let g = Graph::new(data(tasks)).unwrap();
    g.check_complete().unwrap();
    assert_eq!(g.topo_order().unwrap(), (0..N).collect::<Vec<_>>());
    assert_eq!(g.levels().unwrap().iter().max(), Some(&(N - 1)));
    assert_eq!(g.closure(&[0]).unwrap().len(), N as usize);
    let sub = g.subdag_for(None, &[N / 2]).unwrap();
    assert_eq!(sub.len(), (N - N / 2) as usize);
    let back = Graph::decode(&g.encode()).unwrap();
    assert_eq!(back.data(), g.data());
}

/// A fan-out of 5000 children and a fan-in of one task over 5000 dependencies.
#[test]
fn wide_fan_out_and_fan_in() {
    const N: u32 = 5000;
    let mut tasks = vec![task(0, &[])];
    tasks.extend((1..=N).map(|i| task(i, &[0])));
    let all: Vec<u32> = (1..=N).collect();
    tasks.push(task(N + 1, &all));
    let g = Graph::new(data(tasks)).unwrap();
    let order = g.topo_order().unwrap();
    assert_eq!(order.len(), N as usize + 2);
    assert_eq!(order[0], 0);
    assert_eq!(*order.last().unwrap(), N + 1);
    let down = g.downstream(0).unwrap();
    assert_eq!(down.len(), N as usize);
    assert!(down
        .iter()
        .all(|x| x.ndeps == 1 && x.held && x.worker.is_none()));
    assert_eq!(
        g.downstream(1).unwrap(),
        vec![Downstream {
            id: N + 1,
            ndeps: N,
            worker: None,
            held: true
        }]
    );
    assert_eq!(g.closure(&[0]).unwrap().len(), N as usize + 2);
    let back = Graph::decode(&g.encode()).unwrap();
    assert_eq!(back.data(), g.data());
}

/// A pairwise tree of `n` leaves: leaves use function 0, adds function 1.
fn tree(n: usize) -> GraphData {
    let mut tasks = Vec::new();
    let mut level: Vec<TaskId> = (0..n).map(gid).collect();
    tasks.extend(level.iter().map(|&id| task(id, &[])));
    let mut next = n;
    while level.len() > 1 {
        let mut up = Vec::new();
        for pair in level.chunks(2) {
            let mut t = task(gid(next), pair);
            t.func = 1;
            tasks.push(t);
            up.push(gid(next));
            next += 1;
        }
        level = up;
    }
    let mut d = data(tasks);
    d.fns.push(fnref("add"));
    d
}

/// The shape has no size: trees of 4 and 1,024 leaves have the same kinds of task; a
/// subDAG's inputs from outside count as such.
#[test]
fn shape_is_independent_of_size() {
    let small = Graph::new(tree(4)).unwrap().shape();
    assert_eq!(
        small,
        vec![(0, vec![]), (1, vec![Some(0)]), (1, vec![Some(1)])]
    );
    assert_eq!(Graph::new(tree(1024)).unwrap().shape(), small);
    let mut d = data(vec![task(5, &[1, 2])]);
    d.tasks[0].func = 0;
    assert_eq!(Graph::new(d).unwrap().shape(), vec![(0, vec![None])]);
}
