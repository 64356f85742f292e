//! The QEMU test driver of Imago.
//!
//! A test creates a [`Driver`], describes machines with [`MachineConfig`]
//! (kernel + initrd or UEFI + disk image, memory, networks, the store shared
//! over 9p or virtiofs) and drives them with the vocabulary of the NixOS test driver:
//! [`Machine::start`], [`Machine::succeed`], [`Machine::wait_until_succeeds`],
//! [`Machine::wait_for_unit`], [`Machine::wait_for_console_text`],
//! [`Machine::shutdown`], [`Machine::crash`], ...
//!
//! How it works:
//! * Commands run through a *backdoor*: `modules/testing/backdoor.sh` runs as
//!   root in the guest on a virtio console and speaks a framed, base64,
//!   line-based protocol with `backdoor.rs` (binary-safe, immune to echo and
//!   partial lines, with guest-side command timeouts).
//! * The serial console is recorded with timestamps (`console.rs`).
//! * Every action is a timed, nested step in the [`StepLog`], printed as the
//!   test runs; a failure carries the step log and every machine's console
//!   tail ([`Failure`]).
//! * Every wait is built on one [`retry`] loop, and every timeout is explicit
//!   and multiplied by the accelerator factor ([`Accel`]: KVM only when a
//!   probe proves it works, TCG otherwise).
//! * Machines on a [`Network`] share a hub on 127.0.0.1.
//! * QEMU is killed when its machine is dropped, on panic too, and when the
//!   test process dies.
//!
//! See docs/vm-tests.md for a guide.

mod accel;
mod backdoor;
mod command;
mod commands;
mod config;
mod console;
mod driver;
mod error;
mod machine;
mod network;
mod qemu;
mod qmp;
mod retry;
mod shared;
mod steplog;
mod suite;

pub use accel::{Accel, AccelKind, TCG_FACTOR};
pub use command::{GuestCommand, shell_quote};
pub use commands::Output;
pub use config::{Boot, DiskFormat, DiskImage, MachineConfig, MachineName, StoreTransport};
pub use driver::Driver;
pub use error::{Error, Failure};
/// The 9p / virtiofs tag of the shared store (Imago's).
pub use imago::boot::qemu::STORE_TAG;
pub use machine::Machine;
pub use network::Network;
pub use qemu::{BACKDOOR_PORT, QEMU};
pub use retry::{Poll, retry};
pub use shared::CONSOLE_TAIL;
pub use steplog::{Step, StepLog};
pub use suite::{Selection, TestKind, should_run};

/// The guest side of the backdoor (`modules/testing/backdoor.sh`), for
/// building test guests and system modules.
pub const BACKDOOR_SCRIPT: &str = include_str!("../../modules/testing/backdoor.sh");
