//! Booting: the kernel and initrd builders, the stage-1 contract, and running
//! a built system under QEMU.
//!
//! - [`kmod`]: module metadata (`.modinfo`), dependency closure, `modules.dep`.
//! - [`cpio`]: the deterministic cpio newc writer for initrds.
//! - [`kernel`]: the "kernel" builder (image + module tree + index).
//!
//! The toplevel layout and the boot contract are described in
//! docs/system-layout.md.

pub mod cpio;
pub mod kernel;
pub mod kmod;

pub use kernel::KernelBuilder;
