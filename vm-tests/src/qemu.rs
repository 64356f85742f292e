//! QEMU command lines and processes.
//!
//! [`command_line`] turns a [`MachineConfig`] into QEMU's argv (never a
//! shell string), with Imago's argument builder (`imago::boot::qemu`, the
//! one `imago run` uses) for the machine, accelerator, boot and store. The console, the backdoor and the QMP monitor are Unix
//! sockets the *driver* listens on and QEMU connects to as a client, so QEMU
//! cannot start running the guest before the driver is connected: no early
//! output is lost and there is no race on socket creation.
//!
//! [`Process`] owns the running process: its stderr is collected in the
//! background (for error messages), and it is killed with SIGKILL when
//! dropped, including while a panic unwinds. So that QEMU also dies when the
//! test process itself is killed, QEMU is started as `imago run` starts it
//! ([`imago::boot::spawn`]): through `setpriv --pdeathsig KILL`, from one
//! long-lived spawner thread (the parent death signal fires when the
//! *thread* that forked exits, so per-test threads would kill machines too
//! early).

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imago::boot::qemu::{self, QemuArgs, StoreShare, option_with_path};
use imago::boot::spawn;

use crate::accel::Accel;
use crate::config::{Boot, MachineConfig, StoreTransport};
use crate::error::Error;
use crate::network::Attachment;
use crate::retry::{Poll, retry};

/// The QEMU binary of amd64 machines (see [`program`]).
pub const QEMU: &str = "qemu-system-x86_64";

/// The QEMU binary for a machine of `arch` (Imago's choice, as `imago run`
/// makes it).
pub fn program(arch: imago::arch::Architecture) -> String {
    qemu::qemu_binary(arch).to_string_lossy().into_owned()
}

/// The virtio-serial port name of the backdoor: `/dev/virtio-ports/<name>`
/// in a guest with udev, `/sys/class/virtio-ports/*/name` names it without.
pub const BACKDOOR_PORT: &str = "org.imago.backdoor";

/// Where one QEMU process keeps its sockets and writable files.
#[derive(Debug, Clone)]
pub struct RunPaths {
    /// The serial console socket.
    pub console: PathBuf,
    /// The backdoor socket.
    pub backdoor: PathBuf,
    /// The QMP socket.
    pub qmp: PathBuf,
    /// The virtiofsd socket (used with [`StoreTransport::VirtioFs`]).
    pub virtiofs: PathBuf,
    /// The copy-on-write overlay of the disk image, if any.
    pub overlay: Option<PathBuf>,
    /// The copy of the UEFI variable store, if any.
    pub vars: Option<PathBuf>,
}

impl RunPaths {
    /// The paths inside a machine's directory.
    pub fn in_dir(dir: &Path, config: &MachineConfig) -> Self {
        Self {
            console: dir.join("console.sock"),
            backdoor: dir.join("backdoor.sock"),
            qmp: dir.join("qmp.sock"),
            virtiofs: dir.join("virtiofs.sock"),
            overlay: config.disk.as_ref().map(|_| dir.join("disk.qcow2")),
            vars: match config.boot {
                Boot::Uefi { .. } => Some(dir.join("efivars.fd")),
                Boot::Direct { .. } => None,
            },
        }
    }
}

/// QEMU's arguments (without the program name) for one run of a machine:
/// Imago's [`QemuArgs`] (machine, accelerator, memory, direct boot, store)
/// plus the driver's sockets, disks and networks.
pub fn command_line(
    config: &MachineConfig,
    paths: &RunPaths,
    accel: &Accel,
    networks: &[Attachment],
) -> Vec<OsString> {
    let mut args = QemuArgs::new();
    args.flag("-name", config.name.as_str());
    let machine = match (config.boot.is_uefi(), config.arch) {
        (false, imago::arch::Architecture::Amd64) => qemu::Machine::Pc,
        (false, arch) => qemu::Machine::detect(arch),
        (true, arch) => qemu::Machine::uefi(arch),
    };
    let store = config
        .store
        .as_ref()
        .map(|dir| match config.store_transport {
            StoreTransport::NineP => StoreShare::NineP { dir: dir.clone() },
            StoreTransport::VirtioFs => StoreShare::Virtiofs {
                socket: paths.virtiofs.clone(),
            },
        });
    let virtiofs = matches!(store, Some(StoreShare::Virtiofs { .. }));
    args.accel(accel.kind, config.arch)
        .machine(&machine, config.memory_mib, config.smp, virtiofs)
        .words(["-nodefaults", "-no-user-config", "-display", "none"]);

    args.flag(
        "-chardev",
        option_with_path("socket,id=console,path=", &paths.console, ""),
    )
    .words(["-serial", "chardev:console"])
    .flag(
        "-chardev",
        option_with_path("socket,id=qmp,path=", &paths.qmp, ""),
    )
    .words(["-mon", "chardev=qmp,mode=control"])
    .words(["-device", "virtio-serial-pci,id=vser"])
    .flag(
        "-chardev",
        option_with_path("socket,id=backdoor,path=", &paths.backdoor, ""),
    )
    .flag(
        "-device",
        format!("virtserialport,bus=vser.0,chardev=backdoor,name={BACKDOOR_PORT}"),
    )
    .words(["-device", "virtio-rng-pci"]);

    match &config.boot {
        Boot::Direct {
            kernel,
            initrd,
            cmdline,
        } => {
            // As `imago run` boots it: an amd64 kernel through its PVH entry.
            let kernel = match config.arch {
                imago::arch::Architecture::Amd64 => imago::boot::pvh::direct_kernel(kernel),
                _ => kernel.clone(),
            };
            args.direct_boot(&kernel, initrd, cmdline);
        }
        Boot::Uefi { code, .. } => {
            args.flag(
                "-drive",
                option_with_path("if=pflash,format=raw,unit=0,readonly=on,file=", code, ""),
            );
            if let Some(vars) = &paths.vars {
                args.flag(
                    "-drive",
                    option_with_path("if=pflash,format=raw,unit=1,file=", vars, ""),
                );
            }
        }
    }
    if let Some(overlay) = &paths.overlay {
        args.flag(
            "-drive",
            option_with_path(
                "if=none,id=disk0,format=qcow2,cache=writeback,discard=unmap,file=",
                overlay,
                "",
            ),
        )
        .words(["-device", "virtio-blk-pci,drive=disk0,bootindex=1"]);
    }
    if let Some(store) = &store {
        args.store(store);
    }
    for (i, net) in networks.iter().enumerate() {
        args.flag(
            "-netdev",
            format!("socket,id=net{i},udp={},localaddr={}", net.hub, net.local),
        )
        .flag(
            "-device",
            format!("virtio-net-pci,netdev=net{i},mac={}", net.mac),
        );
    }
    args.words(config.extra_args.iter());
    args.finish()
}

/// Renders an argv for messages, quoting words that need it.
pub fn display_argv(program: &str, args: &[OsString]) -> String {
    let mut text = program.to_owned();
    for arg in args {
        text.push(' ');
        text.push_str(&crate::command::shell_quote(&arg.to_string_lossy()));
    }
    text
}

/// The virtiofsd binary, as `imago run` finds it
/// ([`imago::boot::virtiofsd::find`]), else `virtiofsd` on the PATH.
pub fn virtiofsd() -> String {
    imago::boot::virtiofsd::find()
        .map_or_else(|| "virtiofsd".to_owned(), |p| p.display().to_string())
}

/// virtiofsd's arguments: the store served as `imago run` serves it
/// ([`imago::boot::virtiofsd::args`]).
pub fn virtiofsd_args(store: &Path, socket: &Path) -> Vec<OsString> {
    imago::boot::virtiofsd::args(store, socket)
}

/// Creates the copy-on-write overlay `overlay` on top of `image`.
/// With `size`, the overlay's virtual size in bytes (a larger disk).
pub fn create_overlay(
    image: &Path,
    format: &str,
    overlay: &Path,
    size: Option<u64>,
) -> Result<(), Error> {
    let backing = std::fs::canonicalize(image)
        .map_err(|e| Error::io(format!("resolving disk image {}", image.display()), e))?;
    let mut command = Command::new("qemu-img");
    command
        .args(["create", "-q", "-f", "qcow2", "-F", format, "-b"])
        .arg(&backing)
        .arg(overlay);
    if let Some(size) = size {
        command.arg(size.to_string());
    }
    let output = command.output().map_err(|e| Error::Program {
        program: "qemu-img".to_owned(),
        detail: format!("cannot run it (is qemu-utils installed?): {e}"),
    })?;
    if !output.status.success() {
        return Err(Error::Program {
            program: format!(
                "qemu-img create -f qcow2 -F {format} -b {} {}",
                backing.display(),
                overlay.display()
            ),
            detail: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// A running QEMU (or helper), killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    exited: Option<ExitStatus>,
}

impl Process {
    /// Starts `program` (QEMU or a helper such as virtiofsd) with `args`.
    pub fn spawn(program: &str, args: &[OsString]) -> Result<Self, Error> {
        let mut command = spawn::command(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn::spawn(command).map_err(|e| Error::Program {
            program: program.to_owned(),
            detail: format!("cannot start it: {e}"),
        })?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            let _ = std::thread::Builder::new()
                .name("qemu-stderr".to_owned())
                .spawn(move || {
                    let mut buf = [0_u8; 4096];
                    while let Ok(n) = pipe.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        sink.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend(&buf[..n]);
                    }
                });
        }
        Ok(Self {
            child,
            stderr,
            exited: None,
        })
    }

    /// The exit status, if the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// What the process wrote to stderr so far (without QEMU's harmless
    /// GUI-module warnings).
    pub fn stderr(&self) -> String {
        let bytes = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| !l.contains("do you want to install qemu-system-gui"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration, what: &str) -> Result<ExitStatus, Error> {
        retry(what, timeout, Duration::from_millis(100), |_| {
            Ok(match self.exit_status() {
                Some(status) => Poll::Ready(status),
                None => Poll::Pending(None),
            })
        })
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if self.exit_status().is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accel::AccelKind;
    use crate::config::{DiskFormat, DiskImage, MachineName};

    fn tcg() -> Accel {
        Accel {
            kind: AccelKind::Tcg,
            factor: 3.0,
            reason: String::new(),
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn direct_boot_argv() {
        let mut config =
            MachineConfig::direct("m1", "/k/bzImage", "/k/initrd", "console=ttyS0 quiet").unwrap();
        config.disk = Some(DiskImage {
            path: "/img/disk.raw".into(),
            format: DiskFormat::Raw,
            size: None,
        });
        config.store = Some("/imago/store".into());
        let dir = Path::new("/tmp/t,x/m1");
        let paths = RunPaths::in_dir(dir, &config);
        let nets = [Attachment {
            hub: "127.0.0.1:4000".parse().unwrap(),
            local: "127.0.0.1:4001".parse().unwrap(),
            mac: "52:54:00:00:01:01".to_owned(),
        }];
        let args = strings(&command_line(&config, &paths, &tcg(), &nets));
        let joined = args.join(" ");
        assert!(joined.contains("-accel tcg -machine pc -m "), "{joined}");
        assert!(
            joined.contains("socket,id=console,path=/tmp/t,,x/m1/console.sock"),
            "{joined}"
        );
        assert!(joined.contains("-append console=ttyS0 quiet"), "{joined}");
        assert!(args.contains(&"console=ttyS0 quiet".to_owned()));
        assert!(joined.contains("file=/tmp/t,,x/m1/disk.qcow2"), "{joined}");
        assert!(
            joined.contains("readonly=on,multidevs=remap,path=/imago/store"),
            "{joined}"
        );
        assert!(joined.contains("mount_tag=imago-store"), "{joined}");
        assert!(
            joined.contains("socket,id=net0,udp=127.0.0.1:4000,localaddr=127.0.0.1:4001"),
            "{joined}"
        );
        assert!(joined.contains("mac=52:54:00:00:01:01"), "{joined}");
        assert!(!joined.contains("pflash"), "{joined}");
    }

    #[test]
    fn arm64_machines_run_on_virt_with_aavmf() {
        use imago::arch::Architecture;
        let mut config = MachineConfig::direct("a", "/k/Image", "/i", "console=ttyAMA0").unwrap();
        config.arch = Architecture::Arm64;
        let paths = RunPaths::in_dir(Path::new("/t/a"), &config);
        let joined = strings(&command_line(&config, &paths, &tcg(), &[])).join(" ");
        assert!(
            joined.starts_with("-name a -accel tcg -cpu cortex-a72 -machine virt -m "),
            "{joined}"
        );
        assert_eq!(program(Architecture::Arm64), "qemu-system-aarch64");
        let firmware = Architecture::Arm64.uefi_firmware();
        config.boot = Boot::Uefi {
            code: firmware.code.into(),
            vars: firmware.vars.into(),
        };
        let joined = strings(&command_line(&config, &paths, &tcg(), &[])).join(" ");
        assert!(joined.contains("-machine virt"), "{joined}");
        assert!(
            joined.contains("unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd"),
            "{joined}"
        );
    }

    #[test]
    fn virtiofs_store_argv() {
        let mut config = MachineConfig::direct("m", "/k", "/i", "").unwrap();
        config.store = Some("/imago/store".into());
        config.store_transport = StoreTransport::VirtioFs;
        config.memory_mib = 300;
        let paths = RunPaths::in_dir(Path::new("/t/m"), &config);
        let joined = strings(&command_line(&config, &paths, &tcg(), &[])).join(" ");
        assert!(
            joined.contains("-machine pc,memory-backend=mem"),
            "{joined}"
        );
        assert!(
            joined.contains("memory-backend-memfd,id=mem,size=300M,share=on"),
            "{joined}"
        );
        assert!(
            joined.contains("socket,id=store,path=/t/m/virtiofs.sock"),
            "{joined}"
        );
        assert!(
            joined.contains("vhost-user-fs-pci,chardev=store,tag=imago-store"),
            "{joined}"
        );
        assert!(!joined.contains("9p"), "{joined}");
        let daemon = strings(&virtiofsd_args(Path::new("/imago/store"), &paths.virtiofs));
        assert_eq!(daemon[0], "--socket-path=/t/m/virtiofs.sock");
        assert!(daemon.contains(&"source=/imago/store".to_owned()));
    }

    #[test]
    fn uefi_argv_uses_q35_and_vars_copy() {
        let mut config = MachineConfig::new(
            MachineName::new("u").unwrap(),
            Boot::Uefi {
                code: "/fw/CODE.fd".into(),
                vars: "/fw/VARS.fd".into(),
            },
        );
        config.extra_args = vec!["-snapshot".to_owned()];
        let paths = RunPaths::in_dir(Path::new("/t/u"), &config);
        let args = strings(&command_line(&config, &paths, &tcg(), &[]));
        let joined = args.join(" ");
        assert!(joined.contains("-machine q35"), "{joined}");
        assert!(
            joined.contains("unit=0,readonly=on,file=/fw/CODE.fd"),
            "{joined}"
        );
        assert!(joined.contains("unit=1,file=/t/u/efivars.fd"), "{joined}");
        assert!(
            !joined.contains("VARS.fd"),
            "template must not be used: {joined}"
        );
        assert_eq!(args.last().map(String::as_str), Some("-snapshot"));
        assert!(!joined.contains("-kernel"), "{joined}");
    }
}
