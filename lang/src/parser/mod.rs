//! The parser: text to [`crate::ast::Expr`], with every syntax error found.
//!
//! Parsing runs in three steps:
//!
//! 1. `lexer` turns the text into a flat vector of tokens (strings and paths
//!    become sequences of pieces and interpolations), reporting characters
//!    and literals it cannot use;
//! 2. the recursive-descent parser (`expr`, `bindings`, `strings`, on the
//!    token cursor and error recovery of `cursor`)
//!    builds the tree with Nix's grammar and precedences, recording errors
//!    and recovering at `;`, `}`, `]`, `)` and `in` so one run reports
//!    several mistakes, with [`crate::ast::ExprKind::Error`]
//!    nodes where something was missing;
//! 3. `depth` checks that the tree is at most [`MAX_DEPTH`] levels deep, so
//!    that no later recursive walk can overflow the stack.
//!
//! Errors carry stable codes (`E01xx`) and convert to diagnostics through
//! [`crate::diag::IntoDiagnostic`].

mod bindings;
mod cursor;
mod depth;
mod error;
mod expr;
mod lexer;
mod strings;
mod token;

pub use depth::drop_deep;
pub use error::{ParseError, Unsupported};

use crate::ast::{Expr, ExprKind};
use crate::source::{FileId, Span};

/// The deepest nesting accepted: brackets, operators, function bodies,
/// `let`/`with`/`assert` bodies and applications all count one level each.
pub const MAX_DEPTH: u32 = 512;

/// At most this many errors are reported for one file; the parser stops
/// there.
pub const MAX_ERRORS: usize = 100;

/// The result of parsing one file: the tree (with error nodes where recovery
/// happened) and all syntax errors, in source order.
#[derive(Debug, Clone, PartialEq)]
pub struct Parse {
    pub expr: Expr,
    pub errors: Vec<ParseError>,
}

impl Parse {
    /// The tree if there were no errors, else the errors.
    pub fn into_result(self) -> Result<Expr, Vec<ParseError>> {
        if self.errors.is_empty() {
            Ok(self.expr)
        } else {
            Err(self.errors)
        }
    }
}

/// Parses the text of file `file`. Never panics; every problem is in
/// [`Parse::errors`].
pub fn parse(file: FileId, text: &str) -> Parse {
    if u32::try_from(text.len()).is_err() {
        let span = Span::new(file, 0, 0);
        return Parse {
            expr: Expr {
                kind: ExprKind::Error,
                span,
            },
            errors: vec![ParseError::FileTooLarge {
                len: text.len(),
                span,
            }],
        };
    }
    let lexed = lexer::lex(file, text);
    let mut parser = cursor::Parser::new(text, file, lexed.tokens, lexed.eof_swallowed);
    let tree = parser.parse_file();
    let mut errors = lexed.errors;
    errors.append(&mut parser.errors);
    errors.sort_by_key(|e| e.span().start);
    errors.truncate(MAX_ERRORS);
    let tree = if parser.may_be_too_deep() {
        depth::check(tree, &mut errors)
    } else {
        tree
    };
    Parse { expr: tree, errors }
}
