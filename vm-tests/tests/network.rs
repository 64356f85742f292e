//! Two real Imago systems on a private test network: the systemd server
//! (`vm-tests/systems/server.imago`) serves its page to a busybox client
//! (`vm-tests/systems/minimal.imago`). Addresses are static, set through the
//! backdoor on the NIC with the driver's deterministic MAC (the guest's
//! interface name depends on udev's naming, so it is looked up by MAC).
//!
//! Not in the quick subset (`IMAGO_VM_TESTS=quick` skips it).

mod support;

use std::time::Duration;

use imago_vm_tests::{Driver, Failure};
use imago_vm_tests::{Machine, Network, vm_test};

const SEC: Duration = Duration::from_secs(1);

/// A command through the backdoor (scaled by the accelerator factor).
const CMD: Duration = Duration::from_secs(5);

/// Gives `machine` its test address on `net` and brings the link up.
fn configure_address(machine: &Machine, net: &Network) -> Result<String, Failure> {
    let mac = net.mac(machine.index());
    let ip = net.ipv4(machine.index());
    // The interface whose address file holds the MAC; `grep` fails if none.
    let script = format!(
        "f=$(grep -lx {mac} /sys/class/net/*/address) && d=${{f%/address}} && n=${{d##*/}} \
         && busybox ip addr add {ip}/24 dev $n && busybox ip link set $n up && echo $n"
    );
    let name = machine.succeed(script, CMD)?;
    Ok(name.trim_end().to_owned())
}

vm_test!(
    full,
    fn client_fetches_page_over_private_network() {
        let driver = Driver::new("client_fetches_page_over_private_network")?;
        let net = driver.network()?;
        let server_system = support::system(&driver, "server")?;
        let client_system = support::system(&driver, "minimal")?;

        let mut config = server_system.direct(&driver, "server")?;
        config.memory_mib = 1024;
        config.networks = vec![net.clone()];
        let server = driver.machine(config)?;
        let mut config = client_system.direct(&driver, "client")?;
        config.networks = vec![net.clone()];
        let client = driver.machine(config)?;

        server.start()?;
        client.start()?;
        client.wait_for_console_text("IMAGO-HELLO-OK", 60 * SEC)?;
        server.wait_for_unit("lighttpd.service", 90 * SEC)?;
        server.wait_for_open_port(80, 10 * SEC)?;

        configure_address(&server, &net)?;
        configure_address(&client, &net)?;
        let server_ip = net.ipv4(server.index());
        client.wait_until_succeeds(format!("ping -c 1 -W 1 {server_ip}"), 20 * SEC)?;
        let page = client.succeed(format!("wget -qO- http://{server_ip}/"), 10 * SEC)?;
        // The client's only NIC is on the test network (QEMU gets
        // `-nodefaults`), so the page came over it.
        assert!(page.contains("<h1>Served by server</h1>"), "{page}");
        Ok(())
    }
);
