//! Content hashes: blake3 truncated to 16 bytes, the key of function blobs and constants.
//!
//! 128 bits keep collisions out of reach for any realistic number of blobs while halving what
//! every task reference costs on the wire.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash16(pub [u8; 16]);

impl Hash16 {
    pub fn of(blob: &[u8]) -> Hash16 {
        let full = blake3::hash(blob);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full.as_bytes()[..16]);
        Hash16(out)
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Hash16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash16({})", self.hex())
    }
}

impl Serialize for Hash16 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Hash16 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hash16, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Hash16;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("16 bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Hash16, E> {
                let arr: [u8; 16] = v
                    .try_into()
                    .map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Hash16(arr))
            }
        }
        d.deserialize_bytes(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_blobs_different_hashes() {
        assert_ne!(
            Hash16::of(b"def f(): return 1"),
            Hash16::of(b"def f(): return 2")
        );
        assert_eq!(Hash16::of(b"x"), Hash16::of(b"x"));
        assert_eq!(Hash16::of(b"x").hex().len(), 32);
    }
}
