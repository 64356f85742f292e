//! Choosing QEMU's accelerator, once per process.
//!
//! KVM is used only when Imago's KVM probe (`imago::boot::kvm`, the same one
//! `imago run` uses) proves it works: `/dev/kvm` existing is not enough (on
//! some hosts QEMU aborts setting MSRs with `-cpu host`, or hangs). The
//! probe's answer is cached per host boot and QEMU version. Otherwise TCG is
//! used.
//!
//! `IMAGO_ACCEL=tcg` or `IMAGO_ACCEL=kvm` skips the probe. The choice and the
//! reason are printed once per process (to the real stderr, so they show even
//! when the test harness captures output).
//!
//! Every timeout a test gives is multiplied by the accelerator's factor:
//! timeouts are written for KVM speed, TCG gets [`TCG_FACTOR`] times longer
//! (`IMAGO_TIMEOUT_FACTOR` overrides it).

use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

/// A QEMU accelerator: Imago's ([`Kvm`](AccelKind::Kvm) with `-cpu host`,
/// or [`Tcg`](AccelKind::Tcg), QEMU's software emulator).
pub use imago::boot::qemu::Accel as AccelKind;

/// How much slower than KVM timeouts under TCG are assumed to be.
pub const TCG_FACTOR: f64 = 3.0;

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
        self.kind.args().iter().map(|&a| a.to_owned()).collect()
    }

    /// The accelerator for a machine of `arch`: this one, or TCG (with at
    /// least [`TCG_FACTOR`]) when `arch` is emulated on this host whatever
    /// KVM can do (`imago::boot::kvm::emulated`: an arm64 guest on an amd64
    /// host).
    pub fn for_architecture(&self, arch: imago::arch::Architecture) -> Accel {
        match imago::boot::kvm::emulated(arch) {
            Some(reason) if self.kind == AccelKind::Kvm => Accel {
                kind: AccelKind::Tcg,
                factor: self.factor.max(TCG_FACTOR),
                reason,
            },
            _ => self.clone(),
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
        _ => match imago::boot::kvm::detect(imago::arch::Architecture::Amd64) {
            Ok(choice) => (choice.accel, choice.reason),
            Err(e) => (AccelKind::Tcg, format!("KVM unusable: {e}")),
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
}
