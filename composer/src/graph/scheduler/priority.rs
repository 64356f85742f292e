//! Which ready step starts first: the one with the most work ahead of it.
//!
//! Each step has a weight, its builder's estimate of its own work
//! ([`Builder::weight`]: a package's size; a kernel as much as its largest
//! package). A step's priority is its weight plus the largest priority among
//! the steps that read it: the heaviest chain of work from the step to a
//! wanted output ("upward rank", as list schedulers rank tasks). Of the steps
//! ready, the highest priority starts first. So a large package does not
//! unpack alone at the end, and the small packages a kernel is built from
//! unpack before the packages only the profile reads: the kernel, itself
//! long, waits for the last of them.
//!
//! [`Builder::weight`]: crate::builders::Builder::weight

use super::super::dag::{StepId, ValidatedGraph};

/// Every step's priority, by [`StepId`]; see the module docs.
#[derive(Debug, Clone, Default)]
pub(super) struct Priorities(Vec<u64>);

impl Priorities {
    /// The priorities of `graph`'s steps, where `weight(id, inputs)` is a
    /// step's own weight given the own weights of its inputs.
    pub(super) fn new(graph: &ValidatedGraph, weight: impl Fn(StepId, &[u64]) -> u64) -> Self {
        let mut own = vec![0u64; graph.len()];
        for &id in graph.topological() {
            let inputs: Vec<u64> = graph.inputs(id).map(|i| own[i.index()]).collect();
            own[id.index()] = weight(id, &inputs);
        }
        let mut rank = own.clone();
        for &id in graph.topological().iter().rev() {
            let ahead = graph
                .dependents(id)
                .map(|d| rank[d.index()])
                .max()
                .unwrap_or(0);
            rank[id.index()] = own[id.index()].saturating_add(ahead);
        }
        Priorities(rank)
    }

    /// The priority of `id`.
    pub(super) fn of(&self, id: StepId) -> u64 {
        self.0.get(id.index()).copied().unwrap_or(0)
    }
}
