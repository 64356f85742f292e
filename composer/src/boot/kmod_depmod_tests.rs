use super::*;
use crate::boot::kmod::index::read_index;
use crate::boot::kmod::tests::write_module;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

const VERSION: &str = "6.1.0-test-amd64";

/// `(path, modinfo fields, exported symbols)`: a netfilter corner of a
/// kernel, with a compressed module, a soft dependency, device nodes,
/// wildcard aliases and an alias two modules share.
const NET_TREE: &[(&str, &[&str], &[&str])] = &[
    (
        "kernel/arch/x86/crypto/crc32c-intel.ko",
        &["alias=crypto-crc32c", "alias=crc32c", "depends="],
        &[],
    ),
    (
        "kernel/lib/libcrc32c.ko",
        &["softdep=pre: crc32c", "depends="],
        &["crc32c"],
    ),
    (
        "kernel/net/netfilter/nfnetlink.ko",
        &["alias=net-pf-16-proto-12", "depends="],
        &["nfnetlink_send"],
    ),
    (
        "kernel/net/netfilter/nf_tables.ko.xz",
        &["alias=nfnetlink-subsys-10", "depends=nfnetlink,libcrc32c"],
        &["nft_do_chain", "nft_register_expr"],
    ),
    (
        "kernel/fs/autofs/autofs4.ko",
        &[
            "alias=fs-autofs",
            "alias=devname:autofs",
            "alias=char-major-10-235",
            "depends=",
        ],
        &[],
    ),
    (
        "kernel/fs/fuse/fuse.ko.zst",
        &[
            "alias=fs-fuse",
            "alias=devname:fuse",
            "alias=char-major-10-229",
            "depends=",
        ],
        &[],
    ),
    (
        "kernel/drivers/virtio/virtio_pci.ko",
        &["alias=pci:v00001AF4d*sv*sd*bc*sc*i*", "depends="],
        &[],
    ),
    (
        "kernel/drivers/net/virtio_net.ko",
        &["alias=virtio:d00000001v*", "alias=net-[ab]-x", "depends="],
        &[],
    ),
    (
        "kernel/drivers/net/other_net.ko",
        &["alias=virtio:d00000001v*", "depends="],
        &[],
    ),
];

/// Writes NET_TREE as `root/lib/modules/VERSION` and scans it.
fn net_tree(root: &Path) -> (PathBuf, ModuleIndex) {
    let dir = root.join("lib/modules").join(VERSION);
    for (path, fields, exports) in NET_TREE {
        let mut fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        fields.push("license=GPL".to_owned());
        write_module(&dir, path, &fields, exports);
    }
    fs::write(
        dir.join("modules.builtin"),
        "kernel/fs/ext4/ext4.ko\nkernel/net/unix/unix.ko\n",
    )
    .unwrap();
    fs::write(
        dir.join("modules.builtin.modinfo"),
        "ext4.license=GPL\0ext4.alias=fs-ext4\0unix.alias=net-pf-1\0unix.file=net/unix/unix\0",
    )
    .unwrap();
    // other_net first: it wins the alias both modules have.
    fs::write(
        dir.join("modules.order"),
        "kernel/drivers/net/other_net.ko\nkernel/drivers/net/virtio_net.ko\n\
         kernel/lib/libcrc32c.ko\nkernel/net/netfilter/nf_tables.ko\n",
    )
    .unwrap();
    let index = ModuleIndex::scan(&dir, VERSION).unwrap();
    (dir, index)
}

fn entries(output: &DepmodOutput, file: &str) -> BTreeMap<String, Vec<(u32, String)>> {
    read_index(output.file(file).unwrap()).unwrap()
}

fn text(output: &DepmodOutput, file: &str) -> String {
    String::from_utf8(output.file(file).unwrap().to_vec()).unwrap()
}

#[test]
fn aliases_are_normalized_as_kmod_looks_them_up() {
    assert_eq!(
        normalize_alias("char-major-10-229").as_deref(),
        Some("char_major_10_229")
    );
    assert_eq!(
        normalize_alias("pci:v*d*sv*sd*bc0Csc03i[0-9a-f]-x").as_deref(),
        Some("pci:v*d*sv*sd*bc0Csc03i[0-9a-f]_x")
    );
    assert_eq!(normalize_alias("a[b-c]d-e").as_deref(), Some("a[b-c]d_e"));
    assert_eq!(normalize_alias("a]b"), None);
    assert_eq!(normalize_alias("a[b-c"), None);
}

#[test]
fn scan_collects_exports_and_softdeps() {
    let dir = tempfile::tempdir().unwrap();
    let (_, index) = net_tree(dir.path());
    assert_eq!(
        index.exports,
        [
            ("crc32c".to_owned(), "libcrc32c".to_owned()),
            ("nfnetlink_send".to_owned(), "nfnetlink".to_owned()),
            ("nft_do_chain".to_owned(), "nf_tables".to_owned()),
            ("nft_register_expr".to_owned(), "nf_tables".to_owned()),
        ]
    );
    assert_eq!(
        index.softdeps,
        [("libcrc32c".to_owned(), "pre: crc32c".to_owned())]
    );
}

#[test]
fn binary_indexes_hold_what_depmod_puts_in_them() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, index) = net_tree(dir.path());
    let order = fs::read_to_string(tree.join("modules.order")).unwrap();
    let modinfo = fs::read(tree.join("modules.builtin.modinfo")).unwrap();
    let output = render(&index, &order, Some(&modinfo)).unwrap();

    // Priorities: modules.order first (other_net 0, virtio_net 1,
    // libcrc32c 2, nf_tables 3), then the rest by name.
    let deps = entries(&output, "modules.dep.bin");
    assert_eq!(
        deps["nf_tables"],
        [(
            3,
            "kernel/net/netfilter/nf_tables.ko.xz: kernel/lib/libcrc32c.ko \
             kernel/net/netfilter/nfnetlink.ko"
                .to_owned()
        )]
    );
    assert_eq!(
        deps["autofs4"],
        [(4, "kernel/fs/autofs/autofs4.ko:".to_owned())]
    );
    assert_eq!(deps.len(), NET_TREE.len());

    let aliases = entries(&output, "modules.alias.bin");
    assert_eq!(aliases["char_major_10_229"], [(6, "fuse".to_owned())]);
    assert_eq!(aliases["fs_fuse"], [(6, "fuse".to_owned())]);
    assert_eq!(aliases["net_[ab]_x"], [(1, "virtio_net".to_owned())]);
    assert_eq!(
        aliases["virtio:d00000001v*"],
        [(0, "other_net".to_owned()), (1, "virtio_net".to_owned())]
    );

    let symbols = entries(&output, "modules.symbols.bin");
    assert_eq!(
        symbols["symbol:nft_do_chain"],
        [(3, "nf_tables".to_owned())]
    );
    assert_eq!(symbols.len(), 4);
    assert!(text(&output, "modules.symbols").contains("alias symbol:nft_do_chain nf_tables\n"));

    let builtin = entries(&output, "modules.builtin.bin");
    assert_eq!(
        builtin.into_iter().collect::<Vec<_>>(),
        [
            ("ext4".to_owned(), vec![(0, String::new())]),
            ("unix".to_owned(), vec![(0, String::new())])
        ]
    );
    let builtin_aliases = entries(&output, "modules.builtin.alias.bin");
    assert_eq!(builtin_aliases["fs_ext4"], [(0, "ext4".to_owned())]);
    assert_eq!(builtin_aliases["net_pf_1"], [(0, "unix".to_owned())]);
    assert_eq!(builtin_aliases.len(), 2);

    assert_eq!(
        text(&output, "modules.softdep"),
        "# Soft dependencies extracted from modules themselves.\nsoftdep libcrc32c pre: crc32c\n"
    );
    assert_eq!(
        text(&output, "modules.devname"),
        "# Device nodes to trigger on-demand module loading.\n\
         autofs4 autofs c10:235\nfuse fuse c10:229\n"
    );
    assert!(output.skipped_aliases.is_empty());
    // The text files busybox reads are part of the set.
    assert_eq!(
        text(&output, "modules.dep"),
        index.render_dep(None, &|m| m.path.clone()).unwrap()
    );
}

#[test]
fn without_builtin_files_the_builtin_index_is_empty_and_the_alias_one_absent() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut index) = net_tree(dir.path());
    index.builtin.clear();
    let output = render(&index, "", None).unwrap();
    // libkmod refuses its whole index set without modules.builtin.bin.
    assert!(entries(&output, "modules.builtin.bin").is_empty());
    assert!(output.file("modules.builtin.alias.bin").is_none());
    // Without modules.order, priorities follow names.
    let aliases = entries(&output, "modules.alias.bin");
    assert_eq!(
        aliases["virtio:d00000001v*"],
        [(6, "other_net".to_owned()), (7, "virtio_net".to_owned())]
    );
}

#[test]
fn unmatched_brackets_are_left_out_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut index) = net_tree(dir.path());
    index
        .aliases
        .push(("pci:v*d*[0-9".to_owned(), "virtio_pci".to_owned()));
    let output = render(&index, "", None).unwrap();
    assert_eq!(
        output.skipped_aliases,
        [("pci:v*d*[0-9".to_owned(), "virtio_pci".to_owned())]
    );
    // The text file keeps it, as depmod's does.
    assert!(text(&output, "modules.alias").contains("alias pci:v*d*[0-9 virtio_pci\n"));
}

#[test]
fn output_is_deterministic() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (dir_a, index_a) = net_tree(a.path());
    let (dir_b, index_b) = net_tree(b.path());
    let out_a = write_indexes(&index_a, &dir_a).unwrap();
    let out_b = write_indexes(&index_b, &dir_b).unwrap();
    assert_eq!(out_a.files, out_b.files);
    for (name, contents) in &out_a.files {
        assert_eq!(&fs::read(dir_a.join(name)).unwrap(), contents, "{name}");
    }
}

// --- The host's real kmod against the written indexes. ---

/// The host's `name` (kmod's tools are in /usr/sbin or /sbin).
fn host_tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "this test needs kmod's `{name}` (Debian package kmod; `.ci/host-tools.sh test` installs it)"
    );
}

/// Runs a kmod tool with `args`; `(success, stdout, stderr)`.
fn kmod_tool(tool: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(host_tool(tool)).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A tree with its indexes written, and an empty configuration directory so
/// that the host's /etc/modprobe.d plays no part.
struct Tree {
    _dir: tempfile::TempDir,
    root: String,
    modules: PathBuf,
    config: String,
}

fn written_net_tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let (modules, index) = net_tree(dir.path());
    write_indexes(&index, &modules).unwrap();
    let config = dir.path().join("modprobe.d");
    fs::create_dir(&config).unwrap();
    Tree {
        root: dir.path().to_str().unwrap().to_owned(),
        config: config.to_str().unwrap().to_owned(),
        modules,
        _dir: dir,
    }
}

impl Tree {
    /// `modprobe -C <empty> -d <root> -S <version> <args>`.
    fn modprobe(&self, args: &[&str]) -> (bool, String, String) {
        let mut all = vec!["-C", &self.config, "-d", &self.root, "-S", VERSION];
        all.extend_from_slice(args);
        kmod_tool("modprobe", &all)
    }

    /// `modprobe --show-depends name` as `insmod <path below the tree>` lines.
    fn show_depends(&self, name: &str) -> Vec<String> {
        let (ok, stdout, stderr) = self.modprobe(&["--show-depends", name]);
        assert!(ok, "modprobe --show-depends {name}: {stderr}");
        let prefix = format!("{}/", self.modules.display());
        stdout
            .lines()
            .map(|l| l.trim().replace(&prefix, ""))
            .collect()
    }
}

#[test]
fn real_modprobe_finds_modules_and_their_load_order() {
    let tree = written_net_tree();
    let nf_tables = [
        "insmod kernel/net/netfilter/nfnetlink.ko",
        "insmod kernel/arch/x86/crypto/crc32c-intel.ko",
        "insmod kernel/lib/libcrc32c.ko",
        "insmod kernel/net/netfilter/nf_tables.ko.xz",
    ];
    // Dependencies first, libcrc32c's soft dependency (alias crc32c) before it.
    assert_eq!(tree.show_depends("nf_tables"), nf_tables);
    // A symbol request resolves through modules.symbols.bin.
    assert_eq!(tree.show_depends("symbol:nft_do_chain"), nf_tables);
    assert_eq!(
        tree.show_depends("autofs4"),
        ["insmod kernel/fs/autofs/autofs4.ko"]
    );
    // Built-in modules come from modules.builtin.bin.
    assert_eq!(tree.show_depends("ext4"), ["builtin ext4"]);

    let (ok, _, stderr) = tree.modprobe(&["--show-depends", "no_such_module"]);
    assert!(!ok);
    assert!(stderr.contains("not found"), "{stderr}");
}

#[test]
fn real_modprobe_resolves_aliases() {
    let tree = written_net_tree();
    let resolve = |alias: &str| {
        let (ok, stdout, stderr) = tree.modprobe(&["-R", alias]);
        assert!(ok, "modprobe -R {alias}: {stderr}");
        stdout.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(resolve("fs-fuse"), ["fuse"]);
    assert_eq!(resolve("char-major-10-229"), ["fuse"]);
    assert_eq!(
        resolve("pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00"),
        ["virtio_pci"]
    );
    assert_eq!(
        resolve("virtio:d00000001v00001AF4"),
        ["other_net", "virtio_net"]
    );
    assert_eq!(resolve("net-b-x"), ["virtio_net"]);
    // Aliases of built-in modules, from modules.builtin.alias.bin.
    assert_eq!(resolve("fs-ext4"), ["ext4"]);
}

#[test]
fn real_modinfo_reads_the_module_the_index_names() {
    let tree = written_net_tree();
    let (ok, stdout, stderr) = kmod_tool(
        "modinfo",
        &[
            "-b",
            &tree.root,
            "-k",
            VERSION,
            "-F",
            "depends",
            "nf_tables",
        ],
    );
    assert!(ok, "modinfo: {stderr}");
    assert_eq!(stdout.trim(), "nfnetlink,libcrc32c");
    let (ok, stdout, stderr) = kmod_tool(
        "modinfo",
        &["-b", &tree.root, "-k", VERSION, "-n", "fs-fuse"],
    );
    assert!(ok, "modinfo: {stderr}");
    assert_eq!(
        stdout.trim(),
        tree.modules
            .join("kernel/fs/fuse/fuse.ko.zst")
            .display()
            .to_string()
    );
}
