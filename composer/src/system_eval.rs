//! Evaluating a system: the user's file plus the module library.
