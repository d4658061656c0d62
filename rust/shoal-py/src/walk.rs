//! Freezing a lazy graph of Python `Node`s into a core [`Graph`].
//!
//! The node walk is an iterative depth-first search (deep chains never touch the Python or Rust
//! call stack): a node is *entered* once, when its arguments are walked into templates and its
//! upstream nodes are pushed; it is *exited* after all of them, when it receives the next dense
//! task id. Ids therefore come out in dependency order. Meeting a node that was entered but not
//! exited means a cycle (only possible if an argument container was mutated after the call).
//!
//! The argument walk turns list / tuple / dict / set / frozenset values (exact types) into
//! template containers, msgpack-native leaves into values, nodes into slots (one slot per
//! distinct upstream node), and anything else into a pickled leaf via the caller's `dumps`.
//! Leaves larger than the constant threshold are stored once by content hash.

use crate::errors::{graph_err, GraphError, ShoalError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple, PyType,
};
use pyo3::{intern, PyTypeInfo};
use shoal_core::template::MAX_DEPTH;
use shoal_core::{codec, FnRef, GraphData, Hash16, Task, TaskOptions, Template};
use std::collections::HashMap;

/// Everything `freeze` produces, handed to Python.
pub struct Frozen {
    pub data: GraphData,
    pub outputs: Vec<u32>,
    pub fn_blobs: Vec<(Hash16, Py<PyBytes>, Py<PyAny>)>,
    pub const_blobs: Vec<(Hash16, Vec<u8>)>,
}

/// Task options as a hashable key (the timeout by its bit pattern).
type OptionsKey = (u32, Option<u32>, Option<u64>, Option<String>);

enum Mark {
    /// Entered, not yet exited.
    Open,
    Done(u32),
}

struct Pending {
    is_map: bool,
    func: u32,
    opts: u32,
    args: Vec<Template>,
    kwargs: Vec<(String, Template)>,
    dep_keys: Vec<usize>,
}

pub struct Freezer<'py> {
    py: Python<'py>,
    node_type: Bound<'py, PyType>,
    dumps: Bound<'py, PyAny>,
    const_threshold: usize,
    marks: HashMap<usize, Mark>,
    pending: Vec<Pending>,
    tasks: Vec<Task>,
    fn_index: HashMap<usize, u32>,
    fns: Vec<FnRef>,
    fn_blobs: Vec<(Hash16, Py<PyBytes>, Py<PyAny>)>,
    fn_by_hash: HashMap<Hash16, u32>,
    opt_index: HashMap<OptionsKey, u32>,
    options: Vec<TaskOptions>,
    const_index: HashMap<Hash16, u32>,
    consts: Vec<Hash16>,
    const_blobs: Vec<(Hash16, Vec<u8>)>,
    /// Keeps every visited node alive so object addresses stay unique during the walk.
    keep: Vec<Bound<'py, PyAny>>,
    /// Ids of map tasks (`shoal.map`), linked into chains once the walk is over.
    map_ids: Vec<u32>,
}

/// Where in a task's arguments the walk is, for error messages.
struct Site<'py> {
    task: String,
    path: Vec<String>,
    deps: Vec<Bound<'py, PyAny>>,
    dep_slot: HashMap<usize, u32>,
    depth: usize,
    /// The containers on the path from the argument to here, with the path length where each
    /// was entered: meeting one again is a cycle.
    open: Vec<(usize, usize)>,
}

impl Site<'_> {
    /// The path, shortened in the middle when it is long (a deeply nested argument).
    fn shown(&self, upto: usize) -> String {
        let parts = &self.path[..upto.min(self.path.len())];
        if parts.len() <= 12 {
            return parts.join("");
        }
        let tail = &parts[parts.len() - 4..];
        format!("{}…{}", parts[..6].join(""), tail.join(""))
    }
}

fn key(obj: &Bound<'_, PyAny>) -> usize {
    obj.as_ptr() as usize
}

impl<'py> Freezer<'py> {
    pub fn new(
        node_type: Bound<'py, PyType>,
        dumps: Bound<'py, PyAny>,
        const_threshold: usize,
    ) -> Self {
        Freezer {
            py: node_type.py(),
            node_type,
            dumps,
            const_threshold,
            marks: HashMap::new(),
            pending: Vec::new(),
            tasks: Vec::new(),
            fn_index: HashMap::new(),
            fns: Vec::new(),
            fn_blobs: Vec::new(),
            fn_by_hash: HashMap::new(),
            opt_index: HashMap::new(),
            options: Vec::new(),
            const_index: HashMap::new(),
            consts: Vec::new(),
            const_blobs: Vec::new(),
            keep: Vec::new(),
            map_ids: Vec::new(),
        }
    }

    pub fn freeze(mut self, outputs: &Bound<'py, PyAny>) -> PyResult<Frozen> {
        let outs: Vec<Bound<'py, PyAny>> = outputs.try_iter()?.collect::<PyResult<_>>()?;
        for o in &outs {
            if !o.is_instance(&self.node_type)? {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "expected a shoal Node to compute, got {}",
                    o.get_type().name()?
                )));
            }
        }
        enum Step<'py> {
            Enter(Bound<'py, PyAny>),
            Exit(usize, usize),
        }
        let mut stack: Vec<Step> = outs.iter().rev().map(|o| Step::Enter(o.clone())).collect();
        while let Some(step) = stack.pop() {
            match step {
                Step::Enter(node) => {
                    let k = key(&node);
                    match self.marks.get(&k) {
                        Some(Mark::Done(_)) => continue,
                        Some(Mark::Open) => return Err(self.cycle_error(&node)),
                        None => {}
                    }
                    let (pending, deps) = self.enter(&node)?;
                    let idx = self.pending.len();
                    self.pending.push(pending);
                    self.marks.insert(k, Mark::Open);
                    stack.push(Step::Exit(k, idx));
                    for d in deps.into_iter().rev() {
                        stack.push(Step::Enter(d));
                    }
                    self.keep.push(node);
                }
                Step::Exit(k, idx) => {
                    let p = std::mem::replace(
                        &mut self.pending[idx],
                        Pending {
                            is_map: false,
                            func: 0,
                            opts: 0,
                            args: Vec::new(),
                            kwargs: Vec::new(),
                            dep_keys: Vec::new(),
                        },
                    );
                    let deps = p
                        .dep_keys
                        .iter()
                        .map(|dk| match self.marks.get(dk) {
                            Some(Mark::Done(id)) => Ok(*id),
                            _ => Err(GraphError::new_err(
                                "the graph has a cycle through a task's arguments",
                            )),
                        })
                        .collect::<PyResult<Vec<u32>>>()?;
                    let id = self.tasks.len() as u32;
                    if p.is_map {
                        self.map_ids.push(id);
                    }
                    self.tasks.push(Task {
                        id,
                        func: p.func,
                        opts: p.opts,
                        args: p.args,
                        kwargs: p.kwargs,
                        deps,
                        worker: None,
                    });
                    self.marks.insert(k, Mark::Done(id));
                }
            }
        }
        let outputs = outs
            .iter()
            .map(|o| match self.marks.get(&key(o)) {
                Some(Mark::Done(id)) => *id,
                _ => unreachable!("every output was exited"),
            })
            .collect::<Vec<u32>>();
        let maps = shoal_core::maps::link(&self.tasks, &self.map_ids).map_err(|e| match e {
            shoal_core::GraphError::MapOwnChain { map, input } => GraphError::new_err(format!(
                "shoal.map '{}' takes '{}' (task {input}), which waits for the map's own chain \
                 (directly or through other tasks): a map chain cannot consume its own results",
                self.task_name(map),
                self.task_name(input)
            )),
            other => graph_err(other),
        })?;
        let data = GraphData {
            fns: self.fns,
            options: self.options,
            consts: self.consts,
            tasks: self.tasks,
            stubs: Vec::new(),
            outputs: outputs.clone(),
            maps,
            plan: Default::default(),
        };
        Ok(Frozen {
            data,
            outputs,
            fn_blobs: self.fn_blobs,
            const_blobs: self.const_blobs,
        })
    }

    /// A frozen task's display name: its `name` option, else its function's name.
    fn task_name(&self, id: u32) -> String {
        let t = &self.tasks[id as usize];
        self.options[t.opts as usize]
            .name
            .clone()
            .unwrap_or_else(|| self.fns[t.func as usize].name.clone())
    }

    fn cycle_error(&self, node: &Bound<'py, PyAny>) -> PyErr {
        let name = node
            .getattr(intern!(self.py, "_name"))
            .and_then(|n| n.extract::<String>())
            .unwrap_or_else(|_| "?".into());
        GraphError::new_err(format!(
            "the graph has a cycle through task '{name}': one of its arguments contains a node that \
             depends on it (was an argument list or dict mutated after the call?)"
        ))
    }

    /// Walks one node's arguments; returns its pending spec and its distinct upstream nodes.
    fn enter(&mut self, node: &Bound<'py, PyAny>) -> PyResult<(Pending, Vec<Bound<'py, PyAny>>)> {
        let py = self.py;
        let func = node.getattr(intern!(py, "_func"))?;
        let name: String = node.getattr(intern!(py, "_name"))?.extract()?;
        let opts = node.getattr(intern!(py, "_opts"))?;
        let args = node.getattr(intern!(py, "_args"))?;
        let kwargs = node.getattr(intern!(py, "_kwargs"))?;
        // `shoal.map` nodes: their first argument is the mapped input (a node, so slot 0).
        let is_map = node.getattr(intern!(py, "_is_map"))?.is_truthy()?;
        let func_idx = self.function(&func, &name)?;
        let opts_idx = self.options(&opts)?;
        let mut site = Site {
            task: name,
            path: Vec::new(),
            deps: Vec::new(),
            dep_slot: HashMap::new(),
            depth: 0,
            open: Vec::new(),
        };
        let args = args.cast::<PyTuple>()?;
        let mut arg_t = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            site.path.push(format!("args[{i}]"));
            arg_t.push(self.walk(&a, &mut site)?);
            site.path.pop();
        }
        let mut kw_t = Vec::new();
        for (k, v) in kwargs.cast::<PyDict>()?.iter() {
            let k: String = k.extract()?;
            site.path.push(k.clone());
            kw_t.push((k, self.walk(&v, &mut site)?));
            site.path.pop();
        }
        let dep_keys = site.deps.iter().map(key).collect();
        Ok((
            Pending {
                is_map,
                func: func_idx,
                opts: opts_idx,
                args: arg_t,
                kwargs: kw_t,
                dep_keys,
            },
            site.deps,
        ))
    }

    fn function(&mut self, func: &Bound<'py, PyAny>, name: &str) -> PyResult<u32> {
        let k = key(func);
        if let Some(&i) = self.fn_index.get(&k) {
            return Ok(i);
        }
        let blob = self.dumps.call1((func,)).map_err(|e| {
            let err = ShoalError::new_err(format!(
                "cannot serialize the function of task '{name}': {e}"
            ));
            err.set_cause(self.py, Some(e));
            err
        })?;
        let blob = blob.cast_into::<PyBytes>()?;
        let hash = Hash16::of(blob.as_bytes());
        let idx = match self.fn_by_hash.get(&hash) {
            Some(&i) => i,
            None => {
                let i = self.fns.len() as u32;
                let fname: String = func
                    .getattr(intern!(self.py, "__name__"))
                    .and_then(|n| n.extract())
                    .unwrap_or_else(|_| name.to_owned());
                let qualname = qualified_name(func).unwrap_or_else(|| fname.clone());
                self.fns.push(FnRef {
                    hash,
                    name: fname,
                    qualname,
                });
                self.fn_blobs
                    .push((hash, blob.unbind(), func.clone().unbind()));
                self.fn_by_hash.insert(hash, i);
                i
            }
        };
        self.fn_index.insert(k, idx);
        self.keep.push(func.clone());
        Ok(idx)
    }

    fn options(&mut self, opts: &Bound<'py, PyAny>) -> PyResult<u32> {
        let (retries, memory_mb, timeout_s, name): (u32, Option<u32>, Option<f64>, Option<String>) =
            opts.extract()?;
        let k = (
            retries,
            memory_mb,
            timeout_s.map(f64::to_bits),
            name.clone(),
        );
        if let Some(&i) = self.opt_index.get(&k) {
            return Ok(i);
        }
        let i = self.options.len() as u32;
        self.options.push(TaskOptions {
            retries,
            memory_mb,
            timeout_s,
            name,
        });
        self.opt_index.insert(k, i);
        Ok(i)
    }

    fn walk(&mut self, obj: &Bound<'py, PyAny>, site: &mut Site<'py>) -> PyResult<Template> {
        if site.depth >= MAX_DEPTH {
            return Err(ShoalError::new_err(format!(
                "argument {} of task '{}' is nested deeper than {MAX_DEPTH} levels",
                site.shown(site.path.len()),
                site.task
            )));
        }
        let t = obj.get_type();
        if obj.is_none() {
            return Ok(Template::Nil);
        }
        if t.is(PyBool::type_object(self.py)) {
            return Ok(Template::Bool(obj.extract()?));
        }
        if t.is(PyInt::type_object(self.py)) {
            if let Ok(i) = obj.extract::<i64>() {
                return Ok(Template::Int(i));
            }
            if let Ok(u) = obj.extract::<u64>() {
                return Ok(Template::UInt(u));
            }
            return self.pickle(obj, site);
        }
        if t.is(PyFloat::type_object(self.py)) {
            return Ok(Template::Float(obj.extract()?));
        }
        if t.is(PyString::type_object(self.py)) {
            let s: String = match obj.extract() {
                Ok(s) => s,
                Err(_) => return self.pickle(obj, site), // lone surrogates are not UTF-8
            };
            return Ok(self.maybe_const(Template::Str(s)));
        }
        if t.is(PyBytes::type_object(self.py)) {
            let b = obj.cast::<PyBytes>()?.as_bytes().to_vec();
            return Ok(self.maybe_const(Template::Bytes(b)));
        }
        if t.is(&self.node_type) || obj.is_instance(&self.node_type)? {
            let next = site.deps.len() as u32;
            let slot = *site.dep_slot.entry(key(obj)).or_insert(next);
            if slot == next {
                site.deps.push(obj.clone());
            }
            return Ok(Template::Slot(slot));
        }
        let container = [
            PyList::type_object(self.py),
            PyTuple::type_object(self.py),
            PySet::type_object(self.py),
            PyFrozenSet::type_object(self.py),
            PyDict::type_object(self.py),
        ]
        .iter()
        .any(|c| t.is(c));
        if !container {
            return self.pickle(obj, site);
        }
        if let Some(&(_, at)) = site.open.iter().find(|(k, _)| *k == key(obj)) {
            return Err(ShoalError::new_err(format!(
                "argument {} of task '{}' contains itself: {} is {} again (a cycle); shoal \
                 looks for nodes inside lists, tuples, sets and dicts, so pass those without \
                 cycles (an object of your own class is pickled whole, cycles and all)",
                site.shown(at),
                site.task,
                site.shown(site.path.len()),
                site.shown(at),
            )));
        }
        site.open.push((key(obj), site.path.len()));
        site.depth += 1;
        let out = self.walk_container(obj, site);
        site.depth -= 1;
        site.open.pop();
        out
    }

    fn walk_container(
        &mut self,
        obj: &Bound<'py, PyAny>,
        site: &mut Site<'py>,
    ) -> PyResult<Template> {
        let t = obj.get_type();
        Ok(if t.is(PyList::type_object(self.py)) {
            Template::List(self.walk_items(obj.try_iter()?, site)?)
        } else if t.is(PyTuple::type_object(self.py)) {
            Template::Tuple(self.walk_items(obj.try_iter()?, site)?)
        } else if t.is(PySet::type_object(self.py)) {
            Template::Set(self.walk_items(obj.try_iter()?, site)?)
        } else if t.is(PyFrozenSet::type_object(self.py)) {
            Template::FrozenSet(self.walk_items(obj.try_iter()?, site)?)
        } else if t.is(PyDict::type_object(self.py)) {
            let mut pairs = Vec::new();
            for (k, v) in obj.cast::<PyDict>()?.iter() {
                site.path.push(format!("[{}]", k.repr()?));
                let kt = self.walk(&k, site)?;
                let vt = self.walk(&v, site)?;
                site.path.pop();
                pairs.push((kt, vt));
            }
            Template::Dict(pairs)
        } else {
            unreachable!("walk_container is called with the five container types only")
        })
    }

    fn walk_items(
        &mut self,
        items: Bound<'py, pyo3::types::PyIterator>,
        site: &mut Site<'py>,
    ) -> PyResult<Vec<Template>> {
        let mut out = Vec::new();
        for (i, item) in items.enumerate() {
            site.path.push(format!("[{i}]"));
            out.push(self.walk(&item?, site)?);
            site.path.pop();
        }
        Ok(out)
    }

    fn pickle(&mut self, obj: &Bound<'py, PyAny>, site: &Site<'py>) -> PyResult<Template> {
        let blob = self.dumps.call1((obj,)).map_err(|e| {
            let err = ShoalError::new_err(format!(
                "cannot serialize argument {} of task '{}' (a {}): {}",
                site.path.join(""),
                site.task,
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                e
            ));
            err.set_cause(self.py, Some(e));
            err
        })?;
        let blob = blob.cast_into::<PyBytes>()?;
        Ok(self.maybe_const(Template::Pickled(blob.as_bytes().to_vec())))
    }

    /// Moves a leaf over the threshold into the constant table.
    fn maybe_const(&mut self, leaf: Template) -> Template {
        let size = match &leaf {
            Template::Str(s) => s.len(),
            Template::Bytes(b) | Template::Pickled(b) => b.len(),
            _ => 0,
        };
        if size <= self.const_threshold {
            return leaf;
        }
        let blob = codec::encode(codec::Kind::Constant, &leaf);
        let hash = Hash16::of(&blob);
        let idx = *self.const_index.entry(hash).or_insert_with(|| {
            self.consts.push(hash);
            self.const_blobs.push((hash, blob));
            (self.consts.len() - 1) as u32
        });
        Template::Const(idx)
    }
}

pub fn check_graph(data: GraphData) -> PyResult<shoal_core::Graph> {
    let g = shoal_core::Graph::new(data).map_err(graph_err)?;
    g.check_complete().map_err(graph_err)?;
    Ok(g)
}

/// `module:qualname` of a function, when it has both.
fn qualified_name(func: &Bound<'_, PyAny>) -> Option<String> {
    let py = func.py();
    let module: String = func
        .getattr(intern!(py, "__module__"))
        .ok()?
        .extract()
        .ok()?;
    let qualname: String = func
        .getattr(intern!(py, "__qualname__"))
        .ok()?
        .extract()
        .ok()?;
    Some(format!("{module}:{qualname}"))
}
