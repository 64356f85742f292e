//! Choosing the accelerator: KVM only when a probe shows it really boots.
//!
//! `/dev/kvm` existing is not enough: on some hosts QEMU aborts or hangs with
//! it. The probe boots the system's own kernel and initrd with `-accel kvm`
//! and `imago.probe` on the command line; stage 1 prints
//! [`PROBE_MARKER`] and powers off at once. No marker within
//! [`PROBE_TIMEOUT`] means TCG (QEMU is killed).
//!
//! The answer is cached per host boot and QEMU version in
//! `$XDG_RUNTIME_DIR/imago/` (or `/run/imago/` for root, else the temp dir),
//! in a file named after a hash of `qemu --version` and the boot id.
//! `IMAGO_ACCEL=tcg|kvm` overrides everything.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::qemu::{self, Accel, QemuConfig};

/// What stage 1 prints when it sees `imago.probe`.
pub const PROBE_MARKER: &str = "imago stage 1: probe ok";
/// How long a KVM boot to stage 1 may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

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

/// Picks the accelerator for booting `kernel` + `initrd` (physical paths).
pub fn choose(kernel: &Path, initrd: &Path) -> Result<AccelChoice, AccelError> {
    if let Some(value) = std::env::var_os("IMAGO_ACCEL") {
        let value = value.to_string_lossy().into_owned();
        let accel = match value.as_str() {
            "tcg" => Accel::Tcg,
            "kvm" => Accel::Kvm,
            _ => return Err(AccelError::BadOverride(value)),
        };
        return Ok(AccelChoice {
            accel,
            reason: format!("IMAGO_ACCEL={value}"),
        });
    }
    if !kvm_device_usable() {
        return Ok(AccelChoice {
            accel: Accel::Tcg,
            reason: "/dev/kvm is missing or not accessible".into(),
        });
    }
    let cache = cache_file()?;
    if let Some(accel) = std::fs::read_to_string(&cache).ok().and_then(|s| parse(&s)) {
        return Ok(AccelChoice {
            accel,
            reason: format!("KVM probe result cached in {}", cache.display()),
        });
    }
    let works = probe(kernel, initrd);
    let accel = if works { Accel::Kvm } else { Accel::Tcg };
    if let Some(dir) = cache.parent() {
        // The cache is an optimization: failing to write it only costs time.
        let _ = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&cache, accel.name()));
    }
    Ok(AccelChoice {
        accel,
        reason: if works {
            "a KVM test boot reached stage 1".into()
        } else {
            format!(
                "/dev/kvm exists but a KVM test boot did not reach stage 1 within {} s",
                PROBE_TIMEOUT.as_secs()
            )
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

fn kvm_device_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// The cache file for this host boot and QEMU version.
fn cache_file() -> Result<PathBuf, AccelError> {
    let binary = qemu::qemu_binary();
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

/// Boots with KVM until the probe marker or the timeout; QEMU is always
/// killed and reaped before returning.
fn probe(kernel: &Path, initrd: &Path) -> bool {
    let config = QemuConfig {
        machine: qemu::Machine::detect(),
        kernel: kernel.to_owned(),
        initrd: initrd.to_owned(),
        cmdline: "console=ttyS0 panic=-1 imago.probe".into(),
        memory_mib: 256,
        smp: 1,
        accel: Accel::Kvm,
        store: None,
        network: false,
        forwards: vec![],
        no_reboot: true,
        extra_args: vec![],
    };
    let child = Command::new(qemu::qemu_binary())
        .args(qemu::argv(&config))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    let (tx, rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
                if String::from_utf8_lossy(&line).contains(PROBE_MARKER) {
                    let _ = tx.send(());
                    return;
                }
            }
        });
    }
    let works = rx.recv_timeout(PROBE_TIMEOUT).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    works
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
    fn probe_of_a_missing_kernel_fails() {
        assert!(!probe(
            Path::new("/nonexistent/bzImage"),
            Path::new("/nonexistent/initrd")
        ));
    }
}
