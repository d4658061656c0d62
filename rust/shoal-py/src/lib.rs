//! `shoal._core`: the thin PyO3 binding over shoal-core. Private; the API is `shoal`.

mod errors;
mod fill;
mod graph;
mod records;
mod walk;

use graph::PyGraph;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple, PyType};
use shoal_core::{codec, Hash16, Template};

/// What freezing lazy nodes produces.
#[pyclass(module = "shoal._core", name = "Frozen", frozen, get_all)]
struct PyFrozen {
    /// The whole run's graph.
    graph: Py<PyGraph>,
    /// Task id of each distinct requested node, in the order given.
    outputs: Vec<u32>,
    /// `{fn_hash: cloudpickled blob}`.
    functions: Py<PyDict>,
    /// `{const_hash: encoded constant}`.
    constants: Py<PyDict>,
    /// `{fn_hash: the live function object}`.
    live_functions: Py<PyDict>,
}

/// Freezes lazy nodes into a graph, its function table and its large constants.
#[pyfunction]
#[pyo3(signature = (outputs, node_type, dumps, const_threshold))]
fn freeze<'py>(
    py: Python<'py>,
    outputs: Bound<'py, PyAny>,
    node_type: Bound<'py, PyType>,
    dumps: Bound<'py, PyAny>,
    const_threshold: usize,
) -> PyResult<PyFrozen> {
    let frozen = walk::Freezer::new(node_type, dumps, const_threshold).freeze(&outputs)?;
    let graph = walk::check_graph(frozen.data)?;
    let fns = PyDict::new(py);
    let live = PyDict::new(py);
    for (h, blob, func) in frozen.fn_blobs {
        fns.set_item(PyBytes::new(py, &h.0), blob)?;
        live.set_item(PyBytes::new(py, &h.0), func)?;
    }
    let consts = PyDict::new(py);
    for (h, blob) in frozen.const_blobs {
        consts.set_item(PyBytes::new(py, &h.0), PyBytes::new(py, &blob))?;
    }
    Ok(PyFrozen {
        graph: Py::new(py, PyGraph { inner: graph })?,
        outputs: frozen.outputs,
        functions: fns.unbind(),
        constants: consts.unbind(),
        live_functions: live.unbind(),
    })
}

/// Decodes a stored constant blob back into its Python value.
#[pyfunction]
fn decode_constant<'py>(
    py: Python<'py>,
    blob: &[u8],
    loads: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let leaf: Template = codec::decode(codec::Kind::Constant, blob).map_err(errors::payload_err)?;
    let mut b = fill::PyBuilder {
        py,
        slots: &[],
        const_hashes: &[],
        consts: None,
        loads: &loads,
    };
    leaf.build(&mut b)
}

/// The 16-byte blake3 content hash used for function blobs and constants.
#[pyfunction]
fn hash16<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &Hash16::of(data).0)
}

/// The 32-byte MAC key made from a signing secret (keyed blake3 key derivation).
#[pyfunction]
fn derive_mac_key<'py>(py: Python<'py>, secret: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &shoal_core::mac::derive_key(secret))
}

/// The MAC of the concatenation of the `payload` bytes, the first `start` bytes of the first
/// one left out, for `place` under `key` (32 bytes): parts are read where they lie (a large
/// value is never copied to be signed or checked); the GIL is released meanwhile.
#[pyfunction]
#[pyo3(signature = (key, place, *payload, start = 0))]
fn mac<'py>(
    py: Python<'py>,
    key: &[u8],
    place: &[u8],
    payload: &Bound<'py, PyTuple>,
    start: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("a MAC key is 32 bytes"))?;
    let held = payload
        .iter()
        .map(|part| part.cast_into::<PyBytes>().map_err(PyErr::from))
        .collect::<PyResult<Vec<_>>>()?;
    let mut parts: Vec<&[u8]> = held.iter().map(|b| b.as_bytes()).collect();
    if let Some(first) = parts.first_mut() {
        *first = first.get(start..).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err("start is past the end of the payload")
        })?;
    }
    let out = py.detach(|| shoal_core::mac::mac_parts(&key, place, &parts));
    Ok(PyBytes::new(py, &out))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGraph>()?;
    m.add_class::<PyFrozen>()?;
    records::register(m)?;
    m.add_function(wrap_pyfunction!(freeze, m)?)?;
    m.add_function(wrap_pyfunction!(decode_constant, m)?)?;
    m.add_function(wrap_pyfunction!(hash16, m)?)?;
    m.add_function(wrap_pyfunction!(derive_mac_key, m)?)?;
    m.add_function(wrap_pyfunction!(mac, m)?)?;
    m.add("FORMAT_VERSION", codec::VERSION)?;
    Ok(())
}
