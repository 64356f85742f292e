//! Bindings and the constructs built from them: attribute sets, `let`,
//! `inherit`, attribute paths and function parameter patterns.
//!
//! `a.b.c = 1; a.d = 2;` stays two [`Binding::Assign`]s with their paths;
//! merging them and finding duplicates is the evaluator's job. Duplicate
//! function parameters, in contrast, are a syntax error here, as in Nix.

use super::cursor::Parser;
use super::error::ParseError;
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
    #[inline(never)]
    pub(super) fn attrs(&mut self, rec: bool, start: u32) -> Expr {
        if !self.enter() {
            self.leave();
            return self.error_here();
        }
        let open = self.bump();
        let bindings = self.bindings(End::Brace);
        self.leave();
        self.expect_close(TokenKind::RBrace, open, "attribute set");
        self.node(start, ExprKind::Attrs { rec, bindings })
    }

    /// `let bindings in body`.
    #[inline(never)]
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

    /// The bindings up to `end`, in a vector of exactly their number: they
    /// are gathered on the parser's binding stack (shared by nested sets)
    /// and moved out at the end, so that no set keeps spare capacity and a
    /// large set is not copied again at each doubling.
    fn bindings(&mut self, end: End) -> Vec<Binding> {
        use TokenKind as T;
        let mark = self.binding_stack.len();
        loop {
            match self.peek() {
                T::RBrace | T::RBracket | T::RParen | T::In | T::Eof => break,
                T::Inherit => {
                    let b = self.inherit();
                    self.binding_stack.push(b);
                }
                T::Ident | T::OrKw | T::StrOpen | T::Interp => {
                    let b = self.assign(end);
                    self.binding_stack.push(b);
                }
                _ => self.bad_binding(end),
            }
        }
        self.binding_stack.drain(mark..).collect()
    }

    /// Reports and skips something that cannot start a binding.
    #[inline(never)]
    fn bad_binding(&mut self, end: End) {
        use TokenKind as T;
        let k = self.peek();
        let hint = match k {
            T::Semi => Some("remove the extra `;`".to_string()),
            T::IndOpen => {
                Some("attribute names may be \"strings\", not ''indented strings''".to_string())
            }
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

    /// `path = value;`
    #[inline(never)]
    fn assign(&mut self, end: End) -> Binding {
        let start = self.tok().start;
        let path = self.attr_path();
        let value = if self.eat(TokenKind::Assign).is_some() {
            self.expr()
        } else {
            match self.missing_assign(&path) {
                Some(value) => value,
                None => {
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
            }
        };
        let value = if self.peek() == TokenKind::Semi {
            self.bump();
            value
        } else {
            self.end_binding(&path, value, end)
        };
        Binding::Assign {
            path,
            value,
            span: self.span(start, self.prev_end()),
        }
    }

    /// Reports a missing `=` after `path`; when `==` or `:` stands in its
    /// place, parses the value anyway, else skips the binding (`None`).
    #[inline(never)]
    fn missing_assign(&mut self, path: &AttrPath) -> Option<Expr> {
        use TokenKind as T;
        let name = self.path_text(path);
        let hint = match self.peek() {
            T::EqEq => Some("a binding uses a single `=`".to_string()),
            T::Colon => Some("a binding is written `name = value;`".to_string()),
            T::Semi | T::RBrace => Some(
                "an attribute set holds `name = value;` bindings; function parameters are written `{ a, b }: body`"
                    .to_string(),
            ),
            _ => None,
        };
        self.expected(format!("`=` after `{name}`"), hint, None);
        if matches!(self.peek(), T::EqEq | T::Colon) {
            self.bump();
            Some(self.expr())
        } else {
            self.recover(&[]);
            self.eat(T::Semi);
            None
        }
    }

    /// Expects the `;` after a binding's value. When it is missing and the
    /// value swallowed the next binding's name (`a = 1 \n b = 2;` reads as
    /// `a = 1 b`), reports the missing `;` and backs up to that name.
    #[inline(never)]
    fn end_binding(&mut self, path: &AttrPath, value: Expr, end: End) -> Expr {
        use TokenKind as T;
        let name = self.path_text(path);
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
    #[inline(never)]
    fn inherit(&mut self) -> Binding {
        let kw = self.bump();
        let from = if self.peek() == TokenKind::LParen {
            Some(Box::new(self.inherit_from()))
        } else {
            None
        };
        let mut names = Vec::new();
        while let Some(name) = self.inherit_name(kw) {
            names.extend(name);
        }
        Binding::Inherit {
            from,
            names,
            span: self.span(kw.start, self.prev_end()),
        }
    }

    /// `( e )` after `inherit`.
    #[inline(never)]
    fn inherit_from(&mut self) -> Expr {
        let open = self.bump();
        let e = self.expr();
        self.expect_close(TokenKind::RParen, open, "parenthesis");
        e
    }

    /// One name after `inherit`: `Some(Some(name))`, `Some(None)` for a
    /// reported bad name, `None` at the end of the binding.
    #[inline(never)]
    fn inherit_name(&mut self, kw: super::token::Token) -> Option<Option<Ident>> {
        use TokenKind as T;
        let t = self.tok();
        match t.kind {
            T::Ident | T::OrKw => {
                self.bump();
                Some(Some(Ident {
                    name: self.name(t),
                    span: self.tspan(t),
                }))
            }
            T::StrOpen => {
                let s = self.string();
                let name = static_name(&s);
                if name.is_none() {
                    self.report(ParseError::DynamicInherit { span: s.span });
                }
                let span = s.span;
                super::depth::drop_deep(s);
                Some(name.map(|name| Ident { name, span }))
            }
            T::Interp => {
                let e = self.interpolation();
                super::depth::drop_deep(e);
                let span = self.span(t.start, self.prev_end());
                self.report(ParseError::DynamicInherit { span });
                Some(None)
            }
            T::Semi => {
                self.bump();
                None
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
                None
            }
        }
    }

    /// `a.b."c d".${e}`
    pub(super) fn attr_path(&mut self) -> AttrPath {
        let start = self.tok().start;
        // Most paths have one key: do not reserve Vec's default four.
        let mut keys = Vec::with_capacity(1);
        loop {
            keys.push(self.attr_key());
            if self.peek() != TokenKind::Dot {
                break;
            }
            self.bump();
        }
        AttrPath {
            keys,
            span: self.span(start, self.prev_end()),
        }
    }

    /// One attribute name. Only dispatches: its frame is on the recursion
    /// path of `${...}` names.
    fn attr_key(&mut self) -> AttrKey {
        match self.peek() {
            TokenKind::Ident | TokenKind::OrKw => {
                let t = self.bump();
                AttrKey::Static {
                    name: self.name(t),
                    span: self.tspan(t),
                }
            }
            TokenKind::StrOpen => self.string_key(),
            TokenKind::Interp => AttrKey::Dynamic(self.interpolation()),
            _ => self.bad_key(),
        }
    }

    /// `"name"` (static) or `"a${b}"` (dynamic).
    #[inline(never)]
    fn string_key(&mut self) -> AttrKey {
        let s = self.string();
        match static_name(&s) {
            Some(name) => AttrKey::Static { name, span: s.span },
            None => AttrKey::Dynamic(s),
        }
    }

    /// `${ e }`, from the `${`: returns `e`.
    #[inline(never)]
    pub(super) fn interpolation(&mut self) -> Expr {
        if !self.enter() {
            self.leave();
            return self.error_here();
        }
        let open = self.bump();
        let e = self.expr();
        self.leave();
        self.expect_close(TokenKind::RBrace, open, "interpolation");
        e
    }

    #[inline(never)]
    fn bad_key(&mut self) -> AttrKey {
        use TokenKind as T;
        let t = self.tok();
        let keyword = t
            .kind
            .spelling()
            .filter(|s| s.chars().all(|c| c.is_ascii_alphabetic()));
        let hint =
            keyword.map(|s| format!("`{s}` is a keyword: quote it to use it as a name, \"{s}\""));
        self.expected("an attribute name", hint, None);
        if keyword.is_some() && !matches!(t.kind, T::In | T::Then | T::Else) {
            // A keyword used as a name: take it as one and go on.
            self.bump();
            AttrKey::Static {
                name: self.name(t),
                span: self.tspan(t),
            }
        } else {
            AttrKey::Dynamic(self.error_here())
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
                        name: self.name(t),
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
                    name: self.name(t),
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
                param: Box::new(param),
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
