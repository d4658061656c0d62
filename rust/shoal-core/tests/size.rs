//! Wire size budget: a 1024-leaf binary reduction tree stays small, whole and cut.

use shoal_core::{FnRef, Graph, GraphData, Hash16, Task, TaskId, TaskOptions, Template};

const LEAVES: u32 = 1024;

/// Leaves `0..1024` run `leaf(i)`; internal nodes run `add(left, right)` up to one root.
fn reduction_tree() -> Graph {
    let f = |name: &str| FnRef {
        hash: Hash16::of(name.as_bytes()),
        name: name.to_owned(),
        qualname: name.to_owned(),
    };
    let mut tasks: Vec<Task> = (0..LEAVES)
        .map(|i| Task {
            id: i,
            func: 0,
            opts: 0,
            args: vec![Template::Int(i64::from(i))],
            kwargs: vec![],
            deps: vec![],
            worker: None,
        })
        .collect();
    let mut level: Vec<TaskId> = (0..LEAVES).collect();
    let mut next = LEAVES;
    while level.len() > 1 {
        let mut up = vec![];
        for pair in level.chunks(2) {
            tasks.push(Task {
                id: next,
                func: 1,
                opts: 0,
                args: vec![Template::Slot(0), Template::Slot(1)],
                kwargs: vec![],
                deps: pair.to_vec(),
                worker: None,
            });
            up.push(next);
            next += 1;
        }
        level = up;
    }
    Graph::new(GraphData {
        fns: vec![f("leaf"), f("add")],
        options: vec![TaskOptions::default()],
        consts: vec![],
        tasks,
        stubs: vec![],
        outputs: level,
        maps: vec![],
        plan: Default::default(),
    })
    .unwrap()
}

/// The whole graph costs at most 40 bytes per task; the subDAG of one leaf (the leaf and its
/// 10 ancestors, with only the tables they use) fits in 512 bytes. Both round-trip.
#[test]
fn reduction_tree_sizes() {
    let g = reduction_tree();
    g.check_complete().unwrap();
    assert_eq!(g.len(), 2 * LEAVES as usize - 1);

    let whole = g.encode();
    let per_task = whole.len() as f64 / g.len() as f64;
    println!(
        "whole graph: {} tasks, {} bytes, {per_task:.2} bytes/task",
        g.len(),
        whole.len()
    );
    assert!(whole.len() <= 40 * g.len(), "{} bytes", whole.len());
    assert_eq!(Graph::decode(&whole).unwrap().data(), g.data());

    for leaf in [0, 517, LEAVES - 1] {
        let sub = g.subdag_for(None, &[leaf]).unwrap();
        let bytes = sub.encode();
        println!(
            "subdag_for(None, [{leaf}]): {} tasks, {} stubs, {} bytes",
            sub.len(),
            sub.data().stubs.len(),
            bytes.len()
        );
        assert_eq!(sub.len(), 11);
        assert!(sub.data().stubs.is_empty());
        assert_eq!(sub.outputs(), g.outputs());
        assert!(bytes.len() <= 512, "{} bytes", bytes.len());
        assert_eq!(Graph::decode(&bytes).unwrap().data(), sub.data());
    }
}

/// The columnar wire layout keeps regular shapes small: the tree above within 2 bytes a task,
/// a 1 -> 1,000 -> 1 fan-out (whose fan-in lists a thousand slots) within 2.5 bytes a task.
#[test]
fn regular_shapes_compress_to_a_few_bytes_per_task() {
    let tree = reduction_tree().encode();
    assert!(
        tree.len() <= 2 * (2 * LEAVES as usize - 1),
        "{} bytes",
        tree.len()
    );

    let width = 1000u32;
    let mut tasks = vec![Task {
        id: 0,
        func: 0,
        opts: 0,
        args: vec![],
        kwargs: vec![],
        deps: vec![],
        worker: None,
    }];
    tasks.extend((1..=width).map(|i| Task {
        id: i,
        func: 1,
        opts: 0,
        args: vec![Template::Slot(0), Template::Int(i64::from(i))],
        kwargs: vec![],
        deps: vec![0],
        worker: None,
    }));
    tasks.push(Task {
        id: width + 1,
        func: 2,
        opts: 0,
        args: vec![Template::List((0..width).map(Template::Slot).collect())],
        kwargs: vec![],
        deps: (1..=width).collect(),
        worker: None,
    });
    let f = |name: &str| FnRef {
        hash: Hash16::of(name.as_bytes()),
        name: name.to_owned(),
        qualname: name.to_owned(),
    };
    let g = Graph::new(GraphData {
        fns: vec![f("make"), f("work"), f("total")],
        options: vec![TaskOptions::default()],
        consts: vec![],
        tasks,
        stubs: vec![],
        outputs: vec![width + 1],
        maps: vec![],
        plan: Default::default(),
    })
    .unwrap();
    let bytes = g.encode();
    println!("fan-out of {width}: {} bytes", bytes.len());
    assert!(bytes.len() * 2 <= 5 * g.len(), "{} bytes", bytes.len());
    assert_eq!(Graph::decode(&bytes).unwrap().data(), g.data());
}
