//! Python exceptions raised by the binding; the classes live in `shoal.errors`.

use pyo3::prelude::*;

pyo3::import_exception!(shoal.errors, PayloadError);
pyo3::import_exception!(shoal.errors, GraphError);
pyo3::import_exception!(shoal.errors, ShoalError);

pub fn payload_err(e: shoal_core::CodecError) -> PyErr {
    PayloadError::new_err(e.to_string())
}

pub fn graph_err(e: shoal_core::GraphError) -> PyErr {
    GraphError::new_err(e.to_string())
}
