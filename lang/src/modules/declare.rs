//! Option declarations: the tree of options all modules declare.
//!
//! Each module's `options` set is walked: a set with `_type = "option"` (made
//! by `lib.mkOption`) is a declaration; any other set is a namespace holding
//! more options. The result is one [`Namespace`] tree. An option declared by
//! two modules is an error, except when both declare submodule types: then
//! the submodules' modules are combined (this is how a module adds options to
//! `users.users.<name>`).
//!
//! A set with `_type = "optionAlias"` (made by `lib.mkAliasOptionModule`,
//! `mkRenamedOptionModule`, `mkRemovedOptionModule`,
//! `mkUnsupportedOptionModule` or `mkIgnoredOptionModule`) is an [`Alias`]:
//! a name that is not an option of its own. Definitions of an alias or a
//! renamed name go to the option it names; definitions of the other kinds
//! are reported (fixpoint.rs). An alias may stand for a whole namespace
//! (`services.xserver`): every definition inside it is one of the alias.

use crate::eval::{Evaluator, Value};
use crate::modules::error::{ModuleError, Site};
use crate::modules::path::OptionPath;
use crate::modules::types::Type;
use smol_str::SmolStr;
use std::collections::BTreeMap;
use std::rc::Rc;

/// One declared option.
pub struct OptionDecl {
    /// The path from the root of this evaluation (not including the prefix
    /// of an enclosing submodule).
    pub path: OptionPath,
    /// The path including the prefix of an enclosing submodule, for
    /// messages.
    pub full: OptionPath,
    pub ty: Rc<Type>,
    pub default: Option<Value>,
    pub default_text: Option<Value>,
    pub example: Option<Value>,
    pub description: Option<Value>,
    pub read_only: bool,
    pub site: Site,
    /// The declaration as written (the `mkOption` set), for the `options`
    /// module argument.
    pub value: Value,
}

/// How deep namespaces of options may nest.
pub const MAX_NESTING: usize = 64;

/// What a name that is not an option stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum AliasKind {
    /// Definitions go to `to`, silently (`mkAliasOptionModule`).
    Alias { to: OptionPath },
    /// Definitions go to `to`, with a warning (`mkRenamedOptionModule`).
    Renamed { to: OptionPath },
    /// A definition is an error; `message` says what to do instead
    /// (`mkRemovedOptionModule`).
    Removed { message: String },
    /// An option Imago does not have, typically one of NixOS's: a
    /// definition is an error; `message` says what to use instead
    /// (`mkUnsupportedOptionModule`).
    Unsupported { message: String },
    /// An option Imago accepts and ignores, with a warning that says why
    /// (`mkIgnoredOptionModule`).
    Ignored { message: String },
}

impl AliasKind {
    /// The option definitions go to, for the kinds that forward them.
    pub fn target(&self) -> Option<&OptionPath> {
        match self {
            AliasKind::Alias { to } | AliasKind::Renamed { to } => Some(to),
            AliasKind::Removed { .. }
            | AliasKind::Unsupported { .. }
            | AliasKind::Ignored { .. } => None,
        }
    }

    /// The name of the kind, as `lib` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            AliasKind::Alias { .. } => "alias",
            AliasKind::Renamed { .. } => "renamed",
            AliasKind::Removed { .. } => "removed",
            AliasKind::Unsupported { .. } => "unsupported",
            AliasKind::Ignored { .. } => "ignored",
        }
    }
}

/// A declared alias (see the module documentation).
pub struct Alias {
    /// The path from the root of this evaluation.
    pub path: OptionPath,
    /// The path including the prefix of an enclosing submodule.
    pub full: OptionPath,
    /// Targets are relative to the root of this evaluation, like `path`.
    pub kind: AliasKind,
    pub site: Site,
    /// The declaration as written, for the `options` module argument.
    pub value: Value,
}

pub enum Node {
    Option(Rc<OptionDecl>),
    Namespace(Namespace),
    Alias(Rc<Alias>),
}

#[derive(Default)]
pub struct Namespace {
    pub children: BTreeMap<SmolStr, Node>,
}

impl Namespace {
    /// The node at `path` (relative to this namespace).
    pub fn find(&self, path: &[SmolStr]) -> Option<&Node> {
        let (first, rest) = path.split_first()?;
        let node = self.children.get(first)?;
        if rest.is_empty() {
            return Some(node);
        }
        match node {
            Node::Namespace(ns) => ns.find(rest),
            Node::Option(_) | Node::Alias(_) => None,
        }
    }

    /// Every option below this namespace, depth first in name order.
    pub fn options(&self) -> Vec<Rc<OptionDecl>> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut Vec<Rc<OptionDecl>>) {
        for node in self.children.values() {
            match node {
                Node::Option(d) => out.push(d.clone()),
                Node::Namespace(ns) => ns.collect(out),
                Node::Alias(_) => {}
            }
        }
    }

    /// Every alias below this namespace, depth first in name order.
    pub fn aliases(&self) -> Vec<Rc<Alias>> {
        let mut out = Vec::new();
        self.collect_aliases(&mut out);
        out
    }

    fn collect_aliases(&self, out: &mut Vec<Rc<Alias>>) {
        for node in self.children.values() {
            match node {
                Node::Alias(a) => out.push(a.clone()),
                Node::Namespace(ns) => ns.collect_aliases(out),
                Node::Option(_) => {}
            }
        }
    }

    /// The full paths of every option, for "did you mean" suggestions.
    pub fn option_paths(&self) -> Vec<String> {
        self.options().iter().map(|d| d.path.to_string()).collect()
    }
}

fn is_kind(ev: &Evaluator, v: &Value, kind: &str) -> Result<bool, ModuleError> {
    let Some(attrs) = v.as_attrs() else {
        return Ok(false);
    };
    match attrs.value("_type") {
        Some(t) => Ok(matches!(ev.force(t)?, Value::String(s) if s.as_str() == kind)),
        None => Ok(false),
    }
}

/// Adds the declarations of one module's `options` set (already forced) to
/// `root`. `module` is where the module is (its file, and where it was
/// written or imported): aliases, made by `lib` functions, are declared
/// there.
pub fn declare(
    ev: &Evaluator,
    root: &mut Namespace,
    options: &Value,
    module: &Site,
    prefix: &OptionPath,
) -> Result<(), ModuleError> {
    walk(ev, root, options, OptionPath::root(), module, None, prefix)
}

fn walk(
    ev: &Evaluator,
    ns: &mut Namespace,
    set: &Value,
    path: OptionPath,
    module: &Site,
    span: Option<crate::source::Span>,
    prefix: &OptionPath,
) -> Result<(), ModuleError> {
    let file = &module.file;
    if path.components().len() > MAX_NESTING {
        return Err(ModuleError::BadDeclaration {
            path: prefix.join(&path),
            message: format!("option declarations are nested more than {MAX_NESTING} levels deep"),
            sites: vec![Site::new(file.clone(), span)],
        });
    }
    let set = ev.force(set)?;
    let Some(attrs) = set.as_attrs() else {
        return Err(ModuleError::BadDeclaration {
            path: prefix.join(&path),
            message: format!(
                "`options.{}` must be a set of option declarations, not {}",
                prefix.join(&path),
                set.describe()
            ),
            sites: vec![Site::new(file.clone(), span)],
        });
    };
    for entry in attrs.entries() {
        let child_path = path.child(&entry.name);
        let value = ev.force(&entry.value)?;
        let site = Site::new(file.clone(), entry.span.or(span));
        if is_kind(ev, &value, "option")? {
            let decl = read_decl(ev, &value, child_path.clone(), site, prefix)?;
            insert(ns, &entry.name, decl, prefix)?;
        } else if is_kind(ev, &value, "optionAlias")? {
            let alias = read_alias(ev, &value, child_path.clone(), module.clone(), prefix)?;
            insert_alias(ns, &entry.name, alias)?;
        } else if value.as_attrs().is_some() {
            let sub = match ns
                .children
                .entry(entry.name.clone())
                .or_insert_with(|| Node::Namespace(Namespace::default()))
            {
                Node::Namespace(sub) => sub,
                Node::Option(existing) => {
                    return Err(ModuleError::BadDeclaration {
                        path: prefix.join(&child_path),
                        message: format!(
                            "`{}` is declared as an option, so it cannot also hold options",
                            prefix.join(&child_path)
                        ),
                        sites: vec![site, existing.site.clone()],
                    });
                }
                Node::Alias(existing) => {
                    return Err(ModuleError::BadDeclaration {
                        path: prefix.join(&child_path),
                        message: format!(
                            "`{}` is declared as {} name, so it cannot also hold options",
                            prefix.join(&child_path),
                            article(&existing.kind)
                        ),
                        sites: vec![site, existing.site.clone()],
                    });
                }
            };
            walk(ev, sub, &value, child_path, module, entry.span, prefix)?;
        } else {
            return Err(ModuleError::BadDeclaration {
                path: prefix.join(&child_path),
                message: format!(
                    "`options.{}` is {}, not an option declaration (use `lib.mkOption`)",
                    prefix.join(&child_path),
                    value.describe()
                ),
                sites: vec![site],
            });
        }
    }
    Ok(())
}

fn read_decl(
    ev: &Evaluator,
    value: &Value,
    path: OptionPath,
    site: Site,
    prefix: &OptionPath,
) -> Result<OptionDecl, ModuleError> {
    let attrs = value.as_attrs();
    let get = |name: &str| attrs.and_then(|a| a.value(name)).cloned();
    let full = prefix.join(&path);
    let ty = match get("type") {
        Some(t) => Type::from_value(ev, &t, &full, &site)?,
        None => Rc::new(Type::Anything),
    };
    let read_only = match get("readOnly") {
        None => false,
        Some(v) => match ev.force(&v)? {
            Value::Bool(b) => b,
            other => {
                return Err(ModuleError::BadDeclaration {
                    message: format!(
                        "`readOnly` of option `{full}` must be a Boolean, not {}",
                        other.describe()
                    ),
                    path: full,
                    sites: vec![site],
                });
            }
        },
    };
    Ok(OptionDecl {
        path,
        full,
        ty,
        default: get("default"),
        default_text: get("defaultText"),
        example: get("example"),
        description: get("description"),
        read_only,
        site,
        value: value.clone(),
    })
}

fn insert(
    ns: &mut Namespace,
    name: &SmolStr,
    decl: OptionDecl,
    prefix: &OptionPath,
) -> Result<(), ModuleError> {
    let Some(existing) = ns.children.get(name) else {
        ns.children
            .insert(name.clone(), Node::Option(Rc::new(decl)));
        return Ok(());
    };
    let full = prefix.join(&decl.path);
    let merged = match existing {
        Node::Namespace(_) => {
            return Err(ModuleError::BadDeclaration {
                message: format!(
                    "`{full}` is declared as an option, but other modules declare options inside it"
                ),
                path: full,
                sites: vec![decl.site],
            });
        }
        Node::Alias(old) => {
            return Err(ModuleError::BadDeclaration {
                message: format!(
                    "`{full}` is declared both as an option and as {} name",
                    article(&old.kind)
                ),
                path: full,
                sites: vec![decl.site, old.site.clone()],
            });
        }
        Node::Option(old) => match Type::combine(&old.ty, &decl.ty) {
            Some(ty) => OptionDecl {
                path: decl.path,
                full: decl.full,
                ty,
                default: old.default.clone().or(decl.default),
                default_text: old.default_text.clone().or(decl.default_text),
                example: old.example.clone().or(decl.example),
                description: old.description.clone().or(decl.description),
                read_only: old.read_only || decl.read_only,
                site: old.site.clone(),
                value: old.value.clone(),
            },
            None => {
                return Err(ModuleError::BadDeclaration {
                    message: format!("the option `{full}` is declared more than once"),
                    path: full,
                    sites: vec![decl.site, old.site.clone()],
                });
            }
        },
    };
    ns.children
        .insert(name.clone(), Node::Option(Rc::new(merged)));
    Ok(())
}

/// "an alias", "a renamed", ... for messages.
fn article(kind: &AliasKind) -> String {
    match kind {
        AliasKind::Alias { .. } => "an alias".into(),
        AliasKind::Unsupported { .. } => "an unsupported".into(),
        AliasKind::Ignored { .. } => "an ignored".into(),
        other => format!("a {}", other.name()),
    }
}

/// An option path written as a list of strings (`[ "boot" "kernelParams" ]`).
fn read_path(ev: &Evaluator, v: &Value) -> Result<Option<OptionPath>, ModuleError> {
    let Some(items) = ev.force(v)?.as_list().cloned() else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        match ev.force(item)? {
            Value::String(s) if !s.as_str().is_empty() => out.push(SmolStr::new(s.as_str())),
            _ => return Ok(None),
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some(OptionPath::from(out)))
}

fn read_alias(
    ev: &Evaluator,
    value: &Value,
    path: OptionPath,
    site: Site,
    prefix: &OptionPath,
) -> Result<Alias, ModuleError> {
    let full = prefix.join(&path);
    let attrs = value.as_attrs();
    let get = |name: &str| attrs.and_then(|a| a.value(name)).cloned();
    let bad = |message: String| ModuleError::BadDeclaration {
        path: full.clone(),
        message,
        sites: vec![site.clone()],
    };
    let kind = match get("kind") {
        Some(k) => match ev.force(&k)? {
            Value::String(s) => s.as_str().to_string(),
            other => {
                return Err(bad(format!(
                    "the kind of the alias `{full}` must be a string, not {}",
                    other.describe()
                )));
            }
        },
        None => return Err(bad(format!("the alias `{full}` has no `kind`"))),
    };
    let target = || -> Result<OptionPath, ModuleError> {
        match get("to") {
            Some(t) => read_path(ev, &t)?.ok_or_else(|| {
                bad(format!(
                    "the target of `{full}` must be an option path: a non-empty list of \
                     non-empty strings such as `[ \"boot\" \"kernelParams\" ]`"
                ))
            }),
            None => Err(bad(format!(
                "the {kind} name `{full}` has no target (`to`)"
            ))),
        }
    };
    let message = || -> Result<String, ModuleError> {
        match get("message") {
            None => Ok(String::new()),
            Some(m) => match ev.force(&m)? {
                Value::String(s) => Ok(s.as_str().trim().to_string()),
                other => Err(bad(format!(
                    "the message of `{full}` must be a string, not {}",
                    other.describe()
                ))),
            },
        }
    };
    let kind = match kind.as_str() {
        "alias" => AliasKind::Alias { to: target()? },
        "renamed" => AliasKind::Renamed { to: target()? },
        "removed" => AliasKind::Removed {
            message: message()?,
        },
        "unsupported" => AliasKind::Unsupported {
            message: message()?,
        },
        "ignored" => AliasKind::Ignored {
            message: message()?,
        },
        other => {
            return Err(bad(format!(
                "unknown alias kind `{other}` for `{full}` \
                 (expected alias, renamed, removed, unsupported or ignored)"
            )));
        }
    };
    if let Some(to) = kind.target()
        && (to.components().starts_with(path.components())
            || path.components().starts_with(to.components()))
    {
        return Err(bad(format!(
            "`{full}` cannot be an alias of `{}`: one is inside the other",
            prefix.join(to)
        )));
    }
    Ok(Alias {
        path,
        full,
        kind,
        site,
        value: value.clone(),
    })
}

fn insert_alias(ns: &mut Namespace, name: &SmolStr, alias: Alias) -> Result<(), ModuleError> {
    if let Some(existing) = ns.children.get(name) {
        let other = match existing {
            Node::Option(d) => d.site.clone(),
            Node::Alias(a) => a.site.clone(),
            Node::Namespace(_) => {
                return Err(ModuleError::BadDeclaration {
                    message: format!(
                        "`{}` is declared as {} name, but other modules declare options inside it",
                        alias.full,
                        article(&alias.kind)
                    ),
                    path: alias.full.clone(),
                    sites: vec![alias.site.clone()],
                });
            }
        };
        return Err(ModuleError::BadDeclaration {
            message: format!("`{}` is declared more than once", alias.full),
            path: alias.full.clone(),
            sites: vec![alias.site.clone(), other],
        });
    }
    ns.children
        .insert(name.clone(), Node::Alias(Rc::new(alias)));
    Ok(())
}
