//! The view of the lock file the step table needs.
//!
//! `pkgs.NAME` reaches the step table as a bare `deb` request naming a
//! package. The table pins it through a [`PackageIndex`] (implemented by the
//! lock file type in [`super::lock`]; defined here, below `graph`, so that
//! the lock does not depend on the step table): version, architecture, size and digest
//! become part of the step's parameters, so a changed pin changes the step's
//! placeholder and cache key. The `depends` lists let the table expand a
//! `packages` parameter to its dependency closure.

/// One package as pinned in `imago.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Size of the `.deb` in bytes.
    pub size: u64,
    /// SHA-256 of the `.deb`, lowercase hex.
    pub sha256: String,
    /// Names of the packages this one needs (alternatives already resolved).
    pub depends: Vec<String>,
}

/// Looks up pinned packages by name; `None` when the lock has no such package.
pub trait PackageIndex {
    fn get(&self, name: &str) -> Option<PinnedPackage>;
}

impl<T: PackageIndex + ?Sized> PackageIndex for &T {
    fn get(&self, name: &str) -> Option<PinnedPackage> {
        (**self).get(name)
    }
}

/// An in-memory index, for tests and for callers that assemble pins
/// themselves.
#[derive(Debug, Clone, Default)]
pub struct MemoryIndex {
    packages: std::collections::BTreeMap<String, PinnedPackage>,
}

impl MemoryIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, package: PinnedPackage) {
        self.packages.insert(package.name.clone(), package);
    }
}

impl PackageIndex for MemoryIndex {
    fn get(&self, name: &str) -> Option<PinnedPackage> {
        self.packages.get(name).cloned()
    }
}
