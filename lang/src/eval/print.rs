//! Nix-like printing of values for `imago eval` and the golden tests.
//!
//! `{ a = 1; b = [ 1 2 ]; }` on one line; strings quoted with escapes; floats
//! as C's `%g` (as Nix prints them); functions as `«lambda @ file:line:col»`
//! and `«primop name»`. When not strict, unevaluated values print as
//! `«thunk»`; when strict everything is forced. A set or list that contains
//! itself prints as `«repeated»` where it recurs (only along the current
//! path, unlike Nix, which marks every repeated occurrence).

use crate::eval::Evaluator;
use crate::eval::error::EvalError;
use crate::eval::value::Value;
use crate::source::Span;
use std::fmt::Write;
use std::rc::Rc;

impl Evaluator {
    pub(crate) fn print_value(
        &self,
        v: &Value,
        strict: bool,
        out: &mut String,
        path: &mut Vec<usize>,
        span: Span,
    ) -> Result<(), EvalError> {
        let v = match v {
            Value::Thunk(t) if !strict => match t.forced_value() {
                Some(v) => v,
                None => {
                    out.push_str("«thunk»");
                    return Ok(());
                }
            },
            other => self.force_value(other)?,
        };
        match &v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&format_float(*f)),
            Value::String(s) => quote_into(s.as_str(), out),
            Value::Path(p) => out.push_str(&p.to_string_lossy()),
            Value::List(items) => {
                let id = Rc::as_ptr(items) as *const u8 as usize;
                if path.contains(&id) {
                    out.push_str("«repeated»");
                    return Ok(());
                }
                path.push(id);
                self.enter(0, None, span)?;
                out.push('[');
                let mut r = Ok(());
                for i in items.iter() {
                    out.push(' ');
                    r = self.print_value(i, strict, out, path, span);
                    if r.is_err() {
                        break;
                    }
                }
                out.push_str(" ]");
                self.leave();
                path.pop();
                r?;
            }
            Value::Attrs(a) => {
                let id = Rc::as_ptr(a) as *const u8 as usize;
                if path.contains(&id) {
                    out.push_str("«repeated»");
                    return Ok(());
                }
                path.push(id);
                self.enter(0, None, span)?;
                out.push('{');
                let mut r = Ok(());
                for e in a.entries() {
                    out.push(' ');
                    attr_name_into(&e.name, out);
                    out.push_str(" = ");
                    r = self.print_value(&e.value, strict, out, path, span);
                    if r.is_err() {
                        break;
                    }
                    out.push(';');
                }
                if a.is_open() {
                    out.push_str(" ...");
                }
                out.push_str(" }");
                self.leave();
                path.pop();
                r?;
            }
            Value::Lambda(c) => {
                let loc = self.location(c.span());
                let _ = write!(out, "«lambda @ {loc}»");
            }
            Value::PrimOp(p) => {
                if p.is_partial() {
                    let _ = write!(out, "«primop-app {}»", p.name());
                } else {
                    let _ = write!(out, "«primop {}»", p.name());
                }
            }
            Value::Thunk(_) => out.push_str("«thunk»"),
        }
        Ok(())
    }
}

/// A float as C's `%g` (six significant digits), as Nix prints floats.
pub fn format_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{x:.5e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (5 - exp).max(0) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A string literal with Nix escapes.
pub fn quote_into(s: &str, out: &mut String) {
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
}

const KEYWORDS: &[&str] = &[
    "if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or",
];

/// An attribute name, quoted unless it is a plain identifier.
pub fn attr_name_into(name: &str, out: &mut String) {
    let mut chars = name.chars();
    let ident = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '\'' | '-'))
        && !KEYWORDS.contains(&name);
    if ident {
        out.push_str(name);
    } else {
        quote_into(name, out);
    }
}

#[cfg(test)]
mod tests {
    use super::format_float;

    #[test]
    fn floats_print_like_printf_g() {
        assert_eq!(format_float(1.5), "1.5");
        assert_eq!(format_float(3.0), "3");
        assert_eq!(format_float(1e-5), "1e-05");
        assert_eq!(format_float(123456789.123), "1.23457e+08");
        assert_eq!(format_float(1e20), "1e+20");
        assert_eq!(format_float(0.1), "0.1");
    }
}
