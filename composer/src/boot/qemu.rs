//! QEMU command lines, as argv vectors: no shell is ever involved.
//!
//! [`QemuArgs`] is the one builder of QEMU arguments: `imago run`
//! ([`argv`], from a [`QemuConfig`]) and the VM test driver (`vm-tests`,
//! which adds its sockets, disks and networks) both use it for the machine,
//! the accelerator, memory, direct kernel boot and the shared store. Paths
//! inside `key=value,…` options have their commas doubled.
//!
//! For `imago run` of an amd64 system the machine is `pc` with the qboot
//! firmware when QEMU ships it (it only does direct kernel boot, which is
//! all a run needs, and reaches the kernel ~1 s sooner than SeaBIOS under
//! TCG), else `q35` with SeaBIOS. `microvm` would be faster still, but QEMU
//! 7.2's vhost-user-fs over virtio-mmio fails to start there (measured),
//! and the cloud kernel has no 9p. An arm64 system runs on
//! `qemu-system-aarch64 -machine virt` (QEMU loads the kernel itself: no
//! firmware for direct boot; AAVMF for disk images) with the CPU model of
//! [`Architecture::tcg_cpu`]; its devices are the same virtio PCI devices.
//!
//! The host store is shared read-only under the tag [`STORE_TAG`], either
//! over 9p (host-enforced read-only) or virtiofs (a `virtiofsd` serving the
//! store on a vhost-user socket; the guest mounts it read-only; needs the
//! guest RAM as a shared memfd). Stage 1 mounts it at `/imago/store`.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::arch::Architecture;

/// The mount tag of the shared store.
pub const STORE_TAG: &str = "imago-store";

/// The accelerator QEMU uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// The arguments selecting the accelerator and the CPU model (`-cpu
    /// host` with KVM).
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Accel::Kvm => &["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => &["-accel", "tcg"],
        }
    }
}

/// Where QEMU's qboot firmware is installed (Debian's qemu-system-data).
pub const QBOOT_ROM: &str = "/usr/share/qemu/qboot.rom";

/// The machine type and its firmware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Machine {
    /// `-machine pc -bios <qboot.rom>`: fastest firmware, direct boot only.
    PcQboot { rom: PathBuf },
    /// `-machine pc` with QEMU's default SeaBIOS.
    Pc,
    /// `-machine q35` with QEMU's default firmware (or the UEFI flash the
    /// caller adds).
    Q35,
    /// `-machine virt` of `qemu-system-aarch64`: direct kernel boot without
    /// firmware, or the UEFI flash the caller adds.
    Virt,
}

impl Machine {
    /// The machine `imago run` boots a system of `arch` on: for amd64
    /// `PcQboot` when the qboot ROM is installed, else `Q35`; for arm64
    /// `Virt`.
    pub fn detect(arch: Architecture) -> Machine {
        if arch == Architecture::Arm64 {
            return Machine::Virt;
        }
        let rom = PathBuf::from(QBOOT_ROM);
        if rom.is_file() {
            Machine::PcQboot { rom }
        } else {
            Machine::Q35
        }
    }

    /// The machine that boots a disk image of `arch` through UEFI
    /// firmware: `q35` or `virt`.
    pub fn uefi(arch: Architecture) -> Machine {
        match arch {
            Architecture::Amd64 => Machine::Q35,
            Architecture::Arm64 => Machine::Virt,
        }
    }

    /// The architecture this machine emulates.
    pub fn architecture(&self) -> Architecture {
        match self {
            Machine::PcQboot { .. } | Machine::Pc | Machine::Q35 => Architecture::Amd64,
            Machine::Virt => Architecture::Arm64,
        }
    }
}

/// How the host store reaches the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreShare {
    /// virtio-9p of the physical store directory.
    NineP { dir: PathBuf },
    /// vhost-user-fs talking to a virtiofsd listening on `socket`.
    Virtiofs { socket: PathBuf },
}

impl StoreShare {
    /// The `imago.store=` kernel parameter stage 1 understands.
    pub fn kernel_param(&self) -> String {
        match self {
            StoreShare::NineP { .. } => format!("imago.store=9p:{STORE_TAG}"),
            StoreShare::Virtiofs { .. } => format!("imago.store=virtiofs:{STORE_TAG}"),
        }
    }
}

/// Everything the argv depends on.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// The machine, and with it the architecture (and QEMU binary).
    pub machine: Machine,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The complete kernel command line.
    pub cmdline: String,
    pub memory_mib: u32,
    pub smp: u32,
    pub accel: Accel,
    pub store: Option<StoreShare>,
    /// User-mode networking with a virtio NIC.
    pub network: bool,
    /// Host ports forwarded into the guest (with `network`).
    pub forwards: Vec<super::forward::PortForward>,
    /// Exit QEMU instead of rebooting the guest.
    pub no_reboot: bool,
    /// Appended last, verbatim.
    pub extra_args: Vec<OsString>,
}

/// The QEMU binary for systems of `arch`: [`Architecture::qemu_binary`]
/// from `PATH`; for amd64, `$IMAGO_QEMU` when set.
pub fn qemu_binary(arch: Architecture) -> OsString {
    match std::env::var_os("IMAGO_QEMU") {
        Some(binary) if arch == Architecture::Amd64 => binary,
        _ => arch.qemu_binary().into(),
    }
}

/// Escapes a value for QEMU's `key=value,...` option syntax (`,` → `,,`).
fn escaped(path: &Path) -> OsString {
    let mut out = Vec::new();
    for &byte in path.as_os_str().as_bytes() {
        out.push(byte);
        if byte == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// `prefix`, then `path` escaped for QEMU's option syntax, then `suffix`.
pub fn option_with_path(prefix: &str, path: &Path, suffix: &str) -> OsString {
    let mut arg = OsString::from(prefix);
    arg.push(escaped(path));
    arg.push(suffix);
    arg
}

/// QEMU's arguments, built in order.
#[derive(Debug, Clone, Default)]
pub struct QemuArgs {
    args: Vec<OsString>,
}

impl QemuArgs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends words verbatim.
    pub fn words<I, S>(&mut self, words: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(words.into_iter().map(Into::into));
        self
    }

    /// `flag value`, the value given whole (a path, a kernel command line).
    pub fn flag(&mut self, flag: &str, value: impl Into<OsString>) -> &mut Self {
        self.args.push(flag.into());
        self.args.push(value.into());
        self
    }

    /// The machine type and firmware, and memory and CPUs. With
    /// `shared_memory` (virtiofs), guest RAM is a shared memfd that
    /// vhost-user daemons can map.
    pub fn machine(
        &mut self,
        machine: &Machine,
        memory_mib: u32,
        smp: u32,
        shared_memory: bool,
    ) -> &mut Self {
        let kind = match machine {
            Machine::PcQboot { .. } | Machine::Pc => "pc",
            Machine::Q35 => "q35",
            Machine::Virt => "virt",
        };
        let memory = format!("{memory_mib}M");
        if shared_memory {
            self.flag("-machine", format!("{kind},memory-backend=mem"));
            self.flag(
                "-object",
                format!("memory-backend-memfd,id=mem,size={memory},share=on"),
            );
        } else {
            self.flag("-machine", kind);
        }
        if let Machine::PcQboot { rom } = machine {
            self.flag("-bios", rom);
        }
        self.flag("-m", memory).flag("-smp", smp.to_string())
    }

    /// The accelerator (see [`Accel::args`]) and, under TCG, the CPU model
    /// emulated for `arch` ([`Architecture::tcg_cpu`]).
    pub fn accel(&mut self, accel: Accel, arch: Architecture) -> &mut Self {
        self.words(accel.args().iter().copied());
        match (accel, arch.tcg_cpu()) {
            (Accel::Tcg, Some(cpu)) => self.flag("-cpu", cpu),
            _ => self,
        }
    }

    /// Direct kernel boot.
    pub fn direct_boot(&mut self, kernel: &Path, initrd: &Path, cmdline: &str) -> &mut Self {
        self.flag("-kernel", kernel)
            .flag("-initrd", initrd)
            .flag("-append", cmdline)
    }

    /// The host store under [`STORE_TAG`], read-only (pair virtiofs with
    /// `shared_memory` in [`QemuArgs::machine`]).
    pub fn store(&mut self, share: &StoreShare) -> &mut Self {
        match share {
            StoreShare::NineP { dir } => {
                self.flag(
                    "-fsdev",
                    option_with_path(
                        "local,id=store,security_model=none,readonly=on,multidevs=remap,path=",
                        dir,
                        "",
                    ),
                );
                self.flag(
                    "-device",
                    format!("virtio-9p-pci,fsdev=store,mount_tag={STORE_TAG}"),
                )
            }
            StoreShare::Virtiofs { socket } => {
                self.flag(
                    "-chardev",
                    option_with_path("socket,id=store,path=", socket, ""),
                );
                self.flag(
                    "-device",
                    format!("vhost-user-fs-pci,chardev=store,tag={STORE_TAG}"),
                )
            }
        }
    }

    /// The arguments (without the binary).
    pub fn finish(&mut self) -> Vec<OsString> {
        std::mem::take(&mut self.args)
    }
}

/// The arguments (without the binary) for `imago run`. The serial console
/// and the QEMU monitor are multiplexed on stdio (`-nographic`; Ctrl-A X
/// quits).
pub fn argv(config: &QemuConfig) -> Vec<OsString> {
    let mut args = QemuArgs::new();
    let virtiofs = matches!(config.store, Some(StoreShare::Virtiofs { .. }));
    args.machine(&config.machine, config.memory_mib, config.smp, virtiofs)
        .accel(config.accel, config.machine.architecture())
        .words([
            "-nographic",
            "-no-user-config",
            "-nodefaults",
            "-serial",
            "mon:stdio",
        ]);
    if config.no_reboot {
        args.words(["-no-reboot"]);
    }
    args.direct_boot(&config.kernel, &config.initrd, &config.cmdline);
    if let Some(store) = &config.store {
        args.store(store);
    }
    if config.network {
        // No option ROM: direct kernel boot never network-boots.
        let mut netdev = String::from("user,id=net0");
        for forward in &config.forwards {
            netdev.push(',');
            netdev.push_str(&forward.hostfwd());
        }
        args.flag("-netdev", netdev)
            .flag("-device", "virtio-net-pci,netdev=net0,romfile=");
    }
    args.words(config.extra_args.iter().cloned());
    args.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> QemuConfig {
        QemuConfig {
            machine: Machine::Q35,
            kernel: "/s/k/bzImage".into(),
            initrd: "/s/i".into(),
            cmdline: "console=ttyS0 imago.system=/imago/store/x-sys".into(),
            memory_mib: 512,
            smp: 2,
            accel: Accel::Tcg,
            store: Some(StoreShare::NineP {
                dir: "/var/store".into(),
            }),
            network: true,
            forwards: vec![],
            no_reboot: false,
            extra_args: vec!["-s".into()],
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// The value following `flag`, which must occur exactly once.
    fn value_of<'a>(args: &'a [String], flag: &str) -> &'a str {
        let positions: Vec<usize> = (0..args.len()).filter(|&i| args[i] == flag).collect();
        assert_eq!(positions.len(), 1, "{flag} in {args:?}");
        &args[positions[0] + 1]
    }

    #[test]
    fn nine_p_store_tcg_and_network() {
        let args = strings(&argv(&config()));
        assert_eq!(value_of(&args, "-machine"), "q35");
        assert_eq!(value_of(&args, "-accel"), "tcg");
        assert_eq!(value_of(&args, "-m"), "512M");
        assert_eq!(value_of(&args, "-smp"), "2");
        assert_eq!(value_of(&args, "-kernel"), "/s/k/bzImage");
        assert_eq!(value_of(&args, "-initrd"), "/s/i");
        assert_eq!(
            value_of(&args, "-append"),
            "console=ttyS0 imago.system=/imago/store/x-sys"
        );
        assert_eq!(
            value_of(&args, "-fsdev"),
            "local,id=store,security_model=none,readonly=on,multidevs=remap,path=/var/store"
        );
        assert!(args.contains(&"virtio-9p-pci,fsdev=store,mount_tag=imago-store".to_owned()));
        assert!(args.contains(&"virtio-net-pci,netdev=net0,romfile=".to_owned()));
        assert!(args.contains(&"user,id=net0".to_owned()));
        assert_eq!(
            args.last().map(String::as_str),
            Some("-s"),
            "extra args come last"
        );
        assert!(!args.contains(&"-cpu".to_owned()));
        assert!(!args.contains(&"-no-reboot".to_owned()));
        assert!(!args.contains(&"-bios".to_owned()));
    }

    #[test]
    fn arm64_runs_on_the_virt_machine_with_an_emulated_cpu() {
        let mut c = config();
        c.machine = Machine::detect(Architecture::Arm64);
        c.store = Some(StoreShare::Virtiofs {
            socket: "/s".into(),
        });
        let args = strings(&argv(&c));
        assert_eq!(value_of(&args, "-machine"), "virt,memory-backend=mem");
        assert_eq!(value_of(&args, "-cpu"), "cortex-a72");
        assert_eq!(value_of(&args, "-accel"), "tcg");
        assert!(!args.contains(&"-bios".to_owned()));
        assert!(args.contains(&"vhost-user-fs-pci,chardev=store,tag=imago-store".to_owned()));
        assert_eq!(c.machine.architecture(), Architecture::Arm64);
        assert_eq!(
            Machine::uefi(Architecture::Arm64).architecture(),
            Architecture::Arm64
        );
    }

    #[test]
    fn forwards_join_the_user_network() {
        let mut c = config();
        c.forwards = vec![
            "8080:80".parse().unwrap(),
            "udp:0.0.0.0:53:53".parse().unwrap(),
        ];
        let args = strings(&argv(&c));
        assert_eq!(
            value_of(&args, "-netdev"),
            "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:0.0.0.0:53-:53"
        );
    }

    #[test]
    fn qboot_uses_the_pc_machine() {
        let mut c = config();
        c.machine = Machine::PcQboot {
            rom: "/q/qboot.rom".into(),
        };
        let args = strings(&argv(&c));
        assert_eq!(value_of(&args, "-machine"), "pc");
        assert_eq!(value_of(&args, "-bios"), "/q/qboot.rom");
        c.store = Some(StoreShare::Virtiofs {
            socket: "/s".into(),
        });
        let args = strings(&argv(&c));
        assert_eq!(value_of(&args, "-machine"), "pc,memory-backend=mem");
    }

    #[test]
    fn virtiofs_needs_a_shared_memory_backend() {
        let mut c = config();
        c.store = Some(StoreShare::Virtiofs {
            socket: "/tmp/x,y/vfs.sock".into(),
        });
        c.network = false;
        c.no_reboot = true;
        c.accel = Accel::Kvm;
        let args = strings(&argv(&c));
        assert_eq!(value_of(&args, "-machine"), "q35,memory-backend=mem");
        assert_eq!(
            value_of(&args, "-object"),
            "memory-backend-memfd,id=mem,size=512M,share=on"
        );
        assert_eq!(
            value_of(&args, "-chardev"),
            "socket,id=store,path=/tmp/x,,y/vfs.sock",
            "commas in paths are doubled"
        );
        assert!(args.contains(&"vhost-user-fs-pci,chardev=store,tag=imago-store".to_owned()));
        assert_eq!(value_of(&args, "-cpu"), "host");
        assert!(args.contains(&"-no-reboot".to_owned()));
        assert!(!args.iter().any(|a| a.contains("netdev")));
    }

    #[test]
    fn store_params_name_the_transport() {
        assert_eq!(
            StoreShare::NineP { dir: "/s".into() }.kernel_param(),
            "imago.store=9p:imago-store"
        );
        assert_eq!(
            StoreShare::Virtiofs {
                socket: "/s".into()
            }
            .kernel_param(),
            "imago.store=virtiofs:imago-store"
        );
    }
}
