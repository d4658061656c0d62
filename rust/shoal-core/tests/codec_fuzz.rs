//! The wire format under hostile input: `Graph::decode` must return `Err`, never panic, on
//! random bytes, truncations and corruptions of valid payloads.

mod common;

use common::*;
use proptest::prelude::*;
use shoal_core::codec::{self, Kind, HEADER_LEN, MAGIC, VERSION};
use shoal_core::{Graph, GraphData, Template};

/// A small graph whose body is sent raw (below the compression threshold).
fn small_graph() -> Graph {
    let mut d = data(vec![task(1, &[]), task(2, &[1]), task(3, &[1, 2])]);
    d.outputs = vec![3];
    Graph::new(d).unwrap()
}

/// A larger graph with rich templates and full tables, whose body is zstd-compressed.
fn large_graph() -> Graph {
    let mut tasks = vec![];
    for i in 0..60u32 {
        let deps: Vec<u32> = [i.wrapping_sub(1), i.wrapping_sub(7)]
            .into_iter()
            .filter(|&d| d < i)
            .collect();
        let mut t = task(i, &deps);
        t.func = i % NFNS;
        t.opts = i % NOPTS;
        t.args.push(Template::Const(i % NCONSTS));
        t.kwargs = vec![(
            format!("k{i}"),
            Template::Dict(vec![
                (
                    Template::Str("f".into()),
                    Template::Float(f64::from(i) / 3.0),
                ),
                (
                    Template::Int(-i64::from(i)),
                    Template::Pickled(vec![i as u8; 3]),
                ),
                (Template::UInt(u64::MAX), Template::Bytes(vec![1, 2])),
            ]),
        )];
        tasks.push(if i % 5 == 0 { pinned(t, i % 3) } else { t });
    }
    let mut d = full_tables(tasks);
    d.outputs = vec![59, 58];
    Graph::new(d).unwrap()
}

/// Decodes `bytes`; on success the graph must itself round-trip (so it is valid data).
fn decode_is_sane(bytes: &[u8]) -> Result<bool, TestCaseError> {
    match Graph::decode(bytes) {
        Err(e) => {
            prop_assert!(!e.0.is_empty());
            Ok(false)
        }
        Ok(g) => {
            let again = Graph::decode(&g.encode()).unwrap();
            prop_assert_eq!(again.data(), g.data());
            Ok(true)
        }
    }
}

/// The two fixtures take the two paths of the codec: raw and compressed.
#[test]
fn fixtures_cover_raw_and_zstd() {
    let small = small_graph().encode();
    let large = large_graph().encode();
    assert_eq!(
        &small[..4],
        &[MAGIC[0], MAGIC[1], VERSION, Kind::Graph as u8]
    );
    assert_eq!(small[4], 0, "small graph should be sent raw");
    assert_eq!(large[4], 1, "large graph should be compressed");
    for g in [small_graph(), large_graph()] {
        assert_eq!(Graph::decode(&g.encode()).unwrap().data(), g.data());
    }
}

/// Every strict prefix of a valid encoded graph (raw or compressed) is an error.
#[test]
fn every_truncation_is_an_error() {
    for g in [small_graph(), large_graph()] {
        let bytes = g.encode();
        for cut in 0..bytes.len() {
            assert!(
                Graph::decode(&bytes[..cut]).is_err(),
                "prefix of {cut}/{} bytes decoded",
                bytes.len()
            );
        }
    }
}

/// Extra bytes after a valid payload are an error (the checksum covers the whole payload).
#[test]
fn trailing_bytes_are_an_error() {
    let mut bytes = small_graph().encode();
    bytes.push(0xc0);
    assert!(Graph::decode(&bytes).unwrap_err().0.contains("checksum"));
}

/// Replacements tried at every position of a valid payload.
const CORRUPTIONS: [fn(u8) -> u8; 8] = [
    |b| b ^ 0x01,
    |b| b ^ 0x80,
    |b| b ^ 0xff,
    |_| 0x00,
    |_| 0xc1, // never used in msgpack
    |_| 0xdd, // array32: huge length prefix
    |_| 0xdb, // str32: huge length prefix
    |_| 0x7f,
];

/// Every single-byte corruption of a valid payload (raw and compressed) decodes to an error
/// or to a valid graph, without panicking; corruptions of the header are always errors.
#[test]
fn single_byte_corruptions_never_panic() {
    for g in [small_graph(), large_graph()] {
        let bytes = g.encode();
        let mut accepted = 0;
        for i in 0..bytes.len() {
            for f in CORRUPTIONS {
                let mut bad = bytes.clone();
                bad[i] = f(bad[i]);
                if bad[i] == bytes[i] {
                    continue;
                }
                let ok = decode_is_sane(&bad).unwrap();
                assert!(!(ok && i < HEADER_LEN), "header corruption at {i} accepted");
                accepted += usize::from(ok);
            }
        }
        println!(
            "{} bytes: {accepted} corruptions decoded to a (different) valid graph",
            bytes.len()
        );
    }
}

/// Strict version: every single-byte corruption is detected. The format carries no checksum,
/// so a corrupted name, number or id in the body decodes to a different valid graph.
#[test]
fn single_byte_corruptions_are_errors() {
    for g in [small_graph(), large_graph()] {
        let bytes = g.encode();
        for i in 0..bytes.len() {
            for f in CORRUPTIONS {
                let mut bad = bytes.clone();
                bad[i] = f(bad[i]);
                if bad[i] != bytes[i] {
                    assert!(
                        Graph::decode(&bad).is_err(),
                        "corruption at byte {i}: {:#04x} -> {:#04x} was accepted",
                        bytes[i],
                        bad[i]
                    );
                }
            }
        }
    }
}

/// A well-formed payload of another kind, or a valid body that is not a valid graph, is an
/// error naming the problem.
#[test]
fn wrong_kind_and_invalid_graph_payload() {
    let d = small_graph().into_data();
    let other = codec::encode(Kind::Invocation, &d);
    assert!(Graph::decode(&other).unwrap_err().0.contains("kind"));

    let cyclic: GraphData = data(vec![task(1, &[2]), task(2, &[1])]);
    let bytes = cyclic.encode();
    let e = Graph::decode(&bytes).unwrap_err();
    assert!(
        e.0.contains("invalid graph payload") && e.0.contains("cycle"),
        "{e}"
    );

    // A valid msgpack value of the wrong shape.
    let bytes = codec::encode(Kind::Graph, &vec![1u32, 2, 3]);
    assert!(Graph::decode(&bytes).is_err());
}

/// Deeply nested templates inside a graph payload are refused, not a stack overflow.
#[test]
fn hostile_template_depth_in_graph() {
    let mut deep = Template::Nil;
    for _ in 0..200 {
        deep = Template::List(vec![deep]);
    }
    let mut t = task(1, &[]);
    t.args = vec![deep];
    let bytes = data(vec![t]).encode();
    assert!(Graph::decode(&bytes).unwrap_err().0.contains("deeper"));
}

proptest! {
    /// Random bytes are never a graph.
    #[test]
    fn random_bytes_are_errors(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(Graph::decode(&bytes).is_err());
    }

    /// A valid header followed by random bytes (raw or "compressed") never panics; if it
    /// happens to decode, the result is a valid graph.
    #[test]
    fn valid_header_random_body_never_panics(
        flags in 0u8..2,
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = vec![MAGIC[0], MAGIC[1], VERSION, Kind::Graph as u8, flags];
        bytes.extend_from_slice(&body);
        decode_is_sane(&bytes)?;
    }

    /// A valid header followed by a compressed random body exercises the msgpack parser on
    /// garbage behind a real zstd frame.
    #[test]
    fn compressed_random_body_never_panics(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut bytes = vec![MAGIC[0], MAGIC[1], VERSION, Kind::Graph as u8, 1];
        bytes.extend_from_slice(&zstd::bulk::compress(&body, 1).unwrap());
        decode_is_sane(&bytes)?;
    }

    /// Random valid graphs round-trip exactly.
    #[test]
    fn random_graphs_roundtrip(d in arb_dag(60, 3)) {
        let g = Graph::new(d.clone()).unwrap();
        let back = Graph::decode(&g.encode()).unwrap();
        prop_assert_eq!(back.data(), &d);
    }

    /// Random valid graphs: a truncation or a single-byte corruption at a random place never
    /// panics; truncations are always errors.
    #[test]
    fn random_graph_damage_never_panics(
        d in arb_dag(60, 3),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let bytes = Graph::new(d).unwrap().encode();
        let i = at.index(bytes.len());
        prop_assert!(Graph::decode(&bytes[..i]).is_err());
        let mut bad = bytes.clone();
        bad[i] = byte;
        decode_is_sane(&bad)?;
    }
}
