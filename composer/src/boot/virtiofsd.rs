//! The virtiofsd that shares the store with a directly booted machine
//! (`imago run`, the VM test driver): which binary, and how it serves the
//! store.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where virtiofsd is looked for after `$IMAGO_VIRTIOFSD`: the Rust
/// virtiofsd (Debian's `virtiofsd` package), then QEMU 7.2's C one.
pub const PATHS: &[&str] = &["/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"];

/// The virtiofsd to run: `$IMAGO_VIRTIOFSD` when set, else the first of
/// [`PATHS`] that exists.
pub fn find() -> Option<PathBuf> {
    std::env::var_os("IMAGO_VIRTIOFSD")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| PATHS.iter().map(PathBuf::from).find(|p| p.is_file()))
}

/// virtiofsd's arguments (options both the C and the Rust virtiofsd
/// accept): serve `store` on `socket`, chrooted into it when running as
/// root (the C virtiofsd's other sandbox needs namespaces root has).
///
/// The guest caches what it read for good (`cache=always`): a store
/// path's files never change once it is in the store, so the guest keeps
/// file data across opens, and names and attributes without asking again.
/// With `cache=auto` every open dropped the file's pages and names were
/// looked up again after a second; a systemd system's emulated boot took
/// half as long again (docs/performance.md, "The store's cache mode"). A
/// path added to the store later is still found: a name the guest has not
/// seen is looked up on the host.
pub fn args(store: &Path, socket: &Path) -> Vec<OsString> {
    let mut socket_arg = OsString::from("--socket-path=");
    socket_arg.push(socket);
    let mut source = OsString::from("source=");
    source.push(store);
    let mut args = vec![
        socket_arg,
        "-o".into(),
        source,
        "-o".into(),
        "cache=always".into(),
    ];
    if rustix::process::geteuid().is_root() {
        args.extend(["-o".into(), "sandbox=chroot".into()]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_store_on_the_socket_with_the_guest_caching_it() {
        let args: Vec<String> = args(Path::new("/s/store"), Path::new("/r/store.sock"))
            .into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect();
        assert_eq!(args[0], "--socket-path=/r/store.sock");
        let options: Vec<&str> = args
            .iter()
            .zip(args.iter().skip(1))
            .filter(|(flag, _)| *flag == "-o")
            .map(|(_, value)| value.as_str())
            .collect();
        assert!(options.contains(&"source=/s/store"), "{args:?}");
        assert!(options.contains(&"cache=always"), "{args:?}");
        assert_eq!(
            options.contains(&"sandbox=chroot"),
            rustix::process::geteuid().is_root(),
            "{args:?}"
        );
    }
}
