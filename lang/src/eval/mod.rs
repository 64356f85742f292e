//! The lazy evaluator.
