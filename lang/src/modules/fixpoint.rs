//! The config fixpoint: one evaluation of a list of modules.
//!
//! [`Fixpoint::evaluate`] loads the modules (collect.rs), builds the option
//! tree from their declarations (declare.rs), and then builds `config`: a
//! tree of sets mirroring the option tree whose leaves are lazily computed
//! values ([`Value::lazy`]). Forcing `config.a.b` merges the definitions of
//! option `a.b` (merge.rs) — and that merge may read other options through
//! the same `config`, which is what makes it a fixpoint. Module functions are
//! called with this `config` before it is complete; they only see it when
//! they force it.
//!
//! Definitions reach an option through *partitions*: the definitions of a
//! namespace (every module's `config`, then `config.services`, ...) are split
//! by attribute name, pushing `mkIf`, `mkMerge` and `mkOverride` down into
//! the attributes as NixOS does. Each namespace is partitioned at most once,
//! on demand. While an evaluation is checked, a name that is not declared
//! is recorded as a problem (problems.rs) and left out, so that every
//! unknown option is reported in one pass.
//!
//! Aliases (declare.rs, `Alias`) receive definitions like options. The
//! definitions of an option are its own plus those of every alias or
//! renamed name that points at it; the alias's namespace is partitioned on
//! its own, so forwarding never needs a partition to depend on itself.
//! Reading an alias in `config` reads its target.
//!
//! A system evaluation ([`Fixpoint::evaluate_all`]) then merges the
//! options the user's files define (check.rs), so that their errors and the
//! submodule evaluations' unknown options (`users.users.alice.x`) come out
//! in the same run.
//!
//! A stack of the options being merged (shared with submodule evaluations)
//! turns the evaluator's "infinite recursion" into the chain of options
//! involved.
//!
//! Memory: `config` refers to the fixpoint (its lazy values merge through
//! it) and the fixpoint holds the modules, whose functions captured
//! `config`: these `Rc` cycles keep an evaluation alive until the process
//! ends. Evaluations are one-shot (a CLI command, a build), so this is
//! accepted rather than complicating every value with weak references.

use crate::eval::error::ErrorKind;
use crate::eval::{Attrs, Evaluator, Value};
use crate::modules::aliases;
use crate::modules::collect::{Collector, Module, Source};
use crate::modules::declare::{Alias, Namespace, Node, OptionDecl, declare};
use crate::modules::error::{CycleStep, ModuleError, Site};
use crate::modules::merge::{self, Def, Dropped, OPTION_DEFAULT_PRIORITY, Property};
use crate::modules::path::OptionPath;
use crate::modules::problems::{self, Problem, Report};
use crate::modules::types::Type;
use smol_str::SmolStr;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::{Rc, Weak};

/// State shared by an evaluation and every submodule evaluation inside it.
pub struct Shared {
    pub lib: Value,
    /// The options being merged right now, outermost first.
    pub stack: RefCell<Vec<CycleStep>>,
    /// Each evaluation's `config` set (by address), so that code walking a
    /// configuration can tell an option without value from a broken one.
    configs: RefCell<HashMap<usize, Weak<Fixpoint>>>,
    /// The problems every evaluation sharing this state found.
    pub report: RefCell<Report>,
}

impl Shared {
    pub fn new(lib: Value) -> Rc<Self> {
        Rc::new(Shared {
            lib,
            stack: RefCell::new(Vec::new()),
            configs: RefCell::new(HashMap::new()),
            report: RefCell::new(Report::default()),
        })
    }

    /// The warnings found so far, in source order.
    pub fn warnings(&self) -> Vec<Problem> {
        let mut w = self.report.borrow().sorted();
        w.retain(|p| !p.is_error());
        w
    }

    /// The evaluation whose `config` set this is.
    pub fn fixpoint_of(&self, attrs: &Rc<Attrs>) -> Option<Rc<Fixpoint>> {
        let key = Rc::as_ptr(attrs) as usize;
        self.configs.borrow().get(&key).and_then(Weak::upgrade)
    }
}

/// A piece of a definition on its way down to an option: the value, where
/// it was written, and the `mkIf` conditions and priority pushed down onto
/// it from enclosing sets.
#[derive(Clone)]
pub struct Fragment {
    pub value: Value,
    pub site: Site,
    pub conds: Vec<Value>,
    pub prio: Option<i64>,
    /// How many properties were pushed down to reach this fragment.
    pub depth: u32,
}

/// How deeply properties may nest around the definition of a namespace.
const MAX_FRAGMENT_DEPTH: u32 = 1000;

type Partition = Rc<BTreeMap<SmolStr, Rc<Vec<Fragment>>>>;

enum PartitionState {
    InProgress,
    Done(Partition),
}

pub struct Fixpoint {
    pub shared: Rc<Shared>,
    /// The path of the enclosing option, for a submodule ("" at the top).
    pub prefix: OptionPath,
    /// Module arguments beyond `config`, `options` and `lib`.
    pub special_args: Vec<(SmolStr, Value)>,
    pub modules: Vec<Module>,
    pub tree: Namespace,
    config: OnceCell<Value>,
    options: OnceCell<Value>,
    partitions: RefCell<HashMap<OptionPath, PartitionState>>,
    /// The aliases and renamed names that forward to each option.
    forwarded: HashMap<OptionPath, Vec<Rc<Alias>>>,
    /// Set while the definitions are checked: unknown names are recorded
    /// in `found` instead of failing.
    collecting: Cell<bool>,
    found: RefCell<Vec<Problem>>,
}

impl Fixpoint {
    /// Records a problem found while the definitions are checked.
    pub(crate) fn found(&self, problem: Problem) {
        self.found.borrow_mut().push(problem);
    }
}

impl Fixpoint {
    /// Loads and declares everything, then checks that every definition
    /// names a declared option. Option values are merged when forced.
    pub fn evaluate(
        ev: &Evaluator,
        shared: Rc<Shared>,
        prefix: OptionPath,
        sources: Vec<Source>,
        special_args: Vec<(SmolStr, Value)>,
    ) -> Result<Rc<Fixpoint>, ModuleError> {
        let fp = Self::load(ev, shared, prefix, sources, special_args)?;
        fp.check_definitions(ev)?;
        Ok(fp)
    }

    /// Like [`Fixpoint::evaluate`], then checks every submodule evaluation
    /// too (see the module documentation): the problems of the whole
    /// configuration come back together.
    pub fn evaluate_all(
        ev: &Evaluator,
        shared: Rc<Shared>,
        prefix: OptionPath,
        sources: Vec<Source>,
        special_args: Vec<(SmolStr, Value)>,
    ) -> Result<Rc<Fixpoint>, ModuleError> {
        let fp = Self::load(ev, shared, prefix, sources, special_args)?;
        match fp.check_definitions(ev) {
            Ok(()) | Err(ModuleError::Problems { stopped: None, .. }) => {}
            Err(e) => return Err(e),
        }
        crate::modules::check::check_values(ev, &fp);
        let report = fp.shared.report.borrow();
        if report.has_errors() {
            return Err(ModuleError::Problems {
                problems: report.sorted(),
                stopped: None,
            });
        }
        drop(report);
        Ok(fp)
    }

    /// Loads the modules and their declarations without looking at any
    /// definition (for documentation).
    pub fn load(
        ev: &Evaluator,
        shared: Rc<Shared>,
        prefix: OptionPath,
        sources: Vec<Source>,
        special_args: Vec<(SmolStr, Value)>,
    ) -> Result<Rc<Fixpoint>, ModuleError> {
        let cell: Rc<OnceCell<Rc<Fixpoint>>> = Rc::new(OnceCell::new());
        let early_use: Rc<Cell<Option<&'static str>>> = Rc::new(Cell::new(None));
        let early = |what: &'static str| {
            let cell = cell.clone();
            let early_use = early_use.clone();
            Value::lazy(Some(what), move |_ev| match cell.get() {
                Some(fp) => Ok(if what == "config" {
                    fp.config()
                } else {
                    fp.options_value()
                }),
                None => Err({
                    early_use.set(Some(what));
                    ModuleError::BadModule {
                        message: format!(
                            "`{what}` was used while the modules were being loaded \
                         (`imports` and the shape of a module cannot depend on `{what}`)"
                        ),
                        site: Site::new("<module system>", None),
                        hint: None,
                    }
                    .into_eval()
                }),
            })
        };
        let mut args: Vec<(SmolStr, Value)> = vec![
            (SmolStr::new("config"), early("config")),
            (SmolStr::new("options"), early("options")),
            (SmolStr::new("lib"), shared.lib.clone()),
        ];
        for (name, value) in &special_args {
            args.retain(|(n, _)| n != name);
            args.push((name.clone(), value.clone()));
        }
        let mut collector = Collector::new(ev, &args, early_use.clone());
        for source in sources {
            collector.load(source)?;
        }
        let modules = collector.modules;
        let mut tree = Namespace::default();
        for m in &modules {
            if let Some(options) = &m.options {
                declare(
                    ev,
                    &mut tree,
                    options,
                    &Site::new(m.file.clone(), m.span),
                    &prefix,
                )?;
            }
        }
        let forwarded = aliases::forwarding(&tree, &prefix)?;
        let fp = Rc::new(Fixpoint {
            shared,
            prefix,
            special_args,
            modules,
            tree,
            config: OnceCell::new(),
            options: OnceCell::new(),
            partitions: RefCell::new(HashMap::new()),
            forwarded,
            collecting: Cell::new(false),
            found: RefCell::new(Vec::new()),
        });
        let config = build_config(&fp, &fp.tree, &OptionPath::root());
        if let Some(attrs) = config.as_attrs() {
            fp.shared
                .configs
                .borrow_mut()
                .insert(Rc::as_ptr(attrs) as usize, Rc::downgrade(&fp));
        }
        let _ = fp.config.set(config);
        let _ = fp.options.set(build_options(&fp.tree));
        let _ = cell.set(fp.clone());
        Ok(fp)
    }

    /// The merged configuration (lazy).
    pub fn config(&self) -> Value {
        self.config.get().cloned().unwrap_or(Value::Null)
    }

    /// The option declarations as a value (the `options` module argument).
    pub fn options_value(&self) -> Value {
        self.options.get().cloned().unwrap_or(Value::Null)
    }

    /// Partitions every namespace that has definitions, so that a definition
    /// of an undeclared option is reported now rather than when (or if) its
    /// namespace is read, and reports the definitions of removed,
    /// unsupported, renamed and ignored names. Every problem is recorded in
    /// the shared report; errors also make this fail
    /// ([`ModuleError::Problems`]).
    pub fn check_definitions(self: &Rc<Self>, ev: &Evaluator) -> Result<(), ModuleError> {
        self.collecting.set(true);
        let stopped = self
            .check_namespace(ev, &self.tree, &OptionPath::root())
            .and_then(|()| aliases::check(ev, self))
            .err();
        self.collecting.set(false);
        let found = self.found.take();
        {
            let mut report = self.shared.report.borrow_mut();
            for p in &found {
                report.add(p.clone());
            }
        }
        let errors = found.iter().any(Problem::is_error);
        match stopped {
            Some(e) if found.is_empty() => Err(e),
            stopped if errors || stopped.is_some() => Err(ModuleError::Problems {
                problems: problems::sorted(found),
                stopped: stopped.map(Box::new),
            }),
            _ => Ok(()),
        }
    }

    fn check_namespace(
        self: &Rc<Self>,
        ev: &Evaluator,
        ns: &Namespace,
        path: &OptionPath,
    ) -> Result<(), ModuleError> {
        let partition = self.partition(ev, path, ns)?;
        for name in partition.keys() {
            if let Some(Node::Namespace(sub)) = ns.children.get(name) {
                self.check_namespace(ev, sub, &path.child(name))?;
            }
        }
        Ok(())
    }

    /// The definitions of each attribute of the namespace at `path`.
    fn partition(
        self: &Rc<Self>,
        ev: &Evaluator,
        path: &OptionPath,
        ns: &Namespace,
    ) -> Result<Partition, ModuleError> {
        match self.partitions.borrow().get(path) {
            Some(PartitionState::Done(p)) => return Ok(p.clone()),
            Some(PartitionState::InProgress) => {
                let full = self.prefix.join(path);
                return Err(ModuleError::Cycle {
                    chain: vec![CycleStep {
                        option: full,
                        site: Site::new("<module system>", None),
                    }],
                    hint: Some(
                        "the set of definitions under this namespace depends on itself: \
                         a module's `config` may not compute its attribute names from `config`"
                            .to_string(),
                    ),
                });
            }
            None => {}
        }
        self.partitions
            .borrow_mut()
            .insert(path.clone(), PartitionState::InProgress);
        let result = self.compute_partition(ev, path, ns);
        let mut partitions = self.partitions.borrow_mut();
        match result {
            Ok(p) => {
                partitions.insert(path.clone(), PartitionState::Done(p.clone()));
                Ok(p)
            }
            Err(e) => {
                partitions.remove(path);
                Err(e)
            }
        }
    }

    fn compute_partition(
        self: &Rc<Self>,
        ev: &Evaluator,
        path: &OptionPath,
        ns: &Namespace,
    ) -> Result<Partition, ModuleError> {
        let fragments = match path.components().split_last() {
            None => self
                .modules
                .iter()
                .filter_map(|m| {
                    m.config.as_ref().map(|c| Fragment {
                        value: c.clone(),
                        site: Site::new(m.file.clone(), m.span),
                        conds: Vec::new(),
                        prio: None,
                        depth: 0,
                    })
                })
                .collect(),
            Some((last, parent)) => {
                let parent_path = OptionPath::from(parent.to_vec());
                let parent_ns = match parent_path.components() {
                    [] => &self.tree,
                    comps => match self.tree.find(comps) {
                        Some(Node::Namespace(n)) => n,
                        _ => &self.tree,
                    },
                };
                let p = self.partition(ev, &parent_path, parent_ns)?;
                p.get(last).map(|f| f.to_vec()).unwrap_or_default()
            }
        };
        let mut out: BTreeMap<SmolStr, Vec<Fragment>> = BTreeMap::new();
        for f in fragments {
            self.expand(ev, f, ns, path, &mut out)?;
        }
        Ok(Rc::new(
            out.into_iter().map(|(k, v)| (k, Rc::new(v))).collect(),
        ))
    }

    /// Pushes properties down and splits a namespace definition by name.
    fn expand(
        &self,
        ev: &Evaluator,
        f: Fragment,
        ns: &Namespace,
        path: &OptionPath,
        out: &mut BTreeMap<SmolStr, Vec<Fragment>>,
    ) -> Result<(), ModuleError> {
        let full = self.prefix.join(path);
        if f.depth > MAX_FRAGMENT_DEPTH {
            return Err(ModuleError::BadDefinition {
                message: format!(
                    "`mkIf`/`mkMerge`/`mkOverride` are nested more than {MAX_FRAGMENT_DEPTH} \
                     levels deep around `{}`",
                    display_ns(&full)
                ),
                path: full,
                site: f.site,
            });
        }
        let v = ev.force(&f.value)?;
        match merge::property(ev, &v, &full, &f.site)? {
            Some(Property::If { condition, content }) => {
                let mut conds = f.conds.clone();
                conds.push(condition);
                self.expand(
                    ev,
                    Fragment {
                        value: content,
                        conds,
                        depth: f.depth + 1,
                        ..f
                    },
                    ns,
                    path,
                    out,
                )
            }
            Some(Property::Merge(items)) => {
                for item in items {
                    self.expand(
                        ev,
                        Fragment {
                            value: item,
                            depth: f.depth + 1,
                            ..f.clone()
                        },
                        ns,
                        path,
                        out,
                    )?;
                }
                Ok(())
            }
            Some(Property::Override { priority, content }) => self.expand(
                ev,
                Fragment {
                    value: content,
                    prio: f.prio.or(Some(priority)),
                    depth: f.depth + 1,
                    ..f
                },
                ns,
                path,
                out,
            ),
            Some(Property::Order { .. }) => Err(ModuleError::BadDefinition {
                message: format!(
                    "`mkOrder` (`mkBefore`, `mkAfter`) orders list definitions; \
                     `{}` is a set of options",
                    display_ns(&full)
                ),
                path: full,
                site: f.site,
            }),
            None => {
                let Some(attrs) = v.as_attrs() else {
                    return Err(ModuleError::BadDefinition {
                        message: format!(
                            "`{}` is a set of options, so it must be defined as a set, not {}",
                            display_ns(&full),
                            v.describe()
                        ),
                        path: full,
                        site: f.site,
                    });
                };
                for entry in attrs.entries() {
                    let site = Site::new(f.site.file.clone(), entry.span.or(f.site.span));
                    if !ns.children.contains_key(&entry.name) {
                        let suggestions = self.suggestions(ns, &full, &entry.name);
                        let path = full.child(&entry.name);
                        if !self.collecting.get() {
                            return Err(ModuleError::UndefinedOption {
                                path,
                                site,
                                suggestions,
                            });
                        }
                        self.found.borrow_mut().push(Problem::Undefined {
                            path,
                            site,
                            suggestions,
                        });
                        continue;
                    }
                    out.entry(entry.name.clone()).or_default().push(Fragment {
                        value: entry.value.clone(),
                        site,
                        conds: f.conds.clone(),
                        prio: f.prio,
                        depth: 0,
                    });
                }
                Ok(())
            }
        }
    }

    /// Close declared names for a name that is not declared in `ns` (at
    /// `full`): its siblings first; failing those, options elsewhere with a
    /// close last name (`networking.timeZone` → `time.timeZone`).
    fn suggestions(&self, ns: &Namespace, full: &OptionPath, name: &str) -> Vec<String> {
        let siblings = crate::diag::suggest(name, ns.children.keys().map(SmolStr::as_str));
        if !siblings.is_empty() {
            return siblings
                .into_iter()
                .map(|s| full.child(&s).to_string())
                .collect();
        }
        let options = self.tree.options();
        let lasts: Vec<&str> = options.iter().filter_map(|d| d.path.last()).collect();
        let close = crate::diag::suggest(name, lasts.iter().copied());
        let mut out: Vec<String> = options
            .iter()
            .filter(|d| d.path.last().is_some_and(|l| close.iter().any(|c| c == l)))
            .map(|d| d.full.to_string())
            .collect();
        out.truncate(3);
        out
    }

    /// The definitions of the option at `path` (relative): those written
    /// for it and those of every alias or renamed name that forwards to it.
    pub fn fragments(
        self: &Rc<Self>,
        ev: &Evaluator,
        path: &OptionPath,
    ) -> Result<Rc<Vec<Fragment>>, ModuleError> {
        let own = self.own_fragments(ev, path)?;
        let Some(aliases) = self.forwarded.get(path) else {
            return Ok(own);
        };
        let mut all = (*own).clone();
        for alias in aliases {
            all.extend(self.own_fragments(ev, &alias.path)?.iter().cloned());
        }
        Ok(Rc::new(all))
    }

    /// The definitions written for the name at `path` (relative).
    pub(crate) fn own_fragments(
        self: &Rc<Self>,
        ev: &Evaluator,
        path: &OptionPath,
    ) -> Result<Rc<Vec<Fragment>>, ModuleError> {
        let Some((last, parent)) = path.components().split_last() else {
            return Ok(Rc::default());
        };
        let parent_path = OptionPath::from(parent.to_vec());
        let ns = match parent {
            [] => &self.tree,
            comps => match self.tree.find(comps) {
                Some(Node::Namespace(n)) => n,
                _ => return Ok(Rc::default()),
            },
        };
        let p = self.partition(ev, &parent_path, ns)?;
        Ok(p.get(last).cloned().unwrap_or_default())
    }

    /// The discharged definitions of an option, including its default when
    /// it can matter, and the ones a false `mkIf` removed.
    pub fn definitions(
        self: &Rc<Self>,
        ev: &Evaluator,
        decl: &OptionDecl,
        always_default: bool,
    ) -> Result<(Vec<Def>, Vec<Dropped>), ModuleError> {
        let path = decl.full.clone();
        let mut defs = Vec::new();
        let mut dropped = Vec::new();
        for f in self.fragments(ev, &decl.path)?.iter() {
            self.set_site(&f.site);
            let mut holds = true;
            for c in &f.conds {
                if !merge::condition_holds(ev, c, &path, &f.site)? {
                    holds = false;
                    break;
                }
            }
            if !holds {
                dropped.push(Dropped {
                    site: f.site.clone(),
                });
                continue;
            }
            merge::discharge(
                ev,
                &f.value,
                &f.site,
                f.prio,
                None,
                false,
                &path,
                &mut defs,
                &mut dropped,
            )?;
        }
        if decl.read_only && defs.len() > 1 {
            return Err(ModuleError::ReadOnly {
                path,
                defs: defs.iter().map(|d| d.site.clone()).collect(),
            });
        }
        let strongest = defs.iter().map(|d| d.prio).min();
        if let Some(default) = &decl.default
            && (always_default || strongest.is_none_or(|p| p >= OPTION_DEFAULT_PRIORITY))
        {
            self.set_site(&decl.site);
            merge::discharge(
                ev,
                default,
                &decl.site,
                Some(OPTION_DEFAULT_PRIORITY),
                None,
                true,
                &path,
                &mut defs,
                &mut dropped,
            )?;
        }
        Ok((defs, dropped))
    }

    /// Merges an option: its value, or `None` when nothing defines it.
    pub fn merged(
        self: &Rc<Self>,
        ev: &Evaluator,
        decl: &OptionDecl,
    ) -> Result<Option<Value>, ModuleError> {
        let path = decl.full.clone();
        self.shared.stack.borrow_mut().push(CycleStep {
            option: path.clone(),
            site: decl.site.clone(),
        });
        let result = self.definitions(ev, decl, false).and_then(|(defs, _)| {
            let winners = merge::select_winners(defs);
            merge::merge_values(ev, self, &path, &decl.site, &decl.ty, winners)
        });
        let result = result.map_err(|e| self.translate_recursion(e));
        self.shared.stack.borrow_mut().pop();
        result
    }

    /// The value of an option; an error when nothing defines it.
    pub fn option_value(
        self: &Rc<Self>,
        ev: &Evaluator,
        decl: &OptionDecl,
    ) -> Result<Value, ModuleError> {
        match self.merged(ev, decl)? {
            Some(v) => Ok(v),
            None => Err(ModuleError::NoValue {
                path: decl.full.clone(),
                declared: decl.site.clone(),
            }),
        }
    }

    /// Records which definition of the innermost option is being evaluated.
    fn set_site(&self, site: &Site) {
        if let Some(top) = self.shared.stack.borrow_mut().last_mut() {
            top.site = site.clone();
        }
    }

    /// The evaluator's infinite-recursion error, seen while merging, becomes
    /// the chain of options that depend on each other.
    fn translate_recursion(&self, e: ModuleError) -> ModuleError {
        let ModuleError::Eval(inner) = &e else {
            return e;
        };
        let ErrorKind::InfiniteRecursion { cycle } = inner.kind() else {
            return e;
        };
        let stack = self.shared.stack.borrow();
        let names: Vec<&str> = cycle.iter().map(|(n, _)| n.as_str()).collect();
        let start = stack
            .iter()
            .position(|s| names.contains(&s.option.to_string().as_str()))
            .unwrap_or(0);
        let mut chain: Vec<CycleStep> = stack[start..].to_vec();
        if let Some(first) = chain.first().cloned() {
            chain.push(first);
        }
        if chain.len() < 2 {
            return e;
        }
        // An `attrsOf` option merges (and so evaluates) all its attributes
        // at once: attributes that read each other need `lazyAttrsOf`.
        let strict_attrs = chain.iter().find_map(|step| {
            let rel = step
                .option
                .components()
                .get(self.prefix.components().len()..)?;
            match self.tree.find(rel) {
                Some(Node::Option(decl)) if matches!(&*decl.ty, Type::AttrsOf(_)) => {
                    Some(step.option.clone())
                }
                _ => None,
            }
        });
        let hint = strict_attrs.map(|p| {
            format!(
                "`{p}` is an `attrsOf` option, which evaluates every attribute when it is \
                 read; if its attributes refer to each other, declare it with \
                 `types.lazyAttrsOf` so that each attribute is merged only when read"
            )
        });
        ModuleError::Cycle { chain, hint }
    }
}

fn display_ns(path: &OptionPath) -> String {
    if path.is_root() {
        "config".to_string()
    } else {
        path.to_string()
    }
}

/// The `config` value: namespaces are sets, options lazily merged values.
fn build_config(fp: &Rc<Fixpoint>, ns: &Namespace, path: &OptionPath) -> Value {
    let entries: Vec<(SmolStr, Value)> = ns
        .children
        .iter()
        .map(|(name, node)| {
            let value = match node {
                Node::Namespace(sub) => build_config(fp, sub, &path.child(name)),
                Node::Option(decl) => {
                    let (fp, decl) = (fp.clone(), decl.clone());
                    let label = decl.full.to_string();
                    Value::lazy(Some(&label), move |ev| {
                        fp.option_value(ev, &decl).map_err(ModuleError::into_eval)
                    })
                }
                Node::Alias(alias) => {
                    let (fp, alias) = (fp.clone(), alias.clone());
                    let label = alias.full.to_string();
                    Value::lazy(Some(&label), move |ev| {
                        aliases::value(ev, &fp, &alias).map_err(ModuleError::into_eval)
                    })
                }
            };
            (name.clone(), value)
        })
        .collect();
    Value::attrs_from(entries)
}

/// The `options` value: namespaces are sets, options their declarations.
fn build_options(ns: &Namespace) -> Value {
    Value::attrs_from(ns.children.iter().map(|(name, node)| {
        let value = match node {
            Node::Namespace(sub) => build_options(sub),
            Node::Option(decl) => decl.value.clone(),
            Node::Alias(alias) => alias.value.clone(),
        };
        (name.clone(), value)
    }))
}
