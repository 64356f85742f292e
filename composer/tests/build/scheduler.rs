//! The scheduler: order, parallelism, caching, early cutoff, failures.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use imago::builders::{BuildContext, BuildError, Builder, ResolvedStep};
use imago::graph::registry;
use imago::graph::{
    BuildOptions, BuildSummary, BuilderSet, Graph, ScheduleError, StepFailure, StepFailureCause,
    StepTable, ValidatedGraph, build,
};
use imago::store::Store;
use imago_lang::hook::{StepRequest, StepValue, StoreHook};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Writes `text` (followed by its call count when `unreproducible`);
/// sleeps `sleep_ms` first; fails when `fail` is true, panics when `panic`
/// is; ignores `noise`.
/// Counts its invocations.
#[derive(Default)]
struct TestBuilder {
    calls: AtomicUsize,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TestParams {
    text: String,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    panic: bool,
    #[serde(default)]
    unreproducible: bool,
    #[serde(default)]
    #[allow(dead_code)]
    weight: u64,
    #[serde(default)]
    #[allow(dead_code)]
    weighs_inputs: bool,
    #[serde(default)]
    #[allow(dead_code)]
    noise: i64,
}

impl Builder for TestBuilder {
    /// `weight`, or with `weighs_inputs` the sum of the inputs' weights.
    fn weight(&self, params: &BTreeMap<String, StepValue>, inputs: &[u64]) -> u64 {
        match (params.get("weight"), params.get("weighs_inputs")) {
            (_, Some(StepValue::Bool(true))) => inputs.iter().sum(),
            (Some(StepValue::Int(n)), _) => *n as u64,
            _ => 0,
        }
    }

    fn build(
        &self,
        _ctx: &BuildContext,
        step: &ResolvedStep,
        out: &Path,
        log: &mut dyn Write,
    ) -> Result<(), BuildError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let p: TestParams = step.params()?;
        std::thread::sleep(Duration::from_millis(p.sleep_ms));
        writeln!(log, "building {} now", step.name).unwrap();
        if p.fail {
            return Err(BuildError::Failed("told to fail".into()));
        }
        if p.panic {
            panic!("told to panic");
        }
        let text = if p.unreproducible {
            format!("{} {call}", p.text)
        } else {
            p.text
        };
        std::fs::write(out, text).unwrap();
        Ok(())
    }
}

#[derive(Default)]
struct Builders {
    test: TestBuilder,
}

impl BuilderSet for Builders {
    fn get(&self, name: &str) -> Option<&dyn Builder> {
        match name {
            "test" => Some(&self.test),
            other => registry::builder(other),
        }
    }
}

impl Builders {
    fn calls(&self) -> usize {
        self.test.calls.load(Ordering::SeqCst)
    }
}

fn s(text: &str, ctx: &[&String]) -> StepValue {
    StepValue::Str {
        text: text.to_owned(),
        context: ctx.iter().map(|c| (*c).clone()).collect(),
    }
}

fn add(table: &StepTable, name: &str, params: Vec<(&str, StepValue)>) -> String {
    table
        .add_step(StepRequest {
            builder: "test".into(),
            name: name.into(),
            params: params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        })
        .unwrap()
}

/// `text` mentioning every dep (so it depends on them).
fn text_of(deps: &[&String]) -> StepValue {
    let text: Vec<&str> = deps.iter().map(|d| d.as_str()).collect();
    s(&format!("deps: {}", text.join(" ")), deps)
}

fn graph(table: &StepTable, roots: &[&String]) -> ValidatedGraph {
    let roots: Vec<String> = roots.iter().map(|r| (*r).clone()).collect();
    Graph::from_table(table, &roots)
        .unwrap()
        .validate()
        .unwrap()
}

fn opts(jobs: usize) -> BuildOptions {
    BuildOptions {
        jobs,
        ..BuildOptions::default()
    }
}

#[test]
fn steps_start_after_their_inputs_end_and_outputs_are_substituted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let a = add(&table, "a", vec![("text", s("A", &[]))]);
    let b = add(&table, "b", vec![("text", s("B", &[]))]);
    let c = add(&table, "c", vec![("text", text_of(&[&a, &b]))]);
    let d = add(&table, "d", vec![("text", text_of(&[&c, &a]))]);
    let g = graph(&table, &[&d]);
    let builders = Builders::default();
    let summary = build(&g, &store, &builders, &opts(2)).unwrap();
    assert_eq!(summary.built, 4);
    let by_name: BTreeMap<&str, _> = summary.steps.iter().map(|r| (r.name.as_str(), r)).collect();
    for (step, inputs) in [("c", vec!["a", "b"]), ("d", vec!["c", "a"])] {
        for input in inputs {
            assert!(
                by_name[step].start_ms >= by_name[input].end_ms,
                "{step} started before {input} ended"
            );
        }
    }
    // d's text names c's and a's real paths.
    let out = &summary.outputs[0];
    let text = std::fs::read_to_string(&out.physical).unwrap();
    assert_eq!(
        text,
        format!("deps: {} {}", by_name["c"].path, by_name["a"].path)
    );
    assert!(out.path.starts_with("/imago/store/") && out.path.ends_with("-d"));
    // c refers to a and b.
    let c_path: imago::store::StorePath = by_name["c"]
        .path
        .strip_prefix("/imago/store/")
        .unwrap()
        .parse()
        .unwrap();
    let refs: BTreeSet<String> = store
        .references(&c_path)
        .unwrap()
        .iter()
        .map(|p| p.to_absolute())
        .collect();
    assert_eq!(
        refs,
        BTreeSet::from([by_name["a"].path.clone(), by_name["b"].path.clone()])
    );
}

#[test]
fn independent_steps_run_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let x = add(
        &table,
        "x",
        vec![("text", s("x", &[])), ("sleep_ms", StepValue::Int(400))],
    );
    let y = add(
        &table,
        "y",
        vec![("text", s("y", &[])), ("sleep_ms", StepValue::Int(400))],
    );
    let g = graph(&table, &[&x, &y]);
    let summary = build(&g, &store, &Builders::default(), &opts(2)).unwrap();
    let (rx, ry) = (&summary.steps[0], &summary.steps[1]);
    assert!(
        rx.start_ms < ry.end_ms && ry.start_ms < rx.end_ms,
        "no overlap: {rx:?} {ry:?}"
    );
    assert_eq!(summary.outputs.len(), 2);
}

#[test]
fn a_second_build_is_all_cached_and_gives_the_same_paths() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let a = add(&table, "a", vec![("text", s("A", &[]))]);
    let b = add(&table, "b", vec![("text", text_of(&[&a]))]);
    let g = graph(&table, &[&b]);
    let builders = Builders::default();
    let first = build(&g, &store, &builders, &opts(2)).unwrap();
    assert_eq!((first.built, first.cached, builders.calls()), (2, 0, 2));
    let second = build(&g, &store, &builders, &opts(2)).unwrap();
    assert_eq!((second.built, second.cached, builders.calls()), (0, 2, 2));
    assert_eq!(first.outputs, second.outputs);
    // Another store gives the same paths: outputs are content-addressed.
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(dir2.path()).unwrap();
    let third = build(&g, &store2, &builders, &opts(1)).unwrap();
    assert_eq!(first.outputs[0].path, third.outputs[0].path);
}

#[test]
fn an_input_rebuilt_to_identical_output_does_not_rebuild_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let builders = Builders::default();
    let run = |noise: i64| {
        let table = StepTable::new(None);
        let input = add(
            &table,
            "input",
            vec![("text", s("same", &[])), ("noise", StepValue::Int(noise))],
        );
        let user = add(&table, "user", vec![("text", text_of(&[&input]))]);
        build(&graph(&table, &[&user]), &store, &builders, &opts(1)).unwrap()
    };
    let first = run(1);
    assert_eq!(builders.calls(), 2);
    let second = run(2);
    // The input's definition changed, so it was rebuilt; its output did not,
    // so the dependent's key did not change and it came from the cache.
    assert_eq!(builders.calls(), 3);
    assert_eq!((second.built, second.cached), (1, 1));
    let user = second.steps.iter().find(|r| r.name == "user").unwrap();
    assert!(user.cached);
    assert_eq!(
        first.outputs,
        second
            .outputs
            .iter()
            .map(|o| {
                let mut o = o.clone();
                o.placeholder = first.outputs[0].placeholder.clone();
                o
            })
            .collect::<Vec<_>>()
    );
}

fn failing_graph(table: &StepTable) -> (ValidatedGraph, usize) {
    let bad = add(
        table,
        "bad",
        vec![("text", s("", &[])), ("fail", StepValue::Bool(true))],
    );
    let mid = add(table, "mid", vec![("text", text_of(&[&bad]))]);
    let mut leaves = vec![mid];
    for i in 0..6 {
        leaves.push(add(
            table,
            &format!("ok{i}"),
            vec![
                ("text", s(&i.to_string(), &[])),
                ("sleep_ms", StepValue::Int(30)),
            ],
        ));
    }
    let refs: Vec<&String> = leaves.iter().collect();
    let root = add(table, "root", vec![("text", text_of(&refs))]);
    (graph(table, &[&root]), 6)
}

/// The failures and summary of a build that must fail.
fn failed(result: Result<BuildSummary, ScheduleError>) -> (Vec<StepFailure>, Box<BuildSummary>) {
    match result {
        Err(ScheduleError::Failed { failures, summary }) => (failures, summary),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("the build succeeded"),
    }
}

#[test]
fn the_first_failure_stops_new_work_and_reports_the_chain_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let (g, _) = failing_graph(&table);
    let (failures, summary) = failed(build(&g, &store, &Builders::default(), &opts(1)));
    assert_eq!(failures.len(), 1);
    let f = &failures[0];
    assert_eq!(f.name, "bad");
    assert_eq!(f.chain, ["root", "mid", "bad"]);
    assert!(f.log.contains("building bad now"), "{}", f.log);
    let report = f.report();
    assert!(report.contains("told to fail"), "{report}");
    assert!(report.contains("root <- mid <- bad"), "{report}");
    // mid and root can never run; with one job, at most the leaves that
    // started before `bad` ran.
    assert!(summary.skipped >= 2);
    assert_eq!(summary.built + summary.skipped + 1, g.len());
    assert!(summary.outputs.is_empty());
}

#[test]
fn keep_going_builds_everything_not_downstream_of_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let (g, independent) = failing_graph(&table);
    let options = BuildOptions {
        keep_going: true,
        ..opts(2)
    };
    let (failures, summary) = failed(build(&g, &store, &Builders::default(), &options));
    assert_eq!(failures.len(), 1);
    assert_eq!(summary.built, independent);
    assert_eq!(summary.skipped, 2);
}

#[test]
fn a_panicking_builder_fails_its_step_and_its_worker_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let mut roots = vec![add(
        &table,
        "boom",
        vec![("text", s("", &[])), ("panic", StepValue::Bool(true))],
    )];
    for i in 0..6 {
        roots.push(add(
            &table,
            &format!("ok{i}"),
            vec![("text", s(&i.to_string(), &[]))],
        ));
    }
    let refs: Vec<&String> = roots.iter().collect();
    let g = graph(&table, &refs);
    let options = BuildOptions {
        keep_going: true,
        ..opts(1)
    };
    // One worker: the steps after the panic can only be built by the same
    // worker loop, so this also shows that a panic does not end it.
    let (failures, summary) = failed(build(&g, &store, &Builders::default(), &options));
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].name, "boom");
    assert!(
        matches!(&failures[0].cause, StepFailureCause::Panicked(m) if m == "told to panic"),
        "{}",
        failures[0].report()
    );
    assert_eq!(summary.built, 6);
    assert_eq!(summary.skipped, 0);
}

#[test]
fn an_unknown_builder_names_the_builder_and_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let p = table
        .add_step(StepRequest {
            builder: "frobnicate".into(),
            name: "thing".into(),
            params: BTreeMap::new(),
        })
        .unwrap();
    let err = build(
        &graph(&table, &[&p]),
        &store,
        &Builders::default(),
        &opts(1),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "step `thing` uses builder `frobnicate`, which does not exist"
    );
}

#[test]
fn a_placeholder_outside_the_context_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let a = add(&table, "a", vec![("text", s("A", &[]))]);
    // Mentions a's placeholder without depending on it.
    let b = add(&table, "b", vec![("text", s(&format!("{a}/x"), &[]))]);
    let err = build(
        &graph(&table, &[&b]),
        &store,
        &Builders::default(),
        &opts(1),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not in the context"), "{err}");
}

#[test]
fn the_summary_serializes_to_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let a = add(&table, "a", vec![("text", s("A", &[]))]);
    let summary = build(
        &graph(&table, &[&a]),
        &store,
        &Builders::default(),
        &opts(1),
    )
    .unwrap();
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["built"], 1);
    assert_eq!(json["outputs"][0]["path"], summary.outputs[0].path);
    assert!(
        json["steps"][0]["key"]
            .as_str()
            .unwrap()
            .starts_with("blake3:")
    );
}

fn attrs(pairs: Vec<(&str, StepValue)>) -> StepValue {
    StepValue::Attrs(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A `tree` step of `entries`.
fn tree_step(table: &StepTable, name: &str, entries: Vec<(&str, StepValue)>) -> String {
    table
        .add_step(StepRequest {
            builder: "tree".into(),
            name: name.into(),
            params: BTreeMap::from([("entries".to_owned(), attrs(entries))]),
        })
        .unwrap()
}

#[test]
fn trees_and_profiles_hard_link_into_the_real_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let tree = |name: &str, entries| tree_step(&table, name, entries);
    let a = tree(
        "a",
        vec![
            (
                "bin/a",
                attrs(vec![
                    ("text", s("A", &[])),
                    ("executable", StepValue::Bool(true)),
                ]),
            ),
            ("share/x", attrs(vec![("text", s("same", &[]))])),
        ],
    );
    let b = tree(
        "b",
        vec![
            ("bin/b", attrs(vec![("symlink", s("a", &[]))])),
            ("share/x", attrs(vec![("text", s("same", &[]))])),
        ],
    );
    let usr = table
        .add_step(StepRequest {
            builder: "profile".into(),
            name: "usr".into(),
            params: BTreeMap::from([(
                "packages".to_owned(),
                StepValue::List(vec![s(&a, &[&a]), s(&b, &[&b])]),
            )]),
        })
        .unwrap();
    let top = tree(
        "top",
        vec![("sw", attrs(vec![("source", s(&usr, &[&usr]))]))],
    );
    let summary = build(
        &graph(&table, &[&top]),
        &store,
        &Builders::default(),
        &opts(2),
    )
    .unwrap();
    assert_eq!(summary.built, 4);
    let top_dir = PathBuf::from(&summary.outputs[0].physical);
    assert_eq!(
        std::fs::read_to_string(top_dir.join("sw/bin/a")).unwrap(),
        "A"
    );
    assert_eq!(
        std::fs::read_link(top_dir.join("sw/bin/b")).unwrap(),
        Path::new("a")
    );
    // Building again is fully cached and gives the same path.
    let again = build(
        &graph(&table, &[&top]),
        &store,
        &Builders::default(),
        &opts(2),
    )
    .unwrap();
    assert_eq!((again.built, again.cached), (0, 4));
    assert_eq!(again.outputs, summary.outputs);
}

#[test]
fn two_builds_of_the_same_steps_at_once_build_each_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let table = StepTable::new(None);
    let slow = add(
        &table,
        "slow",
        vec![("text", s("S", &[])), ("sleep_ms", StepValue::Int(300))],
    );
    let top = add(&table, "top", vec![("text", text_of(&[&slow]))]);
    let g = graph(&table, &[&top]);
    let builders = Builders::default();
    let outputs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (g, builders, path) = (&g, &builders, dir.path());
                scope.spawn(move || {
                    // Two `Store`s: as two processes would have.
                    let store = Store::open(path).unwrap();
                    build(g, &store, builders, &opts(1)).unwrap().outputs
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(builders.calls(), 2, "each step must be built exactly once");
}

#[test]
fn a_failed_step_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let bad = table
        .add_step(StepRequest {
            builder: "tree".into(),
            name: "bad".into(),
            params: BTreeMap::from([(
                "entries".to_owned(),
                attrs(vec![
                    ("ok/file", attrs(vec![("text", s("x", &[]))])),
                    (
                        "z",
                        attrs(vec![("source", s("/imago/store/elsewhere", &[]))]),
                    ),
                ]),
            )]),
        })
        .unwrap();
    build(
        &graph(&table, &[&bad]),
        &store,
        &Builders::default(),
        &opts(1),
    )
    .unwrap_err();
    let leftovers: Vec<_> = walkdir::WalkDir::new(dir.path().join(".imago/tmp"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() == "out" || e.file_name() == "file")
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Nothing but the store's own state directory.
    let objects: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".imago")
        .collect();
    assert!(objects.is_empty(), "{objects:?}");
}

#[test]
fn a_profile_never_writes_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let tree = |name: &str, entries| tree_step(&table, name, entries);
    let target = outside.path().to_str().unwrap();
    let linker = tree(
        "linker",
        vec![("d", attrs(vec![("symlink", s(target, &[]))]))],
    );
    let filler = tree("filler", vec![("d/x", attrs(vec![("text", s("x", &[]))]))]);
    let profile = |name: &str, prio: i64| {
        table
            .add_step(StepRequest {
                builder: "profile".into(),
                name: name.into(),
                params: BTreeMap::from([(
                    "packages".to_owned(),
                    StepValue::List(vec![
                        attrs(vec![
                            ("path", s(&linker, &[&linker])),
                            ("priority", StepValue::Int(prio)),
                        ]),
                        s(&filler, &[&filler]),
                    ]),
                )]),
            })
            .unwrap()
    };
    // Equal priorities: a conflict, reported.
    let same = profile("same", 5);
    let err = build(
        &graph(&table, &[&same]),
        &store,
        &Builders::default(),
        &opts(1),
    )
    .unwrap_err();
    assert!(err.to_string().contains("conflict at `d`"), "{err}");
    // The symlink wins: the other tree's `d/x` is dropped, not written
    // through the link.
    let wins = profile("wins", 1);
    let summary = build(
        &graph(&table, &[&wins]),
        &store,
        &Builders::default(),
        &opts(1),
    )
    .unwrap();
    let out = PathBuf::from(&summary.outputs[0].physical);
    assert_eq!(std::fs::read_link(out.join("d")).unwrap(), outside.path());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

/// The physical path of a step's output in a summary.
fn output_of(store: &Store, summary: &imago::graph::BuildSummary, name: &str) -> PathBuf {
    let report = summary.steps.iter().find(|r| r.name == name).unwrap();
    let path: imago::store::StorePath = report
        .path
        .strip_prefix("/imago/store/")
        .unwrap()
        .parse()
        .unwrap();
    store.physical(&path)
}

/// Replaces a registered (read-only) file's contents.
fn tamper(file: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(file, text).unwrap();
}

#[test]
fn repair_rebuilds_corrupted_and_deleted_outputs_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let a = add(&table, "a", vec![("text", s("A", &[]))]);
    let b = add(&table, "b", vec![("text", s("B", &[]))]);
    let c = add(&table, "c", vec![("text", text_of(&[&a, &b]))]);
    let g = graph(&table, &[&c]);
    let builders = Builders::default();
    let first = build(&g, &store, &builders, &opts(2)).unwrap();
    let (a_out, b_out) = (
        output_of(&store, &first, "a"),
        output_of(&store, &first, "b"),
    );
    tamper(&a_out, "corrupted");
    std::fs::remove_file(&b_out).unwrap();
    assert_eq!(store.verify(false).unwrap().problems.len(), 2);

    // Without --repair the cache answers, broken or not.
    let plain = build(&g, &store, &builders, &opts(2)).unwrap();
    assert_eq!((plain.cached, plain.repaired, builders.calls()), (3, 0, 3));

    let repair = BuildOptions {
        repair: true,
        ..opts(2)
    };
    let repaired = build(&g, &store, &builders, &repair).unwrap();
    assert_eq!(
        (repaired.built, repaired.cached, repaired.repaired),
        (2, 1, 2)
    );
    assert_eq!(builders.calls(), 5, "only the two broken steps ran again");
    assert_eq!(first.outputs, repaired.outputs, "same paths as before");
    assert_eq!(std::fs::read_to_string(&a_out).unwrap(), "A");
    assert_eq!(std::fs::read_to_string(&b_out).unwrap(), "B");
    assert!(store.verify(false).unwrap().problems.is_empty());
    let flags: BTreeMap<&str, bool> = repaired
        .steps
        .iter()
        .map(|r| (r.name.as_str(), r.repaired))
        .collect();
    assert_eq!(
        flags,
        BTreeMap::from([("a", true), ("b", true), ("c", false)])
    );
}

#[test]
fn repair_with_an_unreproducible_builder_keeps_the_broken_copy_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let a = add(
        &table,
        "a",
        vec![
            ("text", s("A", &[])),
            ("unreproducible", StepValue::Bool(true)),
        ],
    );
    let g = graph(&table, &[&a]);
    let builders = Builders::default();
    let first = build(&g, &store, &builders, &opts(1)).unwrap();
    let a_out = output_of(&store, &first, "a");
    tamper(&a_out, "corrupted");
    let repair = BuildOptions {
        repair: true,
        ..opts(1)
    };
    let Err(ScheduleError::Failed { failures, .. }) = build(&g, &store, &builders, &repair) else {
        panic!("repairing with a builder that gives other bytes must fail");
    };
    let message = failures[0].to_string();
    assert!(message.contains("gave different contents"), "{message}");
    assert!(message.contains("not reproducible"), "{message}");
    assert_eq!(std::fs::read_to_string(&a_out).unwrap(), "corrupted");
    assert_eq!(store.verify(false).unwrap().problems.len(), 1);
    // Nothing of the failed rebuild is left behind.
    let left: Vec<_> = walkdir::WalkDir::new(dir.path().join(".imago/tmp"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() == "out")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A step without inputs that weighs `weight`.
fn weighted(table: &StepTable, name: &str, weight: i64) -> String {
    add(
        table,
        name,
        vec![("text", s(name, &[])), ("weight", StepValue::Int(weight))],
    )
}

/// The names of the steps of `summary` in the order they started.
fn start_order(summary: &BuildSummary) -> Vec<&str> {
    let mut started: Vec<_> = summary.steps.iter().collect();
    started.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    started.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn the_ready_step_with_the_heaviest_work_ahead_starts_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let step = |name: &str, weight: i64| weighted(&table, name, weight);
    let light = step("light", 1);
    let heavy = step("heavy", 500);
    let middle = step("middle", 30);
    let unweighted = step("unweighted", 0);
    // `after` becomes ready when `light` is built, and outweighs the rest:
    // `light` has the heaviest chain ahead of it (901).
    let after = add(
        &table,
        "after",
        vec![
            ("text", text_of(&[&light])),
            ("weight", StepValue::Int(900)),
        ],
    );
    let g = graph(&table, &[&light, &heavy, &middle, &unweighted, &after]);
    let summary = build(&g, &store, &Builders::default(), &opts(1)).unwrap();
    let order = start_order(&summary);
    // `after` may start before or after `middle` or `unweighted`: it is
    // ready only once `light` is registered, which the commit thread does
    // meanwhile; once ready it goes first.
    assert_eq!(order[..2], ["light", "heavy"], "{order:?}");
    let rest: Vec<&str> = order[2..]
        .iter()
        .copied()
        .filter(|n| *n != "after")
        .collect();
    assert_eq!(rest, ["middle", "unweighted"], "{order:?}");
    let after_at = order.iter().position(|n| *n == "after").unwrap();
    assert!(after_at >= 2, "{order:?}");
}

/// As a kernel waits for every package of its closure, the small ones
/// included: they start before a larger package that only a light step
/// reads, so the kernel does not start last.
#[test]
fn the_inputs_of_a_long_step_start_before_heavier_steps_off_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let step = |name: &str, weight: i64| weighted(&table, name, weight);
    let image = step("image", 700);
    let small = step("small", 5);
    let other = step("other", 400);
    let kernel = add(
        &table,
        "kernel",
        vec![
            ("text", text_of(&[&image, &small])),
            ("weighs_inputs", StepValue::Bool(true)),
        ],
    );
    let profile = add(&table, "profile", vec![("text", text_of(&[&other]))]);
    let g = graph(&table, &[&kernel, &profile]);
    let summary = build(&g, &store, &Builders::default(), &opts(1)).unwrap();
    let order = start_order(&summary);
    // small: 5 + 705 = 710 > other: 400. The kernel, once ready, outranks
    // `other` (705 > 400), but it may become ready after `other` started.
    assert_eq!(order[..2], ["image", "small"], "{order:?}");
    assert!(
        order[2..] == ["kernel", "other", "profile"]
            || order[2..] == ["other", "kernel", "profile"]
            || order[2..] == ["other", "profile", "kernel"],
        "{order:?}"
    );
}

#[test]
fn builders_get_the_closure_of_the_inputs_which_a_tree_can_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let a = add(&table, "a", vec![("text", s("A", &[]))]);
    let b = add(&table, "b", vec![("text", text_of(&[&a]))]);
    let c = add(&table, "c", vec![("text", text_of(&[&b]))]);
    let tree = |name: &str, entries| tree_step(&table, name, entries);
    let listing = vec![("closure", attrs(vec![("closure", StepValue::Bool(true))]))];
    let top = tree(
        "top",
        vec![
            listing[0].clone(),
            ("c", attrs(vec![("symlink", s(&c, &[&c]))])),
        ],
    );
    let alone = tree("alone", listing);
    let builders = Builders::default();
    let summary = build(&graph(&table, &[&top, &alone]), &store, &builders, &opts(2)).unwrap();
    let path = |name: &str| {
        summary
            .steps
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .path
            .clone()
    };
    // The only input is c; a and b come in through it. Sorted, one a line.
    let mut want = vec![path("a"), path("b"), path("c")];
    want.sort();
    let top_dir = PathBuf::from(&summary.outputs[0].physical);
    assert_eq!(
        std::fs::read_to_string(top_dir.join("closure")).unwrap(),
        format!("{}\n", want.join("\n"))
    );
    // A step without inputs lists nothing.
    let alone_dir = PathBuf::from(&summary.outputs[1].physical);
    assert_eq!(std::fs::read(alone_dir.join("closure")).unwrap(), b"");
    // The tree refers to exactly what it lists, so its closure is itself
    // and that list: closures, images and GC are what they were.
    let top_path: imago::store::StorePath = path("top")
        .strip_prefix("/imago/store/")
        .unwrap()
        .parse()
        .unwrap();
    let refs: Vec<String> = store
        .references(&top_path)
        .unwrap()
        .iter()
        .map(|p| p.to_absolute())
        .collect();
    assert_eq!(refs, want);
    // Cached the second time, with the same outputs.
    let again = build(&graph(&table, &[&top, &alone]), &store, &builders, &opts(2)).unwrap();
    assert_eq!((again.built, again.cached), (0, 5));
    assert_eq!(again.outputs, summary.outputs);
}

#[test]
fn the_closure_is_not_part_of_the_cache_key() {
    let step = ResolvedStep {
        builder: "tree".into(),
        name: "t".into(),
        params: serde_json::json!({ "entries": { "closure": { "closure": true } } }),
        inputs: vec![],
        closure: vec![],
    };
    let with_closure = ResolvedStep {
        closure: vec!["/imago/store/0123456789abcdfghijklmnpqrsvwxyz0-x".into()],
        ..step.clone()
    };
    let tree = registry::builder("tree").unwrap();
    assert_eq!(
        imago::graph::scheduler::cache_key(tree, &step, None),
        imago::graph::scheduler::cache_key(tree, &with_closure, None)
    );
}

/// A substituter that has nothing, asks for `lookups` lookups in flight,
/// and takes `wait` to answer each; it notes how many were in flight at
/// most.
struct SlowNothing {
    lookups: usize,
    wait: Duration,
    in_flight: AtomicUsize,
    most: AtomicUsize,
    asked: AtomicUsize,
}

impl SlowNothing {
    fn new(lookups: usize, wait_ms: u64) -> SlowNothing {
        SlowNothing {
            lookups,
            wait: Duration::from_millis(wait_ms),
            in_flight: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            asked: AtomicUsize::new(0),
        }
    }
}

impl imago::graph::Substituter for SlowNothing {
    fn lookup(
        &self,
        _key: &imago::store::Blake3Digest,
        _step: &str,
        _warn: &mut dyn FnMut(String),
    ) -> Option<imago::graph::Substitution> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.wait);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        None
    }

    fn lookups_in_flight(&self) -> usize {
        self.lookups
    }

    fn fetch(
        &self,
        _store: &Store,
        _key: &imago::store::Blake3Digest,
        _found: &imago::graph::Substitution,
        _step: &str,
        _warn: &mut dyn FnMut(String),
    ) -> Result<(), Option<imago::store::StorePath>> {
        Err(None)
    }
}

#[test]
fn lookups_run_beside_the_build_slots_and_hand_what_none_has_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let leaves: Vec<String> = (0..8)
        .map(|i| {
            add(
                &table,
                &format!("leaf{i}"),
                vec![("text", s(&i.to_string(), &[]))],
            )
        })
        .collect();
    let refs: Vec<&String> = leaves.iter().collect();
    let root = add(&table, "root", vec![("text", text_of(&refs))]);
    let g = graph(&table, &[&root]);
    let nothing = SlowNothing::new(4, 40);
    let summary =
        imago::graph::build_with(&g, &store, &Builders::default(), &opts(1), &nothing).unwrap();
    assert_eq!(summary.built, g.len());
    assert_eq!(nothing.asked.load(Ordering::SeqCst), g.len());
    // One build slot, and more lookups than that at once.
    assert!(
        nothing.most.load(Ordering::SeqCst) > 1,
        "one lookup at a time"
    );
    assert!(nothing.most.load(Ordering::SeqCst) <= 4 + 1);
    // The same outputs as a build without substituter.
    let again = build(&g, &store, &Builders::default(), &opts(1)).unwrap();
    assert_eq!(again.cached, g.len());
}

#[test]
fn a_failure_skips_the_steps_lookups_resolved_and_releases_their_locks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let table = StepTable::new(None);
    let (g, _) = failing_graph(&table);
    let nothing = SlowNothing::new(8, 5);
    let (failures, summary) = failed(imago::graph::build_with(
        &g,
        &store,
        &Builders::default(),
        &opts(1),
        &nothing,
    ));
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].name, "bad");
    assert_eq!(summary.built + summary.skipped + 1, g.len());
    assert!(summary.skipped >= 2);
    // Nothing stays locked: the same store builds the rest at once.
    let options = BuildOptions {
        keep_going: true,
        ..opts(2)
    };
    let (failures, _) = failed(build(&g, &store, &Builders::default(), &options));
    assert_eq!(failures.len(), 1);
}
