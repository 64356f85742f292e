//! Kernel modules, sysctl, NICs named by MAC address and the firewall, on
//! a busybox system and on a systemd system (one boot each), checked from
//! inside through the backdoor and from the host through QEMU user-network
//! port forwards, then again after a switch to a second generation.
//!
//! The systems are vm-tests/systems/kernel-net-{busybox,systemd}.imago
//! (vm-tests/systems/kernel-net.imago on each init system) and their
//! `-gen2` files. Each has listeners on ports 8001, 8002 and 8003 that
//! answer `IMAGO-PORT-<port>`; generation 1 allows 8001
//! (`allowedTCPPorts`) and 8003 (`extraInputRules`), generation 2 only
//! 8002.
//!
//! QEMU's user network accepts the host's connection to a forwarded port
//! whatever the guest does (slirp answers the SYN itself and then connects
//! to the guest), so a port the firewall closes shows as a connection on
//! which nothing ever arrives, not as a refused one. The tests therefore
//! compare what the listeners say: the allowed ports answer from the host,
//! the others answer only from inside the machine (loopback is trusted).
//!
//! Not in the quick subset (`IMAGO_VM_TESTS=quick` skips them).

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use imago::remote::Action;
use imago_vm_tests::{Driver, Error, Failure, Machine, Poll, retry, vm_test};
use support::System;
use support::outside::free_port;

const SEC: Duration = Duration::from_secs(1);

/// A command through the backdoor (scaled by the accelerator factor).
const CMD: Duration = Duration::from_secs(5);

/// Copying a closure and switching (scaled).
const SWITCH: Duration = Duration::from_secs(60);

/// The user-network NIC's MAC (the systems name it `lan0` by it) and the
/// address they give it, where QEMU's forwards deliver.
const LAN_MAC: &str = "52:54:00:12:34:56";
const GUEST_IP: &str = "10.0.2.15";

/// The listeners' ports in the guest.
const PORTS: [u16; 3] = [8001, 8002, 8003];

/// How long a closed port is watched for an answer that must not come
/// (not scaled: an open port answers well within it, see `open_ports`).
const SILENCE: Duration = Duration::from_secs(5);

/// A machine booting `system` with QEMU's user network (isolated: the guest
/// reaches nothing) forwarding a host port to each of [`PORTS`]; returns
/// it with the host ports, in the order of [`PORTS`].
fn machine(
    driver: &Driver,
    system: &System,
    name: &str,
    memory_mib: u32,
) -> Result<(Machine, Vec<u16>), Failure> {
    let host_ports = driver.setup("pick ports for the forwards", || {
        PORTS
            .iter()
            .map(|_| free_port())
            .collect::<Result<Vec<_>, _>>()
    })?;
    let forwards: String = PORTS
        .iter()
        .zip(&host_ports)
        .map(|(guest, host)| format!(",hostfwd=tcp:127.0.0.1:{host}-{GUEST_IP}:{guest}"))
        .collect();
    let mut config = system.direct(driver, name)?;
    config.memory_mib = memory_mib;
    config.extra_args = vec![
        "-netdev".into(),
        format!("user,id=usernet,restrict=on{forwards}"),
        "-device".into(),
        format!("virtio-net-pci,netdev=usernet,mac={LAN_MAC}"),
    ];
    Ok((driver.machine(config)?, host_ports))
}

/// What arrives on a connection to 127.0.0.1:`port` within `wait`, up to
/// the listener's closing the connection.
fn answer(port: u16, wait: Duration) -> Result<String, String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        conn.set_read_timeout(Some(left))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            // slirp resets the connection when the guest refuses it.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(format!("read from 127.0.0.1:{port}: {e}")),
        }
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// Checks from the host that exactly the guest ports in `open` answer
/// through their forwards: each open one within `timeout` (scaled; the
/// listeners and the route may still be coming up), then each closed one
/// stays silent for [`SILENCE`].
fn open_ports(
    driver: &Driver,
    host_ports: &[u16],
    open: &[u16],
    timeout: Duration,
) -> Result<(), Failure> {
    for (guest, host) in PORTS.iter().zip(host_ports) {
        let banner = format!("IMAGO-PORT-{guest}");
        if open.contains(guest) {
            let what = format!("host: port {guest} answers through 127.0.0.1:{host}");
            driver.setup(&what, || {
                retry(&what, driver.accel().scale(timeout), SEC, |_| {
                    let got = answer(*host, SILENCE).map_err(Error::Setup)?;
                    if got.trim_end() == banner {
                        Ok(Poll::Ready(()))
                    } else {
                        Ok(Poll::Pending(Some(format!("got {got:?}"))))
                    }
                })
            })?;
        } else {
            let what = format!("host: port {guest} is filtered (127.0.0.1:{host} stays silent)");
            driver.setup(&what, || {
                let got = answer(*host, SILENCE)?;
                if got.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "port {guest} should be closed by the firewall, but answered {got:?}"
                    ))
                }
            })?;
        }
    }
    Ok(())
}

/// Every listener answers inside the machine (loopback is trusted), so a
/// silent port seen from the host is the firewall's doing.
fn listeners_answer_inside(m: &Machine) -> Result<(), Failure> {
    for port in PORTS {
        m.wait_until_succeeds(
            format!("busybox nc -w 5 127.0.0.1 {port} </dev/null | grep -qx IMAGO-PORT-{port}"),
            20 * SEC,
        )?;
    }
    Ok(())
}

/// What both init systems must show after booting generation 1.
fn check_generation_1(m: &Machine) -> Result<(), Failure> {
    // boot.kernelModules, with the option from boot.extraModprobeConfig.
    m.succeed("grep -q '^dummy ' /proc/modules", CMD)?;
    m.succeed(
        "test -e /sys/class/net/dummy0 && test -e /sys/class/net/dummy1",
        CMD,
    )?;
    // boot.kernel.sysctl (true is written as 1).
    assert_eq!(m.succeed("cat /proc/sys/net/ipv4/ip_forward", CMD)?, "1\n");
    assert_eq!(
        m.succeed("cat /proc/sys/kernel/domainname", CMD)?,
        "imago-sysctl\n"
    );
    // The NIC with the MAC is lan0, with its address.
    assert_eq!(
        m.succeed("cat /sys/class/net/lan0/address", CMD)?,
        format!("{LAN_MAC}\n")
    );
    m.wait_until_succeeds(
        format!("busybox ip -4 addr show dev lan0 | grep -q 'inet {GUEST_IP}/24'"),
        20 * SEC,
    )?;
    // The absent NIC is reported with its MAC address.
    m.wait_for_console_text(
        "networking.interfaces.wan0 is configured for the interface with MAC address 52:54:00:ab:cd:ef, but this machine has no such interface \\(it has: .*lan0 \\(52:54:00:12:34:56\\)",
        30 * SEC,
    )?;
    // modprobe finds nftables' modules in the system's module index.
    m.succeed(
        "modprobe nf_tables && grep -q '^nf_tables ' /proc/modules",
        CMD,
    )?;
    // The firewall is loaded: one table, with the allowed port and the
    // extra rule.
    let ruleset = m.succeed("nft list ruleset", CMD)?;
    assert!(ruleset.contains("table inet imago-fw {"), "{ruleset}");
    assert!(ruleset.contains("policy drop;"), "{ruleset}");
    assert!(ruleset.contains("tcp dport 8001 accept"), "{ruleset}");
    assert!(ruleset.contains("tcp dport 8003 accept"), "{ruleset}");
    assert_eq!(m.succeed("nft list tables", CMD)?, "table inet imago-fw\n");
    Ok(())
}

/// What both init systems must show after switching to generation 2.
fn check_generation_2(m: &Machine) -> Result<(), Failure> {
    m.succeed(
        "grep -q '^nlmon ' /proc/modules && grep -q '^dummy ' /proc/modules",
        CMD,
    )?;
    assert_eq!(m.succeed("cat /proc/sys/net/ipv4/ip_forward", CMD)?, "0\n");
    assert_eq!(
        m.succeed("cat /proc/sys/kernel/domainname", CMD)?,
        "imago-gen2\n"
    );
    let ruleset = m.succeed("nft list ruleset", CMD)?;
    assert!(ruleset.contains("tcp dport 8002 accept"), "{ruleset}");
    assert!(!ruleset.contains("8001"), "{ruleset}");
    assert!(!ruleset.contains("8003"), "{ruleset}");
    // Replaced, not added to.
    assert_eq!(m.succeed("nft list tables", CMD)?, "table inet imago-fw\n");
    Ok(())
}

vm_test!(
    full,
    fn busybox_loads_modules_sets_sysctls_names_nics_and_filters() {
        let driver = Driver::new("busybox_kernel_net")?;
        let gen1 = support::system(&driver, "kernel-net-busybox")?;
        let gen2 = support::system(&driver, "kernel-net-busybox-gen2")?;
        let (m, host_ports) = machine(&driver, &gen1, "busybox", 512)?;
        m.start()?;
        m.wait_for_console_text("IMAGO-HELLO-OK", 60 * SEC)?;
        // The activation loaded the ruleset, before init configured lan0.
        m.wait_for_console_text("imago-firewall: loaded /imago/store/", CMD)?;

        check_generation_1(&m)?;
        listeners_answer_inside(&m)?;
        open_ports(&driver, &host_ports, &[8001, 8003], 30 * SEC)?;

        let out = support::switch_to(&driver, &m, &gen2, Action::Test, SWITCH)?;
        assert!(out.contains("imago-firewall: loaded"), "{out}");
        check_generation_2(&m)?;
        open_ports(&driver, &host_ports, &[8002], 10 * SEC)?;
        Ok(())
    }
);

vm_test!(
    full,
    fn systemd_loads_modules_sets_sysctls_names_nics_and_filters() {
        let driver = Driver::new("systemd_kernel_net")?;
        let gen1 = support::system(&driver, "kernel-net-systemd")?;
        let gen2 = support::system(&driver, "kernel-net-systemd-gen2")?;
        let (m, host_ports) = machine(&driver, &gen1, "systemd", 1024)?;
        m.start()?;
        m.wait_for_unit("multi-user.target", 90 * SEC)?;
        m.wait_for_unit("firewall.service", 10 * SEC)?;
        // No unit failed: systemd-modules-load and systemd-sysctl among them.
        support::no_failed_units(&m)?;

        check_generation_1(&m)?;
        // kmod reads the blacklist of boot.blacklistedKernelModules.
        m.succeed("modprobe -c | grep -qx 'blacklist pcspkr'", CMD)?;
        // The firewall was up before systemd-networkd started.
        let usec = |property: &str, unit: &str| -> Result<u64, Failure> {
            let out = m.succeed(["systemctl", "show", "-P", property, unit], CMD)?;
            Ok(out.trim().parse().unwrap_or(u64::MAX))
        };
        let firewall_up = usec("ActiveEnterTimestampMonotonic", "firewall.service")?;
        let networkd_start = usec(
            "ExecMainStartTimestampMonotonic",
            "systemd-networkd.service",
        )?;
        assert!(
            firewall_up <= networkd_start,
            "firewall.service active at {firewall_up} µs, systemd-networkd started at {networkd_start} µs"
        );
        listeners_answer_inside(&m)?;
        open_ports(&driver, &host_ports, &[8001, 8003], 30 * SEC)?;

        let out = support::switch_to(&driver, &m, &gen2, Action::Test, SWITCH)?;
        // The new ruleset replaced the old one by a reload, not a restart
        // (which would remove the table first).
        assert!(out.contains("reloading firewall.service"), "{out}");
        assert!(!out.contains("restarting firewall.service"), "{out}");
        assert!(
            out.contains("restarting systemd-modules-load.service"),
            "{out}"
        );
        assert!(out.contains("restarting systemd-sysctl.service"), "{out}");
        check_generation_2(&m)?;
        support::no_failed_units(&m)?;
        open_ports(&driver, &host_ports, &[8002], 10 * SEC)?;
        Ok(())
    }
);
