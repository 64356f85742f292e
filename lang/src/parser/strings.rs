//! String, indented-string and path literals: escapes, interpolation and
//! Nix's indentation stripping.
//!
//! `"..."`: `\n`, `\r`, `\t` are control characters, a backslash before any
//! other character stands for that character (`\"`, `\\`, `\$`), and a raw
//! carriage return (alone or before a line feed) becomes a line feed.
//!
//! `''...''`: the lexer has already dropped the rest of the opening line when
//! it holds only spaces. The common indentation (spaces only) of the lines is
//! then removed exactly as Nix does it: lines holding only spaces do not
//! count, an interpolation or an escape ends a line's leading indentation, and
//! a last line holding only spaces is dropped. Escapes: `''$` is `$` (so
//! `''${` is a literal `${`), `'''` is `''`, and `''\x` is the escape `\x`.

use super::cursor::Parser;
use super::token::TokenKind;
use crate::ast::{Expr, ExprKind, PathAnchor, PathLit, StrPart};
use std::borrow::Cow;

/// One piece of an indented string before indentation stripping.
enum Piece<'s> {
    /// Literal text; `indent` is false for escapes, which end a line's
    /// leading white space.
    Text {
        text: Cow<'s, str>,
        indent: bool,
    },
    Interp(Expr),
}

impl Parser<'_> {
    /// `"..."`, from the opening quote.
    pub(super) fn string(&mut self) -> Expr {
        let open = self.bump();
        // Most strings are one literal part: do not reserve Vec's default four.
        let mut parts = Vec::with_capacity(1);
        let mut lit = String::new();
        loop {
            let t = self.tok();
            match t.kind {
                TokenKind::StrText => {
                    self.bump();
                    unescape_into(&mut lit, self.text(t));
                }
                TokenKind::Interp => {
                    if !lit.is_empty() {
                        parts.push(StrPart::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(StrPart::Interp(self.interpolation()));
                }
                TokenKind::StrClose => {
                    self.bump();
                    break;
                }
                // End of file: the lexer reported the unterminated string.
                _ => break,
            }
        }
        if !lit.is_empty() {
            parts.push(StrPart::Lit(lit));
        }
        self.node(open.start, ExprKind::Str(parts))
    }

    /// `''...''`, from the opening quotes.
    pub(super) fn ind_string(&mut self) -> Expr {
        let open = self.bump();
        let src = self.src;
        let mut pieces = Vec::new();
        loop {
            let t = self.tok();
            let raw = src.get(t.start as usize..t.end as usize).unwrap_or("");
            match t.kind {
                TokenKind::IndText => {
                    self.bump();
                    pieces.push(Piece::Text {
                        text: Cow::Borrowed(raw),
                        indent: true,
                    });
                }
                TokenKind::IndEscape => {
                    self.bump();
                    pieces.push(Piece::Text {
                        text: ind_escape(raw),
                        indent: false,
                    });
                }
                TokenKind::Interp => pieces.push(Piece::Interp(self.interpolation())),
                TokenKind::IndClose => {
                    self.bump();
                    break;
                }
                _ => break,
            }
        }
        let parts = strip_indentation(pieces);
        self.node(open.start, ExprKind::Str(parts))
    }

    /// A path, from its first piece of text.
    pub(super) fn path(&mut self) -> Expr {
        let first = self.tok();
        let text = self.text(first);
        let anchor = if text.starts_with('/') {
            PathAnchor::Absolute
        } else {
            PathAnchor::Relative
        };
        let mut lit = String::new();
        if anchor == PathAnchor::Relative && !text.starts_with("./") && !text.starts_with("../") {
            // `a/b` means `./a/b`, as in Nix.
            lit.push_str("./");
        }
        let mut parts = Vec::with_capacity(1);
        loop {
            let t = self.tok();
            match t.kind {
                TokenKind::PathText => {
                    self.bump();
                    lit.push_str(self.text(t));
                }
                TokenKind::Interp => {
                    if !lit.is_empty() {
                        parts.push(StrPart::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(StrPart::Interp(self.interpolation()));
                }
                TokenKind::PathEnd => {
                    self.bump();
                    break;
                }
                _ => break,
            }
        }
        if !lit.is_empty() {
            parts.push(StrPart::Lit(lit));
        }
        self.node(first.start, ExprKind::Path(PathLit { anchor, parts }))
    }
}

/// Appends the value of the raw text of a `"..."` string piece.
fn unescape_into(out: &mut String, raw: &str) {
    if !raw.contains(['\\', '\r']) {
        out.push_str(raw);
        return;
    }
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            },
            '\r' => {
                out.push('\n');
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
            }
            other => out.push(other),
        }
    }
}

/// The value of an indented-string escape token.
fn ind_escape(raw: &str) -> Cow<'static, str> {
    match raw {
        "''$" | "$" => Cow::Borrowed("$"),
        "'''" => Cow::Borrowed("''"),
        "'" => Cow::Borrowed("'"),
        _ => match raw.strip_prefix("''\\").and_then(|r| r.chars().next()) {
            Some('n') => Cow::Borrowed("\n"),
            Some('r') => Cow::Borrowed("\r"),
            Some('t') => Cow::Borrowed("\t"),
            Some('\r') => Cow::Borrowed("\n"),
            Some(c) => Cow::Owned(c.to_string()),
            None => Cow::Borrowed(""),
        },
    }
}

/// Nix's `stripIndentation`: removes the smallest indentation of the lines
/// that have content, and a last line of only spaces.
fn strip_indentation(pieces: Vec<Piece<'_>>) -> Vec<StrPart> {
    // Pass 1: the smallest indentation.
    let mut at_line_start = true;
    let mut min_indent = usize::MAX;
    let mut cur_indent = 0usize;
    for piece in &pieces {
        match piece {
            Piece::Text { text, indent: true } => {
                for b in text.bytes() {
                    if at_line_start {
                        match b {
                            b' ' => cur_indent += 1,
                            b'\n' => cur_indent = 0,
                            _ => {
                                at_line_start = false;
                                min_indent = min_indent.min(cur_indent);
                            }
                        }
                    } else if b == b'\n' {
                        at_line_start = true;
                        cur_indent = 0;
                    }
                }
            }
            _ => {
                if at_line_start {
                    at_line_start = false;
                    min_indent = min_indent.min(cur_indent);
                }
            }
        }
    }

    // Pass 2: drop up to `min_indent` spaces at the start of each line.
    let count = pieces.len();
    let mut out: Vec<StrPart> = Vec::new();
    at_line_start = true;
    let mut dropped = 0usize;
    for (i, piece) in pieces.into_iter().enumerate() {
        match piece {
            Piece::Interp(e) => {
                at_line_start = false;
                dropped = 0;
                out.push(StrPart::Interp(e));
            }
            Piece::Text { text, .. } => {
                let mut s = String::with_capacity(text.len());
                for c in text.chars() {
                    if at_line_start {
                        match c {
                            ' ' => {
                                if dropped >= min_indent {
                                    s.push(c);
                                }
                                dropped += 1;
                            }
                            '\n' => {
                                dropped = 0;
                                s.push(c);
                            }
                            _ => {
                                at_line_start = false;
                                dropped = 0;
                                s.push(c);
                            }
                        }
                    } else {
                        s.push(c);
                        if c == '\n' {
                            at_line_start = true;
                        }
                    }
                }
                if i + 1 == count
                    && let Some(nl) = s.rfind('\n')
                    && s[nl + 1..].bytes().all(|b| b == b' ')
                {
                    s.truncate(nl + 1);
                }
                if s.is_empty() {
                    continue;
                }
                match out.last_mut() {
                    Some(StrPart::Lit(prev)) => prev.push_str(&s),
                    _ => out.push(StrPart::Lit(s)),
                }
            }
        }
    }
    out
}
