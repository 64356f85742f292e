//! Running a built system toplevel under QEMU.
//!
//! [`VmLaunch::prepare`] reads the toplevel's `boot.json`, maps its kernel
//! and initrd to physical paths, picks how the store is shared (9p when the
//! kernel has a `9p` module or built-in, else virtiofs — Debian's cloud
//! kernel has no 9p), picks the machine, the serial console and the
//! accelerator for the system's architecture ([`crate::arch`],
//! [`super::kvm`]: an arm64 system on an amd64 host is always emulated) and
//! builds the QEMU config, with the ESP's mounts masked ([`super::direct`]).
//! [`VmLaunch::spawn`] starts `virtiofsd` when needed, then QEMU;
//! [`run_system`] does both with the console on this terminal.
//! QEMU and virtiofsd are killed when the [`RunningVm`] is dropped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGTERM};

use super::bootspec::{BootSpec, BootSpecError};
use super::kmod::{KmodError, ModuleIndex};
use super::kvm::{self, AccelChoice, AccelError};
use super::qemu::{self, Accel, QemuConfig, StoreShare};
use super::spawn;
use crate::arch::Architecture;
use crate::store::{StorePath, StorePathError};

/// How long QEMU may take to quit after SIGTERM before it is killed.
const QEMU_STOP: Duration = Duration::from_secs(5);

/// How long virtiofsd may take to create its socket.
const VIRTIOFSD_START: Duration = Duration::from_secs(5);

/// User choices for a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub memory_mib: u32,
    pub smp: u32,
    /// Appended to QEMU's arguments.
    pub extra_args: Vec<OsString>,
    /// `None`: probe (see [`super::kvm`]).
    pub accel: Option<Accel>,
    /// `None`: 9p if the kernel supports it, else virtiofs.
    pub share: Option<ShareKind>,
    /// Extra kernel parameters after the system's own.
    pub kernel_params: Vec<String>,
    /// Host ports forwarded into the guest.
    pub forwards: Vec<super::forward::PortForward>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            memory_mib: 1024,
            smp: 2,
            extra_args: Vec::new(),
            accel: None,
            share: None,
            kernel_params: Vec::new(),
            forwards: Vec::new(),
        }
    }
}

/// The store transports stage 1 can mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareKind {
    NineP,
    Virtiofs,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    BootSpec(#[from] BootSpecError),
    #[error("boot.json names {what} `{logical}`")]
    Path {
        what: &'static str,
        logical: String,
        #[source]
        source: StorePathError,
    },
    #[error("boot.json names {what} `{logical}`, which is not in the store at {physical}")]
    NotBuilt {
        what: &'static str,
        logical: String,
        physical: PathBuf,
    },
    #[error("cannot read the kernel's module index in {dir}")]
    Modules {
        dir: PathBuf,
        #[source]
        source: KmodError,
    },
    #[error(
        "kernel {kernel} has neither a 9p nor a virtiofs module, so the store cannot be shared with the VM"
    )]
    NoShare { kernel: PathBuf },
    #[error(transparent)]
    Accel(#[from] AccelError),
    #[error("no virtiofsd found (looked at $IMAGO_VIRTIOFSD, {})", super::virtiofsd::PATHS.join(", "))]
    NoVirtiofsd,
    #[error("virtiofsd did not start: {0}")]
    Virtiofsd(String),
    #[error(
        "this {arch} system runs on {binary}, which is not installed (Debian package {package})"
    )]
    NoQemu {
        arch: Architecture,
        binary: String,
        package: &'static str,
    },
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create a temporary directory for the VM")]
    TempDir(#[source] std::io::Error),
}

impl RunError {
    /// The stable code of this error (docs/errors.md, E08xx).
    pub fn code(&self) -> crate::codes::Code {
        match self {
            RunError::BootSpec(e) => e.code(),
            RunError::Accel(e) => e.code(),
            RunError::Path { .. }
            | RunError::NotBuilt { .. }
            | RunError::Modules { .. }
            | RunError::NoShare { .. }
            | RunError::NoVirtiofsd
            | RunError::NoQemu { .. }
            | RunError::Virtiofsd(_)
            | RunError::Spawn { .. }
            | RunError::TempDir(_) => crate::codes::QEMU,
        }
    }
}

/// A prepared boot: the QEMU config plus what must run beside it.
#[derive(Debug)]
pub struct VmLaunch {
    pub spec: BootSpec,
    pub accel: AccelChoice,
    pub config: QemuConfig,
    /// The physical store directory, for virtiofsd.
    store_dir: PathBuf,
    /// Holds the virtiofsd socket; removed on drop.
    runtime_dir: tempfile::TempDir,
}

impl VmLaunch {
    /// Prepares booting `toplevel` (physical path) whose store path is
    /// `toplevel_logical`, with the store at `store_dir`.
    pub fn prepare(
        toplevel: &Path,
        toplevel_logical: &str,
        store_dir: &Path,
        opts: &RunOptions,
    ) -> Result<Self, RunError> {
        let spec = BootSpec::read(toplevel)?;
        let kernel = physical(store_dir, "the kernel", &spec.kernel)?;
        let initrd = physical(store_dir, "the initrd", &spec.initrd)?;
        let kind = match opts.share {
            Some(kind) => kind,
            None => share_kind(&kernel)?,
        };
        let runtime_dir = tempfile::Builder::new()
            .prefix("imago-vm-")
            .tempdir()
            .map_err(RunError::TempDir)?;
        let store = match kind {
            ShareKind::NineP => StoreShare::NineP {
                dir: store_dir.to_owned(),
            },
            ShareKind::Virtiofs => StoreShare::Virtiofs {
                socket: runtime_dir.path().join("store.sock"),
            },
        };
        let arch = spec.architecture;
        let mut extra = vec![
            store.kernel_param(),
            format!("console={}", arch.serial_console()),
        ];
        extra.extend(arch.vm_kernel_params().iter().map(|&p| p.to_owned()));
        extra.extend(super::direct::esp_masks(toplevel, store_dir));
        extra.extend(opts.kernel_params.iter().cloned());
        let cmdline = spec.cmdline(toplevel_logical, &extra);
        let accel = match opts.accel {
            Some(Accel::Kvm) if kvm::emulated(arch).is_some() => {
                let why = kvm::emulated(arch).unwrap_or_default();
                return Err(RunError::Accel(AccelError::ForeignKvm { arch, why }));
            }
            Some(accel) => AccelChoice {
                accel,
                reason: "requested".into(),
            },
            None => kvm::choose(arch)?,
        };
        // An amd64 kernel through its PVH entry (arm64's Image is
        // uncompressed already).
        let kernel = match arch {
            Architecture::Amd64 => super::pvh::direct_kernel(&kernel),
            _ => kernel,
        };
        let config = QemuConfig {
            machine: qemu::Machine::detect(arch),
            kernel,
            initrd,
            cmdline,
            memory_mib: opts.memory_mib,
            smp: opts.smp,
            accel: accel.accel,
            store: Some(store),
            network: true,
            forwards: opts.forwards.clone(),
            no_reboot: false,
            extra_args: opts.extra_args.clone(),
        };
        Ok(VmLaunch {
            spec,
            accel,
            config,
            store_dir: store_dir.to_owned(),
            runtime_dir,
        })
    }

    /// Starts virtiofsd (if the store goes over virtiofs) and QEMU with the
    /// given stdio for the console.
    pub fn spawn(&self, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Result<RunningVm, RunError> {
        // Guarded from the start: when QEMU cannot be started, returning
        // the error stops virtiofsd too.
        let virtiofsd = match &self.config.store {
            Some(StoreShare::Virtiofs { socket }) => Some(Guard(self.start_virtiofsd(socket)?)),
            _ => None,
        };
        let arch = self.config.machine.architecture();
        let binary = qemu::qemu_binary(arch);
        let no_qemu = || RunError::NoQemu {
            arch,
            binary: binary.to_string_lossy().into_owned(),
            package: arch.qemu_package(),
        };
        // QEMU and virtiofsd die with this process, even with SIGKILL.
        let mut command = spawn::command(spawn::find_program(&binary).ok_or_else(no_qemu)?);
        command
            .args(qemu::argv(&self.config))
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr);
        let qemu = spawn::spawn(command).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => no_qemu(),
            _ => RunError::Spawn {
                program: binary.to_string_lossy().into_owned(),
                source,
            },
        })?;
        Ok(RunningVm { qemu, virtiofsd })
    }

    fn start_virtiofsd(&self, socket: &Path) -> Result<Child, RunError> {
        let binary = super::virtiofsd::find().ok_or(RunError::NoVirtiofsd)?;
        let log_path = self.runtime_dir.path().join("virtiofsd.log");
        let log = std::fs::File::create(&log_path).map_err(RunError::TempDir)?;
        let mut command = spawn::command(&binary);
        command
            .args(super::virtiofsd::args(&self.store_dir, socket))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let mut child = spawn::spawn(command).map_err(|source| RunError::Spawn {
            program: binary.display().to_string(),
            source,
        })?;
        let started = Instant::now();
        while !socket.exists() {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || started.elapsed() > VIRTIOFSD_START {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let why = match exited {
                    Some(status) => format!("{} exited with {status}", binary.display()),
                    None => format!(
                        "{} created no socket within {} s",
                        binary.display(),
                        VIRTIOFSD_START.as_secs()
                    ),
                };
                return Err(RunError::Virtiofsd(format!(
                    "{why}; its log:\n{}",
                    log.trim_end()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(child)
    }
}

/// A child process killed and reaped on drop.
#[derive(Debug)]
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How a VM run ended.
#[derive(Debug, Clone, Copy)]
pub struct VmExit {
    /// QEMU's exit status.
    pub status: ExitStatus,
    /// The signal that asked this process to stop, when QEMU was stopped
    /// because of it.
    pub stopped_by: Option<i32>,
}

/// A running VM; QEMU and virtiofsd are killed when it is dropped.
#[derive(Debug)]
pub struct RunningVm {
    pub qemu: Child,
    virtiofsd: Option<Guard>,
}

impl RunningVm {
    /// Waits for QEMU to exit, then stops virtiofsd.
    pub fn wait(mut self) -> std::io::Result<ExitStatus> {
        let status = self.qemu.wait();
        self.virtiofsd.take();
        status
    }

    /// Waits for QEMU to exit like [`RunningVm::wait`], but when this
    /// process is asked to stop (SIGTERM, SIGHUP) first asks QEMU to quit
    /// (SIGTERM: it closes its disks cleanly), then kills it after
    /// [`QEMU_STOP`]: a VM never outlives the `imago run` that started it.
    pub fn wait_or_stop(mut self) -> std::io::Result<VmExit> {
        let stop = Arc::new(AtomicUsize::new(0));
        for signal in [SIGTERM, SIGHUP] {
            signal_hook::flag::register_usize(signal, Arc::clone(&stop), signal as usize)?;
        }
        let signal = loop {
            if let Some(status) = self.qemu.try_wait()? {
                self.virtiofsd.take();
                return Ok(VmExit {
                    status,
                    stopped_by: None,
                });
            }
            match stop.load(Ordering::Relaxed) {
                0 => std::thread::sleep(Duration::from_millis(50)),
                signal => break signal as i32,
            }
        };
        eprintln!("imago: stopping QEMU (signal {signal})");
        let stopped = |status| VmExit {
            status,
            stopped_by: Some(signal),
        };
        if let Some(pid) = rustix::process::Pid::from_raw(self.qemu.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let asked = Instant::now();
        while asked.elapsed() < QEMU_STOP {
            if let Some(status) = self.qemu.try_wait()? {
                self.virtiofsd.take();
                return Ok(stopped(status));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.qemu.kill()?;
        self.wait().map(stopped)
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        if let Ok(None) = self.qemu.try_wait() {
            let _ = self.qemu.kill();
            let _ = self.qemu.wait();
        }
    }
}

/// Boots `toplevel` with the serial console on this terminal and returns
/// how the run ended.
pub fn run_system(
    toplevel: &Path,
    toplevel_logical: &str,
    store_dir: &Path,
    opts: &RunOptions,
) -> Result<VmExit, RunError> {
    let launch = VmLaunch::prepare(toplevel, toplevel_logical, store_dir, opts)?;
    eprintln!(
        "imago: booting {} ({}) with {}: {}",
        launch.spec.system_name,
        launch.spec.label,
        launch.accel.accel.name(),
        launch.accel.reason
    );
    eprintln!("imago: the console is on this terminal; Ctrl-A X quits QEMU");
    let vm = launch.spawn(Stdio::inherit(), Stdio::inherit(), Stdio::inherit())?;
    vm.wait_or_stop().map_err(|source| RunError::Spawn {
        program: "qemu".into(),
        source,
    })
}

/// Maps a logical store path from boot.json to the physical store and checks
/// that it exists.
fn physical(store_dir: &Path, what: &'static str, logical: &str) -> Result<PathBuf, RunError> {
    let physical = StorePath::physical_in(store_dir, logical).map_err(|source| RunError::Path {
        what,
        logical: logical.to_owned(),
        source,
    })?;
    if !physical.exists() {
        return Err(RunError::NotBuilt {
            what,
            logical: logical.to_owned(),
            physical,
        });
    }
    Ok(physical)
}

/// 9p when the kernel object beside `kernel_image` has a `9p` module (or
/// built-in), else virtiofs when it has `virtiofs`.
fn share_kind(kernel_image: &Path) -> Result<ShareKind, RunError> {
    let object = kernel_image.parent().unwrap_or(kernel_image);
    let no_share = || RunError::NoShare {
        kernel: kernel_image.to_owned(),
    };
    let version_file = object.join("version");
    let version = std::fs::read_to_string(&version_file).map_err(|source| RunError::Modules {
        dir: object.to_owned(),
        source: KmodError::Io {
            path: version_file,
            source,
        },
    })?;
    let version = version.trim();
    let dir = object.join("lib/modules").join(version);
    let index = ModuleIndex::load(&dir, version).map_err(|source| RunError::Modules {
        dir: dir.clone(),
        source,
    })?;
    let has = |name: &str| index.modules.contains_key(name) || index.builtin.contains(name);
    if has("9p") && has("9pnet_virtio") {
        Ok(ShareKind::NineP)
    } else if has("virtiofs") {
        Ok(ShareKind::Virtiofs)
    } else {
        Err(no_share())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::kernel::build_kernel;
    use crate::boot::kmod::tests::{VIRTIO_TREE, write_tree};

    fn store_with_kernel(extra_modules: &[(&str, &str, &[&str])]) -> tempfile::TempDir {
        let store = tempfile::tempdir().unwrap();
        let pkg = store.path().join("pkg");
        std::fs::create_dir_all(pkg.join("boot")).unwrap();
        std::fs::write(
            pkg.join("boot/vmlinuz-6.1"),
            crate::boot::kernel::tests::fake_image(crate::arch::Architecture::Amd64),
        )
        .unwrap();
        let mods = pkg.join("lib/modules/6.1");
        let mut tree = VIRTIO_TREE.to_vec();
        tree.extend_from_slice(extra_modules);
        write_tree(&mods, &tree, &["kernel/lib/crc32c.ko"]);
        build_kernel(
            &[("/imago/store/pkg".into(), pkg)],
            crate::arch::Architecture::Amd64,
            &store.path().join("0000000000000000000000000000000a-kernel"),
            &mut Vec::new(),
        )
        .unwrap();
        std::fs::write(
            store.path().join("0000000000000000000000000000000b-initrd"),
            b"initrd",
        )
        .unwrap();
        let top = store.path().join("0000000000000000000000000000000c-system");
        std::fs::create_dir_all(&top).unwrap();
        std::fs::write(
            top.join("boot.json"),
            r#"{ "version": 1, "label": "l", "system_name": "vm",
                 "kernel": "/imago/store/0000000000000000000000000000000a-kernel/bzImage", "initrd": "/imago/store/0000000000000000000000000000000b-initrd",
                 "kernel_params": ["quiet"], "init": "init" }"#,
        )
        .unwrap();
        store
    }

    fn opts() -> RunOptions {
        RunOptions {
            accel: Some(Accel::Tcg),
            ..RunOptions::default()
        }
    }

    #[test]
    fn prepares_virtiofs_when_the_kernel_has_no_9p() {
        let store = store_with_kernel(&[]);
        let launch = VmLaunch::prepare(
            &store.path().join("0000000000000000000000000000000c-system"),
            "/imago/store/0000000000000000000000000000000c-system",
            store.path(),
            &opts(),
        )
        .unwrap();
        assert_eq!(
            launch.config.kernel,
            store
                .path()
                .join("0000000000000000000000000000000a-kernel/bzImage")
        );
        assert_eq!(
            launch.config.initrd,
            store.path().join("0000000000000000000000000000000b-initrd")
        );
        assert!(matches!(
            launch.config.store,
            Some(StoreShare::Virtiofs { .. })
        ));
        assert_eq!(
            launch.config.cmdline,
            "quiet imago.system=/imago/store/0000000000000000000000000000000c-system imago.store=virtiofs:imago-store console=ttyS0 no_timer_check"
        );
    }

    #[test]
    fn prefers_9p_when_the_kernel_has_it() {
        let store = store_with_kernel(&[
            ("kernel/fs/9p/9p.ko", "9pnet", &["fs-9p"]),
            ("kernel/net/9p/9pnet.ko", "", &[]),
            (
                "kernel/net/9p/9pnet_virtio.ko",
                "9pnet,virtio,virtio_ring",
                &["virtio:d00000009v*"],
            ),
        ]);
        let launch = VmLaunch::prepare(
            &store.path().join("0000000000000000000000000000000c-system"),
            "/imago/store/0000000000000000000000000000000c-system",
            store.path(),
            &opts(),
        )
        .unwrap();
        assert_eq!(
            launch.config.store,
            Some(StoreShare::NineP {
                dir: store.path().to_owned()
            })
        );
    }

    #[test]
    fn a_missing_initrd_is_named() {
        let store = store_with_kernel(&[]);
        std::fs::remove_file(store.path().join("0000000000000000000000000000000b-initrd")).unwrap();
        let err = VmLaunch::prepare(
            &store.path().join("0000000000000000000000000000000c-system"),
            "/imago/store/0000000000000000000000000000000c-system",
            store.path(),
            &opts(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "boot.json names the initrd `/imago/store/0000000000000000000000000000000b-initrd`, which is not in the store"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_directory_without_boot_json_is_refused() {
        let store = tempfile::tempdir().unwrap();
        let err = VmLaunch::prepare(store.path(), "/imago/store/x", store.path(), &opts())
            .unwrap_err()
            .to_string();
        assert!(err.contains("boot.json does not exist"), "{err}");
    }
}
