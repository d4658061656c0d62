//! `shoal._core.Graph`: a frozen graph or subDAG, queried by the Python runtime.

use crate::errors::{graph_err, payload_err};
use crate::fill::PyBuilder;
use crate::records::{
    PyDownstream, PyMapSpec, PyOptimization, PyShapeKind, PySize, PyTaskOptions, PyTaskPlan,
    PyWorkerPlan,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use shoal_core::{Graph, Task, TaskId, WorkerId};

#[pyclass(module = "shoal._core", name = "Graph", frozen)]
pub struct PyGraph {
    pub inner: Graph,
}

impl PyGraph {
    fn task(&self, id: TaskId) -> PyResult<&Task> {
        self.inner.task(id).map_err(graph_err)
    }
}

fn wrap(g: Result<Graph, shoal_core::GraphError>) -> PyResult<PyGraph> {
    Ok(PyGraph {
        inner: g.map_err(graph_err)?,
    })
}

#[pymethods]
impl PyGraph {
    /// Decodes and validates an encoded graph; bad input raises `shoal.PayloadError`.
    #[staticmethod]
    fn decode(data: &[u8]) -> PyResult<PyGraph> {
        Ok(PyGraph {
            inner: Graph::decode(data).map_err(payload_err)?,
        })
    }

    fn encode<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.encode())
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "<shoal._core.Graph tasks={} stubs={} outputs={}>",
            self.inner.len(),
            self.inner.data().stubs.len(),
            self.inner.outputs().len()
        )
    }

    #[getter]
    fn outputs(&self) -> Vec<TaskId> {
        self.inner.outputs().to_vec()
    }

    fn task_ids(&self) -> Vec<TaskId> {
        self.inner.tasks().iter().map(|t| t.id).collect()
    }

    fn stub_ids(&self) -> Vec<TaskId> {
        self.inner.data().stubs.iter().map(|s| s.id).collect()
    }

    fn __contains__(&self, id: TaskId) -> bool {
        self.inner.contains(id)
    }

    fn roots(&self) -> Vec<TaskId> {
        self.inner.roots()
    }

    fn topo_order(&self) -> PyResult<Vec<TaskId>> {
        self.inner.topo_order().map_err(graph_err)
    }

    fn levels(&self) -> PyResult<Vec<u32>> {
        self.inner.levels().map_err(graph_err)
    }

    fn closure(&self, starts: Vec<TaskId>) -> PyResult<Vec<TaskId>> {
        self.inner.closure(&starts).map_err(graph_err)
    }

    fn subgraph(&self, ids: Vec<TaskId>) -> PyResult<PyGraph> {
        wrap(self.inner.subgraph(&ids))
    }

    /// The subDAG worker `worker` (None = flexible) needs to run from `starts`.
    #[pyo3(signature = (worker, starts))]
    fn subdag_for(&self, worker: Option<WorkerId>, starts: Vec<TaskId>) -> PyResult<PyGraph> {
        wrap(self.inner.subdag_for(worker, &starts))
    }

    /// A copy whose plan table is exactly this plan: tasks named get their worker, size and
    /// optimizations; the others are flexible, with none.
    #[pyo3(signature = (tasks, workers=Vec::new()))]
    fn with_plan(
        &self,
        tasks: std::collections::BTreeMap<TaskId, PyTaskPlan>,
        workers: Vec<PyWorkerPlan>,
    ) -> PyResult<PyGraph> {
        let tasks: Vec<_> = tasks.into_iter().map(|(t, p)| (t, p.inner)).collect();
        let workers: Vec<_> = workers.into_iter().map(|w| w.inner).collect();
        let mut g = self.inner.clone();
        g.apply_plan(&tasks, &workers).map_err(graph_err)?;
        Ok(PyGraph { inner: g })
    }

    /// Task `id`'s planned worker, size and optimizations.
    fn plan_of(&self, id: TaskId) -> PyResult<PyTaskPlan> {
        Ok(PyTaskPlan {
            inner: self.inner.plan_of(id).map_err(graph_err)?,
        })
    }

    /// `{task: [optimizations]}` for every task the plan gives some (the others have none):
    /// a worker's policy reads it once instead of asking task by task.
    fn optimized(&self) -> std::collections::BTreeMap<TaskId, Vec<PyOptimization>> {
        self.inner
            .plan()
            .tasks
            .iter()
            .filter(|p| !p.optimizations.is_empty())
            .map(|p| {
                let opts = p.optimizations.iter().cloned();
                (p.task, opts.map(|inner| PyOptimization { inner }).collect())
            })
            .collect()
    }

    /// The planned size of worker `worker`, if the plan gives one.
    fn worker_size(&self, worker: WorkerId) -> Option<PySize> {
        self.inner.plan().worker_size(worker).map(PySize::from)
    }

    /// The planned worker sizes this graph knows.
    fn planned_workers(&self) -> Vec<PyWorkerPlan> {
        self.inner
            .plan()
            .workers
            .iter()
            .map(|&w| PyWorkerPlan { inner: w })
            .collect()
    }

    /// `{worker or None: [task ids]}`: every task exactly once, workers in order.
    fn partition(&self) -> std::collections::BTreeMap<Option<WorkerId>, Vec<TaskId>> {
        self.inner.partition().into_iter().collect()
    }

    fn name(&self, id: TaskId) -> PyResult<String> {
        Ok(self.inner.task_name(self.task(id)?).to_owned())
    }

    fn deps(&self, id: TaskId) -> PyResult<Vec<TaskId>> {
        Ok(self.task(id)?.deps.clone())
    }

    fn worker(&self, id: TaskId) -> PyResult<Option<WorkerId>> {
        Ok(self.task(id)?.worker)
    }

    /// The downstream tasks counted when `id` completes.
    fn downstream(&self, id: TaskId) -> PyResult<Vec<PyDownstream>> {
        Ok(self
            .inner
            .downstream(id)
            .map_err(graph_err)?
            .into_iter()
            .map(|d| PyDownstream {
                task: d.id,
                ndeps: d.ndeps,
                worker: d.worker,
                held: d.held,
            })
            .collect())
    }

    /// The held tasks that consume `id`'s output (`id` may be a boundary input).
    fn consumers(&self, id: TaskId) -> Vec<TaskId> {
        self.inner.consumers(id)
    }

    /// Whether the graph holds map tasks (`shoal.map`).
    #[getter]
    fn has_maps(&self) -> bool {
        !self.inner.data().maps.is_empty()
    }

    /// The map tasks this graph knows.
    fn maps(&self) -> Vec<PyMapSpec> {
        self.inner
            .data()
            .maps
            .iter()
            .map(|m| PyMapSpec {
                id: m.id,
                ord: m.ord,
                root: m.root,
                group_deps: m.group_deps,
            })
            .collect()
    }

    fn tasks_of(&self, worker: WorkerId) -> Vec<TaskId> {
        self.inner.tasks_of(worker)
    }

    /// Qualified name (`module:qualname`) of task `id`'s function.
    fn fn_name(&self, id: TaskId) -> PyResult<String> {
        Ok(self.inner.fn_of(self.task(id)?).qualname.clone())
    }

    fn fn_hash<'py>(&self, py: Python<'py>, id: TaskId) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.inner.fn_of(self.task(id)?).hash.0))
    }

    /// Task `id`'s options.
    fn options(&self, id: TaskId) -> PyResult<PyTaskOptions> {
        Ok(self.inner.options_of(self.task(id)?).into())
    }

    /// The graph's shape, independent of its size (see `Graph::shape` in shoal-core).
    fn shape(&self) -> Vec<PyShapeKind> {
        let fns = &self.inner.data().fns;
        let hash = |i: u32| fns[i as usize].hash.0.to_vec();
        self.inner
            .shape()
            .into_iter()
            .map(|(f, inputs)| PyShapeKind {
                fn_hash: hash(f),
                input_fns: inputs.into_iter().map(|i| i.map(hash)).collect(),
            })
            .collect()
    }

    fn fn_hashes<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.inner
            .data()
            .fns
            .iter()
            .map(|f| PyBytes::new(py, &f.hash.0))
            .collect()
    }

    /// Content hashes of the constants task `id` uses (all of the graph's when `id` is None).
    #[pyo3(signature = (id=None))]
    fn const_hashes<'py>(
        &self,
        py: Python<'py>,
        id: Option<TaskId>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let all = &self.inner.data().consts;
        let idx: Vec<u32> = match id {
            None => (0..all.len() as u32).collect(),
            Some(id) => {
                let t = self.task(id)?;
                let mut v = Vec::new();
                t.args
                    .iter()
                    .chain(t.kwargs.iter().map(|(_, v)| v))
                    .for_each(|tpl| {
                        tpl.for_each_const(&mut |c| {
                            if !v.contains(&c) {
                                v.push(c)
                            }
                        })
                    });
                v
            }
        };
        Ok(idx
            .into_iter()
            .map(|i| PyBytes::new(py, &all[i as usize].0))
            .collect())
    }

    /// Rebuilds task `id`'s `(args, kwargs)` from its template: `values[i]` fills `deps[i]`,
    /// `consts` maps constant hashes to decoded values, `loads` unpickles opaque leaves.
    #[pyo3(signature = (id, values, loads, consts=None))]
    fn fill<'py>(
        &self,
        py: Python<'py>,
        id: TaskId,
        values: Vec<Bound<'py, PyAny>>,
        loads: Bound<'py, PyAny>,
        consts: Option<Bound<'py, PyDict>>,
    ) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyDict>)> {
        let t = self.task(id)?;
        if values.len() != t.deps.len() {
            return Err(PyValueError::new_err(format!(
                "task {id} has {} dependencies but {} values were given",
                t.deps.len(),
                values.len()
            )));
        }
        let mut b = PyBuilder {
            py,
            slots: &values,
            const_hashes: &self.inner.data().consts,
            consts: consts.as_ref(),
            loads: &loads,
        };
        let args = t
            .args
            .iter()
            .map(|a| a.build(&mut b))
            .collect::<PyResult<Vec<_>>>()?;
        let kwargs = PyDict::new(py);
        for (k, v) in &t.kwargs {
            kwargs.set_item(k, v.build(&mut b)?)?;
        }
        Ok((PyTuple::new(py, args)?, kwargs))
    }
}
