//! Using a guest from the outside, as its users do: ssh with a key and HTTP
//! through QEMU user-network port forwards, and `imago deploy` run by an
//! ordinary user of the host. The backdoor is for setup and diagnosis only.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use imago_vm_tests::{Driver, Error, Failure, Poll, retry};

/// The test's key pair (ed25519, no passphrase). Test only: never trust it.
pub const TEST_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACCS/JV++O5Yh3zCIWN7E6DyaoUpNGd3J/MTqCJDibABZwAAALBVe6ktVXup
LQAAAAtzc2gtZWQyNTUxOQAAACCS/JV++O5Yh3zCIWN7E6DyaoUpNGd3J/MTqCJDibABZw
AAAEDHcWkaR+tzW7CyKK1Q7KEWvjYErtmKNu0hsovrs2ru1JL8lX747liHfMIhY3sToPJq
hSk0Z3cn8xOoIkOJsAFnAAAAJmltYWdvLXZtLXRlc3QgKHRlc3Qgb25seSwgbmV2ZXIgdH
J1c3QpAQIDBAUGBw==
-----END OPENSSH PRIVATE KEY-----
";
/// The public half of [`TEST_KEY`].
pub const TEST_KEY_PUB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJL8lX747liHfMIhY3sToPJqhSk0Z3cn8xOoIkOJsAFn imago-vm-test (test only, never trust)";

/// The guest's address on QEMU's user network, and the MAC its NIC gets.
pub const GUEST_IP: &str = "10.0.2.15";
pub const USER_NET_MAC: &str = "52:54:00:12:34:56";

/// The uid and gid of Debian's `nobody`, the ordinary user that deploys.
pub const NOBODY: u32 = 65534;

/// Writes [`TEST_KEY`] into `dir` (mode 0600, owned by `owner` if given)
/// and returns its path.
pub fn write_key(dir: &Path, owner: Option<u32>) -> Result<PathBuf, String> {
    let key = dir.join("id_test");
    std::fs::write(&key, TEST_KEY).map_err(|e| format!("{}: {e}", key.display()))?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", key.display()))?;
    if let Some(uid) = owner {
        std::os::unix::fs::chown(&key, Some(uid), Some(uid))
            .map_err(|e| format!("chown {}: {e}", key.display()))?;
    }
    Ok(key)
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?
        .port())
}

/// QEMU arguments for one virtio NIC (MAC [`USER_NET_MAC`]) on an isolated
/// user network (`restrict=on`: the guest reaches nothing) with the host's
/// `127.0.0.1:HOST` forwarded to the guest's `GUEST` for each pair.
pub fn user_net_args(forwards: &[(u16, u16)]) -> Vec<String> {
    let fwd: String = forwards
        .iter()
        .map(|(host, guest)| format!(",hostfwd=tcp:127.0.0.1:{host}-{GUEST_IP}:{guest}"))
        .collect();
    vec![
        "-netdev".into(),
        format!("user,id=usernet,restrict=on{fwd}"),
        "-device".into(),
        format!("virtio-net-pci,netdev=usernet,mac={USER_NET_MAC}"),
    ]
}

/// Adds to [`user_net_args`]'s network a static HTTP/1.0 server of the
/// host's directory `dir` at `guest` (`ADDRESS:PORT` on the user network,
/// e.g. `10.0.2.100:8080`): QEMU runs a small script (written into `dir`'s
/// parent) for each connection the guest opens there, the one way out of
/// the isolated network. GET of `/PATH` answers the file `dir/PATH` (404
/// when there is none; nothing outside the directory).
pub fn guest_http_dir(args: &mut [String], guest: &str, dir: &Path) -> Result<(), String> {
    let script = dir.with_extension("serve.sh");
    let text = format!(
        r#"#!/bin/sh
dir='{}'
cr=$(printf '\r')
read -r method path proto
while read -r line; do
  if [ "$line" = "$cr" ] || [ -z "$line" ]; then break; fi
done
rel=${{path#/}}
case "$rel" in ""|*..*|/*) rel= ;; esac
if [ "$method" = GET ] && [ -n "$rel" ] && [ -f "$dir/$rel" ]; then
  printf 'HTTP/1.0 200 OK\r\nContent-Length: %s\r\nConnection: close\r\n\r\n' $(($(wc -c < "$dir/$rel")))
  cat "$dir/$rel"
else
  printf 'HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
fi
"#,
        dir.display()
    );
    std::fs::write(&script, text).map_err(|e| format!("{}: {e}", script.display()))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if let Some(netdev) = args.iter_mut().find(|a| a.starts_with("user,")) {
        netdev.push_str(&format!(",guestfwd=tcp:{guest}-cmd:{}", script.display()));
    }
    Ok(())
}

/// The ssh options of every host-side connection: the key only, no
/// questions, no known-hosts file.
pub fn ssh_options(key: &Path) -> Vec<String> {
    let mut args = vec!["-F".to_owned(), "/dev/null".to_owned(), "-i".to_owned()];
    args.push(key.display().to_string());
    for option in [
        "BatchMode=yes",
        "IdentitiesOnly=yes",
        "PasswordAuthentication=no",
        "KbdInteractiveAuthentication=no",
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "LogLevel=ERROR",
        "ConnectTimeout=30",
    ] {
        args.push("-o".to_owned());
        args.push(option.to_owned());
    }
    args
}

/// The ssh program `imago deploy` runs: ssh with the test's options.
pub fn ssh_wrapper(dir: &Path, key: &Path) -> Result<PathBuf, String> {
    let path = dir.join("ssh-test");
    let options: Vec<String> = ssh_options(key).iter().map(|o| format!("'{o}'")).collect();
    std::fs::write(
        &path,
        format!("#!/bin/sh\nexec ssh {} \"$@\"\n", options.join(" ")),
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// `ssh -i KEY -p PORT USER@127.0.0.1 COMMAND` from the host, retried until
/// it succeeds or `timeout` (scaled) runs out; returns its stdout.
pub fn ssh(
    driver: &Driver,
    key: &Path,
    port: u16,
    user: &str,
    command: &str,
    timeout: Duration,
) -> Result<String, Failure> {
    let what = format!("ssh {user}@guest {command}");
    driver.setup(&format!("host: {what}"), || {
        retry(
            &what,
            driver.accel().scale(timeout),
            Duration::from_secs(2),
            |left| {
                // `timeout` bounds one attempt by the time left.
                let out = Command::new("timeout")
                    .arg(left.as_secs().max(5).to_string())
                    .arg("ssh")
                    .args(ssh_options(key))
                    .args(["-p", &port.to_string()])
                    .arg(format!("{user}@127.0.0.1"))
                    .arg(command)
                    .output()
                    .map_err(|e| Error::Setup(format!("cannot run ssh: {e}")))?;
                if out.status.success() {
                    return Ok(Poll::Ready(
                        String::from_utf8_lossy(&out.stdout).into_owned(),
                    ));
                }
                Ok(Poll::Pending(Some(format!(
                    "ssh exited with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))))
            },
        )
    })
}

/// The kernel command line of the machine behind `port` (over ssh as
/// `user`) and the generation it names (`imago.generation=N`), if any.
pub fn booted_generation(
    driver: &Driver,
    key: &Path,
    port: u16,
    user: &str,
) -> Result<(String, Option<u32>), Failure> {
    let cmdline = ssh(
        driver,
        key,
        port,
        user,
        "cat /proc/cmdline",
        30 * Duration::from_secs(1),
    )?;
    let generation = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("imago.generation="))
        .and_then(|n| n.parse().ok());
    Ok((cmdline, generation))
}

/// One plain HTTP/1.0 GET of `path` on 127.0.0.1:`port`: the whole answer,
/// or `None` when the connection fails, times out (`read_timeout`) or
/// carries no bytes.
pub fn http_get(port: u16, path: &str, read_timeout: Duration) -> Option<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(read_timeout)).ok()?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = Vec::new();
    // A timeout after some bytes still returns what came.
    let _ = conn.read_to_end(&mut answer);
    (!answer.is_empty()).then(|| String::from_utf8_lossy(&answer).into_owned())
}

/// A directory tree for an ordinary user of the host (`nobody`) to work in:
/// world-traversable, with a home, a package cache and a store of its own
/// owned by that user. Removed on drop.
pub struct UserDir {
    dir: tempfile::TempDir,
    pub uid: u32,
}

impl UserDir {
    /// Creates the tree for `uid` (gid = uid).
    pub fn new(uid: u32) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("imago-user-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", dir.path().display()))?;
        for sub in ["home", "cache", "store"] {
            let path = dir.path().join(sub);
            std::fs::create_dir(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            std::os::unix::fs::chown(&path, Some(uid), Some(uid))
                .map_err(|e| format!("chown {}: {e}", path.display()))?;
        }
        Ok(UserDir { dir, uid })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The user's home (owned by the user).
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// A command that runs `program` as the user, with a clean environment
    /// (PATH, HOME, XDG_CACHE_HOME, IMAGO_STORE) and no supplementary
    /// groups, through util-linux's `setpriv`.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.uid))
            .arg("--clear-groups")
            .arg("--")
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", self.home())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("IMAGO_STORE", self.dir.path().join("store"))
            .current_dir(self.home());
        cmd
    }
}
