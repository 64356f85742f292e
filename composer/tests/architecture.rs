//! The layering of the code: no module reaches back up.
//!
//! Reads the sources of the `imago` and `imago-vm-tests` crates (following
//! their `mod` declarations from `lib.rs`, `#[path]` included), collects every
//! `crate::…`, `super::…` and `self::…` path a file names — `use` trees with
//! their `{…}` groups, and paths in code — resolves each to the file that
//! defines it (following `pub use` re-exports), and builds two graphs:
//!
//! * the top-level modules of a crate (`composer/src/<module>`), and
//! * its files, where a file and the files of its own submodules may refer
//!   to each other (a `mod.rs` re-exports its children, which use its items),
//!   but no other cycle is allowed.
//!
//! Either graph having a cycle fails the test, naming the modules or files of
//! the cycle and one reference of each edge. Run it alone with
//! `cargo test -p imago --test architecture`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// One lexical token of Rust source; comments are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    /// `::`
    PathSep,
    /// A string literal's contents (raw and byte strings too).
    Str(String),
    Punct(char),
}

/// Splits Rust source into tokens, skipping comments, char literals and
/// lifetimes. Good enough for paths: no token inside a comment or a literal
/// is ever taken for code.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if (c == 'r' || (c == 'b' && at(i + 1) == 'r'))
            && matches!(at(i + usize::from(c == 'b') + 1), '#' | '"')
            && {
                // r"…", r#"…"#, br"…": a raw string, not an identifier `r`.
                let mut j = i + usize::from(c == 'b') + 1;
                while at(j) == '#' {
                    j += 1;
                }
                at(j) == '"'
            }
        {
            let mut j = i + usize::from(c == 'b') + 1;
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            let start = j;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#') {
                    break;
                }
                j += 1;
            }
            tokens.push(Token::Str(
                chars[start..j.min(chars.len())].iter().collect(),
            ));
            i = j + 1 + hashes;
        } else if c == '"' || (c == 'b' && at(i + 1) == '"') {
            let mut j = i + if c == 'b' { 2 } else { 1 };
            let mut value = String::new();
            while j < chars.len() && chars[j] != '"' {
                if chars[j] == '\\' {
                    j += 1;
                }
                if let Some(&ch) = chars.get(j) {
                    value.push(ch);
                }
                j += 1;
            }
            tokens.push(Token::Str(value));
            i = j + 1;
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{..}', b'x' handled via 'b' ident)
            // or a lifetime ('a).
            if at(i + 1) == '\\' {
                let mut j = i + 3;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word == "b" && at(i) == '\'' {
                // b'x' / b'\n'
                let mut j = i + 1;
                if at(j) == '\\' {
                    j += 1;
                }
                j += 1;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            tokens.push(Token::Ident(
                word.strip_prefix("r#").unwrap_or(&word).to_owned(),
            ));
        } else if c.is_ascii_digit() {
            while at(i).is_alphanumeric() || at(i) == '_' || at(i) == '.' && at(i + 1) != '.' {
                i += 1;
            }
        } else if c == ':' && at(i + 1) == ':' {
            tokens.push(Token::PathSep);
            i += 2;
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    tokens
}

/// A module path from the crate root, e.g. `["store", "path"]`.
type ModPath = Vec<String>;

/// One source file of a crate.
#[derive(Debug)]
struct File {
    /// Relative to the crate's `src/`.
    name: String,
    module: ModPath,
    tokens: Vec<Token>,
}

/// A crate's source files, loaded by following `mod` declarations.
#[derive(Debug)]
struct Crate {
    files: Vec<File>,
}

/// `mod name;` declarations of a file (outside inline modules), each with
/// its `#[path = "…"]` if it has one.
fn declared_modules(tokens: &[Token]) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let mut depth = 0_usize;
    let mut path_attr: Option<String> = None;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => depth = depth.saturating_sub(1),
            Token::Punct('#') if depth == 0 => {
                if let [
                    Token::Punct('['),
                    Token::Ident(attr),
                    Token::Punct('='),
                    Token::Str(value),
                    Token::Punct(']'),
                    ..,
                ] = &tokens[i + 1..]
                    && attr == "path"
                {
                    path_attr = Some(value.clone());
                }
            }
            Token::Ident(word) if word == "mod" && depth == 0 => {
                if let (Some(Token::Ident(name)), Some(Token::Punct(';'))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    found.push((name.clone(), path_attr.take()));
                }
            }
            Token::Punct(';') => {
                path_attr = None;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

impl Crate {
    /// Loads the crate rooted at `src/lib.rs` of `dir` from the disk.
    fn load(src: &Path) -> Crate {
        Crate::load_with(|name| std::fs::read_to_string(src.join(name)).ok())
    }

    /// Loads a crate through `read` (a file name relative to `src/`), starting
    /// at `lib.rs`.
    fn load_with(read: impl Fn(&str) -> Option<String>) -> Crate {
        let mut files = Vec::new();
        let mut pending = vec![("lib.rs".to_owned(), Vec::new())];
        while let Some((name, module)) = pending.pop() {
            let text = read(&name).unwrap_or_else(|| panic!("cannot read {name}"));
            let tokens = tokenize(&text);
            let path = Path::new(&name);
            let dir = path.parent().unwrap_or(Path::new("")).to_owned();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let own_dir = if matches!(stem, "lib" | "main" | "mod") {
                dir.clone()
            } else {
                dir.join(stem)
            };
            for (child, attr) in declared_modules(&tokens) {
                let file = match attr {
                    Some(attr) => dir.join(attr),
                    None => {
                        let flat = own_dir.join(format!("{child}.rs"));
                        let flat_name = flat.to_string_lossy().into_owned();
                        if read(&flat_name).is_some() {
                            flat
                        } else {
                            own_dir.join(&child).join("mod.rs")
                        }
                    }
                };
                let mut child_module = module.clone();
                child_module.push(child);
                pending.push((file.to_string_lossy().into_owned(), child_module));
            }
            files.push(File {
                name,
                module,
                tokens,
            });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Crate { files }
    }

    /// The file defining the module `module`, if any.
    fn file_of(&self, module: &[String]) -> Option<usize> {
        self.files.iter().position(|f| f.module == module)
    }

    /// The file whose module is the longest prefix of `path`, and the rest
    /// of the path (the item inside that file).
    fn owner<'p>(&self, path: &'p [String]) -> (usize, &'p [String]) {
        for len in (0..=path.len()).rev() {
            if let Some(file) = self.file_of(&path[..len]) {
                return (file, &path[len..]);
            }
        }
        unreachable!("the crate root is a file")
    }
}

/// A reference from one file to a module path of the same crate.
#[derive(Debug, Clone)]
struct Reference {
    /// The absolute module path named.
    target: ModPath,
}

/// Resolves a path written in a file whose current module is `current`:
/// `crate::a` → `[a]`, `super::b` → parent's `b`, `self::c` → own `c`.
fn absolute(current: &[String], written: &[String]) -> Option<ModPath> {
    let mut base: ModPath = current.to_vec();
    let mut rest = written;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Expands a `use` tree starting at `tokens[*i]` into the paths it names,
/// each prefixed with `prefix`; leaves `*i` after the tree.
fn use_tree(tokens: &[Token], i: &mut usize, prefix: &[String], out: &mut Vec<ModPath>) {
    let mut path = prefix.to_vec();
    loop {
        match tokens.get(*i) {
            Some(Token::Ident(word)) => {
                path.push(word.clone());
                *i += 1;
            }
            Some(Token::PathSep) => *i += 1,
            Some(Token::Punct('*')) => {
                *i += 1;
                out.push(path.clone());
                return;
            }
            Some(Token::Punct('{')) => {
                *i += 1;
                loop {
                    match tokens.get(*i) {
                        Some(Token::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Token::Punct(',')) => *i += 1,
                        None => return,
                        _ => use_tree(tokens, i, &path, out),
                    }
                }
            }
            _ => {
                // `as name` keeps the path; `self` in a group names the
                // group's module itself.
                if path.last().map(String::as_str) == Some("as") {
                    path.pop();
                }
                if let Some(pos) = path.iter().rposition(|s| s == "as") {
                    path.truncate(pos);
                }
                if path.len() > prefix.len().max(1)
                    && path.last().map(String::as_str) == Some("self")
                {
                    path.pop();
                }
                out.push(path);
                return;
            }
        }
    }
}

/// Every path a file names that starts with `crate`, `super` or `self`, and
/// every `use` of a child module by its bare name (`use child::Item` in the
/// module that declares `child`), each made absolute; also the names the
/// file binds with `pub use` (for following re-exports).
fn references(krate: &Crate, file: &File) -> (Vec<Reference>, BTreeMap<String, ModPath>) {
    let tokens = &file.tokens;
    let mut refs = Vec::new();
    let mut exports = BTreeMap::new();
    // Inline modules (`mod tests { … }`) change what `super` and `self` mean.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0_usize;
    let mut i = 0;
    let current = |inline: &[(String, usize)]| -> ModPath {
        let mut m = file.module.clone();
        m.extend(inline.iter().map(|(n, _)| n.clone()));
        m
    };
    while i < tokens.len() {
        match &tokens[i] {
            Token::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Token::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some(Token::Ident(name)), Some(Token::Punct('{'))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    inline.push((name.clone(), depth + 1));
                }
                i += 1;
            }
            Token::Ident(word) if word == "use" => {
                let public = i > 0 && matches!(&tokens[i - 1], Token::Ident(p) if p == "pub")
                    || i > 3
                        && matches!(&tokens[i - 1], Token::Punct(')'))
                        && matches!(&tokens[i - 4], Token::Ident(p) if p == "pub");
                i += 1;
                if matches!(tokens.get(i), Some(Token::PathSep)) {
                    i += 1;
                }
                let mut paths = Vec::new();
                use_tree(tokens, &mut i, &[], &mut paths);
                let here = current(&inline);
                for written in paths {
                    let resolved = absolute(&here, &written).or_else(|| {
                        // `use child::…` of a module declared here (the
                        // crate root's `pub use qemu::X`, say).
                        let first = written.first()?;
                        let mut child = here.clone();
                        child.push(first.clone());
                        krate.file_of(&child)?;
                        let mut full = here.clone();
                        full.extend(written.iter().cloned());
                        Some(full)
                    });
                    if let Some(target) = resolved {
                        if public
                            && inline.is_empty()
                            && let Some(name) = target.last()
                        {
                            exports.insert(name.clone(), target.clone());
                        }
                        refs.push(Reference { target });
                    }
                }
            }
            Token::Ident(word)
                if matches!(word.as_str(), "crate" | "super" | "self")
                    && matches!(tokens.get(i + 1), Some(Token::PathSep))
                    && !matches!(tokens.get(i.wrapping_sub(1)), Some(Token::Punct('$'))) =>
            {
                let mut written = vec![word.clone()];
                let mut j = i + 1;
                while let (Some(Token::PathSep), Some(Token::Ident(next))) =
                    (tokens.get(j), tokens.get(j + 1))
                {
                    written.push(next.clone());
                    j += 2;
                }
                if let Some(target) = absolute(&current(&inline), &written) {
                    refs.push(Reference { target });
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    (refs, exports)
}

/// The references of every file, resolved to files (re-exports followed).
/// Each edge keeps one example of the path that made it.
fn file_edges(krate: &Crate) -> BTreeMap<(usize, usize), String> {
    let scanned: Vec<_> = krate.files.iter().map(|f| references(krate, f)).collect();
    let mut edges = BTreeMap::new();
    for (from, (refs, _)) in scanned.iter().enumerate() {
        for reference in refs {
            let mut target = reference.target.clone();
            // Follow `pub use` re-exports to the file that defines the item.
            for _ in 0..8 {
                let (owner, rest) = krate.owner(&target);
                let Some(next) = rest
                    .first()
                    .and_then(|name| scanned[owner].1.get(name))
                    .filter(|next| **next != target)
                else {
                    break;
                };
                let mut next = next.clone();
                next.extend(rest[1..].iter().cloned());
                target = next;
            }
            let (to, _) = krate.owner(&target);
            if to != from {
                edges
                    .entry((from, to))
                    .or_insert_with(|| reference.target.join("::"));
            }
        }
    }
    edges
}

/// Whether the module `inner` is `outer` or inside it.
fn within(inner: &[String], outer: &[String]) -> bool {
    inner.starts_with(outer)
}

/// The cycles of a graph over `names`, each as its members and the edges
/// among them (with their example paths).
fn cycles(names: &[String], edges: &BTreeMap<(usize, usize), String>) -> Vec<String> {
    let mut graph = DiGraph::<(), ()>::new();
    let nodes: Vec<NodeIndex> = names.iter().map(|_| graph.add_node(())).collect();
    for &(from, to) in edges.keys() {
        graph.add_edge(nodes[from], nodes[to], ());
    }
    tarjan_scc(&graph)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .map(|scc| {
            let members: BTreeSet<usize> = scc.iter().map(|n| n.index()).collect();
            let mut text = members
                .iter()
                .map(|&m| names[m].as_str())
                .collect::<Vec<_>>()
                .join(" ⇄ ");
            for ((from, to), example) in edges {
                if members.contains(from) && members.contains(to) {
                    text.push_str(&format!(
                        "\n    {} → {} (`{example}`)",
                        names[*from], names[*to]
                    ));
                }
            }
            text
        })
        .collect()
}

/// Cycles between the crate's top-level modules.
fn module_cycles(krate: &Crate) -> Vec<String> {
    let mut tops: Vec<String> = krate
        .files
        .iter()
        .filter_map(|f| f.module.first().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    tops.insert(0, "(crate root)".to_owned());
    let top_of = |file: usize| -> usize {
        krate.files[file]
            .module
            .first()
            .and_then(|m| tops.iter().position(|t| t == m))
            .unwrap_or(0)
    };
    let mut edges = BTreeMap::new();
    for ((from, to), example) in file_edges(krate) {
        let (a, b) = (top_of(from), top_of(to));
        if a != b && a != 0 && b != 0 {
            edges.entry((a, b)).or_insert(example);
        }
    }
    cycles(&tops, &edges)
}

/// Cycles between files, apart from a module's file and its submodules'.
fn file_cycles(krate: &Crate) -> Vec<String> {
    let names: Vec<String> = krate.files.iter().map(|f| f.name.clone()).collect();
    let edges: BTreeMap<_, _> = file_edges(krate)
        .into_iter()
        .filter(|((from, to), _)| {
            let (a, b) = (&krate.files[*from].module, &krate.files[*to].module);
            !within(a, b) && !within(b, a)
        })
        .collect();
    cycles(&names, &edges)
}

fn source_dir(crate_dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("src")
}

fn assert_acyclic(what: &str, found: Vec<String>) {
    assert!(
        found.is_empty(),
        "{what} depend on each other in a cycle; move the shared item to the lower one:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn composer_modules_are_layered() {
    let krate = Crate::load(&source_dir("composer"));
    assert!(
        krate.files.len() > 50,
        "found only {} files",
        krate.files.len()
    );
    assert_acyclic("the modules of composer/src", module_cycles(&krate));
}

#[test]
fn composer_files_are_layered() {
    let krate = Crate::load(&source_dir("composer"));
    assert_acyclic("files of composer/src", file_cycles(&krate));
}

#[test]
fn vm_tests_files_are_layered() {
    let krate = Crate::load(&source_dir("vm-tests"));
    assert!(
        krate.files.len() > 10,
        "found only {} files",
        krate.files.len()
    );
    assert_acyclic("files of vm-tests/src", file_cycles(&krate));
}

fn planted(files: &[(&str, &str)]) -> Crate {
    let files: BTreeMap<String, String> = files
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    Crate::load_with(|name| files.get(name).cloned())
}

#[test]
fn a_planted_module_cycle_is_found() {
    let krate = planted(&[
        (
            "lib.rs",
            "pub mod store;\npub mod builders;\npub mod boot;\n",
        ),
        (
            "store/mod.rs",
            "mod path;\npub use path::StorePath;\n// crate::boot::Nothing in a comment\n",
        ),
        ("store/path.rs", "pub struct StorePath;\n"),
        (
            "builders.rs",
            "use crate::{store::{self, StorePath}, boot::kernel};\npub trait Builder {}\n",
        ),
        ("boot/mod.rs", "pub mod kernel;\n"),
        (
            "boot/kernel.rs",
            "pub fn k() { let s = \"crate::store\"; super::super::builders::f(); }\n",
        ),
    ]);
    let found = module_cycles(&krate);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("boot ⇄ builders"), "{}", found[0]);
    assert!(
        found[0].contains("builders → boot (`boot::kernel`)"),
        "{}",
        found[0]
    );
    assert!(
        found[0].contains("boot → builders (`builders::f`)"),
        "{}",
        found[0]
    );
    // Removing the back-edge removes the cycle.
    let krate = planted(&[
        ("lib.rs", "pub mod builders;\npub mod boot;\n"),
        ("builders.rs", "use crate::{boot::kernel};\n"),
        ("boot/mod.rs", "pub mod kernel;\n"),
        (
            "boot/kernel.rs",
            "pub fn k() { let s = \"crate::builders\"; }\n",
        ),
    ]);
    assert_eq!(module_cycles(&krate), Vec::<String>::new());
}

#[test]
fn a_planted_file_cycle_through_a_reexport_is_found() {
    let krate = planted(&[
        ("lib.rs", "pub mod store;\n"),
        (
            "store/mod.rs",
            "pub mod digest;\npub mod path;\npub use path::StorePath;\n",
        ),
        (
            "store/digest.rs",
            "use super::StorePath;\n#[cfg(test)]\nmod tests { use super::Digest; }\npub struct Digest;\n",
        ),
        (
            "store/path.rs",
            "pub struct StorePath(super::digest::Digest);\n",
        ),
    ]);
    let found = file_cycles(&krate);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("store/digest.rs ⇄ store/path.rs"),
        "{}",
        found[0]
    );
    // A module's file and its children may use each other.
    let krate = planted(&[
        ("lib.rs", "pub mod store;\n"),
        (
            "store/mod.rs",
            "pub mod path;\npub use path::P;\npub struct S;\n",
        ),
        ("store/path.rs", "use super::S;\npub struct P;\n"),
    ]);
    assert_eq!(file_cycles(&krate), Vec::<String>::new());
}

#[test]
fn paths_in_comments_and_strings_are_not_references() {
    let tokens =
        tokenize("// crate::a\n/* crate::b /* nested */ */ r#\"crate::c\"# 'x' crate::d 'a");
    assert_eq!(
        tokens,
        vec![
            Token::Str("crate::c".into()),
            Token::Ident("crate".into()),
            Token::PathSep,
            Token::Ident("d".into()),
        ]
    );
}

/// The layers of `composer/src`, lowest first (docs/ARCHITECTURE.md,
/// "Layers"): a module may use modules of lower layers only, none of its
/// own layer or above. A module not listed here is still checked for
/// cycles; list it when it is added.
const COMPOSER_LAYERS: &[&[&str]] = &[
    &["codes"],
    &["arch", "store", "utc", "fsio", "dirs"],
    &["builders", "generations", "remote", "system_eval"],
    &["boot", "debian"],
    &["cache", "graph", "image", "settings"],
    &["pipeline"],
    &["cli"],
];

/// The edges between top-level modules that do not go down the layers.
fn layer_violations(krate: &Crate, layers: &[&[&str]]) -> Vec<String> {
    let layer_of = |module: &str| layers.iter().position(|l| l.contains(&module));
    let mut found = BTreeSet::new();
    for ((from, to), example) in file_edges(krate) {
        let (Some(a), Some(b)) = (
            krate.files[from].module.first(),
            krate.files[to].module.first(),
        ) else {
            continue;
        };
        if a == b {
            continue;
        }
        if let (Some(la), Some(lb)) = (layer_of(a), layer_of(b))
            && la <= lb
        {
            found.insert(format!(
                "{a} (layer {}) uses {b} (layer {}): {} names `{example}`",
                la + 1,
                lb + 1,
                krate.files[from].name
            ));
        }
    }
    found.into_iter().collect()
}

#[test]
fn composer_modules_follow_the_layer_order() {
    let krate = Crate::load(&source_dir("composer"));
    let violations = layer_violations(&krate, COMPOSER_LAYERS);
    assert!(
        violations.is_empty(),
        "a module of composer/src uses one of its own layer or above \
         (COMPOSER_LAYERS in this file, \"Layers\" in docs/ARCHITECTURE.md):\n  {}",
        violations.join("\n  ")
    );
    let listed: BTreeSet<&str> = COMPOSER_LAYERS
        .iter()
        .flat_map(|l| l.iter().copied())
        .collect();
    for file in &krate.files {
        if let Some(top) = file.module.first() {
            assert!(
                listed.contains(top.as_str()),
                "composer/src/{top} is in no layer: add it to COMPOSER_LAYERS"
            );
        }
    }
}

#[test]
fn a_planted_layer_violation_is_found() {
    let krate = planted(&[
        ("lib.rs", "pub mod store;\npub mod builders;\n"),
        ("store.rs", "fn f() { crate::builders::g(); }\n"),
        ("builders.rs", "pub fn g() {}\n"),
    ]);
    let found = layer_violations(&krate, &[&["store"], &["builders"]]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("store (layer 1) uses builders (layer 2)"),
        "{}",
        found[0]
    );
    assert!(layer_violations(&krate, &[&["builders"], &["store"]]).is_empty());
}
