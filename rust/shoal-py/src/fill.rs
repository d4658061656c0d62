//! Filling an argument template back into Python objects (the Rust walk is in shoal-core).

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyList, PySet, PyTuple};
use shoal_core::{Builder, Hash16, Template};

pub struct PyBuilder<'a, 'py> {
    pub py: Python<'py>,
    /// Upstream outputs, indexed by slot.
    pub slots: &'a [Bound<'py, PyAny>],
    /// The graph's constant table (content hashes) and the values already decoded for them.
    pub const_hashes: &'a [Hash16],
    pub consts: Option<&'a Bound<'py, PyDict>>,
    /// `pickle.loads`, for leaves that msgpack could not carry.
    pub loads: &'a Bound<'py, PyAny>,
}

impl<'py> Builder for PyBuilder<'_, 'py> {
    type Value = Bound<'py, PyAny>;
    type Error = PyErr;

    fn scalar(&mut self, leaf: &Template) -> PyResult<Self::Value> {
        let py = self.py;
        Ok(match leaf {
            Template::Nil => py.None().into_bound(py),
            Template::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
            Template::Int(i) => i.into_pyobject(py)?.into_any(),
            Template::UInt(u) => u.into_pyobject(py)?.into_any(),
            Template::Float(f) => f.into_pyobject(py)?.into_any(),
            Template::Str(s) => s.into_pyobject(py)?.into_any(),
            Template::Bytes(b) => PyBytes::new(py, b).into_any(),
            other => unreachable!("Template::build routes {other:?} elsewhere"),
        })
    }
    fn list(&mut self, items: Vec<Self::Value>) -> PyResult<Self::Value> {
        Ok(PyList::new(self.py, items)?.into_any())
    }
    fn tuple(&mut self, items: Vec<Self::Value>) -> PyResult<Self::Value> {
        Ok(PyTuple::new(self.py, items)?.into_any())
    }
    fn dict(&mut self, items: Vec<(Self::Value, Self::Value)>) -> PyResult<Self::Value> {
        let d = PyDict::new(self.py);
        for (k, v) in items {
            d.set_item(k, v)?;
        }
        Ok(d.into_any())
    }
    fn set(&mut self, items: Vec<Self::Value>, frozen: bool) -> PyResult<Self::Value> {
        Ok(if frozen {
            PyFrozenSet::new(self.py, &items)?.into_any()
        } else {
            PySet::new(self.py, &items)?.into_any()
        })
    }
    fn slot(&mut self, index: u32) -> PyResult<Self::Value> {
        Ok(self.slots[index as usize].clone())
    }
    fn pickled(&mut self, blob: &[u8]) -> PyResult<Self::Value> {
        self.loads.call1((PyBytes::new(self.py, blob),))
    }
    fn constant(&mut self, index: u32) -> PyResult<Self::Value> {
        let hash = self.const_hashes[index as usize];
        let found = match self.consts {
            Some(d) => d.get_item(PyBytes::new(self.py, &hash.0))?,
            None => None,
        };
        found
            .ok_or_else(|| PyKeyError::new_err(format!("constant {} was not provided", hash.hex())))
    }
}
