//! Graph construction and validation.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use imago::graph::{Graph, GraphError, Step, StepTable};
use imago_lang::hook::{StepRequest, StepValue, StoreHook};
use std::collections::{BTreeMap, BTreeSet};

fn fake(name: &str, inputs: &[&str]) -> (String, Step) {
    let placeholder = format!("/imago/pending/{:0>32}-{name}", name.len());
    let step = Step {
        placeholder: placeholder.clone(),
        builder: "text".into(),
        name: name.into(),
        params: BTreeMap::new(),
        inputs: inputs.iter().map(|i| (*i).to_owned()).collect(),
    };
    (placeholder, step)
}

fn ph(name: &str) -> String {
    fake(name, &[]).0
}

#[test]
fn cycles_are_rejected_naming_every_step() {
    let steps: BTreeMap<String, Step> = [
        fake("a", &[&ph("bb")]),
        fake("bb", &[&ph("ccc")]),
        fake("ccc", &[&ph("a")]),
        fake("dddd", &[&ph("a")]),
    ]
    .into_iter()
    .collect();
    let graph = Graph::from_steps(&steps, &[ph("dddd")]).unwrap();
    let err = graph.validate().unwrap_err();
    let GraphError::Cycle(names) = &err else {
        panic!("{err}")
    };
    assert_eq!(names.first(), names.last());
    let set: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(set, BTreeSet::from(["a", "bb", "ccc"]));
    assert_eq!(names.len(), 4);
    assert!(err.to_string().contains(" -> "), "{err}");
}

#[test]
fn a_self_loop_is_a_cycle() {
    let steps: BTreeMap<String, Step> = [fake("a", &[&ph("a")])].into_iter().collect();
    let err = Graph::from_steps(&steps, &[ph("a")])
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(err, GraphError::Cycle(vec!["a".into(), "a".into()]));
}

#[test]
fn unknown_roots_and_inputs_are_errors() {
    let steps: BTreeMap<String, Step> = [fake("a", &[&ph("zz")])].into_iter().collect();
    assert!(matches!(
        Graph::from_steps(&steps, &[ph("q")]),
        Err(GraphError::UnknownRoot(_))
    ));
    let err = Graph::from_steps(&steps, &[ph("a")]).unwrap_err();
    assert!(err.to_string().contains("step `a` needs"), "{err}");
}

#[test]
fn only_reachable_steps_in_topological_order() {
    let table = StepTable::new(None);
    let text = |name: &str, t: &str, ctx: &[&String]| StepRequest {
        builder: "text".into(),
        name: name.into(),
        params: BTreeMap::from([(
            "text".to_owned(),
            StepValue::Str {
                text: t.to_owned(),
                context: ctx.iter().map(|c| (*c).clone()).collect(),
            },
        )]),
    };
    let leaf = table.add_step(text("leaf", "l", &[])).unwrap();
    let mid = table.add_step(text("mid", &leaf, &[&leaf])).unwrap();
    let top = table.add_step(text("top", &mid, &[&mid, &leaf])).unwrap();
    let _unrelated = table.add_step(text("unrelated", "u", &[])).unwrap();
    let graph = Graph::from_table(&table, std::slice::from_ref(&top))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(graph.len(), 3);
    let order: Vec<&str> = graph
        .topological()
        .iter()
        .map(|id| graph.step(*id).name.as_str())
        .collect();
    assert_eq!(order, ["leaf", "mid", "top"]);
    let leaf_id = graph.id(&leaf).unwrap();
    let chain: Vec<&str> = graph
        .chain_to(leaf_id)
        .iter()
        .map(|id| graph.step(*id).name.as_str())
        .collect();
    assert_eq!(chain.first(), Some(&"top"));
    assert_eq!(chain.last(), Some(&"leaf"));
}
