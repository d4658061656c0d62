//! Argument templates: a task's arguments with upstream nodes replaced by slots.
//!
//! A template is the nested structure of one argument (lists, tuples, dicts, sets at any depth)
//! whose leaves are plain msgpack values, cloudpickled blobs, references to large constants, or
//! *slots*: `Slot(i)` stands for the output of the task's `i`-th upstream dependency.
//!
//! On the wire a template is msgpack with the smallest encoding we could find: scalars are
//! themselves, and everything else is an array whose first element is a tag (`[TAG_LIST, ..]`,
//! `[TAG_SLOT, i]`, ...). Because a plain msgpack array never appears untagged, decoding is
//! unambiguous. A slot costs three bytes.
//!
//! Filling a template back with values is generic over a [`Builder`]: the Python binding builds
//! Python objects, the tests build plain Rust values. The walk itself lives here, in Rust.

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

const TAG_LIST: u8 = 1;
const TAG_TUPLE: u8 = 2;
const TAG_DICT: u8 = 3;
const TAG_SET: u8 = 4;
const TAG_FROZENSET: u8 = 5;
const TAG_SLOT: u8 = 6;
const TAG_PICKLED: u8 = 7;
const TAG_CONST: u8 = 8;

/// Deepest nesting a template may have; deeper input is refused with a clear error rather than
/// risking the stack (decoding and filling are recursive).
pub const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Template>),
    Tuple(Vec<Template>),
    Dict(Vec<(Template, Template)>),
    Set(Vec<Template>),
    FrozenSet(Vec<Template>),
    /// The output of the owning task's `deps[i]`.
    Slot(u32),
    /// A leaf that msgpack cannot carry, serialized by the caller (cloudpickle).
    Pickled(Vec<u8>),
    /// A large leaf stored once by content hash: index into the graph's constant table.
    Const(u32),
}

/// Builds concrete values from a template (see [`Template::build`]).
pub trait Builder {
    type Value;
    type Error;
    fn scalar(&mut self, leaf: &Template) -> Result<Self::Value, Self::Error>;
    fn list(&mut self, items: Vec<Self::Value>) -> Result<Self::Value, Self::Error>;
    fn tuple(&mut self, items: Vec<Self::Value>) -> Result<Self::Value, Self::Error>;
    fn dict(&mut self, items: Vec<(Self::Value, Self::Value)>) -> Result<Self::Value, Self::Error>;
    fn set(&mut self, items: Vec<Self::Value>, frozen: bool) -> Result<Self::Value, Self::Error>;
    fn slot(&mut self, index: u32) -> Result<Self::Value, Self::Error>;
    fn pickled(&mut self, blob: &[u8]) -> Result<Self::Value, Self::Error>;
    fn constant(&mut self, index: u32) -> Result<Self::Value, Self::Error>;
}

impl Template {
    /// Fills the template: slots, pickles and constants are resolved by the builder.
    pub fn build<B: Builder>(&self, b: &mut B) -> Result<B::Value, B::Error> {
        let many = |b: &mut B, items: &[Template]| -> Result<Vec<B::Value>, B::Error> {
            items.iter().map(|t| t.build(b)).collect()
        };
        match self {
            Template::List(items) => {
                let v = many(b, items)?;
                b.list(v)
            }
            Template::Tuple(items) => {
                let v = many(b, items)?;
                b.tuple(v)
            }
            Template::Set(items) => {
                let v = many(b, items)?;
                b.set(v, false)
            }
            Template::FrozenSet(items) => {
                let v = many(b, items)?;
                b.set(v, true)
            }
            Template::Dict(pairs) => {
                let mut out = Vec::with_capacity(pairs.len());
                for (k, v) in pairs {
                    out.push((k.build(b)?, v.build(b)?));
                }
                b.dict(out)
            }
            Template::Slot(i) => b.slot(*i),
            Template::Pickled(blob) => b.pickled(blob),
            Template::Const(i) => b.constant(*i),
            leaf => b.scalar(leaf),
        }
    }

    /// Calls `f` on every slot index, in order of appearance.
    pub fn for_each_slot(&self, f: &mut impl FnMut(u32)) {
        self.for_each_leaf(&mut |t| {
            if let Template::Slot(i) = t {
                f(*i)
            }
        });
    }

    /// Calls `f` on every constant index, in order of appearance.
    pub fn for_each_const(&self, f: &mut impl FnMut(u32)) {
        self.for_each_leaf(&mut |t| {
            if let Template::Const(i) = t {
                f(*i)
            }
        });
    }

    fn for_each_leaf(&self, f: &mut impl FnMut(&Template)) {
        match self {
            Template::List(v) | Template::Tuple(v) | Template::Set(v) | Template::FrozenSet(v) => {
                v.iter().for_each(|t| t.for_each_leaf(f))
            }
            Template::Dict(pairs) => pairs.iter().for_each(|(k, v)| {
                k.for_each_leaf(f);
                v.for_each_leaf(f);
            }),
            leaf => f(leaf),
        }
    }

    /// Calls `f` on every leaf, mutably, in the order of [`Template::for_each_leaf`].
    fn for_each_leaf_mut(&mut self, f: &mut impl FnMut(&mut Template)) {
        match self {
            Template::List(v) | Template::Tuple(v) | Template::Set(v) | Template::FrozenSet(v) => {
                v.iter_mut().for_each(|t| t.for_each_leaf_mut(f))
            }
            Template::Dict(pairs) => pairs.iter_mut().for_each(|(k, v)| {
                k.for_each_leaf_mut(f);
                v.for_each_leaf_mut(f);
            }),
            leaf => f(leaf),
        }
    }

    /// Rewrites slot indices in order of appearance (the wire codes them, see `wire.rs`).
    pub(crate) fn map_slots(&mut self, f: &mut impl FnMut(u32) -> u32) {
        self.for_each_leaf_mut(&mut |t| {
            if let Template::Slot(i) = t {
                *i = f(*i)
            }
        });
    }

    /// Rewrites constant indices (used when a subgraph re-numbers its constant table).
    pub fn remap_consts(&mut self, map: &impl Fn(u32) -> u32) {
        self.for_each_leaf_mut(&mut |t| {
            if let Template::Const(i) = t {
                *i = map(*i)
            }
        });
    }
}

fn tagged<S: Serializer>(s: S, tag: u8, items: &[Template]) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(items.len() + 1))?;
    seq.serialize_element(&tag)?;
    for t in items {
        seq.serialize_element(t)?;
    }
    seq.end()
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Template::Nil => s.serialize_unit(),
            Template::Bool(b) => s.serialize_bool(*b),
            Template::Int(i) => s.serialize_i64(*i),
            Template::UInt(u) => s.serialize_u64(*u),
            Template::Float(f) => s.serialize_f64(*f),
            Template::Str(v) => s.serialize_str(v),
            Template::Bytes(b) => s.serialize_bytes(b),
            Template::List(v) => tagged(s, TAG_LIST, v),
            Template::Tuple(v) => tagged(s, TAG_TUPLE, v),
            Template::Set(v) => tagged(s, TAG_SET, v),
            Template::FrozenSet(v) => tagged(s, TAG_FROZENSET, v),
            Template::Dict(pairs) => {
                let mut seq = s.serialize_seq(Some(1 + 2 * pairs.len()))?;
                seq.serialize_element(&TAG_DICT)?;
                for (k, v) in pairs {
                    seq.serialize_element(k)?;
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Template::Slot(i) => (TAG_SLOT, *i).serialize(s),
            Template::Const(i) => (TAG_CONST, *i).serialize(s),
            Template::Pickled(b) => {
                let mut seq = s.serialize_seq(Some(2))?;
                seq.serialize_element(&TAG_PICKLED)?;
                seq.serialize_element(&BytesRef(b))?;
                seq.end()
            }
        }
    }
}

/// Serializes a byte slice as msgpack `bin` (serde would otherwise write an array of ints).
struct BytesRef<'a>(&'a [u8]);
impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Owned bytes that deserialize from msgpack `bin`.
struct ByteBuf(Vec<u8>);
impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

thread_local! {
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Guards decoding recursion so hostile input cannot overflow the stack.
struct DepthGuard;
impl DepthGuard {
    fn enter<E: de::Error>() -> Result<DepthGuard, E> {
        let d = DEPTH.with(|c| {
            let d = c.get() + 1;
            c.set(d);
            d
        });
        if d > MAX_DEPTH {
            DEPTH.with(|c| c.set(c.get() - 1));
            return Err(E::custom(format!(
                "template nested deeper than {MAX_DEPTH}"
            )));
        }
        Ok(DepthGuard)
    }
}
impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|c| c.set(c.get() - 1));
    }
}

struct TemplateVisitor;

impl<'de> Visitor<'de> for TemplateVisitor {
    type Value = Template;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an argument template")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Template, E> {
        Ok(Template::Nil)
    }
    fn visit_none<E: de::Error>(self) -> Result<Template, E> {
        Ok(Template::Nil)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Template, E> {
        Ok(Template::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Template, E> {
        Ok(Template::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Template, E> {
        Ok(i64::try_from(v).map_or(Template::UInt(v), Template::Int))
    }
    fn visit_f32<E: de::Error>(self, v: f32) -> Result<Template, E> {
        Ok(Template::Float(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Template, E> {
        Ok(Template::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Template, E> {
        Ok(Template::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Template, E> {
        Ok(Template::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Template, E> {
        Ok(Template::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Template, E> {
        Ok(Template::Bytes(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Template, A::Error> {
        let _guard = DepthGuard::enter::<A::Error>()?;
        let tag: u8 = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("empty tagged array in template"))?;
        let rest = |mut seq: A| -> Result<Vec<Template>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(t) = seq.next_element()? {
                out.push(t);
            }
            Ok(out)
        };
        let index = |mut seq: A| -> Result<u32, A::Error> {
            let i = seq
                .next_element()?
                .ok_or_else(|| de::Error::custom("missing index"))?;
            if seq.next_element::<de::IgnoredAny>()?.is_some() {
                return Err(de::Error::custom("trailing data after index"));
            }
            Ok(i)
        };
        Ok(match tag {
            TAG_LIST => Template::List(rest(seq)?),
            TAG_TUPLE => Template::Tuple(rest(seq)?),
            TAG_SET => Template::Set(rest(seq)?),
            TAG_FROZENSET => Template::FrozenSet(rest(seq)?),
            TAG_DICT => {
                let flat = rest(seq)?;
                if flat.len() % 2 != 0 {
                    return Err(de::Error::custom("dict template with odd item count"));
                }
                let mut it = flat.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Template::Dict(pairs)
            }
            TAG_SLOT => Template::Slot(index(seq)?),
            TAG_CONST => Template::Const(index(seq)?),
            TAG_PICKLED => {
                let b: ByteBuf = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("missing pickle bytes"))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("trailing data after pickle"));
                }
                Template::Pickled(b.0)
            }
            other => return Err(de::Error::custom(format!("unknown template tag {other}"))),
        })
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Template, D::Error> {
        d.deserialize_any(TemplateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain Rust value to fill templates with (a test-only [`Builder`]).
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Nil,
        Bool(bool),
        Int(i128),
        Float(f64),
        Str(String),
        Bytes(Vec<u8>),
        List(Vec<Value>),
        Tuple(Vec<Value>),
        Dict(Vec<(Value, Value)>),
        Set(Vec<Value>),
        Opaque(Vec<u8>),
    }

    /// Fills slots from `slots` and constants from `consts`; pickles stay opaque bytes.
    pub struct ValueBuilder<'a> {
        pub slots: &'a [Value],
        pub consts: &'a [Value],
    }

    impl Builder for ValueBuilder<'_> {
        type Value = Value;
        type Error = String;
        fn scalar(&mut self, leaf: &Template) -> Result<Value, String> {
            Ok(match leaf {
                Template::Nil => Value::Nil,
                Template::Bool(b) => Value::Bool(*b),
                Template::Int(i) => Value::Int((*i).into()),
                Template::UInt(u) => Value::Int((*u).into()),
                Template::Float(f) => Value::Float(*f),
                Template::Str(s) => Value::Str(s.clone()),
                Template::Bytes(b) => Value::Bytes(b.clone()),
                other => return Err(format!("not a scalar: {other:?}")),
            })
        }
        fn list(&mut self, items: Vec<Value>) -> Result<Value, String> {
            Ok(Value::List(items))
        }
        fn tuple(&mut self, items: Vec<Value>) -> Result<Value, String> {
            Ok(Value::Tuple(items))
        }
        fn dict(&mut self, items: Vec<(Value, Value)>) -> Result<Value, String> {
            Ok(Value::Dict(items))
        }
        fn set(&mut self, items: Vec<Value>, _frozen: bool) -> Result<Value, String> {
            Ok(Value::Set(items))
        }
        fn slot(&mut self, index: u32) -> Result<Value, String> {
            self.slots
                .get(index as usize)
                .cloned()
                .ok_or_else(|| format!("slot {index} out of range"))
        }
        fn pickled(&mut self, blob: &[u8]) -> Result<Value, String> {
            Ok(Value::Opaque(blob.to_vec()))
        }
        fn constant(&mut self, index: u32) -> Result<Value, String> {
            self.consts
                .get(index as usize)
                .cloned()
                .ok_or_else(|| format!("constant {index} out of range"))
        }
    }

    fn roundtrip(t: &Template) -> Template {
        let bytes = rmp_serde::to_vec(t).unwrap();
        rmp_serde::from_slice(&bytes).unwrap()
    }

    #[test]
    fn nested_roundtrip_and_fill() {
        let t = Template::Dict(vec![
            (
                Template::Str("xs".into()),
                Template::List(vec![
                    Template::Tuple(vec![Template::Slot(0), Template::Int(-3)]),
                    Template::Set(vec![Template::Slot(1)]),
                ]),
            ),
            (Template::Int(7), Template::Pickled(vec![1, 2, 3])),
            (Template::Nil, Template::Const(0)),
        ]);
        assert_eq!(roundtrip(&t), t);
        let slots = [Value::Int(10), Value::Str("b".into())];
        let consts = [Value::Bytes(vec![9; 4])];
        let filled = t
            .build(&mut ValueBuilder {
                slots: &slots,
                consts: &consts,
            })
            .unwrap();
        let Value::Dict(pairs) = filled else {
            panic!("not a dict")
        };
        assert_eq!(
            pairs[0].1,
            Value::List(vec![
                Value::Tuple(vec![Value::Int(10), Value::Int(-3)]),
                Value::Set(vec![Value::Str("b".into())]),
            ])
        );
        assert_eq!(pairs[2].1, Value::Bytes(vec![9; 4]));
    }

    #[test]
    fn slot_is_three_bytes() {
        assert_eq!(rmp_serde::to_vec(&Template::Slot(3)).unwrap().len(), 3);
    }

    #[test]
    fn scalars_roundtrip() {
        for t in [
            Template::Nil,
            Template::Bool(true),
            Template::Int(i64::MIN),
            Template::UInt(u64::MAX),
            Template::Float(1.5),
            Template::Str("é".into()),
            Template::Bytes(vec![0, 255]),
            Template::List(vec![]),
            Template::FrozenSet(vec![Template::Int(1)]),
        ] {
            assert_eq!(roundtrip(&t), t);
        }
    }

    #[test]
    fn hostile_depth_is_an_error_not_a_crash() {
        // [1, [1, [1, ...]]] nested far beyond MAX_DEPTH.
        let mut bytes = Vec::new();
        for _ in 0..100_000 {
            bytes.extend_from_slice(&[0x92, TAG_LIST]);
        }
        bytes.push(0xc0);
        assert!(rmp_serde::from_slice::<Template>(&bytes).is_err());
    }

    #[test]
    fn bad_tags_are_errors() {
        for bytes in [
            vec![0x91, 99],
            vec![0x90],
            vec![0x92, TAG_DICT, 1],
            vec![0x93, TAG_SLOT, 1, 2],
        ] {
            assert!(
                rmp_serde::from_slice::<Template>(&bytes).is_err(),
                "{bytes:?}"
            );
        }
    }
}
