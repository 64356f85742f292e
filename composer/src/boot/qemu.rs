//! The QEMU command line for booting a system directly (kernel + initrd),
//! as an argv vector: no shell is ever involved.
//!
//! The machine is `pc` with the qboot firmware when QEMU ships it (it only
//! does direct kernel boot, which is all a run needs, and reaches the kernel
//! ~1 s sooner than SeaBIOS under TCG), else `q35` with SeaBIOS. `microvm`
//! would be faster still, but QEMU 7.2's vhost-user-fs over virtio-mmio fails
//! to start there (measured), and the cloud kernel has no 9p.
//!
//! The host store is shared read-only under the tag [`STORE_TAG`], either
//! over 9p (host-enforced read-only) or virtiofs (a `virtiofsd` serving the
//! store on a vhost-user socket; the guest mounts it read-only; needs the
//! guest RAM as a shared memfd). Stage 1 mounts it at `/imago/store`.

use std::ffi::OsString;
use std::path::PathBuf;

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
}

/// Where QEMU's qboot firmware is installed (Debian's qemu-system-data).
pub const QBOOT_ROM: &str = "/usr/share/qemu/qboot.rom";

/// The machine type and its firmware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Machine {
    /// `-machine pc -bios <qboot.rom>`: fastest firmware, direct boot only.
    PcQboot { rom: PathBuf },
    /// `-machine q35` with QEMU's default SeaBIOS.
    Q35,
}

impl Machine {
    /// `PcQboot` when the qboot ROM is installed, else `Q35`.
    pub fn detect() -> Machine {
        let rom = PathBuf::from(QBOOT_ROM);
        if rom.is_file() {
            Machine::PcQboot { rom }
        } else {
            Machine::Q35
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

/// The QEMU binary: `$IMAGO_QEMU` or `qemu-system-x86_64` from `PATH`.
pub fn qemu_binary() -> OsString {
    std::env::var_os("IMAGO_QEMU").unwrap_or_else(|| "qemu-system-x86_64".into())
}

fn push(args: &mut Vec<OsString>, items: &[&str]) {
    args.extend(items.iter().map(OsString::from));
}

/// The arguments (without the binary). The serial console and the QEMU
/// monitor are multiplexed on stdio (`-nographic`; Ctrl-A X quits).
pub fn argv(config: &QemuConfig) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let memory = format!("{}M", config.memory_mib);
    let virtiofs = matches!(config.store, Some(StoreShare::Virtiofs { .. }));
    let machine = match &config.machine {
        Machine::PcQboot { .. } => "pc",
        Machine::Q35 => "q35",
    };
    if virtiofs {
        // vhost-user needs guest RAM the daemon can map.
        push(
            &mut args,
            &["-machine", &format!("{machine},memory-backend=mem")],
        );
        push(
            &mut args,
            &[
                "-object",
                &format!("memory-backend-memfd,id=mem,size={memory},share=on"),
            ],
        );
    } else {
        push(&mut args, &["-machine", machine]);
    }
    if let Machine::PcQboot { rom } = &config.machine {
        args.push("-bios".into());
        args.push(rom.clone().into());
    }
    push(&mut args, &["-accel", config.accel.name()]);
    if config.accel == Accel::Kvm {
        push(&mut args, &["-cpu", "host"]);
    }
    push(&mut args, &["-m", &memory, "-smp", &config.smp.to_string()]);
    push(
        &mut args,
        &[
            "-nographic",
            "-no-user-config",
            "-nodefaults",
            "-serial",
            "mon:stdio",
        ],
    );
    if config.no_reboot {
        push(&mut args, &["-no-reboot"]);
    }
    args.push("-kernel".into());
    args.push(config.kernel.clone().into());
    args.push("-initrd".into());
    args.push(config.initrd.clone().into());
    args.push("-append".into());
    args.push(config.cmdline.clone().into());
    match &config.store {
        Some(StoreShare::NineP { dir }) => {
            let mut fsdev = OsString::from("local,id=store,path=");
            fsdev.push(dir);
            fsdev.push(",security_model=none,readonly=on,multidevs=remap");
            args.push("-fsdev".into());
            args.push(fsdev);
            args.push("-device".into());
            args.push(format!("virtio-9p-pci,fsdev=store,mount_tag={STORE_TAG}").into());
        }
        Some(StoreShare::Virtiofs { socket }) => {
            let mut chardev = OsString::from("socket,id=store,path=");
            chardev.push(socket);
            args.push("-chardev".into());
            args.push(chardev);
            args.push("-device".into());
            args.push(format!("vhost-user-fs-pci,chardev=store,tag={STORE_TAG}").into());
        }
        None => {}
    }
    if config.network {
        // No option ROM: direct kernel boot never network-boots.
        let mut netdev = String::from("user,id=net0");
        for forward in &config.forwards {
            netdev.push(',');
            netdev.push_str(&forward.hostfwd());
        }
        args.push("-netdev".into());
        args.push(netdev.into());
        push(
            &mut args,
            &["-device", "virtio-net-pci,netdev=net0,romfile="],
        );
    }
    args.extend(config.extra_args.iter().cloned());
    args
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
            "local,id=store,path=/var/store,security_model=none,readonly=on,multidevs=remap"
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
            socket: "/tmp/x/vfs.sock".into(),
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
            "socket,id=store,path=/tmp/x/vfs.sock"
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
