//! The real file system behind the evaluator's IO trait.
