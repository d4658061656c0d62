//! The plan table: applied, queried, encoded, cut and validated.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::sample::Index;
use shoal_core::{Graph, GraphError, Optimization, Param, PlannedWorker, Size, TaskId, TaskPlan};
use std::collections::BTreeMap;

fn size(mb: u32) -> Size {
    Size {
        memory_mb: Some(mb),
        cpu: Some(f64::from(mb) / 1769.0),
    }
}

fn preload(of: &[TaskId]) -> Optimization {
    Optimization {
        kind: "preload".into(),
        params: vec![
            ("upstreams".into(), Param::Tasks(of.to_vec())),
            ("eager".into(), Param::Bool(true)),
        ],
    }
}

/// 1 -> 2 -> 4, 1 -> 3 -> 4.
fn diamond() -> Graph {
    Graph::new(data(vec![
        task(1, &[]),
        task(2, &[1]),
        task(3, &[1]),
        task(4, &[2, 3]),
    ]))
    .unwrap()
}

fn planned(worker: Option<u32>, mb: Option<u32>, opts: Vec<Optimization>) -> TaskPlan {
    TaskPlan {
        worker,
        size: mb.map(size),
        optimizations: opts,
    }
}

#[test]
fn a_plan_is_queried_per_task_and_per_worker() {
    let mut g = diamond();
    let tasks = [
        (4, planned(Some(0), Some(2048), vec![preload(&[2, 3])])),
        (2, planned(Some(1), None, vec![])),
        (1, planned(None, Some(512), vec![])),
    ];
    g.apply_plan(
        &tasks,
        &[PlannedWorker {
            worker: 0,
            size: size(2048),
        }],
    )
    .unwrap();
    assert_eq!(g.plan_of(4).unwrap(), tasks[0].1);
    assert_eq!(g.plan_of(2).unwrap(), tasks[1].1);
    assert_eq!(g.plan_of(1).unwrap(), tasks[2].1);
    assert_eq!(g.plan_of(3).unwrap(), TaskPlan::default());
    assert_eq!(g.plan().worker_size(0), Some(size(2048)));
    assert_eq!(g.plan().worker_size(1), None);
    // Task 2 planned with a worker only takes no table entry.
    assert_eq!(g.plan().tasks.len(), 2);
    assert_eq!(g.plan_of(9), Err(GraphError::UnknownTask(9)));
}

#[test]
fn a_plan_survives_the_wire_and_cuts_keep_what_they_hold() {
    let mut g = diamond();
    let tasks = [
        (1, planned(None, Some(256), vec![])),
        (3, planned(Some(1), Some(1024), vec![preload(&[1])])),
        (4, planned(Some(0), Some(2048), vec![preload(&[2, 3])])),
    ];
    let workers = [
        PlannedWorker {
            worker: 0,
            size: size(2048),
        },
        PlannedWorker {
            worker: 1,
            size: size(1024),
        },
        PlannedWorker {
            worker: 5,
            size: size(128),
        },
    ];
    g.apply_plan(&tasks, &workers).unwrap();
    let back = Graph::decode(&g.encode()).unwrap();
    assert_eq!(back.data(), g.data());

    // Worker 1's cut holds task 3 and the stub of task 4 (worker 0).
    let sub = g.subdag_for(Some(1), &[]).unwrap();
    assert_eq!(sub.plan_of(3).unwrap(), tasks[1].1);
    let named: Vec<u32> = sub.plan().workers.iter().map(|w| w.worker).collect();
    assert_eq!(named, vec![0, 1]);
    assert_eq!(sub.plan().tasks.len(), 1);
    // A flexible cut from task 2 holds only task 2, unplanned, and names worker 0 (task 4).
    let flex = g.subdag_for(None, &[2]).unwrap();
    assert!(flex.plan().tasks.is_empty());
    assert_eq!(flex.plan().worker_size(0), Some(size(2048)));
}

#[test]
fn bad_plans_are_refused_and_change_nothing() {
    let mut g = diamond();
    g.apply_plan(&[(2, planned(Some(3), None, vec![]))], &[])
        .unwrap();
    let zero = TaskPlan {
        size: Some(Size {
            memory_mb: Some(0),
            cpu: None,
        }),
        ..TaskPlan::default()
    };
    let negative_cpu = PlannedWorker {
        worker: 1,
        size: Size {
            memory_mb: None,
            cpu: Some(-1.0),
        },
    };
    type Case = (Vec<(TaskId, TaskPlan)>, Vec<PlannedWorker>, &'static str);
    let cases: Vec<Case> = vec![
        (vec![(1, zero)], vec![], "task 1 has 0 MB"),
        (vec![], vec![negative_cpu], "CPU share of -1"),
        (
            vec![],
            vec![
                PlannedWorker {
                    worker: 2,
                    size: size(1),
                },
                PlannedWorker {
                    worker: 2,
                    size: size(2),
                },
            ],
            "worker 2 is planned twice",
        ),
        (
            vec![(1, TaskPlan::default()), (1, TaskPlan::default())],
            vec![],
            "task 1 is planned twice",
        ),
    ];
    for (tasks, workers, says) in cases {
        let err = g.apply_plan(&tasks, &workers).unwrap_err().to_string();
        assert!(err.contains(says), "{err:?} should say {says:?}");
        assert_eq!(g.task(2).unwrap().worker, Some(3), "the old plan stays");
    }
}

#[test]
fn a_plan_naming_a_task_the_graph_lacks_is_an_invalid_payload() {
    let mut d = data(vec![task(1, &[])]);
    d.plan.tasks.push(shoal_core::PlannedTask {
        task: 8,
        size: Some(size(64)),
        optimizations: vec![],
    });
    let err = Graph::decode(&d.encode()).unwrap_err().to_string();
    assert!(
        err.contains("task 8, which the graph does not hold"),
        "{err}"
    );
}

fn arb_param() -> impl Strategy<Value = Param> {
    prop_oneof![
        any::<bool>().prop_map(Param::Bool),
        any::<i64>().prop_map(Param::Int),
        (-1e9f64..1e9).prop_map(Param::Float),
        "[a-z]{0,8}".prop_map(Param::Str),
        prop::collection::vec(0u32..100, 0..4).prop_map(Param::Tasks),
    ]
}

fn arb_optimization() -> impl Strategy<Value = Optimization> {
    (
        "[a-z_]{1,10}",
        prop::collection::vec(("[a-z]{1,6}", arb_param()), 0..3),
    )
        .prop_map(|(kind, params)| Optimization { kind, params })
}

proptest! {
    /// Random plans on random DAGs round-trip through the wire, and every cut keeps exactly
    /// the entries of the tasks it holds.
    #[test]
    fn random_plans_round_trip_and_cut(
        d in arb_dag(40, 0),
        picks in prop::collection::vec(
            (any::<Index>(), prop::option::of(0u32..4), prop::option::of(1u32..4096),
             prop::collection::vec(arb_optimization(), 0..3)),
            0..30),
        start in any::<Index>(),
    ) {
        let mut g = Graph::new(d.clone()).unwrap();
        let all: Vec<TaskId> = d.tasks.iter().map(|t| t.id).collect();
        let by_task: BTreeMap<TaskId, TaskPlan> = picks
            .into_iter()
            .map(|(i, w, mb, opts)| (all[i.index(all.len())], planned(w, mb, opts)))
            .collect();
        let tasks: Vec<(TaskId, TaskPlan)> = by_task.clone().into_iter().collect();
        let workers: Vec<PlannedWorker> =
            (0..4).map(|w| PlannedWorker { worker: w, size: size(100 + w) }).collect();
        g.apply_plan(&tasks, &workers).unwrap();
        let back = Graph::decode(&g.encode()).unwrap();
        prop_assert_eq!(back.data(), g.data());
        for &t in &all {
            let want = by_task.get(&t).cloned().unwrap_or_default();
            prop_assert_eq!(back.plan_of(t).unwrap(), want);
        }
        let s = all[start.index(all.len())];
        let sub = match g.task(s).unwrap().worker {
            None => g.subdag_for(None, &[s]).unwrap(),
            w => g.subdag_for(w, &[]).unwrap(),
        };
        for t in sub.tasks() {
            let want = by_task.get(&t.id).cloned().unwrap_or_default();
            prop_assert_eq!(sub.plan_of(t.id).unwrap(), want);
        }
        for w in &sub.plan().workers {
            let named = sub.tasks().iter().any(|t| t.worker == Some(w.worker))
                || sub.data().stubs.iter().any(|st| st.worker == Some(w.worker));
            prop_assert!(named, "worker {} kept but not named", w.worker);
        }
    }
}
