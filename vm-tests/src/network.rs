//! Private networks between the machines of a test.
//!
//! Each [`Network`] is an Ethernet hub in a host thread: a UDP socket on
//! 127.0.0.1. Every attached machine's NIC is a QEMU `-netdev socket,udp=`
//! backend that sends its frames to the hub's port and receives on its own
//! port on 127.0.0.1; the hub forwards every frame it receives to all other
//! members. Traffic never leaves the loopback interface, needs no multicast
//! routing and no privileges, and tests running in parallel cannot see each
//! other's frames (each network has its own ports).
//!
//! MAC addresses are deterministic: `52:54:00:00:<network>:<machine>` from
//! the network's and the machine's index in the test, and [`Network::ipv4`]
//! gives the matching address `10.0.<network>.<machine>` for tests that
//! configure the guest with `ip addr add`.
//!
//! The hub thread ends when the last handle to the network is dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::error::Error;

/// How often the hub checks whether the network is still in use.
const HUB_POLL: Duration = Duration::from_millis(200);

/// A private network; clone it into the config of every machine on it.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

struct Inner {
    index: u8,
    hub: SocketAddr,
    /// Machine index -> the UDP port its QEMU receives on.
    members: Mutex<BTreeMap<u8, u16>>,
}

/// What QEMU needs to attach one machine to a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The hub's address (QEMU's `udp=`).
    pub hub: SocketAddr,
    /// The address QEMU receives on (QEMU's `localaddr=`).
    pub local: SocketAddr,
    /// The NIC's MAC address.
    pub mac: String,
}

impl Network {
    /// Starts the hub of network number `index` (1-based, unique per test).
    pub(crate) fn start(index: u8) -> Result<Self, Error> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("binding the network hub to 127.0.0.1", e))?;
        socket
            .set_read_timeout(Some(HUB_POLL))
            .map_err(|e| Error::io("configuring the network hub socket", e))?;
        let hub = socket
            .local_addr()
            .map_err(|e| Error::io("reading the network hub address", e))?;
        let inner = Arc::new(Inner {
            index,
            hub,
            members: Mutex::default(),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name(format!("imago-net{index}"))
            .spawn(move || run_hub(&socket, &weak))
            .map_err(|e| Error::io("starting the network hub thread", e))?;
        Ok(Self { inner })
    }

    /// The network's index in the test.
    pub fn index(&self) -> u8 {
        self.inner.index
    }

    /// The address a machine is expected to use on this network.
    pub fn ipv4(&self, machine_index: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, self.inner.index, machine_index)
    }

    /// The MAC address of a machine's NIC on this network.
    pub fn mac(&self, machine_index: u8) -> String {
        format!("52:54:00:00:{:02x}:{:02x}", self.inner.index, machine_index)
    }

    /// Reserves a receive port for a machine (replacing an earlier one, as
    /// after a restart) and returns what QEMU needs.
    pub(crate) fn attach(&self, machine_index: u8) -> Result<Attachment, Error> {
        // Ask the kernel for a free port, then release it for QEMU to bind.
        let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("reserving a UDP port on 127.0.0.1", e))?;
        let local = probe
            .local_addr()
            .map_err(|e| Error::io("reading a reserved UDP port", e))?;
        drop(probe);
        self.inner
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(machine_index, local.port());
        Ok(Attachment {
            hub: self.inner.hub,
            local,
            mac: self.mac(machine_index),
        })
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("index", &self.inner.index)
            .field("hub", &self.inner.hub)
            .finish()
    }
}

/// Forwards each frame to every member but its sender, until the network is
/// dropped.
fn run_hub(socket: &UdpSocket, network: &Weak<Inner>) {
    let mut frame = vec![0_u8; 65536];
    loop {
        let received = socket.recv_from(&mut frame);
        let Some(network) = network.upgrade() else {
            return;
        };
        let Ok((len, from)) = received else {
            continue;
        };
        let ports: Vec<u16> = network
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .copied()
            .filter(|&port| port != from.port())
            .collect();
        for port in ports {
            // A member that is not running yet just misses the frame, as on a
            // real hub.
            let _ = socket.send_to(&frame[..len], (Ipv4Addr::LOCALHOST, port));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_forwards_to_other_members_only() {
        let net = Network::start(3).unwrap();
        let a = net.attach(1).unwrap();
        let b = net.attach(2).unwrap();
        let c = net.attach(3).unwrap();
        assert_eq!(a.mac, "52:54:00:00:03:01");
        assert_eq!(net.ipv4(2), Ipv4Addr::new(10, 0, 3, 2));
        let sockets: Vec<UdpSocket> = [&a, &b, &c]
            .iter()
            .map(|att| {
                let s = UdpSocket::bind(att.local).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s
            })
            .collect();
        sockets[0].send_to(b"frame-from-a", a.hub).unwrap();
        let mut buf = [0_u8; 64];
        for s in &sockets[1..] {
            let (n, _) = s.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"frame-from-a");
        }
        sockets[0]
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(
            sockets[0].recv_from(&mut buf).is_err(),
            "sender got its own frame"
        );
    }
}
