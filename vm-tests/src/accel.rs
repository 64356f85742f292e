//! Choosing QEMU's accelerator, once per process.
//!
//! KVM is used only when a probe proves it works: `/dev/kvm` existing is not
//! enough (on some hosts QEMU aborts setting MSRs with `-cpu host`, or hangs).
//! The probe boots a 64 KiB firmware image whose reset vector writes to QEMU's
//! `isa-debug-exit` port, with the exact CPU and accelerator options a real
//! machine would get; only QEMU exiting with the expected code within a few
//! seconds counts as success. Otherwise TCG is used.
//!
//! `IMAGO_ACCEL=tcg` or `IMAGO_ACCEL=kvm` skips the probe. The choice and the
//! reason are printed once per process (to the real stderr, so they show even
//! when the test harness captures output).
//!
//! Every timeout a test gives is multiplied by the accelerator's factor:
//! timeouts are written for KVM speed, TCG gets [`TCG_FACTOR`] times longer
//! (`IMAGO_TIMEOUT_FACTOR` overrides it).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How much slower than KVM timeouts under TCG are assumed to be.
pub const TCG_FACTOR: f64 = 3.0;

/// The exit code of a successful probe: `(0x2a << 1) | 1`.
const PROBE_EXIT: i32 = 85;

/// How long the KVM probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A QEMU accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelKind {
    /// Hardware virtualisation, with `-cpu host`.
    Kvm,
    /// QEMU's software emulator.
    Tcg,
}

/// The accelerator in use and how timeouts scale with it.
#[derive(Debug, Clone)]
pub struct Accel {
    /// Which accelerator.
    pub kind: AccelKind,
    /// The factor every timeout is multiplied by.
    pub factor: f64,
    /// Why this accelerator was chosen.
    pub reason: String,
}

impl Accel {
    /// QEMU arguments selecting the accelerator and CPU model.
    pub fn qemu_args(&self) -> Vec<String> {
        match self.kind {
            AccelKind::Kvm => ["-accel", "kvm", "-cpu", "host"].map(String::from).to_vec(),
            AccelKind::Tcg => ["-accel", "tcg"].map(String::from).to_vec(),
        }
    }

    /// Scales a test's timeout by the accelerator factor.
    pub fn scale(&self, timeout: Duration) -> Duration {
        timeout.mul_f64(self.factor)
    }

    /// The process-wide accelerator: chosen (and printed) on first use.
    pub fn get() -> &'static Accel {
        static ACCEL: OnceLock<Accel> = OnceLock::new();
        ACCEL.get_or_init(|| {
            let accel = choose(
                std::env::var("IMAGO_ACCEL").ok().as_deref(),
                std::env::var("IMAGO_TIMEOUT_FACTOR").ok().as_deref(),
            );
            let _ = writeln!(
                std::io::stderr().lock(),
                "imago-vm-tests: accelerator {:?} (timeouts ×{}): {}",
                accel.kind,
                accel.factor,
                accel.reason
            );
            accel
        })
    }
}

/// Decides from the environment values, probing KVM when not forced.
fn choose(forced: Option<&str>, factor: Option<&str>) -> Accel {
    let (kind, reason) = match forced.map(str::trim) {
        Some("tcg") => (AccelKind::Tcg, "forced by IMAGO_ACCEL=tcg".to_owned()),
        Some("kvm") => (AccelKind::Kvm, "forced by IMAGO_ACCEL=kvm".to_owned()),
        Some(other) if !other.is_empty() && other != "auto" => (
            AccelKind::Tcg,
            format!("IMAGO_ACCEL={other:?} is not tcg, kvm or auto; using TCG"),
        ),
        _ => match probe_kvm() {
            Ok(()) => (AccelKind::Kvm, "KVM probe booted".to_owned()),
            Err(why) => (AccelKind::Tcg, format!("KVM unusable: {why}")),
        },
    };
    let default = match kind {
        AccelKind::Kvm => 1.0,
        AccelKind::Tcg => TCG_FACTOR,
    };
    let factor = match factor.map(str::parse::<f64>) {
        Some(Ok(f)) if f.is_finite() && f > 0.0 => f,
        _ => default,
    };
    Accel {
        kind,
        factor,
        reason,
    }
}

/// The probe firmware: 64 KiB of `hlt` whose reset vector (offset 0xfff0,
/// executed at f000:fff0) does `mov al, 0x2a; out 0xf4, al; hlt`.
fn probe_firmware() -> Vec<u8> {
    let mut image = vec![0xf4_u8; 0x10000];
    let code = [0xb0, 0x2a, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd];
    image[0xfff0..0xfff0 + code.len()].copy_from_slice(&code);
    image
}

fn probe_kvm() -> Result<(), String> {
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    if let Err(e) = kvm {
        return Err(format!("cannot open /dev/kvm: {e}"));
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let bios = dir.path().join("probe.bin");
    std::fs::write(&bios, probe_firmware()).map_err(|e| format!("writing probe: {e}"))?;
    let mut child = Command::new(crate::qemu::QEMU)
        .args(["-accel", "kvm", "-cpu", "host", "-machine", "pc"])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-m",
            "16",
        ])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x01", "-bios"])
        .arg(&bios)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", crate::qemu::QEMU))?;
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
            Err(e) => return Err(format!("waiting for probe: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_tcg_uses_factor() {
        let accel = choose(Some("tcg"), None);
        assert_eq!(accel.kind, AccelKind::Tcg);
        assert_eq!(accel.scale(Duration::from_secs(2)), Duration::from_secs(6));
        assert!(accel.qemu_args().contains(&"tcg".to_owned()));
    }

    #[test]
    fn factor_override_and_garbage() {
        assert_eq!(choose(Some("kvm"), Some("2.5")).factor, 2.5);
        assert_eq!(choose(Some("kvm"), Some("-1")).factor, 1.0);
        assert_eq!(choose(Some("tcg"), Some("x")).factor, TCG_FACTOR);
    }

    #[test]
    fn unknown_value_falls_back_to_tcg_with_reason() {
        let accel = choose(Some("hvf"), None);
        assert_eq!(accel.kind, AccelKind::Tcg);
        assert!(accel.reason.contains("\"hvf\""), "{}", accel.reason);
    }

    #[test]
    fn firmware_reset_vector() {
        let image = probe_firmware();
        assert_eq!(image.len(), 65536);
        assert_eq!(&image[0xfff0..0xfff4], &[0xb0, 0x2a, 0xe6, 0xf4]);
    }
}
