//! The step table: placeholders, deduplication, package pinning and closure.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use imago::graph::packages::MemoryIndex;
use imago::graph::step::{Step, substitute};
use imago::graph::{PinnedPackage, StepTable};
use imago_lang::hook::{StepRequest, StepValue, StoreHook};
use std::collections::{BTreeMap, BTreeSet};

fn s(text: &str) -> StepValue {
    StepValue::Str {
        text: text.to_owned(),
        context: BTreeSet::new(),
    }
}

fn with_ctx(text: &str, ctx: &[&str]) -> StepValue {
    StepValue::Str {
        text: text.to_owned(),
        context: ctx.iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn text_step(name: &str, text: StepValue) -> StepRequest {
    StepRequest {
        builder: "text".into(),
        name: name.into(),
        params: BTreeMap::from([("text".to_owned(), text)]),
    }
}

fn deb(name: &str) -> StepRequest {
    StepRequest {
        builder: "deb".into(),
        name: name.into(),
        params: BTreeMap::from([("package".to_owned(), s(name))]),
    }
}

fn pin(name: &str, depends: &[&str]) -> PinnedPackage {
    PinnedPackage {
        name: name.into(),
        version: "1.0-1".into(),
        architecture: "amd64".into(),
        size: 1234,
        sha256: "ab".repeat(32),
        depends: depends.iter().map(|d| (*d).to_owned()).collect(),
    }
}

fn index() -> MemoryIndex {
    let mut index = MemoryIndex::new();
    index.insert(pin("libc6", &["libgcc-s1"]));
    index.insert(pin("libgcc-s1", &["libc6", "gcc-12-base"]));
    index.insert(pin("gcc-12-base", &[]));
    index.insert(pin("bash", &["libc6", "base-files"]));
    index.insert(pin("base-files", &[]));
    index
}

#[test]
fn placeholders_are_deterministic_and_shaped() {
    let a = StepTable::new(None);
    let b = StepTable::new(None);
    let pa = a.add_step(text_step("motd", s("hello"))).unwrap();
    let pb = b.add_step(text_step("motd", s("hello"))).unwrap();
    assert_eq!(pa, pb);
    let rest = pa.strip_prefix("/imago/pending/").unwrap();
    let (hash, name) = rest.split_at(32);
    assert_eq!(name, "-motd");
    assert!(
        hash.bytes()
            .all(|c| b"0123456789abcdfghijklmnpqrsvwxyz".contains(&c)),
        "{hash}"
    );
    // A different text, builder or name gives a different placeholder.
    assert_ne!(pa, a.add_step(text_step("motd", s("hello!"))).unwrap());
    assert_ne!(pa, a.add_step(text_step("motd2", s("hello"))).unwrap());
}

#[test]
fn identical_requests_are_recorded_once() {
    let table = StepTable::new(None);
    let p1 = table.add_step(text_step("x", s("1"))).unwrap();
    let p2 = table.add_step(text_step("x", s("1"))).unwrap();
    assert_eq!(p1, p2);
    assert_eq!(table.len(), 1);
}

#[test]
fn context_is_part_of_the_definition_and_gives_inputs() {
    let table = StepTable::new(None);
    let dep = table.add_step(text_step("dep", s("d"))).unwrap();
    let plain = table.add_step(text_step("user", s("same"))).unwrap();
    let with = table
        .add_step(text_step("user", with_ctx("same", &[&dep])))
        .unwrap();
    assert_ne!(plain, with);
    let step = table.get(&with).unwrap();
    assert_eq!(step.inputs, BTreeSet::from([dep]));
    assert!(table.get(&plain).unwrap().inputs.is_empty());
}

#[test]
fn invalid_names_are_refused_naming_them() {
    let table = StepTable::new(None);
    for bad in ["", ".hidden", "a/b", "sp ace", &"x".repeat(300)] {
        let err = table.add_step(text_step(bad, s("x"))).unwrap_err();
        assert!(err.message.contains("invalid step name"), "{err}");
    }
}

#[test]
fn unknown_context_placeholders_are_refused() {
    let table = StepTable::new(None);
    let fake = "/imago/pending/0123456789abcdfghijklmnpqrsvwxyz0-ghost";
    let err = table
        .add_step(text_step("u", with_ctx(fake, &[fake])))
        .unwrap_err();
    assert!(err.message.contains("ghost"), "{err}");
}

#[test]
fn non_finite_floats_are_refused() {
    let table = StepTable::new(None);
    let req = StepRequest {
        builder: "text".into(),
        name: "f".into(),
        params: BTreeMap::from([("x".to_owned(), StepValue::Float(f64::NAN))]),
    };
    let err = table.add_step(req).unwrap_err();
    assert!(err.message.contains("`x`"), "{err}");
}

#[test]
fn debs_are_pinned_from_the_index() {
    let table = StepTable::new(Some(Box::new(index())));
    let p = table.add_step(deb("bash")).unwrap();
    let step = table.get(&p).unwrap();
    assert_eq!(step.builder, "deb");
    assert_eq!(step.name, "bash");
    let json = step.params_json();
    assert_eq!(json["version"], "1.0-1");
    assert_eq!(json["architecture"], "amd64");
    assert_eq!(json["size"], 1234);
    assert_eq!(json["sha256"], "ab".repeat(32));
    assert_eq!(json["package"], "bash");
    // A deb step never depends on other debs.
    assert!(step.inputs.is_empty());
}

#[test]
fn unlocked_packages_are_an_error_telling_to_lock() {
    let table = StepTable::new(Some(Box::new(index())));
    let err = table.add_step(deb("zsh")).unwrap_err();
    assert_eq!(
        err.message,
        "package `zsh` is not in imago.lock; run `imago lock FILE`"
    );
    let no_lock = StepTable::new(None);
    let err = no_lock.add_step(deb("bash")).unwrap_err();
    assert!(err.message.contains("`bash` is not in imago.lock"), "{err}");
}

#[test]
fn record_mode_collects_package_names() {
    let table = StepTable::recording();
    let a = table.add_step(deb("bash")).unwrap();
    let b = table.add_step(deb("zsh")).unwrap();
    assert!(a.ends_with("-bash") && b.ends_with("-zsh"));
    assert_eq!(
        table.requested_packages(),
        BTreeSet::from(["bash".to_owned(), "zsh".to_owned()])
    );
}

#[test]
fn packages_lists_expand_to_the_sorted_closure() {
    let table = StepTable::new(Some(Box::new(index())));
    let bash = table.add_step(deb("bash")).unwrap();
    let other = table.add_step(text_step("extra", s("x"))).unwrap();
    let req = StepRequest {
        builder: "profile".into(),
        name: "usr".into(),
        params: BTreeMap::from([(
            "packages".to_owned(),
            StepValue::List(vec![with_ctx(&other, &[&other]), with_ctx(&bash, &[&bash])]),
        )]),
    };
    let p = table.add_step(req).unwrap();
    let step = table.get(&p).unwrap();
    let StepValue::List(items) = &step.params["packages"] else {
        panic!("packages is not a list")
    };
    let names: Vec<String> = items
        .iter()
        .map(|v| match v {
            StepValue::Str { text, .. } => text.rsplit_once('-').map_or(text.clone(), |_| {
                text.strip_prefix("/imago/pending/").unwrap()[33..].to_owned()
            }),
            other => panic!("{other:?}"),
        })
        .collect();
    // The non-deb item stays first; the closure replaces the deb items,
    // sorted by package name, through the libc6 <-> libgcc-s1 cycle.
    assert_eq!(
        names,
        [
            "extra",
            "base-files",
            "bash",
            "gcc-12-base",
            "libc6",
            "libgcc-s1"
        ]
    );
    assert_eq!(step.inputs.len(), 6);
    // Every deb of the closure is a recorded step.
    assert_eq!(table.len(), 7);
}

/// The names of the packages in a step's `packages` list.
fn package_names(table: &StepTable, placeholder: &str) -> Vec<String> {
    let step = table.get(placeholder).unwrap();
    let StepValue::List(items) = &step.params["packages"] else {
        panic!("packages is not a list")
    };
    items
        .iter()
        .map(|v| match v {
            StepValue::Str { text, .. } => {
                text.strip_prefix("/imago/pending/").unwrap()[33..].to_owned()
            }
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_kernel_reads_only_the_linux_image_packages_of_its_closure() {
    let mut idx = index();
    idx.insert(pin(
        "linux-image-cloud-amd64",
        &["linux-image-6.12.1-cloud-amd64"],
    ));
    idx.insert(pin(
        "linux-image-6.12.1-cloud-amd64",
        &["kmod", "initramfs-tools"],
    ));
    idx.insert(pin("kmod", &["libc6"]));
    idx.insert(pin("initramfs-tools", &["bash"]));
    let table = StepTable::new(Some(Box::new(idx)));
    let meta = table.add_step(deb("linux-image-cloud-amd64")).unwrap();
    let packages = || StepValue::List(vec![with_ctx(&meta, &[&meta])]);
    let kernel = table
        .add_step(StepRequest {
            builder: "kernel".into(),
            name: "linux".into(),
            params: BTreeMap::from([
                ("architecture".to_owned(), s("amd64")),
                ("packages".to_owned(), packages()),
            ]),
        })
        .unwrap();
    assert_eq!(
        package_names(&table, &kernel),
        ["linux-image-6.12.1-cloud-amd64", "linux-image-cloud-amd64"]
    );
    assert_eq!(table.get(&kernel).unwrap().inputs.len(), 2);
    // A profile of the same package reads its whole closure.
    let profile = table
        .add_step(StepRequest {
            builder: "profile".into(),
            name: "usr".into(),
            params: BTreeMap::from([("packages".to_owned(), packages())]),
        })
        .unwrap();
    assert_eq!(
        package_names(&table, &profile),
        [
            "base-files",
            "bash",
            "gcc-12-base",
            "initramfs-tools",
            "kmod",
            "libc6",
            "libgcc-s1",
            "linux-image-6.12.1-cloud-amd64",
            "linux-image-cloud-amd64",
        ]
    );
}

#[test]
fn a_missing_dependency_names_who_needs_it() {
    let mut idx = index();
    idx.insert(pin("broken", &["nowhere"]));
    let table = StepTable::new(Some(Box::new(idx)));
    let broken = table.add_step(deb("broken")).unwrap();
    let req = StepRequest {
        builder: "profile".into(),
        name: "usr".into(),
        params: BTreeMap::from([(
            "packages".to_owned(),
            StepValue::List(vec![with_ctx(&broken, &[&broken])]),
        )]),
    };
    let err = table.add_step(req).unwrap_err();
    assert!(err.message.contains("`nowhere`"), "{err}");
    assert!(err.message.contains("needed by `broken`"), "{err}");
}

#[test]
fn substitution_reaches_nested_strings_and_keys() {
    let table = StepTable::new(None);
    let dep = table.add_step(text_step("dep", s("d"))).unwrap();
    let nested = StepValue::Attrs(BTreeMap::from([
        (
            "list".to_owned(),
            StepValue::List(vec![with_ctx(&format!("{dep}/bin/sh and {dep}"), &[&dep])]),
        ),
        ("n".to_owned(), StepValue::Int(3)),
    ]));
    let step = Step::new(StepRequest {
        builder: "tree".into(),
        name: "t".into(),
        params: BTreeMap::from([("deep".to_owned(), nested)]),
    })
    .unwrap();
    let real = "/imago/store/0123456789abcdfghijklmnpqrsvwxyz0-dep".to_owned();
    let out = substitute(
        &step.params_json(),
        &BTreeMap::from([(dep.clone(), real.clone())]),
    );
    assert_eq!(out["deep"]["list"][0], format!("{real}/bin/sh and {real}"));
    assert_eq!(out["deep"]["n"], 3);
}

mod canonical {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = StepValue> {
        let ctx = prop::collection::btree_set("[a-c]", 0..2).prop_map(|s| {
            s.into_iter()
                .map(|c| format!("/imago/pending/{c}"))
                .collect()
        });
        let leaf = prop_oneof![
            Just(StepValue::Null),
            any::<bool>().prop_map(StepValue::Bool),
            (-3i64..3).prop_map(StepValue::Int),
            (-3i32..3).prop_map(|i| StepValue::Float(f64::from(i) / 2.0)),
            ("[ab\"\\[\\]]{0,3}", ctx).prop_map(|(text, context)| StepValue::Str { text, context }),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(StepValue::List),
                prop::collection::btree_map("[ab]", inner, 0..3).prop_map(StepValue::Attrs),
            ]
        })
    }

    fn step(v: StepValue) -> Step {
        Step {
            placeholder: String::new(),
            builder: "b".into(),
            name: "n".into(),
            params: BTreeMap::from([("p".to_owned(), v)]),
            inputs: BTreeSet::new(),
        }
    }

    proptest! {
        /// Two definitions share a canonical form exactly when they are equal,
        /// so distinct steps never share a placeholder.
        #[test]
        fn canonical_forms_are_injective(a in value(), b in value()) {
            let (ca, cb) = (step(a.clone()).canonical(), step(b.clone()).canonical());
            prop_assert_eq!(ca == cb, a == b, "{} vs {}", ca, cb);
        }
    }
}

#[test]
fn substitution_handles_adjacent_text_and_unknown_placeholders() {
    let table = StepTable::new(None);
    let x = table.add_step(text_step("x", s("1"))).unwrap();
    let xy = table.add_step(text_step("x.conf", s("2"))).unwrap();
    let rx = "/imago/store/0123456789abcdfghijklmnpqrsvwxyz0-x".to_owned();
    let rxy = "/imago/store/0123456789abcdfghijklmnpqrsvwxyz1-x.conf".to_owned();
    let paths = BTreeMap::from([(x.clone(), rx.clone()), (xy.clone(), rxy.clone())]);
    let value = serde_json::json!({
        "a": format!("{x}.conf {xy}/etc {x}{x}"),
        "b": "/imago/pending/short and /imago/pending/",
    });
    let out = substitute(&value, &paths);
    assert_eq!(out["a"], format!("{rx}.conf {rxy}/etc {rx}{rx}"));
    assert_eq!(out["b"], value["b"]);
}
