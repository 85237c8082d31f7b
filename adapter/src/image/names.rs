//! The names functions and types are known by in C++ and Rust, where the
//! DWARF name alone (`area`, `Point`) is not what a user writes: the
//! enclosing namespaces, classes and enums make it `geo::Shape::area` or
//! `core::option::Option<u32>::Some`, and a Rust function's mangled
//! linkage name, demangled as `rustc-demangle` prints it without its hash,
//! gives `crate::module::function` and `<T as Trait>::method`.
//!
//! A unit's named scopes are recorded while its DIEs are walked once, as
//! offset ranges (a DIE's subtree is a contiguous run of offsets), so the
//! scope of any DIE is found later by a binary search and a walk up its
//! parents, without keeping the tree.

use anyhow::Result;
use gimli::{AttributeValue, UnitOffset};

use super::dwarf::{Dwarf, R};
use super::Lang;

/// A namespace, class, struct, union or enum whose name qualifies the
/// names of what it contains.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    /// The unit offsets of its DIE and of the first DIE past its subtree.
    pub begin: usize,
    pub end: usize,
    /// The enclosing scope (index in the unit's list).
    pub parent: Option<usize>,
    /// Its qualified name: `geo::Shape`.
    pub path: String,
}

/// Builds a unit's scope list during one depth-first walk of its DIEs.
#[derive(Default)]
pub(super) struct ScopeWalk {
    pub scopes: Vec<Scope>,
    /// Scopes still open: (depth of the DIE, index).
    open: Vec<(isize, usize)>,
}

impl ScopeWalk {
    /// Called for every DIE in order, with its depth.
    pub fn visit(
        &mut self,
        d: &Dwarf,
        unit: &gimli::Unit<R>,
        entry: &gimli::DebuggingInformationEntry<R>,
        depth: isize,
    ) -> Result<()> {
        while let Some(&(open_depth, i)) = self.open.last() {
            if depth > open_depth {
                break;
            }
            self.scopes[i].end = entry.offset().0;
            self.open.pop();
        }
        let named = matches!(
            entry.tag(),
            gimli::DW_TAG_namespace
                | gimli::DW_TAG_structure_type
                | gimli::DW_TAG_class_type
                | gimli::DW_TAG_union_type
                | gimli::DW_TAG_enumeration_type
        );
        if !named || !entry.has_children() {
            return Ok(());
        }
        let name = match d.name(unit, entry, gimli::DW_AT_name)? {
            Some(n) => n,
            None if entry.tag() == gimli::DW_TAG_namespace => "(anonymous namespace)".into(),
            // An unnamed struct names nothing inside it.
            None => return Ok(()),
        };
        let parent = self.open.last().map(|&(_, i)| i);
        let path = match parent {
            Some(p) => format!("{}::{name}", self.scopes[p].path),
            None => name,
        };
        self.scopes.push(Scope {
            begin: entry.offset().0,
            end: usize::MAX,
            parent,
            path,
        });
        self.open.push((depth, self.scopes.len() - 1));
        Ok(())
    }
}

/// The qualified name of the scope enclosing the DIE at `at`, if any.
pub(super) fn scope_of(scopes: &[Scope], at: UnitOffset) -> Option<&str> {
    // The last scope opened before `at`; the one holding `at` is it or
    // one of its ancestors, since scopes nest.
    let i = scopes.partition_point(|s| s.begin < at.0);
    let mut cur = i.checked_sub(1)?;
    loop {
        let s = &scopes[cur];
        if at.0 < s.end {
            return Some(&s.path);
        }
        cur = s.parent?;
    }
}

/// `name` qualified by the scope around the DIE at `at`.
pub(super) fn qualify(scopes: &[Scope], at: UnitOffset, name: &str) -> String {
    match scope_of(scopes, at) {
        Some(path) => format!("{path}::{name}"),
        None => name.to_string(),
    }
}

/// A Rust symbol demangled without its hash (`main::work`,
/// `<main::Point as main::Area>::area`); `None` if it is not one.
pub fn demangle_rust(symbol: &str) -> Option<String> {
    let d = rustc_demangle::try_demangle(symbol).ok()?;
    Some(format!("{d:#}"))
}

impl Dwarf {
    /// The name a subprogram DIE is traced by, in its unit's language:
    /// Go and C by `DW_AT_name`; C++ qualified by its namespaces and
    /// classes; Rust by its demangled linkage name. The name may sit on
    /// the declaration the DIE completes (`DW_AT_specification`) or the
    /// abstract function it is a concrete copy of (`DW_AT_abstract_origin`,
    /// as for GCC's `.constprop`/`.isra` clones), which are followed.
    pub(super) fn function_name(
        &self,
        unit: &gimli::Unit<R>,
        lang: Lang,
        scopes: &[Scope],
        die: UnitOffset,
    ) -> Result<Option<String>> {
        let mut at = die;
        let mut name: Option<(String, UnitOffset)> = None;
        let mut linkage: Option<String> = None;
        for _ in 0..4 {
            let e = unit.entry(at)?;
            if linkage.is_none() {
                linkage = self.name(unit, &e, gimli::DW_AT_linkage_name)?;
            }
            if name.is_none() {
                name = self.name(unit, &e, gimli::DW_AT_name)?.map(|n| (n, at));
            }
            if name.is_some() && (linkage.is_some() || lang != Lang::Rust) {
                break;
            }
            let next = match e.attr_value(gimli::DW_AT_specification)? {
                Some(v) => Some(v),
                None => e.attr_value(gimli::DW_AT_abstract_origin)?,
            };
            match next {
                Some(AttributeValue::UnitRef(o)) => at = o,
                _ => break,
            }
        }
        Ok(match lang {
            Lang::Rust => match linkage.as_deref().and_then(demangle_rust) {
                Some(n) => Some(n),
                None => name.map(|(n, at)| qualify(scopes, at, &n)),
            },
            Lang::Cpp => name.map(|(n, at)| qualify(scopes, at, &n)),
            _ => name.map(|(n, _)| n).or(linkage),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(begin: usize, end: usize, parent: Option<usize>, path: &str) -> Scope {
        Scope {
            begin,
            end,
            parent,
            path: path.into(),
        }
    }

    #[test]
    fn a_die_is_named_by_the_innermost_scope_around_it() {
        // geo { Shape { } Point { } } other { }
        let scopes = [
            scope(10, 100, None, "geo"),
            scope(20, 40, Some(0), "geo::Shape"),
            scope(50, 60, Some(0), "geo::Point"),
            scope(200, 300, None, "other"),
        ];
        let at = |o| scope_of(&scopes, UnitOffset(o));
        assert_eq!(at(5), None);
        assert_eq!(at(10), None, "a scope's own DIE is outside it");
        assert_eq!(at(25), Some("geo::Shape"));
        assert_eq!(at(45), Some("geo"));
        assert_eq!(at(55), Some("geo::Point"));
        assert_eq!(at(70), Some("geo"));
        assert_eq!(at(150), None);
        assert_eq!(at(250), Some("other"));
        assert_eq!(qualify(&scopes, UnitOffset(25), "area"), "geo::Shape::area");
    }

    #[test]
    fn rust_symbols_lose_their_hash() {
        // Symbols rustc 1.95 wrote for `r.rs`, legacy and v0.
        let legacy = "_ZN36_$LT$r..Point$u20$as$u20$r..Area$GT$4area17h86ddbaed2936f8f3E";
        assert_eq!(
            demangle_rust(legacy).as_deref(),
            Some("<r::Point as r::Area>::area")
        );
        assert_eq!(
            demangle_rust("_RNvCs6GmmlP4bgsG_1r4work").as_deref(),
            Some("r::work")
        );
        assert_eq!(
            demangle_rust("_RNvXCs6GmmlP4bgsG_1rNtB2_5PointNtB2_4Area4area").as_deref(),
            Some("<r::Point as r::Area>::area")
        );
        assert_eq!(demangle_rust("work"), None);
    }
}
