//! Booting: the kernel and initrd builders, the stage-1 contract, and running
//! a built system under QEMU.
//!
//! - [`kmod`]: module metadata (`.modinfo`), dependency closure, `modules.dep`.
//! - [`cpio`]: the deterministic cpio newc writer for initrds.
//! - [`kernel`]: the "kernel" builder (image + module tree + index).
//! - [`initrd`]: the "initrd" builder (busybox + stage 1 + module closure).
//! - [`bootspec`]: `boot.json`, the toplevel's description of what to boot.
//! - [`qemu`]: the QEMU argv for direct kernel boot with the store shared.
//! - [`kvm`]: the accelerator choice (a KVM probe, cached per host boot).
//! - [`pvh`]: the uncompressed kernel an amd64 direct boot loads (PVH entry).
//! - [`virtiofsd`]: the virtiofsd sharing the store, and its arguments.
//! - [`run`]: booting a toplevel (virtiofsd + QEMU), as `imago run` does.
//! - [`spawn`]: starting those processes so they die with this one.
//!
//! The toplevel layout and the boot contract are described in
//! docs/system-layout.md; stage 1 itself is modules/boot/stage-1.sh.

pub mod bootspec;
pub mod cpio;
pub mod direct;
pub mod forward;
pub mod initrd;
pub mod kernel;
pub mod kmod;
pub mod kvm;
mod probe_firmware;
pub mod pvh;
pub mod qemu;
pub mod run;
pub mod spawn;
pub mod virtiofsd;

pub use bootspec::BootSpec;
pub use initrd::InitrdBuilder;
pub use kernel::KernelBuilder;
pub use run::{RunOptions, VmExit, run_system};
