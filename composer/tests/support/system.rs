//! System files in temporary directories, and what `imago` makes of them:
//! the configuration (`imago config --json`) and a built system in a store
//! of the test's own.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::cli::imago;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Writes the system file `sys.imago` (a module) into `dir`; returns its
/// path as an argument for `imago`.
pub fn write_system(dir: &Path, text: &str) -> String {
    let file = dir.join("sys.imago");
    fs::write(&file, text).unwrap();
    file.display().to_string()
}

/// `imago config FILE -A ATTR --json`, which must succeed.
pub fn config(file: &str, attr: &str) -> serde_json::Value {
    let out = imago(&["config", file, "-A", attr, "--json"]);
    assert!(
        out.status.success(),
        "imago config -A {attr}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Replaces each placeholder `/imago/pending/<16 hex>-` by `@`, so that a
/// configuration value that names store objects compares as text.
pub fn normalize_pending(text: &str) -> String {
    const PREFIX: &str = "/imago/pending/";
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(PREFIX) {
        out.push_str(&rest[..i]);
        let after = &rest[i + PREFIX.len()..];
        if after.len() > 17
            && after.as_bytes()[..16].iter().all(u8::is_ascii_hexdigit)
            && after.as_bytes()[16] == b'-'
        {
            out.push('@');
            rest = &after[17..];
        } else {
            out.push_str(PREFIX);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A built system: the store directory and the toplevel's directory in it.
pub struct Built {
    dir: tempfile::TempDir,
    pub store: PathBuf,
    pub toplevel: PathBuf,
}

impl Built {
    /// Builds `system` — a system file in which `@server@` stands for
    /// examples/bookworm/server.imago — with its lock, in a store of its
    /// own. Bookworm's, because tests run the built packages' programs
    /// (visudo, nft) on the host, a bookworm machine: trixie's need a newer
    /// C library.
    pub fn server_with(system: &str) -> Built {
        Built::server_in(tempfile::tempdir().unwrap(), system)
    }

    fn server_in(dir: tempfile::TempDir, system: &str) -> Built {
        let server = repo()
            .join("examples/bookworm/server.imago")
            .canonicalize()
            .unwrap();
        let file = dir.path().join("system.imago");
        fs::write(&file, system.replace("@server@", server.to_str().unwrap())).unwrap();
        fs::copy(
            repo().join("examples/bookworm/imago.lock"),
            dir.path().join("imago.lock"),
        )
        .unwrap();
        let store = dir.path().join("store");
        let out = imago(&[
            "--store",
            store.to_str().unwrap(),
            "build",
            file.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "imago build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let toplevel = PathBuf::from(stdout.lines().nth(1).expect("the physical path"));
        Built {
            dir,
            store,
            toplevel,
        }
    }

    /// [`Built::server_with`] once per test process and `cell`.
    ///
    /// A static is never dropped, so its temporary directory would outlive
    /// the process: hundreds of megabytes per process, and nextest runs
    /// each test in a process of its own. So these live in
    /// `CARGO_TARGET_TMPDIR/built/<pid>-…`, and each process first removes
    /// those of processes that have ended.
    pub fn once(cell: &'static OnceLock<Built>, system: &str) -> &'static Built {
        cell.get_or_init(|| {
            let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("built");
            fs::create_dir_all(&root).unwrap();
            remove_ended(&root);
            let dir = tempfile::Builder::new()
                .prefix(&format!("{}-", std::process::id()))
                .tempdir_in(&root)
                .unwrap();
            Built::server_in(dir, system)
        })
    }

    /// Where a logical store path (/imago/store/…) is in the test's store.
    pub fn physical(&self, logical: &Path) -> PathBuf {
        self.store
            .join(logical.strip_prefix("/imago/store").unwrap())
    }

    /// An entry of the toplevel (a symlink into the store), resolved.
    pub fn entry(&self, name: &str) -> PathBuf {
        self.physical(&fs::read_link(self.toplevel.join(name)).unwrap())
    }

    /// The store object named `name` among the activation script's words.
    pub fn activation_input(&self, name: &str) -> PathBuf {
        let activate = fs::read_to_string(self.entry("activate")).unwrap();
        let word = activate
            .split_whitespace()
            .find(|w| {
                w.strip_prefix("/imago/store/")
                    .and_then(|base| base.split_once('-'))
                    .is_some_and(|(_, n)| n == name)
            })
            .unwrap_or_else(|| panic!("activate uses no store object `{name}`"));
        self.physical(Path::new(word))
    }
}

impl Drop for Built {
    /// Store objects are read-only: make them writable so that the
    /// temporary directory can be removed by a user other than root too.
    fn drop(&mut self) {
        make_writable(self.dir.path());
    }
}

/// `chmod -R u+w path`, errors ignored.
fn make_writable(path: &Path) {
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(path)
        .status();
}

/// Removes the directories `<pid>-…` under `root` whose process has
/// ended (store objects are read-only: made writable first). Another
/// process may be removing the same one: errors are ignored.
fn remove_ended(root: &Path) {
    for entry in fs::read_dir(root).unwrap().flatten() {
        let name = entry.file_name();
        let pid = name.to_string_lossy().split('-').next().map(str::to_owned);
        let ended = pid
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists());
        if ended {
            make_writable(&entry.path());
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Writes `text`, a script of the system whose first line is
/// `#!<tools>/bin/sh`, as `dir/name`, executable, with the system's tools
/// replaced by `dir/tools`: the host's busybox and a link per applet.
pub fn on_host_busybox(dir: &Path, name: &str, text: &str) -> PathBuf {
    let tools = dir.join("tools/bin");
    fs::create_dir_all(&tools).unwrap();
    let bb = super::switch::busybox();
    let list = std::process::Command::new(&bb)
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        let link = tools.join(applet);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(&bb, link).unwrap();
        }
    }
    let system_tools = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .and_then(|s| s.strip_suffix("/bin/sh"))
        .expect("#!<tools>/bin/sh");
    let script = dir.join(name);
    fs::write(
        &script,
        text.replace(system_tools, dir.join("tools").to_str().unwrap()),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}
