//! Option declarations: the tree of options all modules declare.
//!
//! Each module's `options` set is walked: a set with `_type = "option"` (made
//! by `lib.mkOption`) is a declaration; any other set is a namespace holding
//! more options. The result is one [`Namespace`] tree. An option declared by
//! two modules is an error, except when both declare submodule types: then
//! the submodules' modules are combined (this is how a module adds options to
//! `users.users.<name>`).

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

pub enum Node {
    Option(Rc<OptionDecl>),
    Namespace(Namespace),
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
            Node::Option(_) => None,
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
/// `root`. `file` names the module for messages.
pub fn declare(
    ev: &Evaluator,
    root: &mut Namespace,
    options: &Value,
    file: &Rc<str>,
    prefix: &OptionPath,
) -> Result<(), ModuleError> {
    walk(ev, root, options, OptionPath::root(), file, None, prefix)
}

fn walk(
    ev: &Evaluator,
    ns: &mut Namespace,
    set: &Value,
    path: OptionPath,
    file: &Rc<str>,
    span: Option<crate::source::Span>,
    prefix: &OptionPath,
) -> Result<(), ModuleError> {
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
            };
            walk(ev, sub, &value, child_path, file, entry.span, prefix)?;
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
