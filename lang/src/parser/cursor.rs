//! Parser state: the token cursor, error reporting, recovery and the depth
//! count.
//!
//! The grammar itself lives in [`super::expr`], [`super::bindings`] and
//! [`super::strings`]; they move through the tokens with the helpers here.
//! Errors are recorded, never returned: [`Parser::expected`] names what was
//! wanted and what was found, [`Parser::recover`] skips to a synchronisation
//! point, and [`Parser::enter`] bounds the recursion.

use super::MAX_DEPTH;
use super::error::ParseError;
use super::token::{Token, TokenKind, describe};
use crate::ast::{Binding, Expr, ExprKind};
use crate::source::{FileId, Span};
use smol_str::SmolStr;

pub(crate) struct Parser<'s> {
    pub(super) src: &'s str,
    pub(super) file: FileId,
    pub(super) toks: Vec<Token>,
    pub(super) pos: usize,
    pub(super) errors: Vec<ParseError>,
    depth: u32,
    /// The lexer reported a string or comment running to the end of the
    /// file: "found end of file" errors would only repeat it.
    eof_swallowed: bool,
    /// The depth limit or the error limit was hit; everything after is
    /// skipped silently.
    too_deep: bool,
    /// The deepest nesting reached, in [`Parser::enter`] levels.
    max_depth_seen: u32,
    /// The longest chain of nodes built by one loop (`f a b c`, `a + b + c`).
    pub(super) max_chain: u32,
    /// Bindings of the sets being parsed, innermost last (see
    /// `Parser::bindings`).
    pub(super) binding_stack: Vec<Binding>,
}

impl<'s> Parser<'s> {
    pub(crate) fn new(src: &'s str, file: FileId, toks: Vec<Token>, eof_swallowed: bool) -> Self {
        // Nearly every binding ends with `;`: room for all of them means the
        // binding stack never grows (memory that is reserved but not used is
        // never touched).
        let semicolons = toks.iter().filter(|t| t.kind == TokenKind::Semi).count();
        Parser {
            binding_stack: Vec::with_capacity(semicolons + 1),
            src,
            file,
            toks,
            pos: 0,
            errors: Vec::new(),
            depth: 0,
            eof_swallowed,
            too_deep: false,
            max_depth_seen: 0,
            max_chain: 0,
        }
    }

    // ----- token helpers -------------------------------------------------

    pub(super) fn tok(&self) -> Token {
        self.toks.get(self.pos).copied().unwrap_or(Token {
            kind: TokenKind::Eof,
            start: self.src.len() as u32,
            end: self.src.len() as u32,
        })
    }

    pub(super) fn peek(&self) -> TokenKind {
        self.tok().kind
    }

    pub(super) fn peek_at(&self, n: usize) -> TokenKind {
        self.toks
            .get(self.pos + n)
            .map_or(TokenKind::Eof, |t| t.kind)
    }

    /// Consumes the current token (never moves past the end).
    pub(super) fn bump(&mut self) -> Token {
        let t = self.tok();
        if t.kind != TokenKind::Eof {
            self.pos += 1;
        }
        t
    }

    pub(super) fn eat(&mut self, kind: TokenKind) -> Option<Token> {
        (self.peek() == kind).then(|| self.bump())
    }

    pub(super) fn text(&self, t: Token) -> &'s str {
        self.src.get(t.start as usize..t.end as usize).unwrap_or("")
    }

    /// A token's text as a name.
    pub(super) fn name(&self, t: Token) -> SmolStr {
        let text = self.text(t);
        if text.len() <= 23 {
            SmolStr::new_inline(text)
        } else {
            SmolStr::new(text)
        }
    }

    pub(super) fn span(&self, start: u32, end: u32) -> Span {
        Span::new(self.file, start, end.max(start))
    }

    pub(super) fn tspan(&self, t: Token) -> Span {
        self.span(t.start, t.end)
    }

    /// End offset of the last consumed token.
    pub(super) fn prev_end(&self) -> u32 {
        match self.pos.checked_sub(1).and_then(|i| self.toks.get(i)) {
            Some(t) => t.end,
            None => self.tok().start,
        }
    }

    /// An error node with a zero-width span at the current token.
    pub(super) fn error_here(&self) -> Expr {
        let s = self.tok().start;
        Expr {
            kind: ExprKind::Error,
            span: self.span(s, s),
        }
    }

    // ----- errors and recovery -------------------------------------------

    pub(super) fn report(&mut self, err: ParseError) {
        if self.too_deep {
            return;
        }
        if self.errors.len() >= super::MAX_ERRORS {
            // Enough: skip the rest of the input.
            self.too_deep = true;
            self.pos = self.toks.len().saturating_sub(1);
            return;
        }
        let at_eof = err.span().start as usize >= self.src.len();
        if self.eof_swallowed && at_eof {
            return;
        }
        // One error per place: a second one at the same spot is a consequence.
        if let Some(last) = self.errors.last()
            && last.span().start == err.span().start
            && matches!(err, ParseError::Expected { .. })
        {
            return;
        }
        self.errors.push(err);
    }

    /// Reports "expected `what`, found <current token>".
    pub(super) fn expected(
        &mut self,
        what: impl Into<String>,
        hint: Option<String>,
        related: Option<(Span, String)>,
    ) {
        let t = self.tok();
        let err = ParseError::Expected {
            expected: what.into(),
            found: describe(t, self.src),
            span: self.tspan(t),
            hint,
            related,
        };
        self.report(err);
    }

    /// Skips tokens up to a synchronisation point: one of `stops`, or `;`,
    /// `}`, `]`, `)`, `in` or the end, outside any bracket opened while
    /// skipping. The stopping token is not consumed.
    pub(super) fn recover(&mut self, stops: &[TokenKind]) {
        use TokenKind as T;
        let mut nesting = 0u32;
        loop {
            let k = self.peek();
            if k == T::Eof {
                return;
            }
            if nesting == 0
                && (stops.contains(&k)
                    || matches!(k, T::Semi | T::RBrace | T::RBracket | T::RParen | T::In))
            {
                return;
            }
            match k {
                T::LBrace | T::LBracket | T::LParen | T::Interp => nesting += 1,
                T::RBrace | T::RBracket | T::RParen => nesting = nesting.saturating_sub(1),
                _ => {}
            }
            self.bump();
        }
    }

    /// Expects the closing delimiter `kind` of the construct opened by `open`;
    /// returns the end offset of the construct.
    pub(super) fn expect_close(&mut self, kind: TokenKind, open: Token, what: &'static str) -> u32 {
        if let Some(t) = self.eat(kind) {
            return t.end;
        }
        let close = kind.spelling().unwrap_or("?");
        let t = self.tok();
        if t.kind == TokenKind::Eof {
            let err = ParseError::Unclosed {
                what,
                close,
                open: self.tspan(open),
                span: self.tspan(t),
            };
            // Reported at the opener, but it is an end-of-file consequence.
            if !(self.eof_swallowed || self.too_deep) {
                self.errors.push(err);
            }
            return t.start;
        }
        let open_text = open.kind.spelling().unwrap_or("?");
        self.expected(
            format!("`{close}` to close the {what}"),
            None,
            Some((
                self.tspan(open),
                format!("the {what} starts with this `{open_text}`"),
            )),
        );
        self.recover(&[kind]);
        match self.eat(kind) {
            Some(t) => t.end,
            None => self.prev_end(),
        }
    }

    /// Counts one level of nesting; false (after reporting once and jumping to
    /// the end of the input) when the limit is passed. Callers must call
    /// [`Parser::leave`] either way.
    pub(super) fn enter(&mut self) -> bool {
        self.depth += 1;
        self.max_depth_seen = self.max_depth_seen.max(self.depth);
        if self.depth <= MAX_DEPTH {
            return true;
        }
        if !self.too_deep {
            let t = self.tok();
            self.errors.push(ParseError::TooDeep {
                limit: MAX_DEPTH,
                span: self.tspan(t),
            });
            self.too_deep = true;
        }
        self.pos = self.toks.len().saturating_sub(1);
        false
    }

    pub(super) fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Whether the finished tree might be deeper than [`MAX_DEPTH`], which
    /// only a full walk can tell.
    ///
    /// Between two counted levels ([`Parser::enter`]) the parser builds at
    /// most one chain of operators, one chain of applications and a few
    /// other nodes (a selection, a string key, parentheses; fewer than
    /// `PER_LEVEL`), so a path from the root crosses at most
    /// `PER_LEVEL + 2 * max_chain` nodes per level. When that bound is small
    /// the walk is skipped: it touches every node again and costs a tenth of
    /// the parse.
    pub(crate) fn may_be_too_deep(&self) -> bool {
        const PER_LEVEL: u32 = 4;
        let per_level = PER_LEVEL.saturating_add(self.max_chain.saturating_mul(2));
        (self.max_depth_seen + 1).saturating_mul(per_level) > MAX_DEPTH
    }
}
