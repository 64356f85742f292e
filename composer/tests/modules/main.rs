//! The composer's modules tests, one test binary (see tests/support for what they share).

#[path = "../support/mod.rs"]
mod support;

mod health;
mod network;
mod nginx;
mod platform;
mod security;
mod units;
mod users;
