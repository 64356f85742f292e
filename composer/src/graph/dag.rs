//! The build graph: steps as nodes, "is an input of" as edges.
//!
//! [`Graph::from_table`] takes the steps reachable from the wanted roots out
//! of the step table (following each step's inputs) into a petgraph
//! `DiGraph` whose edges point from an input to the step that reads it.
//! [`Graph::validate`] rejects a cycle — naming it step by step — and
//! computes a topological order; only the resulting [`ValidatedGraph`] can be
//! scheduled.

use super::step::Step;
use super::table::StepTable;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeMap, HashMap};

/// A node of the graph.
pub type StepId = NodeIndex;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("`{0}` is not the placeholder of any step recorded during evaluation")]
    UnknownRoot(String),
    #[error("step `{step}` needs `{input}`, which is not a recorded step")]
    MissingInput { step: String, input: String },
    #[error("the steps form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

impl GraphError {
    /// The stable code of this error (docs/errors.md, E07xx).
    pub fn code(&self) -> crate::codes::Code {
        use crate::codes::*;
        match self {
            GraphError::UnknownRoot(_) | GraphError::MissingInput { .. } => GRAPH_MISSING,
            GraphError::Cycle(_) => GRAPH_CYCLE,
        }
    }
}

/// The steps needed for some roots; may still contain a cycle.
#[derive(Debug, Clone)]
pub struct Graph {
    graph: DiGraph<Step, ()>,
    nodes: HashMap<String, StepId>,
    roots: Vec<StepId>,
}

impl Graph {
    /// The steps of `table` reachable from `roots` (placeholders).
    pub fn from_table(table: &StepTable, roots: &[String]) -> Result<Graph, GraphError> {
        Graph::from_steps(&table.steps(), roots)
    }

    /// The steps of `steps` (keyed by placeholder) reachable from `roots`.
    pub fn from_steps(
        steps: &BTreeMap<String, Step>,
        roots: &[String],
    ) -> Result<Graph, GraphError> {
        let mut graph = DiGraph::new();
        let mut nodes: HashMap<String, StepId> = HashMap::new();
        let mut stack: Vec<(&Step, StepId)> = Vec::new();
        let mut root_ids = Vec::new();
        for root in roots {
            let step = steps
                .get(root)
                .ok_or_else(|| GraphError::UnknownRoot(root.clone()))?;
            let id = match nodes.get(root) {
                Some(id) => *id,
                None => {
                    let id = graph.add_node(step.clone());
                    nodes.insert(root.clone(), id);
                    stack.push((step, id));
                    id
                }
            };
            if !root_ids.contains(&id) {
                root_ids.push(id);
            }
        }
        while let Some((step, id)) = stack.pop() {
            for input in &step.inputs {
                let input_id = match nodes.get(input) {
                    Some(i) => *i,
                    None => {
                        let input_step =
                            steps.get(input).ok_or_else(|| GraphError::MissingInput {
                                step: step.name.clone(),
                                input: input.clone(),
                            })?;
                        let i = graph.add_node(input_step.clone());
                        nodes.insert(input.clone(), i);
                        stack.push((input_step, i));
                        i
                    }
                };
                graph.add_edge(input_id, id, ());
            }
        }
        Ok(Graph {
            graph,
            nodes,
            roots: root_ids,
        })
    }

    /// Rejects cycles and fixes a topological order.
    pub fn validate(self) -> Result<ValidatedGraph, GraphError> {
        match petgraph::algo::toposort(&self.graph, None) {
            Ok(order) => Ok(ValidatedGraph {
                graph: self.graph,
                nodes: self.nodes,
                roots: self.roots,
                order,
            }),
            Err(cycle) => Err(GraphError::Cycle(self.name_cycle(cycle.node_id()))),
        }
    }

    /// Names a cycle through `start`'s strongly connected component, each
    /// step followed by the step that needs it, ending where it began.
    fn name_cycle(&self, start: StepId) -> Vec<String> {
        let sccs = petgraph::algo::tarjan_scc(&self.graph);
        let component = sccs
            .iter()
            .find(|c| c.contains(&start))
            .cloned()
            .unwrap_or_else(|| vec![start]);
        // Walk "needs" edges (dependent -> input) inside the component from
        // `start` until a node repeats.
        let mut path = vec![start];
        let mut current = start;
        loop {
            let next = self
                .graph
                .neighbors_directed(current, Direction::Incoming)
                .filter(|n| component.contains(n))
                .min();
            let Some(next) = next else { break };
            if let Some(pos) = path.iter().position(|n| *n == next) {
                path.drain(..pos);
                path.push(next);
                break;
            }
            path.push(next);
            current = next;
        }
        path.iter().map(|n| self.graph[*n].name.clone()).collect()
    }
}

/// An acyclic build graph with a topological order; see the module docs.
#[derive(Debug, Clone)]
pub struct ValidatedGraph {
    graph: DiGraph<Step, ()>,
    nodes: HashMap<String, StepId>,
    roots: Vec<StepId>,
    order: Vec<StepId>,
}

impl ValidatedGraph {
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    pub fn step(&self, id: StepId) -> &Step {
        &self.graph[id]
    }

    /// The node of a placeholder.
    pub fn id(&self, placeholder: &str) -> Option<StepId> {
        self.nodes.get(placeholder).copied()
    }

    /// The wanted steps, in the order asked for.
    pub fn roots(&self) -> &[StepId] {
        &self.roots
    }

    /// Every step, inputs before the steps that read them.
    pub fn topological(&self) -> &[StepId] {
        &self.order
    }

    /// The steps `id` reads.
    pub fn inputs(&self, id: StepId) -> impl Iterator<Item = StepId> + '_ {
        self.graph.neighbors_directed(id, Direction::Incoming)
    }

    /// The steps that read `id`.
    pub fn dependents(&self, id: StepId) -> impl Iterator<Item = StepId> + '_ {
        self.graph.neighbors_directed(id, Direction::Outgoing)
    }

    /// A chain of steps from a root down to `id`, each needing the next.
    pub fn chain_to(&self, id: StepId) -> Vec<StepId> {
        let mut chain = vec![id];
        let mut seen = vec![id];
        let mut current = id;
        while !self.roots.contains(&current) {
            let Some(next) = self.dependents(current).filter(|n| !seen.contains(n)).min() else {
                break;
            };
            seen.push(next);
            chain.push(next);
            current = next;
        }
        chain.reverse();
        chain
    }
}
