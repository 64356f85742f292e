//! What the module library makes of the firewall, kernel modules, sysctl
//! and NICs named by MAC address, without a VM: the generated files (the
//! nftables ruleset, /etc/sysctl.d, /etc/modules-load.d, /etc/modprobe.d,
//! systemd.link files), the units and activation snippets, and the errors
//! for bad values. Small system files in a temporary directory import the
//! examples (and use their lock); `imago config` shows the configuration,
//! `imago build -A config.system.build.firewallRuleset` builds just the
//! ruleset — with `nft -c` (the nftables package's own nft, in a network
//! namespace) where this machine allows it.
//!
//! The same behaviour on running machines: vm-tests/tests/kernel_net.rs.

// Test helpers outside #[test] functions panic on failure too.
#![allow(clippy::unwrap_used)]

use crate::support::system::repo;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A system file importing examples/`example` plus `body` (module
/// definitions), in a temporary directory with the examples' lock.
struct System {
    dir: tempfile::TempDir,
    file: PathBuf,
    /// The error output of the last `ruleset()` build.
    stderr: std::cell::RefCell<String>,
    /// PATH for imago, when not the test's.
    path: std::cell::RefCell<Option<String>>,
}

impl System {
    fn new(example: &str, body: &str) -> System {
        let dir = tempfile::tempdir().unwrap();
        let example = repo()
            .join("examples")
            .join(example)
            .canonicalize()
            .unwrap();
        let file = dir.path().join("system.imago");
        std::fs::write(
            &file,
            format!(
                "{{ lib, ... }}:\n{{\n  imports = [ {} ];\n{body}\n}}\n",
                example.display()
            ),
        )
        .unwrap();
        std::fs::copy(
            repo().join("examples/imago.lock"),
            dir.path().join("imago.lock"),
        )
        .unwrap();
        System {
            dir,
            file,
            stderr: std::cell::RefCell::default(),
            path: std::cell::RefCell::default(),
        }
    }

    fn imago(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_imago"));
        cmd.args(args).env_remove("IMAGO_MODULES");
        if let Some(path) = self.path.borrow().as_ref() {
            cmd.env("PATH", path);
        }
        cmd.output().unwrap()
    }

    /// `imago config -A attr --json`.
    fn config(&self, attr: &str) -> serde_json::Value {
        let out = self.imago(&["config", self.file.to_str().unwrap(), "--json", "-A", attr]);
        assert!(
            out.status.success(),
            "imago config -A {attr} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The text of /etc/`name`, or `None` when the system has no such file.
    fn etc(&self, name: &str) -> Option<String> {
        let etc = self.config("environment.etc");
        etc.get(name)
            .map(|e| e["text"].as_str().unwrap().to_owned())
    }

    /// Builds the firewall's ruleset alone; its text, or the error output.
    fn ruleset(&self) -> Result<String, String> {
        let store = self.dir.path().join("store");
        let out = self.imago(&[
            "--store",
            store.to_str().unwrap(),
            "build",
            self.file.to_str().unwrap(),
            "-A",
            "config.system.build.firewallRuleset",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        self.stderr.replace(stderr.clone());
        if !out.status.success() {
            return Err(stderr);
        }
        let stdout = String::from_utf8(out.stdout).unwrap();
        let physical = stdout.lines().nth(1).expect("the physical path");
        Ok(std::fs::read_to_string(physical).unwrap())
    }

    fn last_stderr(&self) -> String {
        self.stderr.borrow().clone()
    }

    /// Evaluates the toplevel (which checks the assertions); the error
    /// output when that fails.
    fn toplevel_error(&self) -> String {
        let out = self.imago(&[
            "config",
            self.file.to_str().unwrap(),
            "-A",
            "system.build.toplevel",
        ]);
        assert!(!out.status.success(), "the configuration was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Evaluates `attr`; the error output, which must exist.
    fn error(&self, attr: &str) -> String {
        let out = self.imago(&["config", self.file.to_str().unwrap(), "-A", attr]);
        assert!(!out.status.success(), "the configuration was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// The ruleset of examples/server.imago (ssh from openFirewall, the web
/// server's port 80) with more of everything, without the build-time check.
const RULESET_SERVER: &str = r#"# The firewall of system `server` (networking.firewall),
# generated by Imago. `nft -f` replaces the table in one transaction:
# it is created if missing, deleted, and made anew.
table inet imago-fw
delete table inet imago-fw
table inet imago-fw {
  chain input {
    type filter hook input priority filter; policy drop;
    iifname { "lo", "br0" } accept comment "trusted interfaces"
    # IPv6 cannot reach its neighbours without these (they are not
    # tracked as connections).
    icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept comment "ICMPv6 neighbour discovery"
    ct state vmap { invalid : drop, established : accept, related : accept, new : jump input-allow, untracked : jump input-allow }
  }

  chain input-allow {
    tcp dport { 22, 80, 443 } accept
    tcp dport 8000-8010 accept
    udp dport 53 accept
    udp dport 60000-61000 accept
    # networking.firewall.extraInputRules
    ip saddr 192.168.1.0/24 tcp dport 9100 accept

    ip6 saddr fd00::/8 udp dport 5353 accept
  }
}
"#;

#[test]
fn the_ruleset_has_the_allowed_ports_ping_and_the_extra_rules_in_order() {
    let s = System::new(
        "server.imago",
        r#"
  networking.nftables.checkRuleset = false;
  networking.firewall.allowedTCPPorts = [ 443 80 ];
  networking.firewall.allowedTCPPortRanges = [ { from = 8000; to = 8010; } ];
  networking.firewall.allowedUDPPorts = [ 53 53 ];
  networking.firewall.allowedUDPPortRanges = [ { from = 60000; to = 61000; } ];
  networking.firewall.allowPing = false;
  networking.firewall.trustedInterfaces = [ "br0" "lo" ];
  networking.firewall.extraInputRules = ''
    ip saddr 192.168.1.0/24 tcp dport 9100 accept

    ip6 saddr fd00::/8 udp dport 5353 accept
  '';
"#,
    );
    assert_eq!(s.ruleset().unwrap(), RULESET_SERVER);
}

#[test]
fn ping_is_answered_by_default_and_ssh_opens_only_its_own_ports() {
    let s = System::new(
        "server.imago",
        r#"
  networking.nftables.checkRuleset = false;
  services.openssh.ports = [ 2222 ];
"#,
    );
    let ruleset = s.ruleset().unwrap();
    let allow = ruleset.split("chain input-allow {").nth(1).unwrap();
    assert_eq!(
        allow,
        r#"
    tcp dport { 80, 2222 } accept
    icmp type echo-request accept comment "allowPing"
    icmpv6 type echo-request accept comment "allowPing"
  }
}
"#
    );

    // openFirewall = false: only what the system allows itself.
    let s = System::new(
        "server.imago",
        r#"
  networking.nftables.checkRuleset = false;
  services.openssh.openFirewall = false;
"#,
    );
    assert!(s.ruleset().unwrap().contains("    tcp dport 80 accept\n"));
}

#[test]
fn the_firewall_is_a_unit_before_the_network_on_systemd_and_reloads_on_switch() {
    let s = System::new("server.imago", "");
    let unit = s.config("systemd.services.firewall");
    assert_eq!(unit["wantedBy"], serde_json::json!(["multi-user.target"]));
    assert_eq!(unit["before"], serde_json::json!(["network-pre.target"]));
    assert_eq!(unit["wants"], serde_json::json!(["network-pre.target"]));
    assert_eq!(unit["reloadIfChanged"], true);
    assert_eq!(unit["unitConfig"]["DefaultDependencies"], false);
    let service = &unit["serviceConfig"];
    assert_eq!(service["Type"], "oneshot");
    assert_eq!(service["RemainAfterExit"], true);
    let start = service["ExecStart"].as_str().unwrap();
    assert!(start.ends_with("-imago-firewall start"), "{start}");
    assert_eq!(service["ExecReload"], service["ExecStart"]);
    assert!(
        service["ExecStop"]
            .as_str()
            .unwrap()
            .ends_with("-imago-firewall stop"),
        "{service}"
    );
    // nftables is installed; the activation does not load the ruleset
    // (firewall.service does).
    let packages = s.config("environment.systemPackages");
    assert!(
        packages.to_string().contains("-nftables"),
        "nftables is not installed: {packages}"
    );
    assert!(
        s.config("system.activationScripts")
            .get("firewall")
            .is_none()
    );
}

#[test]
fn busybox_systems_load_the_firewall_at_activation_and_remove_it_when_disabled() {
    let s = System::new("minimal.imago", "");
    let scripts = s.config("system.activationScripts");
    let text = scripts["firewall"]["text"].as_str().unwrap();
    assert!(text.contains("-imago-firewall start ||"), "{text}");
    assert!(text.contains("ln -sfn /imago/"), "{text}");
    // After /etc (100) and the modules and sysctls (300, 310).
    assert_eq!(scripts["firewall"]["priority"], 320);
    assert!(s.config("systemd.services").get("firewall").is_none());

    let s = System::new("minimal.imago", "  networking.firewall.enable = false;");
    let text = s.config("system.activationScripts")["firewall"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        text,
        "if [ -e /run/imago/firewall ]; then\n  /run/imago/firewall stop && rm -f /run/imago/firewall\nfi\n"
    );
    let packages = s.config("environment.systemPackages");
    assert!(!packages.to_string().contains("-nftables"), "{packages}");
}

#[test]
fn the_firewall_modules_load_from_the_initrd_unless_modprobe_config_names_them() {
    let modules = |body: &str| {
        let s = System::new("minimal.imago", body);
        let list = s.config("boot.initrd.kernelModules");
        list.as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let has = |list: &[String]| ["nf_tables", "nft_ct"].map(|m| list.iter().any(|l| l == m));
    assert_eq!(has(&modules("")), [true, true]);
    // The initrd does not read /etc/modprobe.d: a system that configures
    // one of them (or what they pull in) loads them in stage 2.
    for body in [
        "  networking.firewall.enable = false;",
        "  boot.extraModprobeConfig = \"options nf_conntrack hashsize=4096\\n\";",
        "  boot.extraModprobeConfig = \"options\\tnft_ct x=1\\n\";",
        "  boot.blacklistedKernelModules = [ \"nf_defrag_ipv6\" ];",
    ] {
        assert_eq!(has(&modules(body)), [false, false], "{body}");
    }
    // A name that only contains one is not one.
    assert_eq!(
        has(&modules(
            "  boot.extraModprobeConfig = \"options nf_conntrack_ftp ports=21\\n\";"
        )),
        [true, true]
    );
}

#[test]
fn kernel_modules_sysctl_and_modprobe_config_become_etc_files() {
    let body = r#"
  boot.kernelModules = [ "dummy" "br_netfilter" ];
  boot.extraModprobeConfig = ''
    options dummy numdummies=2
  '';
  boot.blacklistedKernelModules = [ "pcspkr" ];
  boot.kernel.sysctl = {
    "net.ipv4.ip_forward" = true;
    "net.ipv6.conf.all.forwarding" = false;
    "vm.swappiness" = 10;
    "kernel.core_pattern" = "|/bin/false";
    "net/ipv4/conf/eth0.100/rp_filter" = 2;
    "kernel.domainname" = null;
  };
"#;
    let sysctl = "# Generated by Imago from boot.kernel.sysctl.\n\
                  kernel.core_pattern = |/bin/false\n\
                  net.ipv4.ip_forward = 1\n\
                  net.ipv6.conf.all.forwarding = 0\n\
                  net/ipv4/conf/eth0.100/rp_filter = 2\n\
                  vm.swappiness = 10\n";
    let modprobe = "blacklist pcspkr\noptions dummy numdummies=2\n";

    // systemd: systemd-modules-load and systemd-sysctl read the files at
    // boot; the activation restarts them at a switch when they changed.
    let s = System::new("server.imago", body);
    assert_eq!(
        s.etc("modules-load.d/nixos.conf").unwrap(),
        "dummy\nbr_netfilter\n"
    );
    assert_eq!(s.etc("sysctl.d/60-nixos.conf").unwrap(), sysctl);
    assert_eq!(s.etc("modprobe.d/zz-imago.conf").unwrap(), modprobe);
    let scripts = s.config("system.activationScripts");
    let modules = scripts["kernelModules"]["text"].as_str().unwrap();
    assert!(
        modules.contains("[ -d /run/systemd/system ]")
            && modules.contains("systemctl restart systemd-modules-load.service"),
        "{modules}"
    );
    let sysctls = scripts["sysctl"]["text"].as_str().unwrap();
    assert!(
        sysctls.contains("systemctl restart systemd-sysctl.service"),
        "{sysctls}"
    );

    // busybox: the activation loads and applies them itself.
    let s = System::new("minimal.imago", body);
    assert_eq!(s.etc("modules-load.d/nixos.conf"), None);
    assert_eq!(s.etc("sysctl.d/60-nixos.conf").unwrap(), sysctl);
    assert_eq!(s.etc("modprobe.d/zz-imago.conf").unwrap(), modprobe);
    let scripts = s.config("system.activationScripts");
    let modules = scripts["kernelModules"]["text"].as_str().unwrap();
    assert!(
        modules.starts_with("for m in 'dummy' 'br_netfilter'; do\n  modprobe \"$m\""),
        "{modules}"
    );
    let sysctls = scripts["sysctl"]["text"].as_str().unwrap();
    assert!(
        sysctls.contains("sysctl -q -p \"$system/etc/sysctl.d/60-nixos.conf\""),
        "{sysctls}"
    );
    // Loading before applying, both before the firewall.
    assert_eq!(scripts["kernelModules"]["priority"], 300);
    assert_eq!(scripts["sysctl"]["priority"], 310);
}

#[test]
fn a_nic_named_by_its_mac_gets_a_link_file_or_a_rename_and_is_reported_by_mac() {
    let body = r#"
  networking.interfaces.lan0 = { matchMacAddress = "52:54:00:AB:cd:01"; addresses = [ "10.0.0.2/24" ]; };
"#;
    let s = System::new("server.imago", body);
    assert_eq!(
        s.etc("systemd/network/10-imago-lan0.link").unwrap(),
        "[Match]\nMACAddress=52:54:00:ab:cd:01\n\n[Link]\nName=lan0\n"
    );
    assert_eq!(
        s.etc("systemd/network/40-lan0.network").unwrap(),
        "[Match]\nName=lan0\n\n[Network]\nAddress=10.0.0.2/24\n"
    );
    // eth0 is matched by name: no link file.
    assert_eq!(s.etc("systemd/network/10-imago-eth0.link"), None);
    let check = s.config("systemd.services.imago-check-interfaces.script");
    let check = check.as_str().unwrap();
    assert!(
        check.contains("networking.interfaces.lan0 is configured for the interface with MAC address 52:54:00:ab:cd:01, but this machine has no such interface"),
        "{check}"
    );
    assert!(
        check.contains(
            "networking.interfaces.eth0 is configured, but this machine has no interface eth0"
        ),
        "{check}"
    );
    // The NICs found at boot appear as udev loads their drivers, after
    // network.target: the report waits for udev's queue first.
    let settle = check.find("udevadm settle").expect("waits for udev");
    assert!(settle < check.find("/sys/class/net/").unwrap(), "{check}");
    let after = s.config("systemd.services.imago-check-interfaces.after");
    assert!(
        format!("{after:?}").contains("systemd-udev-trigger.service"),
        "{after:?}"
    );

    let s = System::new("minimal.imago", body);
    let sysinit = s.config("boot.busybox.extraSysinit");
    let sysinit = sysinit.as_str().unwrap();
    let rename = sysinit.find("name lan0").expect("lan0 is renamed");
    let up = sysinit
        .find("ip link set lan0 up")
        .expect("lan0 is configured");
    assert!(rename < up, "{sysinit}");
    assert!(sysinit.contains("= 52:54:00:ab:cd:01 ]"), "{sysinit}");
}

#[test]
fn nixos_addresses_and_the_default_gateway_go_to_their_interface() {
    let body = r#"
  networking.interfaces.lan0 = {
    ipv4.addresses = [ { address = "10.0.0.2"; prefixLength = 24; } ];
    ipv6.addresses = [ { address = "fd00::2"; prefixLength = 64; } ];
    addresses = [ "10.0.1.2/24" ];
  };
  networking.defaultGateway = "10.0.0.1";
  networking.nameservers = [ "10.0.0.53" ];
"#;
    // server.imago's eth0 uses DHCP: lan0 is the one static interface.
    let s = System::new("server.imago", body);
    assert_eq!(
        s.etc("systemd/network/40-lan0.network").unwrap(),
        "[Match]\nName=lan0\n\n[Network]\nAddress=10.0.1.2/24\nAddress=10.0.0.2/24\n\
         Address=fd00::2/64\nGateway=10.0.0.1\nDNS=10.0.0.53\n"
    );
    assert!(
        !s.etc("systemd/network/40-eth0.network")
            .unwrap()
            .contains("Gateway="),
    );
    let s = System::new("minimal.imago", body);
    let sysinit = s.config("boot.busybox.extraSysinit");
    assert!(
        sysinit
            .as_str()
            .unwrap()
            .contains("ip addr add 10.0.0.2/24 dev lan0\nip addr add fd00::2/64 dev lan0\nip route add default via 10.0.0.1 dev lan0\n"),
        "{sysinit}"
    );

    // Two static interfaces: the gateway's must be named.
    let two = r#"
  networking.interfaces.lan0.ipv4.addresses = [ { address = "10.0.0.2"; prefixLength = 24; } ];
  networking.interfaces.lan1.ipv4.addresses = [ { address = "10.0.9.2"; prefixLength = 24; } ];
  networking.defaultGateway = "10.0.0.1";
"#;
    let err = System::new("minimal.imago", two).toplevel_error();
    assert!(
        err.contains("networking.defaultGateway: set `networking.defaultGateway.interface`"),
        "{err}"
    );
    let named = two.replace(
        r#"networking.defaultGateway = "10.0.0.1";"#,
        r#"networking.defaultGateway = { address = "10.0.9.1"; interface = "lan1"; };"#,
    );
    let s = System::new("minimal.imago", &named);
    let sysinit = s.config("boot.busybox.extraSysinit");
    assert!(
        sysinit
            .as_str()
            .unwrap()
            .contains("ip route add default via 10.0.9.1 dev lan1\n"),
        "{sysinit}"
    );
}

#[test]
fn bad_values_are_refused_naming_the_option() {
    // Line breaks and `=` would become other sysctl.d lines.
    let s = System::new(
        "minimal.imago",
        r#"
  boot.kernel.sysctl."net.ipv4.ip_forward\nkernel.panic" = 1;
  boot.kernel.sysctl."kernel.domainname" = "a\nkernel.panic = 1";
  boot.kernel.sysctl."vm.swappiness = 1" = 1;
  networking.firewall.allowedTCPPortRanges = [ { from = 9000; to = 8000; } ];
"#,
    );
    let err = s.toplevel_error();
    for want in [
        r#"boot.kernel.sysctl."net.ipv4.ip_forward\nkernel.panic": not a sysctl name"#,
        r#"boot.kernel.sysctl."vm.swappiness = 1": not a sysctl name"#,
        r#"boot.kernel.sysctl."kernel.domainname": the value contains a line break"#,
        "networking.firewall: the port range 9000-8000 ends before it starts",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }

    for (body, attr, want) in [
        (
            r#"networking.interfaces.lan0.matchMacAddress = "52:54:00:12:34";"#,
            "networking.interfaces",
            "networking.interfaces.lan0.matchMacAddress",
        ),
        (
            r#"networking.firewall.allowedTCPPorts = [ 70000 ];"#,
            "networking.firewall.allowedTCPPorts",
            "networking.firewall.allowedTCPPorts",
        ),
        (
            r#"networking.firewall.trustedInterfaces = [ "eth0\" accept" ];"#,
            "networking.firewall.trustedInterfaces",
            "networking.firewall.trustedInterfaces",
        ),
        (
            r#"boot.kernelModules = [ "dummy; reboot" ];"#,
            "boot.kernelModules",
            "boot.kernelModules",
        ),
        (
            r#"boot.kernel.sysctl."vm.swappiness" = [ 1 ];"#,
            "boot.kernel.sysctl",
            "boot.kernel.sysctl",
        ),
    ] {
        let s = System::new("minimal.imago", body);
        let err = s.error(attr);
        assert!(err.contains("E0302"), "{body}:\n{err}");
        assert!(err.contains(want), "{body}: missing {want:?} in:\n{err}");
    }
}

#[test]
fn a_rule_nft_rejects_fails_the_build_with_nfts_message() {
    let s = System::new(
        "server.imago",
        r#"
  networking.firewall.extraInputRules = ''
    tcp dport 9100 accept
    tcp dport 9200 acept
  '';
"#,
    );
    match s.ruleset() {
        Ok(_) if s.last_stderr().contains("firewall.nft is not checked") => {
            // A build machine that cannot run nft -c (no namespaces, no
            // nf_tables) says so and goes on, as documented.
            eprintln!(
                "skipped: this machine cannot run nft -c:\n{}",
                s.last_stderr()
            );
            return;
        }
        Err(err) => {
            assert!(
                err.contains("nft rejects the ruleset firewall.nft"),
                "{err}"
            );
            // nft's own message, pointing at the line.
            assert!(err.contains("firewall.nft:22:"), "{err}");
            assert!(err.contains("syntax error"), "{err}");
            assert!(err.contains("  22 |     tcp dport 9200 acept"), "{err}");
        }
        Ok(_) => panic!(
            "the bad rule was built without a warning:\n{}",
            s.last_stderr()
        ),
    }

    // A good rule builds (and is checked where nft -c runs: the rest of the
    // ruleset is valid nftables too).
    let s = System::new(
        "server.imago",
        r#"
  networking.firewall.extraInputRules = ''
    ip saddr 10.0.0.0/8 tcp dport 9100 ct state new limit rate 10/second accept
  '';
"#,
    );
    let ruleset = s.ruleset().unwrap();
    assert!(ruleset.contains(
        "    ip saddr 10.0.0.0/8 tcp dport 9100 ct state new limit rate 10/second accept\n"
    ));
}

#[test]
fn where_nft_cannot_run_the_ruleset_is_built_unchecked_with_a_warning() {
    let s = System::new(
        "server.imago",
        r#"
  networking.firewall.extraInputRules = ''
    tcp dport 9200 acept
  '';
"#,
    );
    // No `unshare` on PATH: nft cannot be run in a namespace of its own.
    let empty = s.dir.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    s.path.replace(Some(empty.display().to_string()));
    let ruleset = s.ruleset().unwrap();
    assert!(ruleset.contains("    tcp dport 9200 acept\n"), "{ruleset}");
    let stderr = s.last_stderr();
    assert!(
        stderr.contains("warning: firewall.nft is not checked: this machine cannot run nft -c (cannot run unshare:"),
        "{stderr}"
    );

    // checkRuleset = false: no check, no warning, the same file.
    let unchecked = System::new(
        "server.imago",
        r#"
  networking.nftables.checkRuleset = false;
  networking.firewall.extraInputRules = ''
    tcp dport 9200 acept
  '';
"#,
    );
    assert_eq!(unchecked.ruleset().unwrap(), ruleset);
    assert!(
        !unchecked.last_stderr().contains("warning"),
        "{}",
        unchecked.last_stderr()
    );
}
