//! A systemd web server (vm-tests/systems/web.imago) in one boot:
//! `services.nginx` serves a page from the store, proxies to a busybox
//! httpd, answers with `return` and picks the virtual host by name; a timer
//! made by `startAt` fires, a socket starts a service per connection, a
//! path unit runs a service when a file appears. Then a switch to
//! web-gen2.imago (`test`, with the code of `imago deploy`) restarts nginx
//! and the changed timers, starts the new timer, stops the removed socket,
//! and leaves the changed path unit to the daemon-reload, which makes it
//! watch its new file.

mod support;

use std::time::Duration;

use imago::remote::Action;
use imago_vm_tests::{Driver, Failure, Machine, vm_test};

const SEC: Duration = Duration::from_secs(1);

/// A command through the backdoor (scaled by the accelerator factor).
const CMD: Duration = Duration::from_secs(5);

fn get(m: &Machine, url: &str) -> Result<String, Failure> {
    m.succeed(["busybox", "wget", "-qO-", url], CMD)
}

/// When the unit last became active, in microseconds since boot.
fn active_since(m: &Machine, unit: &str) -> Result<u64, Failure> {
    let out = m.succeed(
        [
            "systemctl",
            "show",
            "-P",
            "ActiveEnterTimestampMonotonic",
            unit,
        ],
        CMD,
    )?;
    Ok(out
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{unit}: {out}")))
}

vm_test!(
    full,
    fn nginx_timers_sockets_and_paths_then_a_switch_restarts_what_changed() {
        let driver =
            Driver::new("nginx_timers_sockets_and_paths_then_a_switch_restarts_what_changed")?;
        let gen1 = support::system(&driver, "web")?;
        let gen2 = support::system(&driver, "web-gen2")?;
        let mut config = gen1.direct(&driver, "web")?;
        config.memory_mib = 1024;
        config.smp = 2;
        let m = driver.machine(config)?;
        m.start()?;
        m.wait_for_unit("multi-user.target", 90 * SEC)?;
        m.wait_for_unit("nginx.service", 10 * SEC)?;

        // nginx: the page from the store, the proxied server, `return`, and
        // the virtual host chosen by the Host header.
        m.wait_for_open_port(80, 10 * SEC)?;
        m.wait_for_open_port(8081, 10 * SEC)?;
        assert_eq!(get(&m, "http://127.0.0.1/")?, "<h1>IMAGO-NGINX-PAGE</h1>\n");
        assert_eq!(get(&m, "http://127.0.0.1/backend/")?, "IMAGO-BACKEND\n");
        assert_eq!(get(&m, "http://127.0.0.1/hello")?, "IMAGO-NGINX-RETURN\n");
        assert_eq!(
            m.succeed(
                "busybox wget -qO- --header 'Host: other.test' http://127.0.0.1/",
                CMD
            )?,
            "IMAGO-OTHER-HOST\n"
        );
        // IPv6 too (the default listen addresses).
        assert_eq!(get(&m, "http://[::1]/hello")?, "IMAGO-NGINX-RETURN\n");
        // Workers run as `nginx`, the master as root; Debian's compiled-in
        // directories exist.
        m.succeed(
            "ps -o user= -C nginx | sort -u | tr '\\n' ' ' | grep -qx 'nginx root '",
            CMD,
        )?;
        m.succeed(
            "test -d /var/lib/nginx/body && test -d /var/log/nginx && test -s /run/nginx/nginx.pid",
            CMD,
        )?;
        m.succeed("nginx -t -q", CMD)?;
        // A request body larger than nginx's buffer goes through a file in
        // /var/lib/nginx/body that a worker writes: the proxied server
        // (busybox httpd serves no POST) answers 501, where nginx itself
        // would answer 500 had the worker no access.
        assert_eq!(m.succeed("stat -c %a /var/lib", CMD)?, "755\n");
        let post = m.fail(
            "busybox wget -qO- --post-data \"$(head -c 65536 /dev/zero | tr '\\0' x)\" http://127.0.0.1/backend/",
            CMD,
        )?;
        let stderr = String::from_utf8_lossy(&post.stderr);
        assert!(stderr.contains("501"), "{stderr}");

        // The startAt timer fires every 10 s; the one-shot timer fired.
        m.succeed(
            "systemctl is-active tick.timer beat.timer greet.socket drop.path",
            CMD,
        )?;
        m.wait_until_succeeds("test -s /run/imago-tick.log", 30 * SEC)?;
        m.wait_until_succeeds("grep -qx gen1 /run/imago-beat.log", 20 * SEC)?;
        // The socket starts a service per connection.
        assert_eq!(
            m.succeed("bash -c 'exec 3<>/dev/tcp/127.0.0.1/7000; cat <&3'", CMD)?,
            "IMAGO-SOCKET-ACTIVATED\n"
        );
        // The path unit runs its service when the file appears.
        m.succeed("touch /run/imago-drop", CMD)?;
        m.wait_for_file("/run/imago-dropped", 10 * SEC)?;
        support::no_failed_units(&m)?;

        let nginx_before = active_since(&m, "nginx.service")?;
        let tick_before = active_since(&m, "tick.timer")?;
        let drop_before = active_since(&m, "drop.path")?;
        let out = support::switch_to(&driver, &m, &gen2, Action::Test, 60 * SEC)?;
        for line in [
            "stopping greet.socket",
            "restarting nginx.service",
            "starting late.timer",
            "restarting beat.timer",
            "restarting tick.timer",
        ] {
            assert!(out.contains(line), "no `{line}` in:\n{out}");
        }
        assert!(!out.contains("drop.path"), "{out}");
        m.wait_for_unit("nginx.service", 20 * SEC)?;
        assert!(active_since(&m, "nginx.service")? > nginx_before);
        assert!(active_since(&m, "tick.timer")? > tick_before);
        assert_eq!(active_since(&m, "drop.path")?, drop_before);
        m.wait_for_open_port(80, 10 * SEC)?;
        assert_eq!(get(&m, "http://127.0.0.1/")?, "<h1>IMAGO-NGINX-GEN2</h1>\n");
        // The restarted timer fired again, with the new service.
        m.wait_until_succeeds("grep -qx gen2 /run/imago-beat.log", 20 * SEC)?;
        assert_eq!(m.succeed("cat /run/imago-beat.log", CMD)?, "gen1\ngen2\n");
        m.wait_for_file("/run/imago-late.log", 20 * SEC)?;
        m.fail("systemctl is-active greet.socket", CMD)?;
        m.wait_for_closed_port(7000, 10 * SEC)?;
        // The changed path unit watches its new file.
        m.succeed("touch /run/imago-drop2", CMD)?;
        m.wait_for_file("/run/imago-dropped2", 10 * SEC)?;
        support::no_failed_units(&m)?;
        Ok(())
    }
);
