//! Printing an AST back to source text.
