//! Choosing the accelerator: KVM only when a probe shows it really works.
//! This is the one probe of the project: `imago run` and the VM test driver
//! (`vm-tests`) both use it.
//!
//! `/dev/kvm` existing is not enough: on some hosts QEMU aborts setting MSRs
//! with `-cpu host`, or hangs; on some nested hosts real-mode code runs but
//! the guest hangs at its first switch to protected mode. The probe boots a
//! 64 KiB firmware image ([`super::probe_firmware`]) that goes from the
//! reset vector to 64-bit long mode with paging, as a kernel does, and only
//! then writes to QEMU's `isa-debug-exit` port, with the accelerator and
//! CPU options a real machine gets ([`Accel::args`]); only QEMU exiting
//! with the expected code within [`PROBE_TIMEOUT`] counts as success (QEMU
//! is killed otherwise). Otherwise TCG is used.
//!
//! The answer is cached per host boot and QEMU version in
//! `$XDG_RUNTIME_DIR/imago/` (or `/run/imago/` for root, else the temp dir),
//! in a file named after a hash of `qemu --version` and the boot id.
//! For `imago run`, `IMAGO_ACCEL=tcg|kvm` overrides everything ([`choose`]);
//! the VM test driver reads the variable itself and calls [`detect`].
//!
//! Both take the system's architecture: a system of another architecture
//! than the host's (an arm64 system on an amd64 host) is always emulated
//! with TCG, and `IMAGO_ACCEL=kvm` for it is refused ([`emulated`]). The
//! probe's firmware is x86 code, so on an arm64 host arm64 systems use TCG
//! too, for now.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::probe_firmware;
use super::qemu::{self, Accel, Machine, QemuArgs};
use crate::arch::Architecture;

/// How long the KVM probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The exit code of a successful probe: `(0x2a << 1) | 1`.
const PROBE_EXIT: i32 = 85;

/// The accelerator and a one-line reason for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AccelError {
    #[error("IMAGO_ACCEL must be `tcg` or `kvm`, not `{0}`")]
    BadOverride(String),
    #[error(
        "IMAGO_ACCEL=kvm cannot run this {arch} system: {why}; unset IMAGO_ACCEL or set it to tcg"
    )]
    ForeignKvm { arch: Architecture, why: String },
    #[error("cannot run `{binary} --version`")]
    Qemu {
        binary: String,
        #[source]
        source: std::io::Error,
    },
}

impl AccelError {
    /// The stable code of this error (docs/errors.md, E08xx).
    pub fn code(&self) -> crate::codes::Code {
        crate::codes::QEMU
    }
}

/// Picks the accelerator for a system of `arch`: `IMAGO_ACCEL` if set,
/// else [`detect`].
pub fn choose(arch: Architecture) -> Result<AccelChoice, AccelError> {
    if let Some(value) = std::env::var_os("IMAGO_ACCEL") {
        let value = value.to_string_lossy().into_owned();
        let accel = match value.as_str() {
            "tcg" => Accel::Tcg,
            "kvm" => Accel::Kvm,
            _ => return Err(AccelError::BadOverride(value)),
        };
        if let (Accel::Kvm, Some(why)) = (accel, emulated(arch)) {
            return Err(AccelError::ForeignKvm { arch, why });
        }
        return Ok(AccelChoice {
            accel,
            reason: format!("IMAGO_ACCEL={value}"),
        });
    }
    detect(arch)
}

/// Why a system of `arch` is emulated on this host whatever KVM can do,
/// or `None` when KVM may run it: the host is amd64 and so is the system.
pub fn emulated(arch: Architecture) -> Option<String> {
    emulated_on(arch, Architecture::host(), std::env::consts::ARCH)
}

fn emulated_on(arch: Architecture, host: Option<Architecture>, rust_name: &str) -> Option<String> {
    match host {
        Some(host) if host != arch => Some(format!(
            "an {arch} system on an {host} host is emulated (TCG)"
        )),
        Some(Architecture::Amd64) => None,
        Some(host) => Some(format!(
            "the KVM probe runs x86 firmware, so {host} hosts emulate (TCG) for now"
        )),
        None => Some(format!(
            "this host's architecture ({rust_name}) is not one Imago knows, so it emulates (TCG)"
        )),
    }
}

/// KVM if the system's architecture is the host's, `/dev/kvm` opens and
/// the probe (or its cached answer for this host boot and QEMU version)
/// says it works, else TCG.
pub fn detect(arch: Architecture) -> Result<AccelChoice, AccelError> {
    if let Some(reason) = emulated(arch) {
        return Ok(AccelChoice {
            accel: Accel::Tcg,
            reason,
        });
    }
    if let Err(e) = open_kvm_device() {
        return Ok(AccelChoice {
            accel: Accel::Tcg,
            reason: format!("/dev/kvm is missing or not accessible: {e}"),
        });
    }
    let cache = cache_file()?;
    if let Some(accel) = std::fs::read_to_string(&cache).ok().and_then(|s| parse(&s)) {
        return Ok(AccelChoice {
            accel,
            reason: format!("KVM probe result cached in {}", cache.display()),
        });
    }
    let result = probe();
    let accel = if result.is_ok() {
        Accel::Kvm
    } else {
        Accel::Tcg
    };
    if let Some(dir) = cache.parent() {
        // The cache is an optimization: failing to write it only costs time.
        let _ = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&cache, accel.name()));
    }
    Ok(AccelChoice {
        accel,
        reason: match result {
            Ok(()) => "a KVM test boot succeeded".into(),
            Err(why) => format!("/dev/kvm exists but KVM is unusable: {why}"),
        },
    })
}

fn parse(text: &str) -> Option<Accel> {
    match text.trim() {
        "kvm" => Some(Accel::Kvm),
        "tcg" => Some(Accel::Tcg),
        _ => None,
    }
}

fn open_kvm_device() -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
}

/// The cache file for this host boot and QEMU version.
fn cache_file() -> Result<PathBuf, AccelError> {
    let binary = qemu::qemu_binary(Architecture::Amd64);
    let version = Command::new(&binary)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .map_err(|source| AccelError::Qemu {
            binary: binary.to_string_lossy().into_owned(),
            source,
        })?;
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let mut hasher = blake3::Hasher::new();
    // Which probe answered: a different probe must not reuse the answer.
    hasher.update(b"imago kvm probe: firmware to long mode, then isa-debug-exit\n");
    hasher.update(&version.stdout);
    hasher.update(boot_id.as_bytes());
    let key = hasher.finalize().to_hex();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => PathBuf::from(dir).join("imago"),
        None if rustix::process::geteuid().is_root() => PathBuf::from("/run/imago"),
        None => std::env::temp_dir().join(format!("imago-{}", rustix::process::geteuid().as_raw())),
    };
    Ok(dir.join(format!("accel-{}", &key.as_str()[..16])))
}

/// The probe's QEMU arguments, with the firmware at `bios`.
fn probe_args(bios: &std::path::Path, accel: Accel) -> Vec<std::ffi::OsString> {
    QemuArgs::new()
        .accel(accel, Architecture::Amd64)
        .machine(&Machine::Pc, 16, 1, false)
        .words(["-nodefaults", "-no-user-config", "-display", "none"])
        .flag("-device", "isa-debug-exit,iobase=0xf4,iosize=0x01")
        .flag("-bios", bios)
        .finish()
}

/// Boots the probe firmware with KVM (uncached; see [`detect`]). QEMU is
/// always reaped, and killed if it hangs, before returning.
pub fn probe() -> Result<(), String> {
    probe_with(Accel::Kvm)
}

/// Boots the probe firmware with `accel`.
fn probe_with(accel: Accel) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let bios = dir.path().join("probe.bin");
    std::fs::write(&bios, probe_firmware::image()).map_err(|e| format!("writing probe: {e}"))?;
    let binary = qemu::qemu_binary(Architecture::Amd64);
    let mut child = Command::new(&binary)
        .args(probe_args(&bios, accel))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.to_string_lossy()))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.code() == Some(PROBE_EXIT) => return Ok(()),
            Ok(Some(status)) => {
                let output = child.wait_with_output().map_err(|e| e.to_string())?;
                let stderr = String::from_utf8_lossy(&output.stderr);
                let first = stderr.lines().next().unwrap_or_default();
                return Err(format!("probe exited with {status}: {first}"));
            }
            Ok(None) if start.elapsed() > PROBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("probe hung for {PROBE_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("waiting for probe: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_values_parse_strictly() {
        assert_eq!(parse("kvm\n"), Some(Accel::Kvm));
        assert_eq!(parse("tcg"), Some(Accel::Tcg));
        assert_eq!(parse("garbage"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn a_foreign_architecture_is_always_emulated() {
        use Architecture::{Amd64, Arm64};
        assert_eq!(emulated_on(Amd64, Some(Amd64), "x86_64"), None);
        assert_eq!(
            emulated_on(Arm64, Some(Amd64), "x86_64").as_deref(),
            Some("an arm64 system on an amd64 host is emulated (TCG)")
        );
        assert!(emulated_on(Arm64, Some(Arm64), "aarch64").is_some());
        assert!(
            emulated_on(Amd64, None, "riscv64")
                .unwrap()
                .contains("riscv64")
        );
        // On this (amd64) test host an arm64 system never gets KVM.
        if Architecture::host() == Some(Amd64) {
            let choice = detect(Arm64).unwrap();
            assert_eq!(choice.accel, Accel::Tcg);
            assert!(choice.reason.contains("emulated"), "{}", choice.reason);
        }
    }

    /// The firmware does what the probe claims when the CPU is QEMU's own
    /// emulator: it reaches long mode and reports on the debug-exit port.
    /// (Whether KVM gets there is what the probe finds out.)
    #[test]
    fn the_probe_firmware_reaches_long_mode_under_emulation() {
        probe_with(Accel::Tcg).expect("the probe firmware exits 0x2a under TCG");
    }

    #[test]
    fn probe_runs_kvm_with_the_debug_exit_device() {
        let args: Vec<String> = probe_args(std::path::Path::new("/t/probe.bin"), Accel::Kvm)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(
            joined.starts_with("-accel kvm -cpu host -machine pc"),
            "{joined}"
        );
        assert!(
            joined.contains("-device isa-debug-exit,iobase=0xf4,iosize=0x01"),
            "{joined}"
        );
        assert!(joined.ends_with("-bios /t/probe.bin"), "{joined}");
    }
}
