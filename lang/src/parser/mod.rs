//! The parser: text to [`crate::ast::Expr`], with every syntax error found.
