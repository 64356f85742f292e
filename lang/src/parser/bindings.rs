//! Bindings and the constructs built from them: attribute sets, `let`,
//! `inherit`, attribute paths and function parameter patterns.
//!
//! `a.b.c = 1; a.d = 2;` stays two [`Binding::Assign`]s with their paths;
//! merging them and finding duplicates is the evaluator's job. Duplicate
//! function parameters, in contrast, are a syntax error here, as in Nix.

use super::error::ParseError;
use super::expr::Parser;
use super::token::TokenKind;
use crate::ast::{AttrKey, AttrPath, Binding, Expr, ExprKind, Ident, Param, PatternEntry, StrPart};
use crate::source::Span;
use smol_str::SmolStr;
use std::collections::HashMap;

/// What ends a list of bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// `}` of an attribute set.
    Brace,
    /// `in` of a `let`.
    In,
}

impl Parser<'_> {
    /// `{ bindings }` or `rec { bindings }`, from the `{`.
    pub(super) fn attrs(&mut self, rec: bool, start: u32) -> Expr {
        let open = self.bump();
        let bindings = self.bindings(End::Brace);
        self.expect_close(TokenKind::RBrace, open, "attribute set");
        self.node(start, ExprKind::Attrs { rec, bindings })
    }

    /// `let bindings in body`.
    pub(super) fn let_in(&mut self) -> Expr {
        let kw = self.bump();
        let bindings = self.bindings(End::In);
        let body = if self.eat(TokenKind::In).is_some() {
            self.expr()
        } else {
            let hint = match self.peek() {
                TokenKind::RBrace | TokenKind::RBracket | TokenKind::RParen => {
                    Some("this closes a bracket that the `let` is inside of".to_string())
                }
                _ => Some("a `let` is written `let a = 1; b = 2; in body`".to_string()),
            };
            self.expected(
                "`in` after the bindings of `let`",
                hint,
                Some((self.tspan(kw), "this `let`".to_string())),
            );
            self.error_here()
        };
        self.node(
            kw.start,
            ExprKind::Let {
                bindings,
                body: Box::new(body),
            },
        )
    }

    fn bindings(&mut self, end: End) -> Vec<Binding> {
        use TokenKind as T;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                T::RBrace | T::RBracket | T::RParen | T::In | T::Eof => break,
                T::Inherit => out.push(self.inherit()),
                T::Ident | T::OrKw | T::StrOpen | T::Interp => out.push(self.assign(end)),
                k => {
                    let hint = match k {
                        T::Semi => Some("remove the extra `;`".to_string()),
                        T::IndOpen => Some(
                            "attribute names may be \"strings\", not ''indented strings''"
                                .to_string(),
                        ),
                        _ if k
                            .spelling()
                            .is_some_and(|s| s.chars().all(|c| c.is_ascii_alphabetic())) =>
                        {
                            Some(format!(
                                "`{0}` is a keyword: quote it to use it as a name, \"{0}\"",
                                k.spelling().unwrap_or("?")
                            ))
                        }
                        _ => None,
                    };
                    let closer = if end == End::Brace { "`}`" } else { "`in`" };
                    self.expected(
                        format!("a binding (`name = value;` or `inherit`) or {closer}"),
                        hint,
                        None,
                    );
                    self.bump();
                    self.recover(&[]);
                    self.eat(T::Semi);
                }
            }
        }
        out
    }

    /// `path = value;`
    fn assign(&mut self, end: End) -> Binding {
        use TokenKind as T;
        let start = self.tok().start;
        let path = self.attr_path();
        let name = self.path_text(&path);
        let value = if self.eat(T::Assign).is_some() {
            self.expr()
        } else {
            let hint = match self.peek() {
                T::EqEq => Some("a binding uses a single `=`".to_string()),
                T::Colon => Some("a binding is written `name = value;`".to_string()),
                T::Semi | T::RBrace if end == End::Brace => Some(
                    "an attribute set holds `name = value;` bindings; function parameters are written `{ a, b }: body`"
                        .to_string(),
                ),
                _ => None,
            };
            self.expected(format!("`=` after `{name}`"), hint, None);
            if matches!(self.peek(), T::EqEq | T::Colon) {
                self.bump();
                self.expr()
            } else {
                self.recover(&[]);
                self.eat(T::Semi);
                let span = self.span(start, self.prev_end());
                return Binding::Assign {
                    path,
                    value: Expr {
                        kind: ExprKind::Error,
                        span: self.span(span.end, span.end),
                    },
                    span,
                };
            }
        };
        let value = self.end_binding(&name, value, end);
        Binding::Assign {
            path,
            value,
            span: self.span(start, self.prev_end()),
        }
    }

    /// Expects the `;` after a binding's value. When it is missing and the
    /// value swallowed the next binding's name (`a = 1 \n b = 2;` reads as
    /// `a = 1 b`), reports the missing `;` and backs up to that name.
    fn end_binding(&mut self, name: &str, value: Expr, end: End) -> Expr {
        use TokenKind as T;
        if self.eat(T::Semi).is_some() {
            return value;
        }
        let expected = format!("`;` after the binding of `{name}`");
        if self.peek() == T::Assign
            && let ExprKind::Apply { arg, .. } = &value.kind
            && is_binding_start(arg)
            && let Some(index) = self.token_at(arg.span.start)
        {
            let found = self.toks[index];
            let hint = format!("add `;` at the end of the binding of `{name}`");
            let err = ParseError::Expected {
                expected,
                found: super::token::describe(found, self.src),
                span: self.tspan(found),
                hint: Some(hint),
                related: None,
            };
            self.report(err);
            self.pos = index;
            return match value.kind {
                ExprKind::Apply { func, .. } => *func,
                other => Expr {
                    kind: other,
                    span: value.span,
                },
            };
        }
        let at_end = match end {
            End::Brace => self.peek() == T::RBrace,
            End::In => self.peek() == T::In,
        };
        let hint = if at_end || matches!(self.peek(), T::Ident | T::Inherit | T::Eof) {
            Some("every binding ends with `;`".to_string())
        } else {
            None
        };
        self.expected(expected, hint, None);
        if !at_end {
            self.recover(&[]);
            self.eat(T::Semi);
        }
        value
    }

    /// Index of the token starting at `offset`.
    fn token_at(&self, offset: u32) -> Option<usize> {
        let i = self.toks.partition_point(|t| t.start < offset);
        self.toks
            .get(i)
            .filter(|t| t.start == offset && matches!(t.kind, TokenKind::Ident | TokenKind::OrKw))
            .map(|_| i)
    }

    /// `inherit a b;` or `inherit (e) a b;`
    fn inherit(&mut self) -> Binding {
        use TokenKind as T;
        let kw = self.bump();
        let from = if self.peek() == T::LParen {
            let open = self.bump();
            let e = self.expr();
            self.expect_close(T::RParen, open, "parenthesis");
            Some(Box::new(e))
        } else {
            None
        };
        let mut names = Vec::new();
        loop {
            let t = self.tok();
            match t.kind {
                T::Ident | T::OrKw => {
                    self.bump();
                    names.push(Ident {
                        name: SmolStr::new(self.text(t)),
                        span: self.tspan(t),
                    });
                }
                T::StrOpen => {
                    let s = self.string();
                    match static_name(&s) {
                        Some(name) => names.push(Ident { name, span: s.span }),
                        None => self.report(ParseError::DynamicInherit { span: s.span }),
                    }
                    super::depth::drop_deep(s);
                }
                T::Interp => {
                    let open = self.bump();
                    let e = self.expr();
                    self.expect_close(T::RBrace, open, "interpolation");
                    super::depth::drop_deep(e);
                    let span = self.span(t.start, self.prev_end());
                    self.report(ParseError::DynamicInherit { span });
                }
                T::Semi => {
                    self.bump();
                    break;
                }
                k => {
                    let closing = matches!(k, T::RBrace | T::In | T::Eof);
                    let hint = closing.then(|| "every binding ends with `;`".to_string());
                    self.expected(
                        "a name or `;` after `inherit`",
                        hint,
                        Some((self.tspan(kw), "this `inherit`".into())),
                    );
                    if !closing {
                        self.recover(&[]);
                        self.eat(T::Semi);
                    }
                    break;
                }
            }
        }
        Binding::Inherit {
            from,
            names,
            span: self.span(kw.start, self.prev_end()),
        }
    }

    /// `a.b."c d".${e}`
    pub(super) fn attr_path(&mut self) -> AttrPath {
        use TokenKind as T;
        let start = self.tok().start;
        let mut keys = Vec::new();
        loop {
            let t = self.tok();
            let key = match t.kind {
                T::Ident | T::OrKw => {
                    self.bump();
                    AttrKey::Static {
                        name: SmolStr::new(self.text(t)),
                        span: self.tspan(t),
                    }
                }
                T::StrOpen => {
                    let s = self.string();
                    match static_name(&s) {
                        Some(name) => {
                            let span = s.span;
                            super::depth::drop_deep(s);
                            AttrKey::Static { name, span }
                        }
                        None => AttrKey::Dynamic(s),
                    }
                }
                T::Interp => {
                    let open = self.bump();
                    let e = self.expr();
                    self.expect_close(T::RBrace, open, "interpolation");
                    AttrKey::Dynamic(e)
                }
                k => {
                    let hint = match k.spelling() {
                        Some(s) if s.chars().all(|c| c.is_ascii_alphabetic()) => Some(format!(
                            "`{s}` is a keyword: quote it to use it as a name, \"{s}\""
                        )),
                        _ => None,
                    };
                    self.expected("an attribute name", hint, None);
                    if k.spelling()
                        .is_some_and(|s| s.chars().all(|c| c.is_ascii_alphabetic()))
                        && !matches!(k, T::In | T::Then | T::Else)
                    {
                        // A keyword used as a name: take it as one and go on.
                        self.bump();
                        AttrKey::Static {
                            name: SmolStr::new(self.text(t)),
                            span: self.tspan(t),
                        }
                    } else {
                        AttrKey::Dynamic(self.error_here())
                    }
                }
            };
            keys.push(key);
            if self.peek() != T::Dot {
                break;
            }
            self.bump();
        }
        AttrPath {
            keys,
            span: self.span(start, self.prev_end()),
        }
    }

    /// The source text of a path, for messages.
    fn path_text(&self, path: &AttrPath) -> String {
        let text = self.src.get(path.span.range()).unwrap_or("");
        let mut shown: String = text.chars().take(40).collect();
        if shown.len() < text.len() {
            shown.push('…');
        }
        shown
    }

    /// After `{`: is this a function's parameter pattern rather than an
    /// attribute set? (`{ }:`, `{ ... }`, `{ a, `, `{ a ? `, `{ a }:`, and the
    /// same with `@`.)
    pub(super) fn looks_like_pattern(&self) -> bool {
        use TokenKind as T;
        matches!(
            (self.peek_at(1), self.peek_at(2), self.peek_at(3)),
            (T::RBrace, T::Colon | T::At, _)
                | (T::Ellipsis, _, _)
                | (T::Ident, T::Comma | T::Question, _)
                | (T::Ident, T::RBrace, T::Colon | T::At)
        )
    }

    /// `{ a, b ? d, ... } @ name : body`, from the `{`; `bind` is a name
    /// already read before it (`name @ { ... }`).
    pub(super) fn pattern_lambda(&mut self, mut bind: Option<Ident>, start: u32) -> Expr {
        use TokenKind as T;
        let open = self.bump();
        let mut entries: Vec<PatternEntry> = Vec::new();
        let mut ellipsis = false;
        loop {
            let t = self.tok();
            match t.kind {
                T::RBrace | T::Eof => break,
                T::Ellipsis => {
                    self.bump();
                    ellipsis = true;
                    if self.peek() != T::RBrace {
                        self.expected("`}` after `...`", Some("`...` must come last".into()), None);
                        self.recover(&[T::Colon]);
                        break;
                    }
                }
                T::Ident => {
                    self.bump();
                    let name = Ident {
                        name: SmolStr::new(self.text(t)),
                        span: self.tspan(t),
                    };
                    let default = if self.eat(T::Question).is_some() {
                        Some(self.expr())
                    } else {
                        None
                    };
                    entries.push(PatternEntry { name, default });
                    match self.peek() {
                        T::Comma => {
                            self.bump();
                        }
                        T::RBrace => {}
                        _ => {
                            let hint = (self.peek() == T::Assign)
                                .then(|| "a default value is written `name ? value`".to_string());
                            self.expected(
                                format!("`,` or `}}` after the parameter `{}`", self.text(t)),
                                hint,
                                None,
                            );
                            self.recover(&[T::Comma, T::Colon]);
                            if self.eat(T::Comma).is_none() {
                                break;
                            }
                        }
                    }
                }
                _ => {
                    self.expected("a parameter name, `...` or `}`", None, None);
                    self.recover(&[T::Comma, T::Colon]);
                    if self.eat(T::Comma).is_none() {
                        break;
                    }
                }
            }
        }
        self.expect_close(T::RBrace, open, "parameter list");
        if bind.is_none() && self.eat(T::At).is_some() {
            let t = self.tok();
            if t.kind == T::Ident {
                self.bump();
                bind = Some(Ident {
                    name: SmolStr::new(self.text(t)),
                    span: self.tspan(t),
                });
            } else {
                self.expected("a name after `@`", None, None);
            }
        }
        self.check_duplicate_params(&entries, bind.as_ref());
        let param = Param::Pattern {
            entries,
            ellipsis,
            bind,
        };
        let body = if self.eat(T::Colon).is_some() {
            self.expr()
        } else {
            self.expected(
                "`:` after the function's parameters",
                Some("a function is written `{ a, b }: body`".into()),
                Some((self.tspan(open), "the parameters start here".into())),
            );
            self.error_here()
        };
        self.node(
            start,
            ExprKind::Lambda {
                param,
                body: Box::new(body),
            },
        )
    }

    fn check_duplicate_params(&mut self, entries: &[PatternEntry], bind: Option<&Ident>) {
        let mut seen: HashMap<&str, Span> = HashMap::with_capacity(entries.len() + 1);
        let mut dups = Vec::new();
        for ident in bind.into_iter().chain(entries.iter().map(|e| &e.name)) {
            if let Some(first) = seen.get(ident.name.as_str()) {
                dups.push(ParseError::DuplicateParam {
                    name: ident.name.clone(),
                    span: ident.span,
                    first: *first,
                });
            } else {
                seen.insert(ident.name.as_str(), ident.span);
            }
        }
        for d in dups {
            self.report(d);
        }
    }
}

/// A name that is fixed at parse time: a string without interpolation.
fn static_name(e: &Expr) -> Option<SmolStr> {
    match &e.kind {
        ExprKind::Str(parts) => match parts.as_slice() {
            [] => Some(SmolStr::default()),
            [StrPart::Lit(s)] => Some(SmolStr::new(s)),
            _ => None,
        },
        _ => None,
    }
}

/// Could this application argument be the start of a binding that lost its
/// `;` (a name or a dotted path)?
fn is_binding_start(arg: &Expr) -> bool {
    match &arg.kind {
        ExprKind::Var(_) => true,
        ExprKind::Select {
            expr,
            default: None,
            ..
        } => matches!(expr.kind, ExprKind::Var(_)),
        _ => false,
    }
}
