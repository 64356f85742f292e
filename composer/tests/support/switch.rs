//! The machine that the tests of `switch-to-configuration`
//! (modules/system/switch/*.sh, assembled by modules/system/switch.imago) run on: the host's busybox,
//! and a profile directory, an ESP, a run directory and a store in a
//! temporary directory.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The module that assembles and installs the script, with the applets it
/// gets.
const MODULE: &str = include_str!("../../../modules/system/switch.imago");

/// The script's parts, in the order of the module's `parts = [ ... ];`.
pub fn script_parts() -> Vec<PathBuf> {
    let list = MODULE
        .split_once("parts = [")
        .and_then(|(_, rest)| rest.split_once("];"))
        .map(|(list, _)| list)
        .expect("switch.imago has a `parts = [ ... ];` list");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../modules/system");
    let parts: Vec<PathBuf> = list
        .split_whitespace()
        .map(|p| dir.join(p.strip_prefix("./").expect("a relative path")))
        .collect();
    assert!(parts.len() > 1, "{parts:?}");
    parts
}

/// The script as the module assembles it, before substitution.
pub fn script() -> String {
    script_parts()
        .iter()
        .map(|p| fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// Runs `code` under the host's busybox sh with the script's part `part`
/// (e.g. `store.sh`: only function definitions) sourced first, and `args`
/// as its positional parameters.
pub fn run_part(part: &str, code: &str, args: &[&str]) -> Output {
    let path = script_parts()
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == part))
        .unwrap_or_else(|| panic!("no part {part}"));
    Command::new(busybox())
        .arg("sh")
        .arg("-c")
        .arg(format!(". \"$0\"\n{code}"))
        .arg(&path)
        .args(args)
        .env_clear()
        .output()
        .unwrap()
}

pub fn busybox() -> PathBuf {
    for dir in ["/bin", "/usr/bin", "/sbin", "/usr/sbin"] {
        let p = Path::new(dir).join("busybox");
        if p.exists() {
            return p;
        }
    }
    panic!("these tests need busybox (Debian package busybox-static)");
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// Stands in for busybox init: `test` sends it SIGHUP.
    pub init: std::cell::RefCell<std::process::Child>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let init = self.init.get_mut();
        let _ = init.kill();
        let _ = init.wait();
    }
}

/// The applets modules/system/switch.imago gives the script on a machine,
/// read from the module so that the script runs here with exactly those.
fn module_applets() -> Vec<String> {
    let list = MODULE
        .split_once("applets = [")
        .and_then(|(_, rest)| rest.split_once("];"))
        .map(|(list, _)| list)
        .expect("switch.imago has an `applets = [ ... ];` list");
    let applets: Vec<String> = list
        .split_whitespace()
        .map(|a| a.trim_matches('"').to_owned())
        .collect();
    assert!(applets.iter().any(|a| a == "sh"), "{applets:?}");
    applets
}

impl Fixture {
    /// A machine with generation 1 (`sys1`) as `imago image` leaves it.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let tools = root.join("tools/bin");
        fs::create_dir_all(&tools).unwrap();
        let bb = busybox();
        for applet in module_applets() {
            symlink(&bb, tools.join(&applet)).unwrap();
        }
        // The stand-in for init: SIGHUP (the switch's "reload inittab")
        // ends it, whatever the test runner inherited (`nohup` makes it
        // ignored, and an ignored signal stays ignored across exec); it
        // outlives any test, and is killed when the fixture is dropped.
        let init = Command::new("env")
            .args(["--default-signal=HUP", "sleep", "300"])
            .spawn()
            .unwrap();
        let f = Fixture {
            dir,
            init: std::cell::RefCell::new(init),
        };
        let root = root.as_path();
        // Never talk to the host's systemd.
        f.fake_tool("systemctl");
        let sys1 = f.system("sys1", 1, 10);
        let esp = root.join("esp");
        fs::create_dir_all(esp.join("loader/entries")).unwrap();
        fs::create_dir_all(esp.join("EFI/imago")).unwrap();
        fs::write(
            esp.join("loader/loader.conf"),
            "default imago-web-1.conf\ntimeout 0\nconsole-mode keep\neditor no\n",
        )
        .unwrap();
        fs::write(
            esp.join("loader/entries/imago-web-1.conf"),
            format!(
                "title web (generation 1)\nversion 1\nlinux /EFI/imago/{k}-linux-bzImage\ninitrd /EFI/imago/{i}-initrd\noptions console=ttyS0 imago.system={s} root=UUID=1234 rootfstype=ext4 rw\n",
                k = hash(1),
                i = hash(10),
                s = sys1.display()
            ),
        )
        .unwrap();
        fs::write(
            esp.join(format!("EFI/imago/{}-linux-bzImage", hash(1))),
            "kernel 1",
        )
        .unwrap();
        fs::write(
            esp.join(format!("EFI/imago/{}-initrd", hash(10))),
            "initrd 10",
        )
        .unwrap();
        let profiles = root.join("profiles");
        fs::create_dir_all(&profiles).unwrap();
        symlink(&sys1, profiles.join("system-1-link")).unwrap();
        symlink("system-1-link", profiles.join("system")).unwrap();
        fs::create_dir_all(root.join("run")).unwrap();
        symlink(&sys1, root.join("run/booted-system")).unwrap();
        symlink(&sys1, root.join("run/current-system")).unwrap();
        fs::write(
            root.join("cmdline"),
            "console=ttyS0 imago.system=x root=UUID=1234 rootfstype=ext4 rw\n",
        )
        .unwrap();
        f
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A toplevel of the system `web` named `dir` with kernel `k` and initrd
    /// `i` (the numbers make their store hashes), default limit 10.
    pub fn system(&self, dir: &str, k: u32, i: u32) -> PathBuf {
        self.system_with(dir, "web", k, i, 10, "console=ttyS0")
    }

    pub fn system_with(
        &self,
        dir: &str,
        name: &str,
        k: u32,
        i: u32,
        limit: u32,
        params: &str,
    ) -> PathBuf {
        let root = self.root();
        let store = root.join("store");
        let kdir = store.join(format!("{}-linux", hash(k)));
        fs::create_dir_all(&kdir).unwrap();
        fs::write(kdir.join("bzImage"), format!("kernel {k}")).unwrap();
        let initrd = store.join(format!("{}-initrd", hash(i)));
        fs::write(&initrd, format!("initrd {i}")).unwrap();
        let sys = root.join(dir);
        fs::create_dir_all(sys.join("bin")).unwrap();
        fs::write(sys.join("boot.json"), "{}\n").unwrap();
        fs::write(sys.join("system-name"), format!("{name}\n")).unwrap();
        fs::write(sys.join("activate"), "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(sys.join("activate"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink(kdir.join("bzImage"), sys.join("kernel")).unwrap();
        symlink(&initrd, sys.join("initrd")).unwrap();
        let text = script()
            .replace("@tools@", &root.join("tools").to_string_lossy())
            .replace("@name@", &format!("'{name}'"))
            .replace(
                "@kernel@",
                &format!("'/imago/store/{}-linux/bzImage'", hash(k)),
            )
            .replace("@initrd@", &format!("'/imago/store/{}-initrd'", hash(i)))
            .replace("@params@", &format!("'{params}'"))
            .replace("@limit@", &limit.to_string())
            .replace("@init@", "busybox")
            .replace("@pauseHook@", "1");
        let script = sys.join("bin/switch-to-configuration");
        fs::write(&script, text).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        sys
    }

    /// `sys`'s script with the words of `action`, on this machine.
    fn command(&self, sys: &Path, action: &str) -> Command {
        self.command_at(sys, action, self.root())
    }

    /// `sys`'s script with the words of `action`, on the profile
    /// directory, ESP and run directory `profiles`, `esp` and `run` below
    /// `at` (a copy of this machine's, see `copy_machine`).
    pub fn command_at(&self, sys: &Path, action: &str, at: &Path) -> Command {
        let root = self.root();
        let mut cmd = Command::new(sys.join("bin/switch-to-configuration"));
        cmd.args(action.split(' '))
            .env_clear()
            .env("IMAGO_PROFILES", at.join("profiles"))
            .env("IMAGO_ESP", at.join("esp"))
            .env("IMAGO_CMDLINE", root.join("cmdline"))
            .env("IMAGO_RUN", at.join("run"))
            .env("IMAGO_MACHINE_STORE", root.join("store"))
            .env("IMAGO_CONSOLE", root.join("console.log"))
            .env("IMAGO_INIT_PID", self.init.borrow().id().to_string());
        cmd
    }

    pub fn switch(&self, sys: &Path, action: &str, env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(sys, action);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Starts `sys`'s script with `action` and
    /// `IMAGO_SWITCH_PAUSE_AFTER=step`, and returns it once it says it
    /// paused there (it then waits forever: kill it).
    pub fn paused_after(&self, sys: &Path, action: &str, step: &str) -> Child {
        let mut child = self.spawn_pausing(sys, action, step);
        let mut stderr = child.stderr.take().unwrap();
        let mut text = String::new();
        let mut buf = [0u8; 256];
        while !text.contains(&format!("paused after {step}")) {
            let n = stderr.read(&mut buf).unwrap();
            assert!(n > 0, "{action} ended without pausing after {step}: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        child
    }

    /// Starts `sys`'s script with `action`, to pause after `step`, and
    /// returns at once; its stderr is piped.
    pub fn spawn_pausing(&self, sys: &Path, action: &str, step: &str) -> Child {
        self.command(sys, action)
            .env("IMAGO_SWITCH_PAUSE_AFTER", step)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn ok(&self, sys: &Path, action: &str) -> String {
        let out = self.switch(sys, action, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "switch-to-configuration {action} failed: {stderr}"
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Copies this machine's profile directory, ESP and run directory to
    /// `<root>/<name>/` (links and contents as they are; the toplevels and
    /// the store stay shared) and returns that directory.
    pub fn copy_machine(&self, name: &str) -> PathBuf {
        let to = self.root().join(name);
        fs::create_dir_all(&to).unwrap();
        for d in ["profiles", "esp", "run"] {
            let st = Command::new("cp")
                .arg("-a")
                .arg(self.root().join(d))
                .arg(&to)
                .status()
                .unwrap();
            assert!(st.success(), "copying {d}");
        }
        to
    }

    pub fn entries(&self) -> Vec<String> {
        names(&self.root().join("esp/loader/entries"))
    }

    pub fn esp_files(&self) -> Vec<String> {
        names(&self.root().join("esp/EFI/imago"))
    }

    pub fn link(&self, name: &str) -> PathBuf {
        fs::read_link(self.root().join("profiles").join(name)).unwrap()
    }

    /// Every path below the fixture with its content or link target.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        for e in walkdir::WalkDir::new(self.root()) {
            let e = e.unwrap();
            let p = e.path().to_owned();
            let v = if e.path_is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if e.file_type().is_file() {
                fs::read_to_string(&p).unwrap_or_default()
            } else {
                "dir".to_owned()
            };
            out.insert(p, v);
        }
        out
    }
}

impl Fixture {
    /// Replaces the tool `name` with a script that appends its arguments to
    /// `<root>/calls.log`.
    pub fn fake_tool(&self, name: &str) {
        let path = self.root().join("tools/bin").join(name);
        let _ = fs::remove_file(&path);
        fs::write(
            &path,
            format!(
                "#!{}/tools/bin/sh\necho \"{name} $*\" >> {}/calls.log\n",
                self.root().display(),
                self.root().display()
            ),
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.root().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Makes `sys` a system of `init` whose activation records its argument
    /// and moves /run/current-system (or fails when `fail`).
    pub fn activation(&self, sys: &Path, init: &str, fail: bool) {
        let script = sys.join("bin/switch-to-configuration");
        let text = fs::read_to_string(&script).unwrap();
        fs::write(
            &script,
            text.replace("init_system=busybox", &format!("init_system={init}")),
        )
        .unwrap();
        let body = if fail {
            "echo 'activate: users: broken' >&2\nexit 4\n".to_owned()
        } else {
            format!(
                "echo \"activate $1\" >> {root}/calls.log\nln -sfn \"$1\" {root}/run/current-system\n",
                root = self.root().display()
            )
        };
        fs::write(sys.join("activate"), format!("#!/bin/sh\n{body}")).unwrap();
    }

    pub fn write(&self, path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

pub fn hash(n: u32) -> String {
    format!("{n:0>32}")
}

pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
