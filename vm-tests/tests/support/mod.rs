//! Test support for VM tests of real Imago systems: build a system file of
//! `vm-tests/systems/` into a store shared by all tests, make a disk image
//! of it, and turn either into a [`MachineConfig`].
//!
//! How it works:
//! * Systems are built by calling the composer library
//!   (`imago::pipeline::build_file`, the pipeline of `imago build`) in the
//!   test process. The `imago` binary is not used: `cargo test -p
//!   imago-vm-tests` does not build it, so looking for it next to the test
//!   executable would find nothing or a stale binary.
//! * The store is `$CARGO_TARGET_TMPDIR/imago-vm-store` (under the target
//!   directory), so later runs reuse every cached step; Debian packages come
//!   from the user's shared download cache (`~/.cache/imago`). The store's
//!   step locks make parallel test processes safe; within one process a
//!   mutex builds each system once.
//! * Disk images are written to `$CARGO_TARGET_TMPDIR/imago-vm-images`,
//!   named after the toplevel's store path (so a changed system gets a new
//!   image) and written atomically by the image builder. Machines only
//!   ever see a copy-on-write overlay of them.
//! * `switch_to` copies a system's missing closure into a running guest and
//!   switches it there with the code of `imago deploy` (`imago::remote`),
//!   the backdoor standing in for ssh.
//! * Direct-boot machines share the store over virtiofs (Debian's cloud
//!   kernel has no 9p) with the kernel command line of the toplevel's
//!   `boot.json`, as `imago run` does (the ESP's mount units masked: there
//!   is no ESP), plus the serial console and the
//!   parameters of the system's architecture (`console=ttyS0` and
//!   `no_timer_check` on amd64, `console=ttyAMA0` on arm64; see
//!   docs/vm-tests.md). A machine gets the architecture `boot.json` names:
//!   an arm64 system runs on `qemu-system-aarch64`, its disk image through
//!   AAVMF.

#![allow(dead_code)] // each test binary uses a different part

pub mod outside;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use imago::arch::Architecture;
use imago::boot::bootspec::BootSpec;
use imago::debian::apt::default_deb_cache;
use imago::graph::BuildOptions;
use imago::graph::progress::ProgressMode;
use imago::image::{ImageOptions, build_raw};
use imago::pipeline::{BuildRequest, DEFAULT_ATTR, Outcome, Settings, build_file};
use imago::remote::{self, Action, Remote, RemoteOutput};
use imago::store::{Store, StorePath};
use imago_vm_tests::{
    Boot, DiskFormat, DiskImage, Driver, Failure, Machine, MachineConfig, MachineName,
    StoreTransport,
};
use std::time::Duration;

/// Kernel parameters added to every direct boot of a system of `arch`: the
/// store over virtiofs (the tag the driver uses), the console on the serial
/// port, and the architecture's VM parameters (on amd64 no IO-APIC timer
/// check: it fails under TCG on a loaded host).
fn extra_kernel_params(arch: Architecture) -> Vec<String> {
    let mut params = vec![
        "imago.store=virtiofs:imago-store".to_owned(),
        format!("console={}", arch.serial_console()),
    ];
    params.extend(arch.vm_kernel_params().iter().map(|&p| p.to_owned()));
    params
}

/// A built system.
#[derive(Debug, Clone)]
pub struct System {
    /// The toplevel's store path.
    pub toplevel: StorePath,
    /// The toplevel's directory in the store.
    pub physical: PathBuf,
    /// Its `boot.json`.
    pub spec: BootSpec,
    /// The store directory.
    pub store: PathBuf,
}

/// The directory of the test system files.
pub fn systems_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systems")
}

/// The store shared by all VM tests of this target directory.
pub fn store_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("imago-vm-store")
}

fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("imago-vm-images")
}

/// Builds `vm-tests/systems/<name>.imago` (once per process) as a step of
/// the driver's log.
pub fn system(driver: &Driver, name: &str) -> Result<System, Failure> {
    system_file(driver, &systems_dir().join(format!("{name}.imago")))
}

/// Builds the system file `file` (once per process) as a step of the
/// driver's log. A failed evaluation or build fails the step with
/// `Error::Setup` naming the file and carrying the build's report.
pub fn system_file(driver: &Driver, file: &Path) -> Result<System, Failure> {
    static BUILT: OnceLock<Mutex<HashMap<PathBuf, System>>> = OnceLock::new();
    driver.setup(&format!("build system {}", file.display()), || {
        // Held during the build: two tests wanting one system build it once.
        let mut built = BUILT
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(system) = built.get(file) {
            return Ok(system.clone());
        }
        let system = build_system(file)?;
        built.insert(file.to_owned(), system.clone());
        Ok::<_, String>(system)
    })
}

fn build_system(file: &Path) -> Result<System, String> {
    let store_dir = store_dir();
    std::fs::create_dir_all(&store_dir)
        .map_err(|e| format!("cannot create the store {}: {e}", store_dir.display()))?;
    let store = open_store(&store_dir)?;
    let request = BuildRequest {
        file: file.to_owned(),
        attr: DEFAULT_ATTR.to_owned(),
        modules: None,
        options: BuildOptions {
            jobs: 0,
            keep_going: false,
            offline: false,
            repair: false,
            deb_cache: default_deb_cache(),
            progress: ProgressMode::Auto,
        },
    };
    let warnings = |rendered: &str| eprint!("{rendered}");
    let built = match build_file(&store, &Settings::default(), &request, &warnings) {
        Ok(Outcome::Built(built)) => built,
        Ok(Outcome::Failed(failure)) => {
            return Err(format!("building {} failed:\n{failure}", file.display()));
        }
        Err(e) => return Err(format!("building {}: {e:#}", file.display())),
    };
    let physical = store.physical(&built.path);
    let spec = BootSpec::read(&physical).map_err(|e| format!("{e}"))?;
    Ok(System {
        toplevel: built.path,
        physical,
        spec,
        store: store_dir,
    })
}

fn open_store(dir: &Path) -> Result<Store, String> {
    Store::open(dir).map_err(|e| format!("cannot open the store {}: {e}", dir.display()))
}

/// Removes the images of earlier builds of the same system (same name,
/// other hash), so the images directory does not grow with every change.
/// Best effort: a file that cannot be removed is left for the next run.
fn prune_older_images(dir: &Path, toplevel: &StorePath, keep: &Path) {
    let suffix = format!("-{}.raw", toplevel.name());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let stale = path != keep
            && entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(&suffix));
        if stale {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Maps a logical store path of `boot.json` to the store directory.
fn physical_path(system: &System, logical: &str) -> Result<PathBuf, String> {
    StorePath::physical_in(&system.store, logical)
        .map_err(|e| format!("boot.json of {}: `{logical}`: {e}", system.toplevel))
}

impl System {
    /// A machine booting this system's kernel and initrd directly, with the
    /// store over virtiofs.
    pub fn direct(&self, driver: &Driver, machine: &str) -> Result<MachineConfig, Failure> {
        driver.setup(
            &format!("configure machine {machine} (direct boot)"),
            || {
                let kernel = physical_path(self, &self.spec.kernel)?;
                let initrd = physical_path(self, &self.spec.initrd)?;
                let mut extra = extra_kernel_params(self.spec.architecture);
                extra.extend(imago::boot::direct::esp_masks(&self.physical, &self.store));
                let cmdline = self.spec.cmdline(&self.toplevel.to_absolute(), &extra);
                let mut config = MachineConfig::direct(machine, kernel, initrd, cmdline)
                    .map_err(|e| e.to_string())?;
                config.arch = self.spec.architecture;
                config.store = Some(self.store.clone());
                config.store_transport = StoreTransport::VirtioFs;
                Ok::<_, String>(config)
            },
        )
    }

    /// A machine booting this system's disk image (built once, cached by
    /// toplevel) through UEFI (OVMF, or AAVMF for arm64) and systemd-boot.
    pub fn uefi_disk(&self, driver: &Driver, machine: &str) -> Result<MachineConfig, Failure> {
        let image = driver.setup(&format!("disk image of {}", self.toplevel), || {
            self.disk_image()
        })?;
        driver.setup(&format!("configure machine {machine} (UEFI disk)"), || {
            let name = MachineName::new(machine).map_err(|e| e.to_string())?;
            let firmware = self.spec.architecture.uefi_firmware();
            let mut config = MachineConfig::new(
                name,
                Boot::Uefi {
                    code: firmware.code.into(),
                    vars: firmware.vars.into(),
                },
            );
            config.arch = self.spec.architecture;
            config.disk = Some(DiskImage {
                path: image,
                format: DiskFormat::Raw,
                size: None,
            });
            Ok::<_, String>(config)
        })
    }

    /// The raw disk image, built if missing.
    fn disk_image(&self) -> Result<PathBuf, String> {
        static LOCK: Mutex<()> = Mutex::new(());
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = images_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let output = dir.join(format!("{}.raw", self.toplevel.as_str()));
        if output.is_file() {
            return Ok(output);
        }
        let store = open_store(&self.store)?;
        let options = ImageOptions {
            size: None,
            esp_size: ImageOptions::DEFAULT_ESP,
            output: output.clone(),
        };
        build_raw(&store, &self.toplevel, &options)
            .map_err(|e| format!("making a disk image of {}: {e}", self.toplevel))?;
        prune_older_images(&dir, &self.toplevel, &output);
        Ok(output)
    }
}

/// A running guest as an `imago::remote::Remote`: scripts run as root
/// through the backdoor, each within `timeout` (scaled by the accelerator).
pub struct GuestRemote<'a> {
    pub machine: &'a Machine,
    pub timeout: Duration,
}

impl Remote for GuestRemote<'_> {
    fn name(&self) -> String {
        format!("machine {}", self.machine.name())
    }

    fn run(&self, script: &str, input: Option<remote::Input<'_>>) -> anyhow::Result<RemoteOutput> {
        let mut data = Vec::new();
        if let Some(write) = input {
            write(&mut data)?;
        }
        let out = self
            .machine
            .execute_with_input(script, &data, self.timeout)
            .map_err(|failure| anyhow::anyhow!("{}", failure.error()))?;
        Ok(RemoteOutput {
            status: Some(out.status),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// Copies `system`'s closure into the guest's /imago/store (only what it
/// lacks) and runs `switch-to-configuration ACTION` there, as `imago deploy`
/// does over ssh. Returns the script's output.
pub fn switch_to(
    driver: &Driver,
    machine: &Machine,
    system: &System,
    action: Action,
    timeout: Duration,
) -> Result<String, Failure> {
    driver.setup(
        &format!(
            "{}: switch_to {} ({})",
            machine.name(),
            system.toplevel,
            action.as_str()
        ),
        || {
            let store = open_store(&system.store)?;
            let guest = GuestRemote { machine, timeout };
            let switched = remote::copy_closure(&store, &system.toplevel, &guest, "/imago/store")
                .and_then(|_| remote::run_switch(&guest, "/imago/store", &system.toplevel, action));
            match switched {
                Ok(out) => Ok(format!(
                    "{}{}",
                    out.stdout_text(),
                    String::from_utf8_lossy(&out.stderr)
                )),
                Err(e) => Err(format!("{e:#}")),
            }
        },
    )
}

/// Fails when any systemd unit of the guest is in the failed state.
pub fn no_failed_units(machine: &Machine) -> Result<(), Failure> {
    let failed = machine.succeed(
        [
            "systemctl",
            "list-units",
            "--failed",
            "--plain",
            "--no-legend",
        ],
        Duration::from_secs(5),
    )?;
    if failed.is_empty() {
        return Ok(());
    }
    // Each failed unit's log of this boot, so that the failure explains
    // itself.
    let mut logs = String::new();
    for unit in failed.lines().filter_map(|l| l.split_whitespace().next()) {
        let log = machine.execute(
            format!("journalctl -b -u {unit} --no-pager -o short-monotonic | tail -n 20"),
            Duration::from_secs(10),
        )?;
        logs.push_str(&format!(
            "\n--- {unit}:\n{}",
            String::from_utf8_lossy(&log.stdout)
        ));
    }
    panic!("failed units:\n{failed}{logs}");
}
