//! What modules/services/systemd.imago makes of timers, sockets, path units
//! and `startAt`, read with `imago config` (no store: steps are pending
//! placeholders, written `@` here): the unit files of `systemd.units` and
//! the targets that want them, against golden texts; and the errors a
//! busybox system or a bad `startAt` gets.

#![allow(clippy::unwrap_used)]

use crate::support::cli::imago;
use crate::support::system::{config, normalize_pending as normalize, write_system as system};

const UNITS: &str = r#"{ ... }: {
  system.name = "units";
  systemd.services.tick = {
    script = "date";
    serviceConfig.Type = "oneshot";
    startAt = [ "*:*:0/10" "daily" ];
  };
  systemd.timers.tick.timerConfig.AccuracySec = "1s";
  systemd.timers.backup = {
    description = "Nightly backup";
    wantedBy = [ "timers.target" ];
    after = [ "network-online.target" ];
    wants = [ "network-online.target" ];
    unitConfig.ConditionPathExists = "/srv";
    timerConfig = { OnCalendar = "03:00"; Persistent = true; Unit = "copy.service"; };
  };
  systemd.timers.off = { wantedBy = [ "timers.target" ]; enable = false; timerConfig.OnActiveSec = "1"; };
  systemd.sockets.echo = {
    wantedBy = [ "sockets.target" ];
    listenStreams = [ "127.0.0.1:7000" "/run/echo.sock" ];
    listenDatagrams = [ "127.0.0.1:7001" ];
    socketConfig = { Accept = true; MaxConnections = 8; };
  };
  systemd.services."echo@" = {
    script = "cat";
    serviceConfig.StandardInput = "socket";
    restartTriggers = [ "v1" "v2" ];
  };
  systemd.paths.inbox = {
    wantedBy = [ "paths.target" ];
    before = [ "mail.target" ];
    requires = [ "local-fs.target" ];
    pathConfig = { PathExistsGlob = "/srv/inbox/*"; MakeDirectory = true; };
  };
  systemd.units."web.slice".text = "[Slice]\nMemoryMax=1G\n";
}
"#;

/// (unit, wanted by, text)
const GOLDEN: &[(&str, &[&str], &str)] = &[
    (
        "backup.timer",
        &["timers.target"],
        "[Unit]\nDescription=Nightly backup\nAfter=network-online.target\nWants=network-online.target\nConditionPathExists=/srv\n\n[Timer]\nOnCalendar=03:00\nPersistent=yes\nUnit=copy.service\n",
    ),
    (
        "echo.socket",
        &["sockets.target"],
        "[Unit]\n\n[Socket]\nListenStream=127.0.0.1:7000\nListenStream=/run/echo.sock\nListenDatagram=127.0.0.1:7001\nAccept=yes\nMaxConnections=8\n",
    ),
    (
        "echo@.service",
        &[],
        "[Unit]\nX-Restart-Triggers=v1 v2\n\n[Service]\nEnvironment=\"PATH=/run/wrappers/bin:/usr/local/bin:/usr/bin:/usr/sbin\"\nExecStart=@unit-script-echo-at-\nStandardInput=socket\n",
    ),
    (
        "inbox.path",
        &["paths.target"],
        "[Unit]\nBefore=mail.target\nRequires=local-fs.target\n\n[Path]\nMakeDirectory=yes\nPathExistsGlob=/srv/inbox/*\n",
    ),
    (
        "tick.service",
        &[],
        "[Unit]\n\n[Service]\nEnvironment=\"PATH=/run/wrappers/bin:/usr/local/bin:/usr/bin:/usr/sbin\"\nExecStart=@unit-script-tick\nType=oneshot\n",
    ),
    (
        "tick.timer",
        &["timers.target"],
        "[Unit]\n\n[Timer]\nAccuracySec=1s\nOnCalendar=*:*:0/10\nOnCalendar=daily\n",
    ),
    ("web.slice", &[], "[Slice]\nMemoryMax=1G\n"),
];

#[test]
fn timers_sockets_and_path_units_are_unit_files_like_services() {
    let dir = tempfile::tempdir().unwrap();
    let file = system(dir.path(), UNITS);
    let units = config(&file, "systemd.units");
    for (name, wanted_by, text) in GOLDEN {
        let unit = &units[*name];
        assert_eq!(
            normalize(
                unit["text"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: {units}"))
            ),
            *text,
            "{name}"
        );
        assert_eq!(unit["wantedBy"], serde_json::json!(wanted_by), "{name}");
        assert_eq!(unit["enable"], true, "{name}");
    }
    // A disabled timer is declared and masked (a link to /dev/null in the
    // unit tree), and so are the units of Debian's systemd that rebuild
    // caches at boot (docs/system-layout.md, "No caches rebuilt at boot") and
    // getty-static ("Units and generators Imago turns off").
    assert_eq!(units["off.timer"]["enable"], false);
    for unit in [
        "ldconfig.service",
        "systemd-hwdb-update.service",
        "systemd-journal-catalog-update.service",
        "systemd-update-done.service",
        // Same condition; activation writes the accounts and runs
        // systemd-sysusers itself for what it leaves.
        "systemd-sysusers.service",
        // Debian's gettys on tty2-tty6, behind services.getty's back.
        "getty-static.service",
    ] {
        assert_eq!(units[unit]["enable"], false, "{unit}");
        assert_eq!(units[unit]["text"], serde_json::Value::Null, "{unit}");
    }
    // The system (and its unit tree) evaluates.
    let out = imago(&["config", &file, "-A", "system.build.toplevel"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn generators_are_links_in_etc_and_debians_unused_ones_are_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let etc = |body: &str| {
        let file = system(
            dir.path(),
            &format!("{{ lib, ... }}: {{\n  system.name = \"g\";\n{body}\n}}\n"),
        );
        config(&file, "environment.etc")
    };
    let link = |etc: &serde_json::Value, name: &str| {
        etc[format!("systemd/system-generators/{name}")]["symlink"].clone()
    };
    // Imago's sshd is services.openssh; systemd's generator would add
    // AF_UNIX and AF_VSOCK listeners, and fails without a vsock address.
    // The others off work for what an Imago system does not have.
    let default = etc("");
    for off in [
        "systemd-ssh-generator",
        "systemd-gpt-auto-generator",
        "systemd-sysv-generator",
        "systemd-rc-local-generator",
        "systemd-system-update-generator",
        "systemd-hibernate-resume-generator",
    ] {
        assert_eq!(link(&default, off), "/dev/null", "{off}");
    }
    // The ones the modules use stay: fstab, getty, the kernel command
    // line's `systemd.mask=` (debug).
    for on in [
        "systemd-fstab-generator",
        "systemd-getty-generator",
        "systemd-debug-generator",
    ] {
        assert!(link(&default, on).is_null(), "{on}");
    }
    // NixOS's option: a generator of one's own, or the ssh one back.
    let chosen = etc(r#"  systemd.generators.my-generator = "/etc/my-generator";
  systemd.generators.systemd-ssh-generator = "/usr/lib/systemd/system-generators/systemd-ssh-generator";"#);
    assert_eq!(link(&chosen, "my-generator"), "/etc/my-generator");
    assert_eq!(
        link(&chosen, "systemd-ssh-generator"),
        "/usr/lib/systemd/system-generators/systemd-ssh-generator"
    );
    // Busybox systems have no generators.
    let busybox = etc(r#"  boot.init = "busybox";"#);
    assert!(
        !busybox
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("system-generators")),
        "{busybox}"
    );
}

#[test]
fn pre_start_is_exec_start_pre_before_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let file = system(
        dir.path(),
        r#"{ ... }: {
  system.name = "pre";
  systemd.services.app = {
    wantedBy = [ "multi-user.target" ];
    preStart = "mkdir -p /var/lib/app";
    script = "exec sleep infinity";
  };
  systemd.services.plain.script = "true";
}
"#,
    );
    let units = config(&file, "systemd.units");
    assert_eq!(
        normalize(units["app.service"]["text"].as_str().unwrap()),
        "[Unit]\n\n[Service]\nEnvironment=\"PATH=/run/wrappers/bin:/usr/local/bin:/usr/bin:/usr/sbin\"\nExecStartPre=@unit-script-app-pre-start\nExecStart=@unit-script-app\n"
    );
    // No preStart, no ExecStartPre.
    assert!(
        !units["plain.service"]["text"]
            .as_str()
            .unwrap()
            .contains("ExecStartPre"),
        "{units}"
    );
    // The host keys exist before sshd counts as started. On systemd
    // sshd-keygen.service makes them after the local file systems only,
    // not the network, and only when one is missing (its condition skips
    // it otherwise); sshd requires it and starts after it, and systemd
    // makes /run/sshd.
    let openssh = |init: &str| {
        system(
            dir.path(),
            &format!(
                "{{ ... }}: {{ system.name = \"ssh\"; boot.init = \"{init}\"; services.openssh.enable = true; }}\n"
            ),
        )
    };
    let file = openssh("systemd");
    let sshd = config(&file, "systemd.services.sshd");
    let keygen = config(&file, "systemd.services.sshd-keygen");
    assert!(
        keygen["script"]
            .as_str()
            .unwrap()
            .contains("ssh-keygen -q -t rsa"),
        "{keygen}"
    );
    for hook in ["preStart", "script"] {
        assert!(
            !sshd[hook].as_str().unwrap().contains("ssh-keygen"),
            "{sshd}"
        );
    }
    assert_eq!(sshd["serviceConfig"]["RuntimeDirectory"], "sshd");
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(names(&sshd["requires"]).contains(&"sshd-keygen.service".to_owned()));
    assert!(names(&sshd["after"]).contains(&"sshd-keygen.service".to_owned()));
    assert!(names(&keygen["before"]).contains(&"sshd.service".to_owned()));
    assert_eq!(names(&keygen["after"]), ["local-fs.target"]);
    assert_eq!(keygen["unitConfig"]["DefaultDependencies"], false);
    assert_eq!(
        names(&keygen["unitConfig"]["ConditionPathExists"]),
        [
            "|!/var/lib/imago/ssh/ssh_host_ed25519_key",
            "|!/var/lib/imago/ssh/ssh_host_rsa_key"
        ]
    );
    assert!(
        keygen["wantedBy"].as_array().unwrap().is_empty(),
        "{keygen}"
    );
    // busybox init has no order between services: sshd makes what is
    // missing itself before it starts.
    let file = openssh("busybox");
    let sshd = config(&file, "systemd.services.sshd");
    let pre_start = sshd["preStart"].as_str().unwrap();
    assert!(pre_start.contains("ssh-keygen -q -t rsa"), "{sshd}");
    assert!(pre_start.contains("mkdir -p /run/sshd"), "{sshd}");
}

#[test]
fn a_single_start_at_is_one_on_calendar() {
    let dir = tempfile::tempdir().unwrap();
    let file = system(
        dir.path(),
        r#"{ ... }: {
  system.name = "units";
  systemd.services.daily = { script = "true"; startAt = "*-*-* 03:00:00"; };
  systemd.services.never = { script = "true"; };
  systemd.services.disabled = { script = "true"; startAt = "daily"; enable = false; };
}"#,
    );
    let timers = config(&file, "systemd.timers");
    let names: Vec<&String> = timers.as_object().unwrap().keys().collect();
    assert_eq!(names, ["daily"]);
    assert_eq!(
        config(&file, r#"systemd.units."daily.timer".text"#),
        "[Unit]\n\n[Timer]\nOnCalendar=*-*-* 03:00:00\n"
    );
}

#[test]
fn busybox_systems_refuse_timers_sockets_and_path_units() {
    let dir = tempfile::tempdir().unwrap();
    let file = system(
        dir.path(),
        r#"{ ... }: {
  system.name = "tiny";
  boot.init = "busybox";
  systemd.services.tick = { script = "date"; startAt = "hourly"; };
  systemd.timers.beat = { wantedBy = [ "timers.target" ]; timerConfig.OnActiveSec = "1"; };
  systemd.timers.off = { enable = false; timerConfig.OnActiveSec = "1"; };
  systemd.sockets.echo.listenStreams = [ "7000" ];
  systemd.paths.inbox.pathConfig.PathExists = "/srv/x";
}"#,
    );
    let out = imago(&["config", &file, "-A", "system.build.toplevel"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for message in [
        "- systemd.timers needs systemd (boot.init = \"systemd\"): busybox init has no timers, but this system defines `systemd.timers.beat`, `systemd.timers.tick` (made by `systemd.services.tick.startAt`)\n",
        "- systemd.sockets needs systemd (boot.init = \"systemd\"): busybox init has no socket activation, but this system defines `systemd.sockets.echo`\n",
        "- systemd.paths needs systemd (boot.init = \"systemd\"): busybox init has no path units, but this system defines `systemd.paths.inbox`\n",
    ] {
        assert!(stderr.contains(message), "no {message:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("systemd.timers.off"), "{stderr}");
}

#[test]
fn an_empty_start_at_is_refused_where_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = system(
        dir.path(),
        "{ ... }: {\n  system.name = \"units\";\n  systemd.services.tick = { script = \"date\"; startAt = \"\"; };\n}\n",
    );
    let out = imago(&["config", &file, "-A", "systemd.timers"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("E0302"), "{stderr}");
    assert!(stderr.contains("systemd.services.tick.startAt"), "{stderr}");
    assert!(stderr.contains("sys.imago:3:"), "{stderr}");
}
