//! The wire format: a 9-byte header, then msgpack (rmp-serde), zstd-compressed when it pays.
//!
//! Header: magic `b"SH"`, format version, payload kind, flags (bit 0: zstd), and a 4-byte
//! checksum (blake3, truncated) of everything after the header. Decoding checks each field and
//! the checksum before touching the body, bounds decompression, and insists that the msgpack body
//! is consumed exactly, so a truncated, corrupt, foreign or future payload is a [`CodecError`],
//! never a panic, a hang, or a silently different graph.

use crate::error::CodecError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Read;

pub const MAGIC: [u8; 2] = *b"SH";
/// 2: graphs travel as columns (see `wire.rs`); 3: with the plan table (see `plan.rs`).
pub const VERSION: u8 = 3;
pub const HEADER_LEN: usize = 9;
const FLAG_ZSTD: u8 = 1;
/// Bodies shorter than this are sent raw: a zstd frame would cost more than it saves.
const COMPRESS_FROM: usize = 192;
const ZSTD_LEVEL: i32 = 3;
/// The largest body we agree to inflate (guards against decompression bombs).
pub const MAX_BODY: u64 = 2 << 30;
/// A body may inflate to this many times its compressed payload, or [`INFLATE_FLOOR`] bytes,
/// whichever is more: decoding allocates in proportion to the body, so a small forged payload
/// can never make a worker allocate gigabytes. Real graphs stay far below it (a fan-out or a
/// tree compresses about 20x; a chain, the most regular shape, about 6,000x but in a body of 9
/// bytes a task, so chains up to ~3.5 M tasks fit under the floor).
pub const INFLATE_RATIO: u64 = 4096;
pub const INFLATE_FLOOR: u64 = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Graph = 1,
    Invocation = 2,
    Constant = 3,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Graph => "graph",
            Kind::Invocation => "invocation",
            Kind::Constant => "constant",
        }
    }
}

pub fn encode<T: Serialize>(kind: Kind, value: &T) -> Vec<u8> {
    let body = rmp_serde::to_vec(value).expect("msgpack encoding of plain data cannot fail");
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    let compressed = (body.len() >= COMPRESS_FROM)
        .then(|| zstd::bulk::compress(&body, ZSTD_LEVEL).ok())
        .flatten()
        .filter(|z| z.len() < body.len());
    let (flags, payload) = match &compressed {
        Some(z) => (FLAG_ZSTD, z.as_slice()),
        None => (0, body.as_slice()),
    };
    out.push(flags);
    out.extend_from_slice(&checksum(payload));
    out.extend_from_slice(payload);
    out
}

/// The most a compressed payload of `len` bytes may inflate to.
pub fn inflate_limit(len: usize) -> u64 {
    (len as u64)
        .saturating_mul(INFLATE_RATIO)
        .clamp(INFLATE_FLOOR, MAX_BODY)
}

fn checksum(payload: &[u8]) -> [u8; 4] {
    let h = blake3::hash(payload);
    [
        h.as_bytes()[0],
        h.as_bytes()[1],
        h.as_bytes()[2],
        h.as_bytes()[3],
    ]
}

pub fn decode<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> Result<T, CodecError> {
    let err = |m: String| CodecError(format!("cannot decode {} payload: {m}", kind.name()));
    if bytes.len() < HEADER_LEN {
        return Err(err(format!(
            "only {} bytes, shorter than the header",
            bytes.len()
        )));
    }
    if bytes[..2] != MAGIC {
        return Err(err("not a shoal payload (bad magic)".into()));
    }
    if bytes[2] != VERSION {
        return Err(err(format!(
            "format version {} is not supported (this build reads {VERSION})",
            bytes[2]
        )));
    }
    if bytes[3] != kind as u8 {
        return Err(err(format!(
            "payload kind {} where {} ({}) was expected",
            bytes[3],
            kind as u8,
            kind.name()
        )));
    }
    let flags = bytes[4];
    if flags & !FLAG_ZSTD != 0 {
        return Err(err(format!("unknown flags {flags:#04x}")));
    }
    let payload = &bytes[HEADER_LEN..];
    if bytes[5..HEADER_LEN] != checksum(payload) {
        return Err(err(
            "checksum mismatch (truncated or corrupted in transit)".into()
        ));
    }
    let inflated;
    let body: &[u8] = if flags & FLAG_ZSTD != 0 {
        let dec = zstd::stream::read::Decoder::new(payload).map_err(|e| err(e.to_string()))?;
        let limit = inflate_limit(payload.len());
        let mut buf = Vec::new();
        dec.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| err(format!("corrupt compression: {e}")))?;
        if buf.len() as u64 > limit {
            return Err(err(format!(
                "its {} compressed bytes inflate beyond {limit} bytes (forged or corrupt)",
                payload.len()
            )));
        }
        inflated = buf;
        &inflated
    } else {
        payload
    };
    let mut cursor = std::io::Cursor::new(body);
    let value = {
        let mut de = rmp_serde::Deserializer::new(&mut cursor);
        T::deserialize(&mut de).map_err(|e| err(format!("corrupt body: {e}")))?
    };
    if cursor.position() as usize != body.len() {
        return Err(err(format!(
            "{} trailing bytes after the body",
            body.len() - cursor.position() as usize
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_small_and_large() {
        for v in [vec![1u32, 2, 3], (0..10_000).collect::<Vec<u32>>()] {
            let b = encode(Kind::Graph, &v);
            assert_eq!(decode::<Vec<u32>>(Kind::Graph, &b).unwrap(), v);
        }
    }

    #[test]
    fn a_small_payload_never_inflates_to_a_large_body() {
        let floor = INFLATE_FLOOR as usize;
        // Runs of equal bytes compress thousands of times: a bomb, refused before decoding.
        let bomb = encode(Kind::Graph, &vec![0u8; floor + 1024]);
        assert!(bomb.len() < floor / 1000, "{} bytes", bomb.len());
        let e = decode::<Vec<u8>>(Kind::Graph, &bomb).unwrap_err().0;
        assert!(e.contains("inflate beyond"), "{e}");
        let fits = encode(Kind::Graph, &vec![0u8; floor / 2]);
        assert_eq!(
            decode::<Vec<u8>>(Kind::Graph, &fits).unwrap().len(),
            floor / 2
        );
        assert_eq!(inflate_limit(64 << 10), (64 << 10) * INFLATE_RATIO);
        assert_eq!(inflate_limit(usize::MAX), MAX_BODY);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let v: Vec<u32> = (0..2000).collect();
        let b = encode(Kind::Graph, &v);
        for cut in 0..b.len() {
            assert!(
                decode::<Vec<u32>>(Kind::Graph, &b[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn header_checks() {
        let b = encode(Kind::Graph, &vec![1u8]);
        let mut wrong = b.clone();
        wrong[2] = 99;
        assert!(decode::<Vec<u8>>(Kind::Graph, &wrong)
            .unwrap_err()
            .0
            .contains("version 99"));
        assert!(decode::<Vec<u8>>(Kind::Invocation, &b)
            .unwrap_err()
            .0
            .contains("kind"));
        let mut flags = b.clone();
        flags[4] = 0x80;
        assert!(decode::<Vec<u8>>(Kind::Graph, &flags).is_err());
        let mut trailing = b;
        trailing.push(0);
        assert!(decode::<Vec<u8>>(Kind::Graph, &trailing)
            .unwrap_err()
            .0
            .contains("checksum"));
    }
}
