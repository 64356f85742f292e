//! Port forwards from the host into a guest on QEMU's user network
//! (`imago run --forward`): `[tcp:|udp:][ADDRESS:]HOST_PORT:GUEST_PORT`.
//! The host side listens on 127.0.0.1 unless an address is given, so a
//! forwarded port is not opened to the whole network by accident.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The transport of a forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// One host port forwarded to one guest port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortForward {
    pub protocol: Protocol,
    pub host_address: Ipv4Addr,
    pub host_port: u16,
    pub guest_port: u16,
}

impl PortForward {
    /// QEMU's `hostfwd=` value for a `-netdev user`.
    pub fn hostfwd(&self) -> String {
        format!(
            "hostfwd={}:{}:{}-:{}",
            match self.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            },
            self.host_address,
            self.host_port,
            self.guest_port
        )
    }
}

impl FromStr for PortForward {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "`{text}` is not a port forward: use HOST_PORT:GUEST_PORT, optionally with tcp: or udp: and a host address first (8080:80, udp:5353:53, 0.0.0.0:2222:22)"
            )
        };
        let (protocol, rest) = match text.split_once(':') {
            Some(("tcp", rest)) => (Protocol::Tcp, rest),
            Some(("udp", rest)) => (Protocol::Udp, rest),
            _ => (Protocol::Tcp, text),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (address, host, guest) = match parts.as_slice() {
            [host, guest] => (Ipv4Addr::LOCALHOST, *host, *guest),
            [address, host, guest] => (address.parse().map_err(|_| usage())?, *host, *guest),
            _ => return Err(usage()),
        };
        let port = |p: &str| -> Result<u16, String> {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(usage()),
                Ok(n) => Ok(n),
            }
        };
        Ok(PortForward {
            protocol,
            host_address: address,
            host_port: port(host)?,
            guest_port: port(guest)?,
        })
    }
}

impl fmt::Display for PortForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        write!(
            f,
            "{proto}:{}:{}:{}",
            self.host_address, self.host_port, self.guest_port
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_parse() {
        let f: PortForward = "8080:80".parse().unwrap();
        assert_eq!(f.hostfwd(), "hostfwd=tcp:127.0.0.1:8080-:80");
        let f: PortForward = "udp:5353:53".parse().unwrap();
        assert_eq!(f.hostfwd(), "hostfwd=udp:127.0.0.1:5353-:53");
        let f: PortForward = "tcp:0.0.0.0:2222:22".parse().unwrap();
        assert_eq!(f.hostfwd(), "hostfwd=tcp:0.0.0.0:2222-:22");
        assert_eq!(f.to_string(), "tcp:0.0.0.0:2222:22");
    }

    #[test]
    fn bad_forms_say_what_to_write() {
        for bad in [
            "80",
            "a:b",
            "0:80",
            "8080:70000",
            "sctp:1:2",
            "1.2.3:80:80",
            "1:2:3:4",
        ] {
            let err = bad.parse::<PortForward>().unwrap_err();
            assert!(
                err.contains(bad) && err.contains("HOST_PORT:GUEST_PORT"),
                "{err}"
            );
        }
    }
}
