//! The module system: options, types, priorities and the config fixpoint.
