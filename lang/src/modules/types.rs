//! Option types: parsing the language-level descriptors of `lib.types`,
//! describing them, and checking values against them.
//!
//! In the language a type is a set `{ _type = "option-type"; name = "listOf";
//! elemType = ...; }` (see lang/lib/types.imago). [`Type::from_value`] reads
//! such a set once into a [`Type`], which the merge code (merge.rs) uses to
//! check each definition and to combine them. A *check* is shallow, as in
//! NixOS: it looks at the value in weak head normal form (a list is a list;
//! its elements are checked when the list is merged).

use crate::eval::{Evaluator, Value};
use crate::modules::error::{ModuleError, Site};
use crate::modules::path::OptionPath;
use crate::modules::values::deep_eq;
use regex::Regex;
use std::rc::Rc;

#[derive(Debug)]
pub enum Type {
    Bool,
    Int,
    IntBetween {
        min: Option<i64>,
        max: Option<i64>,
    },
    Float,
    Number,
    Str,
    NonEmptyStr,
    /// Definitions joined with `sep` (`lines` is `"\n"`).
    Separated(String),
    StrMatching(Regex),
    /// An absolute path: a path value or a string starting with `/`.
    Path,
    /// A step (`{ type = "step"; ... }`) or a string naming a store object.
    Package,
    Attrs,
    Raw,
    Anything,
    Enum(Vec<Value>),
    ListOf(Rc<Type>),
    AttrsOf(Rc<Type>),
    /// Like `AttrsOf`, but each attribute is merged only when read, so
    /// values may refer to each other; an attribute whose definitions are
    /// all under a false `mkIf` stays listed and is an error to read.
    LazyAttrsOf(Rc<Type>),
    NullOr(Rc<Type>),
    OneOf(Vec<Rc<Type>>),
    FunctionTo(Rc<Type>),
    /// A set of options declared by these modules, each with the site that
    /// declared the option (for messages).
    Submodule(Vec<(Value, Site)>),
    /// `mkOptionType { name; description; check; }`.
    Custom {
        name: String,
        description: String,
        check: Value,
    },
}

fn attr(ev: &Evaluator, set: &Value, name: &str) -> Result<Option<Value>, ModuleError> {
    match set.as_attrs().and_then(|a| a.value(name)) {
        Some(v) => Ok(Some(ev.force(v)?)),
        None => Ok(None),
    }
}

fn opt_int(
    ev: &Evaluator,
    set: &Value,
    name: &str,
    bad: &dyn Fn(String) -> ModuleError,
) -> Result<Option<i64>, ModuleError> {
    match attr(ev, set, name)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Int(i)) => Ok(Some(i)),
        Some(other) => Err(bad(format!(
            "`{name}` of an integer type must be an integer, not {}",
            other.describe()
        ))),
    }
}

impl Type {
    /// Reads a type descriptor. `path` and `site` name the option whose type
    /// this is, for the error when the value is not a type.
    pub fn from_value(
        ev: &Evaluator,
        value: &Value,
        path: &OptionPath,
        site: &Site,
    ) -> Result<Rc<Type>, ModuleError> {
        let bad = |message: String| ModuleError::BadDeclaration {
            path: path.clone(),
            message,
            sites: vec![site.clone()],
        };
        let v = ev.force(value)?;
        let is_type = v.as_attrs().is_some()
            && matches!(attr(ev, &v, "_type")?, Some(Value::String(s)) if s.as_str() == "option-type");
        if !is_type {
            return Err(bad(format!(
                "the type of option `{path}` is {}, not a type from `lib.types`",
                v.describe()
            )));
        }
        let name = match attr(ev, &v, "name")? {
            Some(Value::String(s)) => s.as_str().to_string(),
            _ => return Err(bad(format!("the type of option `{path}` has no name"))),
        };
        let elem = |field: &str| -> Result<Rc<Type>, ModuleError> {
            match v.as_attrs().and_then(|a| a.value(field)) {
                Some(t) => Type::from_value(ev, t, path, site),
                None => Err(bad(format!("the type `{name}` has no `{field}`"))),
            }
        };
        let list = |field: &str| -> Result<Vec<Value>, ModuleError> {
            match attr(ev, &v, field)? {
                Some(Value::List(items)) => Ok(items.to_vec()),
                _ => Err(bad(format!(
                    "`{field}` of the type `{name}` must be a list"
                ))),
            }
        };
        let ty = match name.as_str() {
            "bool" => Type::Bool,
            "int" => Type::Int,
            "intBetween" => Type::IntBetween {
                min: opt_int(ev, &v, "min", &bad)?,
                max: opt_int(ev, &v, "max", &bad)?,
            },
            "float" => Type::Float,
            "number" => Type::Number,
            "str" => Type::Str,
            "nonEmptyStr" => Type::NonEmptyStr,
            "separatedString" => match attr(ev, &v, "sep")? {
                Some(Value::String(s)) => Type::Separated(s.as_str().to_string()),
                _ => return Err(bad("`sep` of `separatedString` must be a string".into())),
            },
            "strMatching" => match attr(ev, &v, "regex")? {
                Some(Value::String(s)) => {
                    let anchored = format!("^(?:{})$", s.as_str());
                    let re = Regex::new(&anchored).map_err(|e| {
                        bad(format!(
                            "`strMatching` pattern `{}` is invalid: {e}",
                            s.as_str()
                        ))
                    })?;
                    Type::StrMatching(re)
                }
                _ => return Err(bad("`strMatching` needs a pattern string".into())),
            },
            "path" => Type::Path,
            "package" => Type::Package,
            "attrs" => Type::Attrs,
            "raw" => Type::Raw,
            "anything" => Type::Anything,
            "enum" => {
                let values = list("values")?;
                let mut forced = Vec::with_capacity(values.len());
                for x in &values {
                    forced.push(ev.force(x)?);
                }
                Type::Enum(forced)
            }
            "listOf" => Type::ListOf(elem("elemType")?),
            "attrsOf" => Type::AttrsOf(elem("elemType")?),
            "lazyAttrsOf" => Type::LazyAttrsOf(elem("elemType")?),
            "nullOr" => Type::NullOr(elem("elemType")?),
            "functionTo" => Type::FunctionTo(elem("elemType")?),
            "oneOf" => {
                let mut types = Vec::new();
                for t in list("types")? {
                    types.push(Type::from_value(ev, &t, path, site)?);
                }
                if types.is_empty() {
                    return Err(bad("`oneOf` needs at least one type".into()));
                }
                Type::OneOf(types)
            }
            "submodule" => Type::Submodule(
                list("modules")?
                    .into_iter()
                    .map(|m| (m, site.clone()))
                    .collect(),
            ),
            "custom" => {
                let cname = match attr(ev, &v, "customName")? {
                    Some(Value::String(s)) => s.as_str().to_string(),
                    _ => "custom".to_string(),
                };
                let description = match attr(ev, &v, "description")? {
                    Some(Value::String(s)) => s.as_str().to_string(),
                    _ => cname.clone(),
                };
                let check = match v.as_attrs().and_then(|a| a.value("check")) {
                    Some(c) => c.clone(),
                    None => return Err(bad(format!("the type `{cname}` has no `check`"))),
                };
                Type::Custom {
                    name: cname,
                    description,
                    check,
                }
            }
            other => {
                return Err(bad(format!(
                    "unknown option type `{other}` for option `{path}`"
                )));
            }
        };
        Ok(Rc::new(ty))
    }

    /// The type of an option declared twice: submodules (also inside
    /// `attrsOf`, `listOf` or `nullOr`) combine their modules; other types
    /// cannot be declared twice.
    pub fn combine(a: &Rc<Type>, b: &Rc<Type>) -> Option<Rc<Type>> {
        Some(Rc::new(match (&**a, &**b) {
            (Type::Submodule(x), Type::Submodule(y)) => {
                Type::Submodule(x.iter().chain(y.iter()).cloned().collect())
            }
            (Type::AttrsOf(x), Type::AttrsOf(y)) => Type::AttrsOf(Type::combine(x, y)?),
            (Type::LazyAttrsOf(x), Type::LazyAttrsOf(y)) => Type::LazyAttrsOf(Type::combine(x, y)?),
            (Type::ListOf(x), Type::ListOf(y)) => Type::ListOf(Type::combine(x, y)?),
            (Type::NullOr(x), Type::NullOr(y)) => Type::NullOr(Type::combine(x, y)?),
            _ => return None,
        }))
    }

    /// Whether the description is a phrase that needs parentheses inside
    /// another type's description.
    fn compound(&self) -> bool {
        matches!(
            self,
            Type::ListOf(_)
                | Type::AttrsOf(_)
                | Type::LazyAttrsOf(_)
                | Type::NullOr(_)
                | Type::OneOf(_)
                | Type::FunctionTo(_)
                | Type::Enum(_)
                | Type::IntBetween { .. }
                | Type::Separated(_)
                | Type::StrMatching(_)
        )
    }

    fn inner(&self) -> String {
        if self.compound() {
            format!("({})", self.description())
        } else {
            self.description()
        }
    }

    /// A human description such as `list of string`.
    pub fn description(&self) -> String {
        match self {
            Type::Bool => "boolean".into(),
            Type::Int => "signed integer".into(),
            Type::IntBetween { min, max } => match (min, max) {
                (Some(0), None) => "unsigned integer, meaning >=0".into(),
                (Some(1), None) => "positive integer, meaning >0".into(),
                (Some(a), Some(b)) => format!("integer between {a} and {b} (both inclusive)"),
                (Some(a), None) => format!("integer, at least {a}"),
                (None, Some(b)) => format!("integer, at most {b}"),
                (None, None) => "signed integer".into(),
            },
            Type::Float => "floating point number".into(),
            Type::Number => "signed integer or floating point number".into(),
            Type::Str => "string".into(),
            Type::NonEmptyStr => "non-empty string".into(),
            Type::Separated(sep) if sep == "\n" => "strings concatenated with \"\\n\"".into(),
            Type::Separated(sep) => format!("strings concatenated with {sep:?}"),
            Type::StrMatching(re) => {
                let p = re.as_str();
                let inner = p
                    .strip_prefix("^(?:")
                    .and_then(|s| s.strip_suffix(")$"))
                    .unwrap_or(p);
                format!("string matching the pattern {inner}")
            }
            Type::Path => "absolute path".into(),
            Type::Package => "package".into(),
            Type::Attrs => "attribute set".into(),
            Type::Raw => "raw value".into(),
            Type::Anything => "anything".into(),
            Type::Enum(values) => {
                let shown: Vec<String> = values.iter().map(crate::modules::values::short).collect();
                format!("one of {}", shown.join(", "))
            }
            Type::ListOf(t) => format!("list of {}", t.inner()),
            Type::AttrsOf(t) => format!("attribute set of {}", t.inner()),
            Type::LazyAttrsOf(t) => format!("lazy attribute set of {}", t.inner()),
            Type::NullOr(t) => format!("null or {}", t.inner()),
            Type::OneOf(ts) => ts
                .iter()
                .map(|t| t.inner())
                .collect::<Vec<_>>()
                .join(" or "),
            Type::FunctionTo(t) => format!("function that evaluates to a(n) {}", t.inner()),
            Type::Submodule(_) => "submodule".into(),
            Type::Custom { description, .. } => description.clone(),
        }
    }

    /// The type's name for `--json` output.
    pub fn name(&self) -> &str {
        match self {
            Type::Bool => "bool",
            Type::Int => "int",
            Type::IntBetween { .. } => "intBetween",
            Type::Float => "float",
            Type::Number => "number",
            Type::Str => "str",
            Type::NonEmptyStr => "nonEmptyStr",
            Type::Separated(_) => "separatedString",
            Type::StrMatching(_) => "strMatching",
            Type::Path => "path",
            Type::Package => "package",
            Type::Attrs => "attrs",
            Type::Raw => "raw",
            Type::Anything => "anything",
            Type::Enum(_) => "enum",
            Type::ListOf(_) => "listOf",
            Type::AttrsOf(_) => "attrsOf",
            Type::LazyAttrsOf(_) => "lazyAttrsOf",
            Type::NullOr(_) => "nullOr",
            Type::OneOf(_) => "oneOf",
            Type::FunctionTo(_) => "functionTo",
            Type::Submodule(_) => "submodule",
            Type::Custom { name, .. } => name,
        }
    }

    /// Whether merging a single definition returns it unchanged once it
    /// passes [`Type::check`]: such values need no lazy wrapper.
    pub fn is_simple(&self) -> bool {
        match self {
            Type::ListOf(_)
            | Type::AttrsOf(_)
            | Type::LazyAttrsOf(_)
            | Type::FunctionTo(_)
            | Type::Submodule(_)
            | Type::Anything => false,
            Type::NullOr(t) => t.is_simple(),
            Type::OneOf(ts) => ts.iter().all(|t| t.is_simple()),
            _ => true,
        }
    }

    /// Whether values of this type hold submodule evaluations (directly or
    /// inside lists, attribute sets, `nullOr` or `oneOf`).
    pub fn has_submodule(&self) -> bool {
        match self {
            Type::Submodule(_) => true,
            Type::ListOf(t) | Type::AttrsOf(t) | Type::LazyAttrsOf(t) | Type::NullOr(t) => {
                t.has_submodule()
            }
            Type::OneOf(ts) => ts.iter().any(|t| t.has_submodule()),
            _ => false,
        }
    }

    /// The shallow check of a value in weak head normal form.
    pub fn check(&self, ev: &Evaluator, v: &Value) -> Result<bool, ModuleError> {
        Ok(match self {
            Type::Bool => matches!(v, Value::Bool(_)),
            Type::Int => matches!(v, Value::Int(_)),
            Type::IntBetween { min, max } => match v {
                Value::Int(i) => min.is_none_or(|m| *i >= m) && max.is_none_or(|m| *i <= m),
                _ => false,
            },
            Type::Float => matches!(v, Value::Float(_)),
            Type::Number => matches!(v, Value::Int(_) | Value::Float(_)),
            Type::Str | Type::Separated(_) => matches!(v, Value::String(_)),
            Type::NonEmptyStr => matches!(v, Value::String(s) if !s.as_str().trim().is_empty()),
            Type::StrMatching(re) => matches!(v, Value::String(s) if re.is_match(s.as_str())),
            // As in NixOS, anything that interpolates to an absolute path:
            // a store object (`pkgs.writeText ...`) too.
            Type::Path => match v {
                Value::Path(_) => true,
                Value::String(s) => s.has_context() || s.as_str().starts_with('/'),
                Value::Attrs(a) => match a.value("type") {
                    Some(t) => matches!(ev.force(t)?, Value::String(s) if s.as_str() == "step"),
                    None => false,
                },
                _ => false,
            },
            Type::Package => match v {
                Value::String(s) => s.has_context() || s.as_str().starts_with('/'),
                Value::Attrs(a) => match a.value("type") {
                    Some(t) => matches!(ev.force(t)?, Value::String(s) if s.as_str() == "step"),
                    None => false,
                },
                _ => false,
            },
            Type::Attrs | Type::AttrsOf(_) | Type::LazyAttrsOf(_) => {
                matches!(v, Value::Attrs(_))
            }
            Type::Raw | Type::Anything => true,
            Type::Enum(values) => {
                let mut found = false;
                for x in values {
                    if deep_eq(ev, x, v)? {
                        found = true;
                        break;
                    }
                }
                found
            }
            Type::ListOf(_) => matches!(v, Value::List(_)),
            Type::NullOr(t) => matches!(v, Value::Null) || t.check(ev, v)?,
            Type::OneOf(ts) => {
                let mut any = false;
                for t in ts {
                    if t.check(ev, v)? {
                        any = true;
                        break;
                    }
                }
                any
            }
            Type::FunctionTo(_) => v.is_function(),
            Type::Submodule(_) => matches!(v, Value::Attrs(_) | Value::Path(_)) || v.is_function(),
            Type::Custom { check, .. } => {
                let r = ev.call(check, v.clone())?;
                match ev.force(&r)? {
                    Value::Bool(b) => b,
                    other => {
                        return Err(ModuleError::BadDeclaration {
                            path: OptionPath::root(),
                            message: format!(
                                "the `check` of type `{}` returned {}, not a Boolean",
                                self.name(),
                                other.describe()
                            ),
                            sites: Vec::new(),
                        });
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_descriptions_are_parenthesised() {
        let s = Rc::new(Type::Str);
        let list = Rc::new(Type::ListOf(s.clone()));
        assert_eq!(list.description(), "list of string");
        let nested = Type::AttrsOf(list.clone());
        assert_eq!(nested.description(), "attribute set of (list of string)");
        let either = Type::OneOf(vec![Rc::new(Type::Int), list]);
        assert_eq!(either.description(), "signed integer or (list of string)");
        let port = Type::IntBetween {
            min: Some(0),
            max: Some(65535),
        };
        assert_eq!(
            port.description(),
            "integer between 0 and 65535 (both inclusive)"
        );
    }

    #[test]
    fn submodule_declarations_combine_through_wrappers() {
        let a = Rc::new(Type::AttrsOf(Rc::new(Type::Submodule(vec![(
            Value::Null,
            Site::new("a", None),
        )]))));
        let b = Rc::new(Type::AttrsOf(Rc::new(Type::Submodule(vec![(
            Value::Null,
            Site::new("b", None),
        )]))));
        match Type::combine(&a, &b).as_deref() {
            Some(Type::AttrsOf(inner)) => match &**inner {
                Type::Submodule(m) => assert_eq!(m.len(), 2),
                _ => panic!("not a submodule"),
            },
            _ => panic!("did not combine"),
        }
        assert!(Type::combine(&Rc::new(Type::Str), &Rc::new(Type::Str)).is_none());
    }
}
