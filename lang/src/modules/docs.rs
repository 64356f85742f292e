//! What the CLI shows about an evaluation: option documentation (`imago
//! options`), the definitions of one option and why one won (`imago config
//! --explain`), and the merged configuration as JSON (`imago config`).

use crate::diag::Code;
use crate::eval::{Attrs, Evaluator, Value};
use crate::modules::declare::{AliasKind, OptionDecl};
use crate::modules::declare::{Namespace, Node};
use crate::modules::error::{ModuleError, Site};
use crate::modules::fixpoint::{Fixpoint, Shared};
use crate::modules::merge::OPTION_DEFAULT_PRIORITY;
use crate::modules::path::{ANY_NAME, OptionPath};
use crate::modules::types::Type;
use crate::modules::values::short;
use crate::modules::{Evaluated, collect::Source};
use smol_str::SmolStr;
use std::rc::Rc;

/// The documentation of one option.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionDoc {
    /// With `<name>` for any attribute name and `*` for any list element
    /// when the option is inside a submodule.
    pub path: OptionPath,
    pub ty: String,
    pub default: Option<String>,
    pub example: Option<String>,
    pub description: Option<String>,
    pub read_only: bool,
    pub declared: Site,
}

/// A name that is not an option of its own (an alias, a renamed, removed,
/// unsupported or ignored name), for the documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasDoc {
    /// With `<name>` / `*` placeholders inside submodules, like
    /// [`OptionDoc::path`].
    pub path: OptionPath,
    /// What it stands for; targets are full paths.
    pub kind: AliasKind,
    pub declared: Site,
}

/// How a definition fared in `--explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefStatus {
    /// It has the winning priority: it is part of the value.
    Used,
    /// A definition with a lower priority number won.
    Overridden,
    /// Its `mkIf` condition is false.
    ConditionFalse,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExplainedDef {
    pub site: Site,
    /// `None` for a definition removed by `mkIf` (never looked at further).
    pub priority: Option<i64>,
    pub order: Option<i64>,
    pub value: String,
    pub status: DefStatus,
    pub is_default: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub path: OptionPath,
    pub ty: String,
    pub declared: Site,
    pub defs: Vec<ExplainedDef>,
    /// Which definitions won and why.
    pub summary: String,
    /// The merged value (shortened), or the error merging gives.
    pub result: Result<String, String>,
}

/// The usual name of a priority.
pub fn priority_name(p: i64) -> String {
    match p {
        50 => "mkForce".into(),
        100 => "a plain definition".into(),
        1000 => "mkDefault".into(),
        OPTION_DEFAULT_PRIORITY => "the option's default, mkOptionDefault".into(),
        n => format!("mkOverride {n}"),
    }
}

fn literal_or_display(ev: &Evaluator, v: &Value) -> String {
    let forced = match ev.force(v) {
        Ok(f) => f,
        Err(e) => return format!("«error: {e}»"),
    };
    if let Some(a) = forced.as_attrs()
        && let Some(t) = a.value("_type")
        && matches!(ev.force(t), Ok(Value::String(s)) if s.as_str().starts_with("literal"))
        && let Some(text) = a.value("text")
        && let Ok(Value::String(s)) = ev.force(text)
    {
        return s.as_str().to_string();
    }
    ev.display(&forced, true)
        .unwrap_or_else(|e| format!("«error: {e}»"))
}

fn text_of(ev: &Evaluator, v: &Value) -> String {
    match ev.force(v) {
        Ok(Value::String(s)) => s.as_str().to_string(),
        _ => literal_or_display(ev, v),
    }
}

/// The modules of a submodule type, and the path placeholder its options
/// get (`<name>` inside `attrsOf`, `*` inside `listOf`).
fn submodules_of(ty: &Type, suffix: &mut Vec<&'static str>) -> Option<Vec<(Value, Site)>> {
    match ty {
        Type::Submodule(m) => Some(m.clone()),
        Type::AttrsOf(t) | Type::LazyAttrsOf(t) => {
            suffix.push(ANY_NAME);
            submodules_of(t, suffix)
        }
        Type::ListOf(t) => {
            suffix.push("*");
            submodules_of(t, suffix)
        }
        Type::NullOr(t) => submodules_of(t, suffix),
        _ => None,
    }
}

/// The evaluation of a submodule option's modules alone, with `<name>` /
/// `*` placeholders in its prefix, for documenting what it declares.
fn submodule_docs_fixpoint(
    ev: &Evaluator,
    fp: &Rc<Fixpoint>,
    decl: &OptionDecl,
) -> Result<Option<Rc<Fixpoint>>, ModuleError> {
    let mut suffix = Vec::new();
    let Some(modules) = submodules_of(&decl.ty, &mut suffix) else {
        return Ok(None);
    };
    let mut prefix = decl.full.clone();
    for s in &suffix {
        prefix = prefix.child(s);
    }
    let mut args: Vec<(SmolStr, Value)> = fp
        .special_args
        .iter()
        .filter(|(n, _)| n != "name")
        .cloned()
        .collect();
    args.push((SmolStr::new("name"), Value::string(ANY_NAME)));
    let sources = modules
        .into_iter()
        .map(|(value, site)| Source::Value { value, site })
        .collect();
    Fixpoint::load(ev, fp.shared.clone(), prefix, sources, args).map(Some)
}

/// The aliases of `fp` and of the submodules of its options.
fn collect_aliases(
    ev: &Evaluator,
    fp: &Rc<Fixpoint>,
    out: &mut Vec<AliasDoc>,
    depth: usize,
) -> Result<(), ModuleError> {
    for alias in fp.tree.aliases() {
        let kind = match &alias.kind {
            AliasKind::Alias { to } => AliasKind::Alias {
                to: fp.prefix.join(to),
            },
            AliasKind::Renamed { to } => AliasKind::Renamed {
                to: fp.prefix.join(to),
            },
            other => other.clone(),
        };
        out.push(AliasDoc {
            path: alias.full.clone(),
            kind,
            declared: alias.site.clone(),
        });
    }
    if depth < 8 {
        for decl in fp.tree.options() {
            if let Some(sub) = submodule_docs_fixpoint(ev, fp, &decl)? {
                collect_aliases(ev, &sub, out, depth + 1)?;
            }
        }
    }
    Ok(())
}

fn document(
    ev: &Evaluator,
    fp: &Rc<Fixpoint>,
    decl: &OptionDecl,
    out: &mut Vec<OptionDoc>,
    depth: usize,
) -> Result<(), ModuleError> {
    let path = decl.full.clone();
    let default = match (&decl.default_text, &decl.default) {
        (Some(t), _) => Some(text_of(ev, t)),
        (None, Some(d)) => Some(literal_or_display(ev, d)),
        (None, None) => None,
    };
    out.push(OptionDoc {
        path: path.clone(),
        ty: decl.ty.description(),
        default,
        example: decl.example.as_ref().map(|e| literal_or_display(ev, e)),
        description: decl.description.as_ref().map(|d| text_of(ev, d)),
        read_only: decl.read_only,
        declared: decl.site.clone(),
    });
    if depth < 8
        && let Some(sub) = submodule_docs_fixpoint(ev, fp, decl)?
    {
        for d in sub.tree.options() {
            document(ev, &sub, &d, out, depth + 1)?;
        }
    }
    Ok(())
}

const MAX_JSON_DEPTH: usize = 128;

/// Converts a configuration value to JSON. Inside the `config` set of an
/// evaluation, options that have no value are left out (any other error
/// stays an error).
fn json(
    ev: &Evaluator,
    shared: &Shared,
    v: &Value,
    depth: usize,
) -> Result<serde_json::Value, ModuleError> {
    use serde_json::Value as J;
    if depth > MAX_JSON_DEPTH {
        return Err(ModuleError::BadDefinition {
            path: OptionPath::root(),
            message: format!(
                "the configuration is nested more than {MAX_JSON_DEPTH} levels deep \
                 (does a value contain itself?)"
            ),
            site: Site::new("<configuration>", None),
        });
    }
    let forced = ev.force(v)?;
    Ok(match &forced {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::String(s) => J::String(s.as_str().to_string()),
        Value::Path(p) => J::String(p.display().to_string()),
        Value::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items.iter() {
                out.push(json(ev, shared, item, depth + 1)?);
            }
            J::Array(out)
        }
        Value::Attrs(a) => {
            if let Some(fp) = shared.fixpoint_of(a) {
                return json_namespace(ev, shared, &fp, &fp.tree, a, depth);
            }
            if let Some(out_path) = a.value("outPath") {
                return json(ev, shared, out_path, depth + 1);
            }
            let mut map = serde_json::Map::new();
            for e in a.entries() {
                map.insert(e.name.to_string(), json(ev, shared, &e.value, depth + 1)?);
            }
            J::Object(map)
        }
        Value::Lambda(_) | Value::PrimOp(_) => J::String("<function>".into()),
        Value::Thunk(_) => J::Null,
    })
}

/// A namespace of a `config` set: options without a value, and namespaces
/// left empty by that, are left out.
fn json_namespace(
    ev: &Evaluator,
    shared: &Shared,
    fp: &Rc<Fixpoint>,
    ns: &Namespace,
    attrs: &Attrs,
    depth: usize,
) -> Result<serde_json::Value, ModuleError> {
    let mut map = serde_json::Map::new();
    for e in attrs.entries() {
        let j = match ns.children.get(&e.name) {
            Some(Node::Option(decl)) => match ev.force(&e.value) {
                Ok(_) => json(ev, shared, &e.value, depth + 1)?,
                Err(err) => {
                    if err.code() == Code("E0304") && fp.merged(ev, decl)?.is_none() {
                        continue;
                    }
                    return Err(err.into());
                }
            },
            // Another name for an option (printed there), or a name that
            // has no value.
            Some(Node::Alias(_)) => continue,
            Some(Node::Namespace(sub)) => {
                let forced = ev.force(&e.value)?;
                let Some(sub_attrs) = forced.as_attrs() else {
                    continue;
                };
                let j = json_namespace(ev, shared, fp, sub, sub_attrs, depth + 1)?;
                if j.as_object().is_some_and(|o| o.is_empty()) {
                    continue;
                }
                j
            }
            None => json(ev, shared, &e.value, depth + 1)?,
        };
        map.insert(e.name.to_string(), j);
    }
    Ok(serde_json::Value::Object(map))
}

impl Evaluated {
    /// Documentation of every declared option, submodule options included
    /// (with `<name>` / `*` placeholders), in name order.
    pub fn option_docs(&self, ev: &Evaluator) -> Result<Vec<OptionDoc>, ModuleError> {
        let mut out = Vec::new();
        for decl in self.fixpoint.tree.options() {
            document(ev, &self.fixpoint, &decl, &mut out, 0)?;
        }
        Ok(out)
    }

    /// Every name that is not an option of its own (aliases, renamed,
    /// removed, unsupported and ignored names), submodules included, in
    /// name order.
    pub fn alias_docs(&self, ev: &Evaluator) -> Result<Vec<AliasDoc>, ModuleError> {
        let mut out = Vec::new();
        collect_aliases(ev, &self.fixpoint, &mut out, 0)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// The configuration (or the part at `path`) as JSON. Options that have
    /// no value are left out; steps (packages) show as their store path.
    pub fn config_json(
        &self,
        ev: &Evaluator,
        path: Option<&OptionPath>,
    ) -> Result<serde_json::Value, ModuleError> {
        let v = match path {
            Some(p) => self.value_at(ev, p)?,
            None => self.config(),
        };
        json(ev, &self.fixpoint.shared, &v, 0)
    }

    /// Every definition of a top-level option, with its priority, and which
    /// won and why.
    pub fn explain(&self, ev: &Evaluator, path: &OptionPath) -> Result<Explanation, ModuleError> {
        let fp = &self.fixpoint;
        let Some(decl) = self.declaration(path) else {
            // A path inside an option's value (a submodule, an attribute set):
            // name the option that holds it.
            let comps = path.components();
            if let Some(holder) = (1..comps.len())
                .map(|n| OptionPath::from(comps[..n].to_vec()))
                .find(|p| self.declaration(p).is_some())
            {
                return Err(ModuleError::BadDefinition {
                    message: format!(
                        "`{path}` is inside the value of the option `{holder}`; \
                         `--explain` works on declared options: explain `{holder}`, \
                         or print the value with `-A {path}`"
                    ),
                    path: path.clone(),
                    site: Site::new("<command line>", None),
                });
            }
            let all = fp.tree.option_paths();
            let suggestions =
                crate::diag::suggest(&path.to_string(), all.iter().map(String::as_str));
            return Err(ModuleError::UndefinedOption {
                path: path.clone(),
                site: Site::new("<command line>", None),
                suggestions,
            });
        };
        let (defs, dropped) = fp.definitions(ev, &decl, true)?;
        let best = defs.iter().map(|d| d.prio).min();
        let mut explained: Vec<ExplainedDef> = defs
            .iter()
            .map(|d| ExplainedDef {
                site: d.site.clone(),
                priority: Some(d.prio),
                order: Some(d.order),
                value: short(&d.value),
                status: if Some(d.prio) == best {
                    DefStatus::Used
                } else {
                    DefStatus::Overridden
                },
                is_default: d.is_default,
            })
            .collect();
        explained.extend(dropped.into_iter().map(|d| ExplainedDef {
            site: d.site,
            priority: None,
            order: None,
            value: "(not evaluated)".into(),
            status: DefStatus::ConditionFalse,
            is_default: false,
        }));
        let summary = match best {
            None => "nothing defines this option and it has no default: reading it is an error"
                .to_string(),
            Some(p) => {
                let used = defs.iter().filter(|d| d.prio == p).count();
                let ignored = defs.len() - used;
                let how = match &*decl.ty {
                    Type::ListOf(_) => {
                        "; their lists are concatenated by order (mkBefore 500, default 1000, \
                         mkAfter 1500), then module order"
                    }
                    Type::AttrsOf(_) | Type::Submodule(_) => {
                        "; they are merged attribute by attribute"
                    }
                    Type::Separated(_) => "; they are joined in order",
                    _ if used > 1 => "; they must all be equal",
                    _ => "",
                };
                let mut text = format!(
                    "{used} definition{} at priority {p} ({}) win{}{how}",
                    if used == 1 { "" } else { "s" },
                    priority_name(p),
                    if used == 1 { "s" } else { "" },
                );
                if ignored > 0 {
                    text.push_str(&format!(
                        "; {ignored} with a higher priority number {} ignored \
                         (the lowest number wins)",
                        if ignored == 1 { "is" } else { "are" },
                    ));
                }
                text
            }
        };
        let result = match fp.merged(ev, &decl) {
            Ok(Some(v)) => Ok(short(&v)),
            Ok(None) => Err("no value".to_string()),
            Err(e) => Err(e.to_string()),
        };
        Ok(Explanation {
            // The option itself, also when `path` is another name for it.
            path: decl.full.clone(),
            ty: decl.ty.description(),
            declared: decl.site.clone(),
            defs: explained,
            summary,
            result,
        })
    }
}
