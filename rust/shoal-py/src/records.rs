//! Named records crossing the binding: frozen pyclasses, never positional tuples.
//!
//! Each one mirrors a plain shoal-core struct and converts both ways; Python reads fields by
//! name (`graph.options(t).timeout_s`), so adding a field never shifts another.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};
use shoal_core::{Optimization, Param, PlannedWorker, Size, TaskId, TaskPlan, WorkerId};

/// A task's options (`@shoal.task(...)` / `.options(...)`); None means the default.
#[pyclass(module = "shoal._core", name = "TaskOptions", frozen, get_all, eq)]
#[derive(Clone, PartialEq)]
pub struct PyTaskOptions {
    pub retries: u32,
    pub memory_mb: Option<u32>,
    pub timeout_s: Option<f64>,
    pub name: Option<String>,
}

#[pymethods]
impl PyTaskOptions {
    fn __repr__(&self) -> String {
        format!(
            "TaskOptions(retries={}, memory_mb={}, timeout_s={}, name={})",
            self.retries,
            opt(self.memory_mb),
            opt(self.timeout_s),
            self.name
                .as_ref()
                .map_or("None".into(), |n| format!("{n:?}")),
        )
    }
}

impl From<&shoal_core::TaskOptions> for PyTaskOptions {
    fn from(o: &shoal_core::TaskOptions) -> Self {
        PyTaskOptions {
            retries: o.retries,
            memory_mb: o.memory_mb,
            timeout_s: o.timeout_s,
            name: o.name.clone(),
        }
    }
}

/// One downstream edge as the completion counts it: the task, how many inputs it waits for,
/// its pinned worker, and whether this graph holds its full spec (it may run here).
#[pyclass(module = "shoal._core", name = "Downstream", frozen, get_all, eq)]
#[derive(Clone, PartialEq)]
pub struct PyDownstream {
    pub task: TaskId,
    pub ndeps: u32,
    pub worker: Option<WorkerId>,
    pub held: bool,
}

#[pymethods]
impl PyDownstream {
    fn __repr__(&self) -> String {
        format!(
            "Downstream(task={}, ndeps={}, worker={}, held={})",
            self.task,
            self.ndeps,
            opt(self.worker),
            if self.held { "True" } else { "False" }
        )
    }
}

/// One kind of task in a graph's shape (see `Graph::shape`): a function and the functions of
/// its inputs, by content hash (`None` for an input the graph does not hold).
#[pyclass(module = "shoal._core", name = "ShapeKind", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct PyShapeKind {
    pub fn_hash: Vec<u8>,
    pub input_fns: Vec<Option<Vec<u8>>>,
}

#[pymethods]
impl PyShapeKind {
    #[getter(fn_hash)]
    fn get_fn_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.fn_hash)
    }

    #[getter(input_fns)]
    fn get_input_fns<'py>(&self, py: Python<'py>) -> Vec<Option<Bound<'py, PyBytes>>> {
        let bytes = |h: &Vec<u8>| PyBytes::new(py, h);
        self.input_fns
            .iter()
            .map(|f| f.as_ref().map(bytes))
            .collect()
    }

    fn __repr__(&self) -> String {
        let hex = |h: &[u8]| h.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let inputs: Vec<String> = self
            .input_fns
            .iter()
            .map(|f| f.as_deref().map_or("None".to_string(), hex))
            .collect();
        format!(
            "ShapeKind(fn_hash={}, input_fns=[{}])",
            hex(&self.fn_hash),
            inputs.join(", ")
        )
    }
}

/// A map task (`shoal.map`) as the graph knows it (see `shoal-core/src/maps.rs`).
#[pyclass(module = "shoal._core", name = "MapSpec", frozen, get_all, eq)]
#[derive(Clone, PartialEq)]
pub struct PyMapSpec {
    pub id: TaskId,
    pub ord: u32,
    pub root: TaskId,
    pub group_deps: u32,
}

#[pymethods]
impl PyMapSpec {
    fn __repr__(&self) -> String {
        format!(
            "MapSpec(id={}, ord={}, root={}, group_deps={})",
            self.id, self.ord, self.root, self.group_deps
        )
    }
}

/// Resources a task needs or a worker has; None leaves the platform's default.
#[pyclass(module = "shoal._core", name = "Size", frozen, get_all, eq)]
#[derive(Clone, Copy, PartialEq)]
pub struct PySize {
    pub memory_mb: Option<u32>,
    pub cpu: Option<f64>,
}

#[pymethods]
impl PySize {
    #[new]
    #[pyo3(signature = (memory_mb=None, cpu=None))]
    fn new(memory_mb: Option<u32>, cpu: Option<f64>) -> Self {
        PySize { memory_mb, cpu }
    }

    fn __repr__(&self) -> String {
        format!(
            "Size(memory_mb={}, cpu={})",
            opt(self.memory_mb),
            opt(self.cpu)
        )
    }
}

impl From<Size> for PySize {
    fn from(s: Size) -> Self {
        PySize {
            memory_mb: s.memory_mb,
            cpu: s.cpu,
        }
    }
}

impl From<PySize> for Size {
    fn from(s: PySize) -> Self {
        Size {
            memory_mb: s.memory_mb,
            cpu: s.cpu,
        }
    }
}

/// An optimization attached to a task: a kind and typed parameters (bool, int, float, str, or a
/// list of task ids). The core stores it without interpreting it.
#[pyclass(module = "shoal._core", name = "Optimization", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct PyOptimization {
    pub inner: Optimization,
}

#[pymethods]
impl PyOptimization {
    #[new]
    #[pyo3(signature = (kind, params=None))]
    fn new(kind: String, params: Option<Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut out = Vec::new();
        for (k, v) in params.iter().flat_map(|d| d.iter()) {
            let name: String = k.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "optimization '{kind}': parameter names must be strings, got {k}"
                ))
            })?;
            out.push((name.clone(), to_param(&kind, &name, &v)?));
        }
        Ok(PyOptimization {
            inner: Optimization { kind, params: out },
        })
    }

    #[getter]
    fn kind(&self) -> &str {
        &self.inner.kind
    }

    /// The parameters as a new dict, in the order given.
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.inner.params {
            match v {
                Param::Bool(b) => d.set_item(k, b)?,
                Param::Int(i) => d.set_item(k, i)?,
                Param::Float(f) => d.set_item(k, f)?,
                Param::Str(s) => d.set_item(k, s)?,
                Param::Tasks(ids) => d.set_item(k, ids.clone())?,
            }
        }
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Optimization({:?}, {})",
            self.inner.kind,
            self.params(py)?.repr()?
        ))
    }
}

fn to_param(kind: &str, name: &str, v: &Bound<'_, PyAny>) -> PyResult<Param> {
    // bool before int: a Python bool is an int too.
    if v.is_instance_of::<PyBool>() {
        return Ok(Param::Bool(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Param::Int(i));
        }
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(Param::Float(v.extract()?));
    }
    if v.is_instance_of::<PyString>() {
        return Ok(Param::Str(v.extract()?));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<pyo3::types::PyTuple>() {
        if let Ok(ids) = v.extract::<Vec<TaskId>>() {
            return Ok(Param::Tasks(ids));
        }
    }
    Err(PyTypeError::new_err(format!(
        "optimization '{kind}': parameter '{name}' must be a bool, an int (64 bits), a float, \
         a str or a list of task ids, got {}",
        v.get_type().name()?
    )))
}

/// A planner's decision for one task: its worker (None = flexible), size and optimizations.
#[pyclass(module = "shoal._core", name = "TaskPlan", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct PyTaskPlan {
    pub inner: TaskPlan,
}

#[pymethods]
impl PyTaskPlan {
    #[new]
    #[pyo3(signature = (worker=None, size=None, optimizations=Vec::new()))]
    fn new(
        worker: Option<WorkerId>,
        size: Option<PySize>,
        optimizations: Vec<PyOptimization>,
    ) -> Self {
        PyTaskPlan {
            inner: TaskPlan {
                worker,
                size: size.map(Size::from),
                optimizations: optimizations.into_iter().map(|o| o.inner).collect(),
            },
        }
    }

    #[getter]
    fn worker(&self) -> Option<WorkerId> {
        self.inner.worker
    }

    #[getter]
    fn size(&self) -> Option<PySize> {
        self.inner.size.map(PySize::from)
    }

    #[getter]
    fn optimizations(&self) -> Vec<PyOptimization> {
        self.inner
            .optimizations
            .iter()
            .map(|o| PyOptimization { inner: o.clone() })
            .collect()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let opts = self
            .optimizations()
            .iter()
            .map(|o| o.__repr__(py))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(format!(
            "TaskPlan(worker={}, size={}, optimizations=[{}])",
            opt(self.inner.worker),
            self.size().map_or("None".into(), |s| s.__repr__()),
            opts.join(", ")
        ))
    }
}

/// The planned size of one worker.
#[pyclass(module = "shoal._core", name = "WorkerPlan", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct PyWorkerPlan {
    pub inner: PlannedWorker,
}

#[pymethods]
impl PyWorkerPlan {
    #[new]
    fn new(worker: WorkerId, size: PySize) -> Self {
        PyWorkerPlan {
            inner: PlannedWorker {
                worker,
                size: size.into(),
            },
        }
    }

    #[getter]
    fn worker(&self) -> WorkerId {
        self.inner.worker
    }

    #[getter]
    fn size(&self) -> PySize {
        self.inner.size.into()
    }

    fn __repr__(&self) -> String {
        format!(
            "WorkerPlan(worker={}, size={})",
            self.inner.worker,
            self.size().__repr__()
        )
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("None".into(), |x| x.to_string())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTaskOptions>()?;
    m.add_class::<PyDownstream>()?;
    m.add_class::<PyMapSpec>()?;
    m.add_class::<PyShapeKind>()?;
    m.add_class::<PySize>()?;
    m.add_class::<PyOptimization>()?;
    m.add_class::<PyTaskPlan>()?;
    m.add_class::<PyWorkerPlan>()?;
    Ok(())
}
