//! Debian's archive components a system's packages may come from
//! (`system.debian.components`): `main` always, and `contrib`, `non-free`
//! and `non-free-firmware` (device firmware, for bare metal) when a
//! definition asks. The private apt resolves against exactly these; the
//! lock records them (docs/releases.md, "Components").

use std::collections::BTreeSet;
use std::fmt;

/// One component of Debian's archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    Main,
    Contrib,
    NonFree,
    NonFreeFirmware,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::Main,
        Component::Contrib,
        Component::NonFree,
        Component::NonFreeFirmware,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Main => "main",
            Component::Contrib => "contrib",
            Component::NonFree => "non-free",
            Component::NonFreeFirmware => "non-free-firmware",
        }
    }

    pub fn parse(name: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// A set of components that always holds `main`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Components(BTreeSet<Component>);

impl Default for Components {
    /// `main` alone.
    fn default() -> Self {
        Components(BTreeSet::from([Component::Main]))
    }
}

impl Components {
    /// From component names; `main` is added when missing. The error names
    /// a word that is not a component.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Components, String> {
        let mut set = Components::default();
        for name in names {
            let c = Component::parse(name).ok_or_else(|| {
                format!(
                    "`{name}` is not a Debian archive component ({})",
                    Component::ALL.map(Component::name).join(", ")
                )
            })?;
            set.0.insert(c);
        }
        Ok(set)
    }

    /// Both sets' components.
    pub fn union(&self, other: &Components) -> Components {
        Components(self.0.union(&other.0).copied().collect())
    }

    /// Whether this is `main` alone.
    pub fn is_main_only(&self) -> bool {
        *self == Components::default()
    }

    /// The names in the archive's order (`main` first).
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|c| c.name()).collect()
    }
}

impl fmt::Display for Components {
    /// `main non-free-firmware`, as a sources file's `Components:` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_is_always_there_and_order_is_the_archives() {
        let c = Components::parse(["non-free-firmware", "contrib"]).unwrap();
        assert_eq!(c.to_string(), "main contrib non-free-firmware");
        assert!(Components::parse([]).unwrap().is_main_only());
        assert!(Components::parse(["main"]).unwrap().is_main_only());
        let err = Components::parse(["main", "firmware"]).unwrap_err();
        assert!(
            err.contains("`firmware`") && err.contains("non-free-firmware"),
            "{err}"
        );
        let u = c.union(&Components::parse(["non-free"]).unwrap());
        assert_eq!(u.to_string(), "main contrib non-free non-free-firmware");
    }
}
