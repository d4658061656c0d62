//! Map tasks: chain linking, counting through maps, cuts and the errors of impossible chains.

mod common;

use common::{data, pin, task};
use shoal_core::maps::link;
use shoal_core::{Downstream, Graph, GraphError, TaskId};

/// 0 = source, 1 = broadcast input X, 2 = map(f, 0), 3 = map(g, 2, X), 4 = combine(3),
/// 5 = map(h, 2) (a branch of the same chain), 6 = total(4, 2).
fn pipeline() -> Graph {
    let tasks = vec![
        task(0, &[]),
        task(1, &[]),
        task(2, &[0]),
        task(3, &[2, 1]),
        task(4, &[3]),
        task(5, &[2]),
        task(6, &[4, 2]),
    ];
    let maps = link(&tasks, &[2, 3, 5]).unwrap();
    let mut d = data(tasks);
    d.maps = maps;
    d.outputs = vec![6, 5];
    let g = Graph::new(d).unwrap();
    g.check_complete().unwrap();
    g
}

fn ids(down: &[Downstream]) -> Vec<(TaskId, u32)> {
    down.iter().map(|d| (d.id, d.ndeps)).collect()
}

#[test]
fn chains_get_one_root_and_their_inputs_counted_once() {
    let g = pipeline();
    for (id, root, group) in [(2, 2, 2), (3, 2, 2), (5, 2, 2)] {
        let m = g.map_spec(id).unwrap();
        assert_eq!((m.root, m.group_deps), (root, group), "map {id}");
    }
    let ords: Vec<u32> = [2, 3, 5]
        .iter()
        .map(|&m| g.map_spec(m).unwrap().ord)
        .collect();
    assert_eq!(ords, vec![0, 1, 2]);
    assert!(g.map_spec(4).is_none());
}

#[test]
fn downstream_counts_the_root_skips_element_wise_edges_and_gathers_once() {
    let g = pipeline();
    // The source and the broadcast input both count down the chain's root.
    assert_eq!(ids(&g.downstream(0).unwrap()), vec![(2, 2)]);
    assert_eq!(ids(&g.downstream(1).unwrap()), vec![(2, 2)]);
    // Map 2 feeds maps 3 and 5 element-wise (not counted) and task 6 as a whole.
    assert_eq!(ids(&g.downstream(2).unwrap()), vec![(6, 2)]);
    assert_eq!(ids(&g.downstream(3).unwrap()), vec![(4, 1)]);
    assert!(g.downstream(5).unwrap().is_empty());
}

#[test]
fn a_map_broadcast_into_another_chain_counts_down_that_chain() {
    // 0 source, 1 = map(f, 0), 2 source, 3 = map(g, 2, 1): 1 is broadcast (whole list) into 3.
    let tasks = vec![task(0, &[]), task(1, &[0]), task(2, &[]), task(3, &[2, 1])];
    let maps = link(&tasks, &[1, 3]).unwrap();
    let mut d = data(tasks);
    d.maps = maps;
    let g = Graph::new(d).unwrap();
    assert_eq!(g.map_spec(3).unwrap().root, 3);
    assert_eq!(ids(&g.downstream(1).unwrap()), vec![(3, 2)]);
}

#[test]
fn cuts_keep_the_specs_of_the_maps_they_hold() {
    let g = pipeline();
    let sub = g.subdag_for(None, &[1]).unwrap();
    // X's closure holds map 3, and so the chain's root 2 that X's completion may make ready.
    assert!(sub.contains(3) && sub.contains(2) && sub.contains(5));
    assert_eq!(sub.map_spec(3).unwrap().root, 2);
    // A map that is only a boundary input keeps its spec (its elements are fetched by ord).
    let consumer = g.subdag_for(None, &[4]).unwrap();
    assert!(!consumer.contains(3));
    assert!(consumer.map_spec(3).is_some() && consumer.map_spec(5).is_none());
    let back = Graph::decode(&sub.encode()).unwrap();
    assert_eq!(back.data().maps, sub.data().maps);
    assert_eq!(ids(&back.downstream(1).unwrap()), vec![(2, 2)]);
}

#[test]
fn a_cut_holds_the_roots_of_every_chain_its_closure_reaches() {
    // 1 = map(f, 0); 3 = map(g, 1, 2) and 4 = map(f, 1) in its chain; 5 = total(4);
    // 7 = map(f, 6), a second chain; 8 = map(g, 7, 5) takes the first chain's gather whole.
    let tasks = vec![
        task(0, &[]),
        task(1, &[0]),
        task(2, &[]),
        task(3, &[1, 2]),
        task(4, &[1]),
        task(5, &[4]),
        task(6, &[]),
        task(7, &[6]),
        task(8, &[7, 5]),
    ];
    let maps = link(&tasks, &[1, 3, 4, 7, 8]).unwrap();
    let mut d = data(tasks);
    d.maps = maps;
    d.outputs = vec![3, 8];
    let g = Graph::new(d).unwrap();
    // From 2: map 3, so its root 1, whose closure reaches map 8 through 5, so root 7 as well.
    let sub = g.subdag_for(None, &[2]).unwrap();
    for held in [1, 3, 4, 5, 7, 8] {
        assert!(
            sub.contains(held),
            "task {held} missing from {:?}",
            sub.data().tasks
        );
    }
}

#[test]
fn maps_cannot_be_pinned() {
    let mut g = pipeline();
    assert_eq!(pin(&mut g, &[(3, 1)]), Err(GraphError::PinnedMap(3)));
    assert!(pin(&mut g, &[(4, 1)]).is_ok());
}

#[test]
fn a_chain_taking_its_own_list_is_refused() {
    // 0 source, 1 = map(f, 0), 2 = map(g, 1, 0)... fine; 3 = map(h, 2, 1): 1 is in 3's chain.
    let tasks = vec![
        task(0, &[]),
        task(1, &[0]),
        task(2, &[1, 0]),
        task(3, &[2, 1]),
    ];
    let err = link(&tasks, &[1, 2, 3]).unwrap_err();
    assert_eq!(err, GraphError::MapOwnChain { map: 3, input: 1 });
    assert!(err.to_string().contains("cannot consume its own results"));
}

#[test]
fn a_chain_waiting_on_its_own_gather_is_refused() {
    // 1 = map(f, 0); 2 = combine(1); 3 = map(g, 1, 2): the chain would wait for its own gather.
    let tasks = vec![task(0, &[]), task(1, &[0]), task(2, &[1]), task(3, &[1, 2])];
    let err = link(&tasks, &[1, 3]).unwrap_err();
    assert_eq!(err, GraphError::MapOwnChain { map: 3, input: 2 });
    // Two chains each waiting for the other's gather.
    let tasks = vec![
        task(0, &[]),
        task(1, &[0, 5]), // chain A's root, taking B's total
        task(2, &[1]),    // total(A)
        task(3, &[]),
        task(4, &[3, 2]), // chain B's root, taking A's total
        task(5, &[4]),    // total(B)
    ];
    let err = link(&tasks, &[1, 4]).unwrap_err();
    assert!(matches!(err, GraphError::MapOwnChain { .. }), "{err}");
    // Only the map on the cycle is blamed, not one merely waiting behind it:
    // 1 = map(f, 0); 2 = total(1); 4 = map(innocent, 3, 2); 5 = map(culprit, 1, 2).
    let tasks = vec![
        task(0, &[]),
        task(1, &[0]),
        task(2, &[1]),
        task(3, &[]),
        task(4, &[3, 2]),
        task(5, &[1, 2]),
    ];
    let err = link(&tasks, &[1, 4, 5]).unwrap_err();
    assert_eq!(err, GraphError::MapOwnChain { map: 5, input: 2 });
}

#[test]
fn bad_map_tables_are_refused() {
    let mut d = data(vec![task(0, &[]), task(1, &[0])]);
    d.maps = link(&d.tasks, &[1]).unwrap();
    d.maps[0].id = 0; // a task without a mapped input
    assert_eq!(Graph::new(d.clone()).unwrap_err(), GraphError::BadMap(0));
    d.maps = link(&d.tasks, &[1]).unwrap();
    d.maps.push(d.maps[0].clone());
    assert_eq!(Graph::new(d).unwrap_err(), GraphError::BadMap(1));
    let tasks = vec![task(0, &[])];
    assert_eq!(link(&tasks, &[0]), Err(GraphError::MapWithoutInput(0)));
    // Crafted tables: a repeated or huge ord (element ids would collide or lose precision),
    // a root that is not its own root, no count.
    let good = pipeline().into_data();
    let cases: [fn(&mut shoal_core::GraphData); 4] = [
        |d| d.maps[1].ord = d.maps[0].ord,
        |d| d.maps[0].ord = 4_000_000_000,
        |d| d.maps[0].root = 3,
        |d| d.maps[2].group_deps = 0,
    ];
    for (k, spoil) in cases.iter().enumerate() {
        let mut d = good.clone();
        spoil(&mut d);
        assert!(
            matches!(Graph::new(d.clone()), Err(GraphError::BadMap(_))),
            "case {k}"
        );
        assert!(Graph::decode(&d.encode()).is_err(), "case {k}");
    }
}
