use super::*;
use std::fs;

/// A minimal ELF64 relocatable object with a `.modinfo` section holding
/// `fields` (NUL-separated), like a kernel module.
pub(crate) fn fake_module(fields: &[&str]) -> Vec<u8> {
    fake_module_exporting(fields, &[])
}

/// [`fake_module`] that also exports `exports`: a `.symtab` with one defined
/// `__ksymtab_NAME` symbol per name, as `EXPORT_SYMBOL` leaves in a module,
/// next to an undefined `__ksymtab_undefined` (a reference, not an export).
pub(crate) fn fake_module_exporting(fields: &[&str], exports: &[&str]) -> Vec<u8> {
    let mut modinfo = Vec::new();
    for f in fields {
        modinfo.extend_from_slice(f.as_bytes());
        modinfo.push(0);
    }
    let mut sections = vec![Section::new(".modinfo", 1, modinfo)]; // PROGBITS
    if !exports.is_empty() {
        let mut strtab = vec![0u8];
        let mut symtab = vec![0u8; 24]; // the null symbol
        let mut symbol = |name: &str, shndx: u16| {
            let name_off = strtab.len() as u32;
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
            symtab.extend_from_slice(&name_off.to_le_bytes());
            symtab.push(0); // STB_LOCAL, STT_NOTYPE
            symtab.push(0);
            symtab.extend_from_slice(&shndx.to_le_bytes());
            symtab.extend_from_slice(&[0; 16]); // value, size
        };
        symbol("__ksymtab_undefined", 0);
        for name in exports {
            symbol(&format!("__ksymtab_{name}"), 1);
        }
        let locals = (symtab.len() / 24) as u32;
        // .symtab is section 2 and links to .strtab, section 3.
        sections.push(Section {
            link: 3,
            info: locals,
            entsize: 24,
            ..Section::new(".symtab", 2, symtab)
        });
        sections.push(Section::new(".strtab", 3, strtab));
    }
    let mut shstrtab = vec![0u8];
    let mut names = Vec::new();
    for section in &sections {
        names.push(shstrtab.len() as u32);
        shstrtab.extend_from_slice(section.name.as_bytes());
        shstrtab.push(0);
    }
    names.push(shstrtab.len() as u32);
    shstrtab.extend_from_slice(b".shstrtab\0");
    sections.push(Section::new(".shstrtab", 3, shstrtab)); // STRTAB

    let mut body = Vec::new();
    let mut offsets = Vec::new();
    for section in &sections {
        body.resize(body.len().div_ceil(8) * 8, 0);
        offsets.push(64 + body.len() as u64);
        body.extend_from_slice(&section.data);
    }
    let shoff = (64 + body.len() as u64).div_ceil(8) * 8;
    let shnum = sections.len() as u16 + 1;

    let mut elf = Vec::new();
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
    elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&0u64.to_le_bytes()); // entry
    elf.extend_from_slice(&0u64.to_le_bytes()); // phoff
    elf.extend_from_slice(&shoff.to_le_bytes());
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    elf.extend_from_slice(&64u16.to_le_bytes()); // ehsize
    elf.extend_from_slice(&0u16.to_le_bytes()); // phentsize
    elf.extend_from_slice(&0u16.to_le_bytes()); // phnum
    elf.extend_from_slice(&64u16.to_le_bytes()); // shentsize
    elf.extend_from_slice(&shnum.to_le_bytes());
    elf.extend_from_slice(&(shnum - 1).to_le_bytes()); // shstrndx: the last
    assert_eq!(elf.len(), 64);
    elf.extend_from_slice(&body);
    elf.resize(shoff as usize, 0);
    elf.extend_from_slice(&[0; 64]); // the null section header
    for ((section, name), offset) in sections.iter().zip(names).zip(offsets) {
        elf.extend_from_slice(&name.to_le_bytes());
        elf.extend_from_slice(&section.kind.to_le_bytes());
        elf.extend_from_slice(&0u64.to_le_bytes()); // flags
        elf.extend_from_slice(&0u64.to_le_bytes()); // addr
        elf.extend_from_slice(&offset.to_le_bytes());
        elf.extend_from_slice(&(section.data.len() as u64).to_le_bytes());
        elf.extend_from_slice(&section.link.to_le_bytes());
        elf.extend_from_slice(&section.info.to_le_bytes());
        let align: u64 = if section.entsize == 0 { 1 } else { 8 };
        elf.extend_from_slice(&align.to_le_bytes());
        elf.extend_from_slice(&section.entsize.to_le_bytes());
    }
    elf
}

/// One section of a [`fake_module_exporting`] object.
struct Section {
    name: &'static str,
    kind: u32,
    data: Vec<u8>,
    link: u32,
    info: u32,
    entsize: u64,
}

impl Section {
    fn new(name: &'static str, kind: u32, data: Vec<u8>) -> Self {
        Section {
            name,
            kind,
            data,
            link: 0,
            info: 0,
            entsize: 0,
        }
    }
}

/// Writes one module file at `dir/path` (compressed as its extension says).
pub(crate) fn write_module(dir: &Path, path: &str, fields: &[String], exports: &[&str]) {
    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    let file = dir.join(path);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let elf = fake_module_exporting(&refs, exports);
    let bytes = if path.ends_with(".zst") {
        zstd::encode_all(&elf[..], 3).unwrap()
    } else if path.ends_with(".xz") {
        let mut out = Vec::new();
        liblzma::read::XzEncoder::new(&elf[..], 6)
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        elf
    };
    fs::write(file, bytes).unwrap();
}

/// Writes a module tree: `(relative path, depends, aliases)`.
pub(crate) fn write_tree(dir: &Path, modules: &[(&str, &str, &[&str])], builtin: &[&str]) {
    for (path, depends, aliases) in modules {
        let mut fields = vec![format!("depends={depends}")];
        fields.extend(aliases.iter().map(|a| format!("alias={a}")));
        fields.push("license=GPL".to_owned());
        write_module(dir, path, &fields, &[]);
    }
    let builtin: String = builtin.iter().map(|b| format!("{b}\n")).collect();
    fs::write(dir.join("modules.builtin"), builtin).unwrap();
}

pub(crate) const VIRTIO_TREE: &[(&str, &str, &[&str])] = &[
    ("kernel/drivers/virtio/virtio_ring.ko", "", &[]),
    ("kernel/drivers/virtio/virtio.ko", "virtio_ring", &[]),
    ("kernel/drivers/virtio/virtio_pci_modern_dev.ko", "", &[]),
    ("kernel/drivers/virtio/virtio_pci_legacy_dev.ko", "", &[]),
    (
        "kernel/drivers/virtio/virtio_pci.ko",
        "virtio_ring,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio",
        &["pci:v00001AF4d*sv*sd*bc*sc*i*"],
    ),
    (
        "kernel/drivers/block/virtio_blk.ko.zst",
        "virtio,virtio_ring",
        &["virtio:d00000002v*"],
    ),
    (
        "kernel/fs/fuse/fuse.ko.xz",
        "",
        &["fs-fuse", "char-major-10-229"],
    ),
    (
        "kernel/fs/fuse/virtiofs.ko",
        "fuse,virtio,virtio_ring,crc32c",
        &["virtio:d0000001Av*"],
    ),
];

#[test]
fn parses_modinfo_of_a_hand_made_elf() {
    let elf = fake_module(&[
        "license=GPL",
        "depends=a,b-c",
        "alias=pci:v1*",
        "alias=fs-x",
    ]);
    let info = parse_modinfo(Path::new("x.ko"), &elf).unwrap();
    assert_eq!(info.depends, ["a", "b_c"]);
    assert_eq!(info.aliases, ["pci:v1*", "fs-x"]);
}

#[test]
fn exports_are_the_defined_ksymtab_symbols_and_softdeps_are_kept() {
    let elf = fake_module_exporting(
        &["softdep=pre: crc32c", "depends=", "softdep=post: x"],
        &["nft_do_chain", "__nft_reg_track_cancel", "nft_do_chain"],
    );
    let info = parse_modinfo(Path::new("m.ko"), &elf).unwrap();
    assert_eq!(info.exports, ["__nft_reg_track_cancel", "nft_do_chain"]);
    assert_eq!(info.softdeps, ["pre: crc32c", "post: x"]);
    assert!(
        parse_modinfo(Path::new("m.ko"), &fake_module(&["depends="]))
            .unwrap()
            .exports
            .is_empty()
    );
}

#[test]
fn not_an_elf_names_the_file() {
    let err = parse_modinfo(Path::new("bad.ko"), b"not an elf").unwrap_err();
    assert!(err.to_string().contains("bad.ko"), "{err}");
}

#[test]
fn elf_without_modinfo_is_rejected() {
    let mut elf = fake_module(&["depends="]);
    // Rename the section: ".modinfo" -> ".mXdinfo".
    let pos = elf.windows(8).position(|w| w == b".modinfo").unwrap();
    elf[pos + 2] = b'X';
    let err = parse_modinfo(Path::new("m.ko"), &elf).unwrap_err();
    assert!(matches!(err, KmodError::NoModinfo { .. }), "{err}");
}

#[test]
fn unsupported_compression_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.ko.bz2");
    fs::write(&path, b"x").unwrap();
    let err = read_module(&path).unwrap_err();
    assert!(err.to_string().contains(".bz2"), "{err}");
    assert!(err.to_string().contains("m.ko.bz2"), "{err}");
}

#[test]
fn one_set_of_buffers_reads_modules_of_every_compression_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let mut buffers = ModuleBuffers::default();
    // Largest first, so a stale tail of a longer module would show.
    for (path, field) in [
        (
            "a.ko.xz",
            "description=a long description of the first module",
        ),
        ("b.ko", "description=b"),
        ("c.ko.zst", "description=c"),
        ("d.ko.xz", "description=d"),
    ] {
        write_module(dir.path(), path, &[field.to_owned()], &[]);
        let file = dir.path().join(path);
        read_module_into(&file, &mut buffers).unwrap();
        assert_eq!(buffers.module(), &fake_module(&[field])[..], "{path}");
        assert_eq!(read_module(&file).unwrap(), fake_module(&[field]), "{path}");
    }
}

#[test]
fn a_damaged_compressed_module_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_module(dir.path(), "m.ko.xz", &["description=m".to_owned()], &[]);
    let path = dir.path().join("m.ko.xz");
    let mut bytes = fs::read(&path).unwrap();
    // Cut the stream in the middle of its compressed data.
    bytes.truncate(bytes.len() / 2);
    fs::write(&path, &bytes).unwrap();
    let err = read_module(&path).unwrap_err();
    assert!(matches!(err, KmodError::Decompress { .. }), "{err}");
    assert!(err.to_string().contains("m.ko.xz"), "{err}");
}

#[test]
fn module_names_are_normalized() {
    assert_eq!(
        module_name_of("kernel/a/virtio-rng.ko.xz").as_deref(),
        Some("virtio_rng")
    );
    assert_eq!(module_name_of("kernel/a/x.ko").as_deref(), Some("x"));
    assert_eq!(module_name_of("kernel/a/.ko"), None);
    assert_eq!(module_name_of("README"), None);
}

fn virtio_index() -> (tempfile::TempDir, ModuleIndex) {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        VIRTIO_TREE,
        &["kernel/lib/crc32c.ko", "kernel/fs/ext4/ext4.ko"],
    );
    let index = ModuleIndex::scan(dir.path(), "6.1.0-test").unwrap();
    (dir, index)
}

#[test]
fn closure_orders_dependencies_first_including_compressed_modules() {
    let (_dir, index) = virtio_index();
    let order = index
        .closure(&["virtio_pci", "virtio-blk", "virtiofs"])
        .unwrap();
    assert_eq!(
        order,
        [
            "virtio_ring",
            "virtio_pci_modern_dev",
            "virtio_pci_legacy_dev",
            "virtio",
            "virtio_pci",
            "virtio_blk",
            "fuse",
            "virtiofs"
        ]
    );
}

#[test]
fn builtin_modules_are_skipped() {
    let (_dir, index) = virtio_index();
    assert_eq!(index.closure(&["ext4", "fuse"]).unwrap(), ["fuse"]);
}

#[test]
fn unknown_module_is_an_error_with_suggestions() {
    let (_dir, index) = virtio_index();
    let err = index.closure(&["virtio_bkl"]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown kernel module `virtio_bkl`"), "{msg}");
    assert!(msg.contains("6.1.0-test"), "{msg}");
    assert!(msg.contains("virtio_blk"), "{msg}");
}

#[test]
fn missing_dependency_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("kernel/a.ko", "nothere", &[])], &[]);
    let err = ModuleIndex::scan(dir.path(), "v").unwrap_err();
    assert!(
        err.to_string().contains("`a` depends on `nothere`"),
        "{err}"
    );
}

#[test]
fn dependency_cycle_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[("kernel/a.ko", "b", &[]), ("kernel/b.ko", "a", &[])],
        &[],
    );
    let index = ModuleIndex::scan(dir.path(), "v").unwrap();
    let err = index.closure(&["a"]).unwrap_err();
    assert_eq!(err.to_string(), "module dependency cycle: a -> b -> a");
}

#[test]
fn duplicate_module_names_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[("kernel/x/a.ko", "", &[]), ("kernel/y/a.ko.xz", "", &[])],
        &[],
    );
    let err = ModuleIndex::scan(dir.path(), "v").unwrap_err();
    assert!(err.to_string().contains("module `a` exists twice"), "{err}");
}

#[test]
fn dep_file_lists_transitive_deps_in_reverse_load_order_and_round_trips() {
    let (dir, index) = virtio_index();
    let dep = index.render_dep(None, &|m| m.path.clone()).unwrap();
    assert!(
        dep.contains(
            "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko \
             kernel/drivers/virtio/virtio_pci_legacy_dev.ko \
             kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko\n"
        ),
        "{dep}"
    );
    assert!(
        dep.contains("kernel/drivers/virtio/virtio_ring.ko:\n"),
        "{dep}"
    );
    let alias = index.render_alias(None);
    assert!(
        alias.contains("alias virtio:d00000002v* virtio_blk\n"),
        "{alias}"
    );
    assert!(alias.contains("alias fs-fuse fuse\n"), "{alias}");

    fs::write(dir.path().join("modules.dep"), &dep).unwrap();
    fs::write(dir.path().join("modules.alias"), &alias).unwrap();
    let loaded = ModuleIndex::load(dir.path(), "6.1.0-test").unwrap();
    assert_eq!(
        loaded.closure(&["virtiofs"]).unwrap(),
        index.closure(&["virtiofs"]).unwrap()
    );
    assert_eq!(loaded.aliases, index.aliases);
    assert_eq!(loaded.builtin, index.builtin);
}

#[test]
fn rendering_is_deterministic_and_subsettable() {
    let (_dir, a) = virtio_index();
    let (_dir2, b) = virtio_index();
    let path = |m: &Module| m.path.clone();
    assert_eq!(
        a.render_dep(None, &path).unwrap(),
        b.render_dep(None, &path).unwrap()
    );
    let subset: BTreeSet<String> = ["fuse".to_owned()].into();
    assert_eq!(
        a.render_dep(Some(&subset), &path).unwrap(),
        "kernel/fs/fuse/fuse.ko.xz:\n"
    );
    assert_eq!(
        a.render_alias(Some(&subset)),
        "# Aliases extracted from modules themselves.\nalias char-major-10-229 fuse\nalias fs-fuse fuse\n"
    );
}

#[test]
fn malformed_dep_file_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("modules.dep"), "kernel/a.ko:\ngarbage\n").unwrap();
    let err = ModuleIndex::load(dir.path(), "v").unwrap_err();
    assert!(
        err.to_string()
            .contains("modules.dep:2: malformed line `garbage`"),
        "{err}"
    );
}

#[test]
fn dep_file_paths_leaving_the_tree_are_malformed() {
    for line in ["../../etc/shadow.ko:", "/etc/x.ko:", "kernel/a.ko: ../b.ko"] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("modules.dep"), format!("{line}\n")).unwrap();
        let err = ModuleIndex::load(dir.path(), "v").unwrap_err();
        assert!(
            err.to_string().contains("modules.dep:1: malformed line"),
            "{line}: {err}"
        );
    }
}
