//! The expression parser: tokens to [`Expr`], by recursive descent with
//! precedence climbing for operators.
//!
//! The grammar levels follow Nix's: a full expression is a function, `let`,
//! `with`, `assert`, `if` or an operator expression; operator expressions are
//! climbed by binding power (see [`binop`]); their operands are applications,
//! whose elements are selections (`e.a.b or d`) of simple expressions
//! (literals, names, brackets). This is why `[ f x ]` has two elements and
//! `1 + if c then 2 else 3` needs parentheses, exactly as in Nix.
//!
//! Errors never stop the parser: each one is recorded, the parser skips to a
//! synchronisation token (`;`, `}`, `]`, `)`, `in`; see [`Parser::recover`])
//! and leaves an [`ExprKind::Error`] node. Nesting is counted in
//! [`Parser::enter`]; past [`super::MAX_DEPTH`] the parser reports one error
//! and jumps to the end of the input, so no input can exhaust the stack.

use super::cursor::Parser;
use super::error::{ParseError, Unsupported};
use super::token::{Token, TokenKind};
use crate::ast::{BinOp, Expr, ExprKind, Ident, Param, UnaryOp};
use crate::source::Span;

/// Associativity of a binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Assoc {
    Left,
    Right,
    Non,
}

/// Binding power of `!`: looser than `+`, tighter than `//`.
pub(crate) const PREC_NOT: u8 = 7;
/// Binding power of unary `-`: tighter than every binary operator.
pub(crate) const PREC_NEG: u8 = 12;
/// Binding power of `?`.
pub(crate) const PREC_HAS_ATTR: u8 = 11;

/// Precedence (higher binds tighter) and associativity of binary operators,
/// from Nix: `->` < `||` < `&&` < `==` `!=` < `<` `<=` `>` `>=` < `//` <
/// `!` < `+` `-` < `*` `/` < `++` < `?` < unary `-`.
pub(crate) fn binop_prec(op: BinOp) -> (u8, Assoc) {
    match op {
        BinOp::Impl => (1, Assoc::Right),
        BinOp::Or => (2, Assoc::Left),
        BinOp::And => (3, Assoc::Left),
        BinOp::Eq | BinOp::Ne => (4, Assoc::Non),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => (5, Assoc::Non),
        BinOp::Update => (6, Assoc::Right),
        BinOp::Add | BinOp::Sub => (8, Assoc::Left),
        BinOp::Mul | BinOp::Div => (9, Assoc::Left),
        BinOp::Concat => (10, Assoc::Right),
    }
}

/// The binary operator a token stands for (`None` for `?`, handled apart).
fn binop(kind: TokenKind) -> Option<BinOp> {
    use TokenKind as T;
    Some(match kind {
        T::Arrow => BinOp::Impl,
        T::OrOr => BinOp::Or,
        T::AndAnd => BinOp::And,
        T::EqEq => BinOp::Eq,
        T::NotEq => BinOp::Ne,
        T::Lt => BinOp::Lt,
        T::Le => BinOp::Le,
        T::Gt => BinOp::Gt,
        T::Ge => BinOp::Ge,
        T::Update => BinOp::Update,
        T::Plus => BinOp::Add,
        T::Minus => BinOp::Sub,
        T::Star => BinOp::Mul,
        T::Slash => BinOp::Div,
        T::Concat => BinOp::Concat,
        _ => return None,
    })
}

/// Tokens that can start an argument of an application (or a list element).
pub(super) fn starts_operand(kind: TokenKind) -> bool {
    use TokenKind as T;
    matches!(
        kind,
        T::Ident
            | T::OrKw
            | T::Int
            | T::Float
            | T::StrOpen
            | T::IndOpen
            | T::PathText
            | T::LParen
            | T::LBracket
            | T::LBrace
            | T::Rec
            | T::Unsupported
    )
}

impl Parser<'_> {
    // ----- the whole file --------------------------------------------------

    pub(crate) fn parse_file(&mut self) -> Expr {
        let e = self.expr();
        // After an error, leftover text is usually its consequence (a closer
        // the recovery did not pair up), not news.
        if self.peek() != TokenKind::Eof && self.errors.is_empty() {
            let hint = match self.peek() {
                TokenKind::Semi => Some("a file holds a single expression; bindings go inside `{ ... }` or `let ... in`".to_string()),
                TokenKind::RBrace | TokenKind::RBracket | TokenKind::RParen => {
                    Some("this closing bracket has no matching opening one".to_string())
                }
                _ => None,
            };
            self.expected("end of file", hint, None);
        }
        e
    }

    // ----- expressions ---------------------------------------------------------

    /// A full expression: function, `let`, `with`, `assert`, `if`, or an
    /// operator expression.
    pub(super) fn expr(&mut self) -> Expr {
        if !self.enter() {
            self.leave();
            return self.error_here();
        }
        let e = match self.peek() {
            TokenKind::Ident if self.peek_at(1) == TokenKind::Colon => self.ident_lambda(),
            TokenKind::Ident if self.peek_at(1) == TokenKind::At => self.bind_pattern_lambda(),
            TokenKind::LBrace if self.looks_like_pattern() => {
                let start = self.tok().start;
                self.pattern_lambda(None, start)
            }
            TokenKind::Let if self.peek_at(1) != TokenKind::LBrace => self.let_in(),
            TokenKind::With | TokenKind::Assert => self.with_or_assert(),
            TokenKind::If => self.if_then_else(),
            _ => self.op(0),
        };
        self.leave();
        e
    }

    /// Builds a node spanning from `start` to the end of the last token.
    pub(super) fn node(&self, start: u32, kind: ExprKind) -> Expr {
        Expr {
            kind,
            span: self.span(start, self.prev_end()),
        }
    }

    /// `x: body`
    #[inline(never)]
    fn ident_lambda(&mut self) -> Expr {
        let t = self.bump();
        self.bump();
        let param = Param::Ident(Ident {
            name: self.name(t),
            span: self.tspan(t),
        });
        let body = self.expr();
        self.node(
            t.start,
            ExprKind::Lambda {
                param: Box::new(param),
                body: Box::new(body),
            },
        )
    }

    /// `name @ { ... }: body`
    #[inline(never)]
    fn bind_pattern_lambda(&mut self) -> Expr {
        let t = self.bump();
        self.bump();
        let bind = Ident {
            name: self.name(t),
            span: self.tspan(t),
        };
        if self.peek() == TokenKind::LBrace {
            return self.pattern_lambda(Some(bind), t.start);
        }
        self.expected(
            format!("`{{` after `{}@`", bind.name),
            Some("`name@{ ... }: body` binds the whole argument set to `name`".into()),
            None,
        );
        self.recover(&[]);
        self.node(t.start, ExprKind::Error)
    }

    /// Expects keyword `kind`; on failure reports, skips to it (or to a
    /// synchronisation point) and returns whether it was found.
    fn expect_keyword(
        &mut self,
        kind: TokenKind,
        what: String,
        hint: Option<String>,
        related: (Span, String),
    ) -> bool {
        if self.eat(kind).is_some() {
            return true;
        }
        let hint = match self.peek() {
            TokenKind::Assign => Some("to compare two values, use `==`".to_string()),
            _ => hint,
        };
        self.expected(what, hint, Some(related));
        self.recover(&[kind, TokenKind::Then, TokenKind::Else]);
        self.eat(kind).is_some()
    }

    #[inline(never)]
    fn if_then_else(&mut self) -> Expr {
        let kw = self.bump();
        let cond = self.expr();
        let if_span = (self.tspan(kw), "this `if`".to_string());
        let then = if self.expect_keyword(
            TokenKind::Then,
            "`then` after the condition".into(),
            None,
            if_span.clone(),
        ) {
            self.expr()
        } else {
            self.error_here()
        };
        let else_ = if self.expect_keyword(
            TokenKind::Else,
            "`else`".into(),
            Some("every `if` needs an `else` branch".into()),
            if_span,
        ) {
            self.expr()
        } else {
            self.error_here()
        };
        self.node(
            kw.start,
            ExprKind::If {
                cond: Box::new(cond),
                then: Box::new(then),
                else_: Box::new(else_),
            },
        )
    }

    #[inline(never)]
    fn with_or_assert(&mut self) -> Expr {
        let kw = self.bump();
        let first = self.expr();
        let word = self.text(kw);
        let body = if self.expect_keyword(
            TokenKind::Semi,
            format!("`;` after the `{word}` expression"),
            Some(format!("`{word} e; body` separates its two parts with `;`")),
            (self.tspan(kw), format!("this `{word}`")),
        ) {
            self.expr()
        } else {
            self.error_here()
        };
        let kind = if kw.kind == TokenKind::With {
            ExprKind::With {
                env: Box::new(first),
                body: Box::new(body),
            }
        } else {
            ExprKind::Assert {
                cond: Box::new(first),
                body: Box::new(body),
            }
        };
        self.node(kw.start, kind)
    }

    /// Operators by precedence climbing: everything binding tighter than
    /// `min`.
    ///
    /// Kept small: it is on the recursion path of every bracket.
    fn op(&mut self, min: u8) -> Expr {
        let lhs = match self.peek() {
            TokenKind::Bang | TokenKind::Minus => self.unary(),
            _ => self.app(),
        };
        self.binary(lhs, min)
    }

    /// `-e` or `!e`.
    #[inline(never)]
    fn unary(&mut self) -> Expr {
        let t = self.bump();
        let (op, prec) = if t.kind == TokenKind::Bang {
            (UnaryOp::Not, PREC_NOT)
        } else {
            (UnaryOp::Neg, PREC_NEG)
        };
        let operand = self.nested_op(prec);
        self.node(
            t.start,
            ExprKind::Unary {
                op,
                expr: Box::new(operand),
            },
        )
    }

    /// The operators after a first operand `lhs`, binding tighter than `min`.
    #[inline(never)]
    fn binary(&mut self, mut lhs: Expr, min: u8) -> Expr {
        let start = lhs.span.start;
        // The last non-associative operator, to reject `a == b == c`.
        let mut last_non: Option<(u8, Token)> = None;
        let mut chain = 0;
        loop {
            let t = self.tok();
            // `?` takes an attribute path, not an operand, so `a ? b ? c`
            // is `(a ? b) ? c`, as in Nix.
            let (prec, assoc) = if t.kind == TokenKind::Question {
                (PREC_HAS_ATTR, Assoc::Left)
            } else {
                match binop(t.kind) {
                    Some(op) => binop_prec(op),
                    None => break,
                }
            };
            if prec <= min {
                break;
            }
            chain += 1;
            self.max_chain = self.max_chain.max(chain);
            if let Some((p, first)) = last_non
                && p == prec
            {
                let err = ParseError::NonAssociative {
                    op: first.kind.spelling().unwrap_or("?"),
                    next: t.kind.spelling().unwrap_or("?"),
                    span: self.tspan(t),
                    first: self.tspan(first),
                };
                self.report(err);
            }
            self.bump();
            lhs = match binop(t.kind) {
                None => {
                    let path = self.attr_path();
                    self.node(
                        start,
                        ExprKind::HasAttr {
                            expr: Box::new(lhs),
                            path,
                        },
                    )
                }
                Some(op) => {
                    let rhs = if assoc == Assoc::Right {
                        self.nested_op(prec - 1)
                    } else {
                        self.nested_op(prec)
                    };
                    self.node(
                        start,
                        ExprKind::Binary {
                            op,
                            lhs: Box::new(lhs),
                            rhs: Box::new(rhs),
                        },
                    )
                }
            };
            last_non = (assoc == Assoc::Non).then_some((prec, t));
        }
        lhs
    }

    /// An operand of an operator, one level deeper.
    fn nested_op(&mut self, min: u8) -> Expr {
        if !self.enter() {
            self.leave();
            return self.error_here();
        }
        let e = self.op(min);
        self.leave();
        e
    }

    /// Application by juxtaposition: `f a b` is `(f a) b`.
    fn app(&mut self) -> Expr {
        let start = self.tok().start;
        let mut f = self.select();
        let mut chain = 0;
        while starts_operand(self.peek()) {
            chain += 1;
            self.max_chain = self.max_chain.max(chain);
            let arg = self.select();
            f = self.node(
                start,
                ExprKind::Apply {
                    func: Box::new(f),
                    arg: Box::new(arg),
                },
            );
        }
        f
    }

    /// `e.a.b`, `e.a.b or default`, or just `e`.
    pub(super) fn select(&mut self) -> Expr {
        let e = self.simple();
        if self.peek() == TokenKind::Dot {
            self.select_rest(e)
        } else {
            e
        }
    }

    /// The `.a.b or d` part of a selection, from the `.`.
    #[inline(never)]
    fn select_rest(&mut self, e: Expr) -> Expr {
        let start = e.span.start;
        self.bump();
        let path = self.attr_path();
        let default = if self.eat(TokenKind::OrKw).is_some() {
            Some(Box::new(self.select_default()))
        } else {
            None
        };
        self.node(
            start,
            ExprKind::Select {
                expr: Box::new(e),
                path,
                default,
            },
        )
    }

    #[inline(never)]
    fn select_default(&mut self) -> Expr {
        if !starts_operand(self.peek()) {
            self.expected("a default value after `or`", None, None);
            return self.error_here();
        }
        let d = if self.enter() {
            self.select()
        } else {
            self.error_here()
        };
        self.leave();
        d
    }

    /// A literal, a name or a bracketed expression. Only dispatches, so that
    /// its frame stays small on the recursion path.
    fn simple(&mut self) -> Expr {
        match self.peek() {
            TokenKind::Ident | TokenKind::OrKw => self.var(),
            TokenKind::Int | TokenKind::Float => self.number(),
            TokenKind::StrOpen => self.string(),
            TokenKind::IndOpen => self.ind_string(),
            TokenKind::PathText => self.path(),
            TokenKind::LParen => self.paren(),
            TokenKind::LBracket => self.list(),
            TokenKind::LBrace => {
                let start = self.tok().start;
                self.attrs(false, start)
            }
            TokenKind::Rec => self.rec_attrs(),
            TokenKind::Let => self.legacy_let(),
            TokenKind::Unsupported => {
                let t = self.bump();
                self.node(t.start, ExprKind::Error)
            }
            _ => self.unexpected_expr(),
        }
    }

    #[inline(never)]
    fn var(&mut self) -> Expr {
        let t = self.bump();
        self.node(t.start, ExprKind::Var(self.name(t)))
    }

    #[inline(never)]
    fn number(&mut self) -> Expr {
        let t = self.bump();
        let text = self.text(t);
        let float = t.kind == TokenKind::Float;
        let kind = if float {
            text.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(ExprKind::Float)
        } else {
            text.parse::<i64>().ok().map(ExprKind::Int)
        };
        match kind {
            Some(kind) => self.node(t.start, kind),
            None => {
                self.report(ParseError::NumberOutOfRange {
                    text: text.to_string(),
                    float,
                    span: self.tspan(t),
                });
                self.node(t.start, ExprKind::Error)
            }
        }
    }

    #[inline(never)]
    fn paren(&mut self) -> Expr {
        let open = self.bump();
        let inner = self.expr();
        self.expect_close(TokenKind::RParen, open, "parenthesis");
        self.node(open.start, ExprKind::Paren(Box::new(inner)))
    }

    #[inline(never)]
    fn rec_attrs(&mut self) -> Expr {
        let t = self.bump();
        if self.peek() == TokenKind::LBrace {
            self.attrs(true, t.start)
        } else {
            self.expected("`{` after `rec`", None, None);
            self.node(t.start, ExprKind::Error)
        }
    }

    /// `let { ... }` (the `let ... in` form is handled in `expr`).
    #[inline(never)]
    fn legacy_let(&mut self) -> Expr {
        let t = self.bump();
        self.report(ParseError::Unsupported {
            what: Unsupported::LegacyLet,
            span: self.tspan(t),
        });
        let set = self.attrs(false, t.start);
        super::depth::drop_deep(set);
        self.node(t.start, ExprKind::Error)
    }

    /// Reports a token that cannot start an expression and skips to a
    /// synchronisation point.
    #[inline(never)]
    fn unexpected_expr(&mut self) -> Expr {
        use TokenKind as T;
        let hint = match self.peek() {
            T::Assign => {
                Some("`=` binds a name inside `{ }` or `let`; to compare, use `==`".to_string())
            }
            T::Interp => Some(
                "`${...}` is only allowed inside strings, paths and attribute names".to_string(),
            ),
            T::Ellipsis => {
                Some("`...` is only allowed in a function's `{ }` parameters".to_string())
            }
            T::Colon => Some("a function is written `x: body` or `{ a, b }: body`".to_string()),
            T::Minus => Some("a negative number here needs parentheses, like `(-1)`".to_string()),
            T::If | T::Let | T::With | T::Assert => {
                // A full expression where only an operand may stand: say so,
                // then parse it anyway.
                let word = self.peek().spelling().unwrap_or("?");
                self.expected(
                    "an operand",
                    Some(format!(
                        "put the `{word}` expression in parentheses: `({word} ...)`"
                    )),
                    None,
                );
                return self.expr();
            }
            T::Then | T::Else | T::In => Some(format!(
                "`{}` is a keyword; is an expression missing before it?",
                self.peek().spelling().unwrap_or("?")
            )),
            _ => None,
        };
        self.expected("an expression", hint, None);
        let start = self.tok().start;
        if matches!(
            self.peek(),
            T::Then
                | T::Else
                | T::In
                | T::Semi
                | T::RBrace
                | T::RBracket
                | T::RParen
                | T::Comma
                | T::Eof
        ) {
            return self.error_here();
        }
        self.bump();
        self.recover(&[T::Then, T::Else, T::Comma]);
        self.node(start, ExprKind::Error)
    }

    /// `[ a b c ]`: elements are selections, so `[ f x ]` has two.
    #[inline(never)]
    fn list(&mut self) -> Expr {
        use TokenKind as T;
        let open = self.bump();
        let mut items = Vec::new();
        loop {
            let k = self.peek();
            if starts_operand(k) {
                if !self.enter() {
                    self.leave();
                    break;
                }
                items.push(self.select());
                self.leave();
            } else if matches!(
                k,
                T::RBracket | T::RBrace | T::RParen | T::Semi | T::In | T::Eof
            ) {
                break;
            } else {
                let hint = match k {
                    T::Comma => Some("list elements are separated by spaces, not commas".to_string()),
                    T::Minus | T::Bang => Some(
                        "list elements are simple expressions: put operators and negative numbers in parentheses".to_string(),
                    ),
                    _ if binop(k).is_some() => Some(
                        "list elements are simple expressions: put operator expressions in parentheses".to_string(),
                    ),
                    T::Let | T::If | T::With | T::Assert => Some(format!(
                        "put the `{}` expression in parentheses",
                        k.spelling().unwrap_or("?")
                    )),
                    _ => None,
                };
                self.expected("a list element or `]`", hint, None);
                self.bump();
            }
        }
        self.expect_close(T::RBracket, open, "list");
        self.node(open.start, ExprKind::List(items))
    }
}
