//! shoal-core: the pure-Rust heart of shoal, with no Python in it.
//!
//! - [`template`]: argument templates (nested arguments with slots for upstream outputs);
//! - [`graph`]: the frozen graph, its validation and indexes;
//! - [`cut`]: descendant closures, per-worker subDAGs, partition by worker;
//! - [`codec`]: the versioned msgpack + zstd wire format;
//! - [`maps`]: map tasks (`shoal.map`), how their chains are counted, and their validation;
//! - [`plan`]: the plan table (per task: worker, size, optimizations; per worker: size);
//! - [`hash`]: 16-byte blake3 content hashes for the function table and constants;
//! - [`mac`]: keyed blake3 MACs that bind a signed payload to its place.

pub mod codec;
pub mod cut;
pub mod error;
pub mod graph;
pub mod hash;
pub mod mac;
pub mod maps;
pub mod plan;
pub mod template;
mod wire;

pub use codec::{decode, encode, Kind};
pub use error::{CodecError, GraphError};
pub use graph::{Downstream, FnRef, Graph, GraphData, Stub, Task, TaskId, TaskOptions, WorkerId};
pub use hash::Hash16;
pub use maps::MapSpec;
pub use plan::{Optimization, Param, Plan, PlannedTask, PlannedWorker, Size, TaskPlan};
pub use template::{Builder, Template};

impl GraphData {
    /// Encodes graph data as [`Graph::encode`] does, without validating it first (tests and
    /// tools that need invalid payloads).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(Kind::Graph, &wire::to_wire(self))
    }
}

impl Graph {
    /// Encodes the graph for the wire (columns, see [`wire`]).
    pub fn encode(&self) -> Vec<u8> {
        self.data().encode()
    }

    /// Decodes and validates a graph; corrupt or inconsistent input is an error.
    pub fn decode(bytes: &[u8]) -> Result<Graph, CodecError> {
        let raw: wire::WireIn = codec::decode(Kind::Graph, bytes)?;
        let data = wire::from_wire(raw)
            .map_err(|e| CodecError(format!("cannot decode graph payload: corrupt body: {e}")))?;
        Graph::new(data).map_err(|e| CodecError(format!("invalid graph payload: {e}")))
    }
}
