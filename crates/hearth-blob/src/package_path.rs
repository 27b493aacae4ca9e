//! The one rule for what an entry name inside a package may be, and the one for where its
//! symlinks may lead.

use std::collections::HashMap;

/// Longest part of an entry name, in bytes: the file systems' `NAME_MAX`.
pub const MAX_NAME_PART_BYTES: usize = 255;

/// Longest entry name, in bytes, so that a name and the folder it is unpacked into stay well
/// below the kernel's `PATH_MAX` (4,096).
pub const MAX_NAME_BYTES: usize = 1024;

/// Why an entry name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    Absolute,
    Traversal,
    Malformed,
    /// A part over [`MAX_NAME_PART_BYTES`] or the name over [`MAX_NAME_BYTES`]: it could
    /// never be unpacked.
    TooLong,
}

/// Normalises an entry name to `a/b/c` (both `/` and `\` separate; empty and `.` parts
/// dropped). Refuses absolute names, drive letters, `..` anywhere, NUL bytes, and names
/// too long to unpack.
pub fn normalize(name: &str) -> Result<Vec<&str>, PathProblem> {
    if name.contains('\0') {
        return Err(PathProblem::Malformed);
    }
    if name.starts_with('/') || name.starts_with('\\') {
        return Err(PathProblem::Absolute);
    }
    let mut parts = Vec::new();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err(PathProblem::Traversal),
            // A drive letter, also after `.` parts (`.\\C:\\x`): the name's normalised form
            // must be refused too.
            p if parts.is_empty() && is_drive(p) => return Err(PathProblem::Absolute),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(PathProblem::Malformed);
    }
    if name.len() > MAX_NAME_BYTES || parts.iter().any(|p| p.len() > MAX_NAME_PART_BYTES) {
        return Err(PathProblem::TooLong);
    }
    Ok(parts)
}

/// `C:` or `C:x`: a Windows drive, absolute or drive-relative.
fn is_drive(part: &str) -> bool {
    let b = part.as_bytes();
    b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic()
}

/// How many links one link may be nested through (Linux's `MAXSYMLINKS`).
pub const MAX_LINK_DEPTH: u32 = 40;

/// Why a symlink was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    /// Absolute, empty, or climbs above the package root at some step.
    Escapes,
    /// A loop, or more than [`MAX_LINK_DEPTH`] links nested.
    Unresolvable,
}

/// Where a walk through the package stands: an entry of the package (or its root), plus
/// how many names past it that the package does not hold.
#[derive(Debug, Clone, Copy)]
struct Place {
    node: usize,
    beyond: usize,
}

#[derive(Debug, Clone, Copy)]
enum Resolution {
    Pending,
    InProgress,
    /// Where the link leads, and how many links deep it nests (itself included).
    Done {
        at: Place,
        links: u32,
    },
}

struct Node<'a> {
    parent: usize,
    children: HashMap<&'a str, usize>,
    target: Option<&'a str>,
    resolution: Resolution,
}

/// The package's entries as a tree, to resolve its symlinks the way the kernel will once
/// they are unpacked.
///
/// The rule: a symlink is accepted only if following it, with every link of the package
/// met on the way followed too (the last component included), never climbs above the
/// package root, not even for one step, and ends within [`MAX_LINK_DEPTH`] nested links.
/// Checking each target on its own, by counting `..` against the link's depth, is unsound
/// as soon as a target passes through another link: with `s2 -> .`, the target
/// `s2/s2/../..` looks like it stays at the root but climbs two levels above it. Names the
/// package does not hold are taken as plain directories (the kernel would stop there), so
/// the check is never looser than the kernel. Entries are never written beneath a link
/// (validation refuses that first), so each link sits where its name says and the tree of
/// names is the tree the kernel will see. Each link is resolved once and remembered, so a
/// package of many long chained links costs time proportional to the length of its targets.
/// Legitimate shapes pass: `node_modules/.bin/x -> ../x/bin/x.js`, `lib.so -> lib.so.1 ->
/// lib.so.1.2`, `current -> releases/v2` with `data -> current/../shared`.
pub struct PackageTree<'a> {
    nodes: Vec<Node<'a>>,
}

impl<'a> PackageTree<'a> {
    pub fn new() -> Self {
        Self { nodes: vec![Node::new(0)] }
    }

    /// Adds an entry (normalised parts; `target` when it is a symlink) and returns its node.
    pub fn insert(&mut self, parts: &[&'a str], target: Option<&'a str>) -> usize {
        let mut at = 0;
        for part in parts {
            at = match self.nodes[at].children.get(part) {
                Some(&child) => child,
                None => {
                    self.nodes.push(Node::new(at));
                    let child = self.nodes.len() - 1;
                    self.nodes[at].children.insert(part, child);
                    child
                }
            };
        }
        if target.is_some() {
            self.nodes[at].target = target;
        }
        at
    }

    /// Checks that the symlink at `node` (from [`insert`](Self::insert)) resolves inside.
    pub fn check_link(&mut self, node: usize) -> Result<(), LinkProblem> {
        self.resolve(node, 1).map(|_| ())
    }

    /// Where the link at `node` leads and how many links deep it nests. `depth` counts the
    /// links being resolved on the way here, which bounds the recursion.
    fn resolve(&mut self, node: usize, depth: u32) -> Result<(Place, u32), LinkProblem> {
        let Some(target) = self.nodes[node].target else {
            return Ok((Place { node, beyond: 0 }, 0));
        };
        match self.nodes[node].resolution {
            Resolution::Done { at, links } => return Ok((at, links)),
            Resolution::InProgress => return Err(LinkProblem::Unresolvable),
            Resolution::Pending if depth > MAX_LINK_DEPTH => return Err(LinkProblem::Unresolvable),
            Resolution::Pending => {}
        }
        self.nodes[node].resolution = Resolution::InProgress;
        let walked = self.walk(Place { node: self.nodes[node].parent, beyond: 0 }, target, depth);
        self.nodes[node].resolution = Resolution::Pending;
        let (at, nested) = walked?;
        if nested >= MAX_LINK_DEPTH {
            return Err(LinkProblem::Unresolvable);
        }
        self.nodes[node].resolution = Resolution::Done { at, links: nested + 1 };
        Ok((at, nested + 1))
    }

    /// Follows `target` from the directory `from`, as the kernel would: only `/` separates
    /// (a `\` is part of a name, one the package cannot hold since entry names split on it).
    fn walk(&mut self, from: Place, target: &str, depth: u32) -> Result<(Place, u32), LinkProblem> {
        if target.is_empty() || target.starts_with(['/', '\\']) || target.contains('\0') {
            return Err(LinkProblem::Escapes);
        }
        let (mut at, mut nested) = (from, 0);
        for part in target.split('/') {
            match part {
                "" | "." => {}
                ".." if at.beyond > 0 => at.beyond -= 1,
                ".." if at.node == 0 => return Err(LinkProblem::Escapes),
                ".." => at.node = self.nodes[at.node].parent,
                name => match self.nodes[at.node].children.get(name).copied() {
                    Some(child) if at.beyond == 0 => {
                        let (next, d) = self.resolve(child, depth + 1)?;
                        (at, nested) = (next, nested.max(d));
                    }
                    _ => at.beyond += 1,
                },
            }
        }
        Ok((at, nested))
    }
}

impl Default for PackageTree<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl Node<'_> {
    fn new(parent: usize) -> Self {
        Node { parent, children: HashMap::new(), target: None, resolution: Resolution::Pending }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize("a/./b//c").unwrap(), ["a", "b", "c"]);
        assert_eq!(normalize("../x"), Err(PathProblem::Traversal));
        assert_eq!(normalize("a/../../x"), Err(PathProblem::Traversal));
        assert_eq!(normalize("a\\..\\x"), Err(PathProblem::Traversal));
        assert_eq!(normalize("/etc/passwd"), Err(PathProblem::Absolute));
        assert_eq!(normalize("C:/x"), Err(PathProblem::Absolute));
        // Found by fuzzing: `.\\x:` was accepted as `x:`, a name refused on its own.
        assert_eq!(normalize(".\\x:"), Err(PathProblem::Absolute));
        assert_eq!(normalize("./c:x/y"), Err(PathProblem::Absolute));
        assert_eq!(normalize("a/c:x").unwrap(), ["a", "c:x"]);
        assert_eq!(normalize("./"), Err(PathProblem::Malformed));
        let part = "p".repeat(MAX_NAME_PART_BYTES);
        assert_eq!(normalize(&format!("a/{part}")).unwrap(), ["a", &part]);
        assert_eq!(normalize(&format!("a/{part}x")), Err(PathProblem::TooLong));
        let long = format!("{part}/").repeat(4);
        assert!(long.len() <= MAX_NAME_BYTES && normalize(&long).is_ok());
        assert_eq!(normalize(&format!("{long}x")), Err(PathProblem::TooLong));
    }

    /// Builds a package of `(name, Some(target) for a link)` and checks every link in it.
    fn links(entries: &[(&str, Option<&str>)]) -> Vec<Result<(), LinkProblem>> {
        let parts: Vec<Vec<&str>> = entries.iter().map(|(name, _)| normalize(name).unwrap()).collect();
        let mut tree = PackageTree::new();
        let nodes: Vec<usize> = entries.iter().zip(&parts).map(|((_, t), p)| tree.insert(p, *t)).collect();
        entries.iter().zip(nodes).filter(|((_, t), _)| t.is_some()).map(|(_, n)| tree.check_link(n)).collect()
    }

    fn accepted(entries: &[(&str, Option<&str>)]) -> bool {
        links(entries).iter().all(Result::is_ok)
    }

    #[test]
    fn plain_links_stay_inside_or_not() {
        assert!(accepted(&[("lib/link", Some("../main.py")), ("main.py", None)]));
        assert!(accepted(&[("link", Some("lib/x"))]));
        assert!(accepted(&[("here", Some("."))]));
        assert!(accepted(&[("gone", Some("nothere/../x"))]));
        for (link, target) in [
            ("link", "../x"),
            ("a/link", "../../x"),
            ("link", "/etc/shadow"),
            ("link", "\\etc"),
            ("link", "a/../../x"),
            ("link", ""),
            ("link", "nothere/../../x"),
            // Out and back in is still out: the root has another name on every host.
            ("a/link", "../../pkg/a"),
        ] {
            assert_eq!(links(&[(link, Some(target))]), [Err(LinkProblem::Escapes)], "{link} -> {target}");
        }
    }

    #[test]
    fn legitimate_packages_keep_their_links() {
        assert!(accepted(&[
            ("node_modules/x/bin/x.js", None),
            ("node_modules/.bin/x", Some("../x/bin/x.js")),
            ("node_modules/.bin/y", Some("x")),
            ("lib/lib.so.1.2", None),
            ("lib/lib.so.1", Some("lib.so.1.2")),
            ("lib/lib.so", Some("lib.so.1")),
            ("releases/v2/app.py", None),
            ("releases/shared/data", None),
            ("current", Some("releases/v2")),
            ("data", Some("current/../shared/data")),
            ("self", Some(".")),
            ("app", Some("self/self/current/app.py")),
        ]));
    }

    #[test]
    fn chained_links_are_followed() {
        // Each target looks inside on its own; followed, `s2` is the root.
        assert_eq!(
            links(&[("s2", Some(".")), ("esc", Some("s2/s2/s2/s2/../../../.."))]),
            [Ok(()), Err(LinkProblem::Escapes)]
        );
        // Climbs out only after several hops through links to directories.
        let hops = [
            ("a/b/c/main.py", None),
            ("hop1", Some("a/b/c")),
            ("a/b/c/hop2", Some("../../..")),
            ("out", Some("hop1/hop2/hop1/hop2/..")),
        ];
        assert_eq!(links(&hops), [Ok(()), Ok(()), Err(LinkProblem::Escapes)]);
        // `..` after a link goes to the parent of where the link leads, not of the link.
        assert_eq!(links(&[("a/b/c", None), ("l", Some("a/b")), ("x", Some("l/../.."))]), [Ok(()), Ok(())]);
        assert_eq!(
            links(&[("a/b/c", None), ("l", Some("a/b")), ("x", Some("l/../../.."))])[1],
            Err(LinkProblem::Escapes)
        );
        // Found by fuzzing: `\` separates entry names but not a link's target, where the
        // kernel takes `x\y` as one name: `x\y/../..` climbs one level above the link.
        assert_eq!(links(&[("esc", Some("x\\y/../.."))]), [Err(LinkProblem::Escapes)]);
        assert_eq!(links(&[("d/up", Some("a\\b/../.."))]), [Ok(())]);
        // A link that only escapes as the last component of another is still followed.
        assert_eq!(links(&[("d/up", Some("../..")), ("x", Some("d/up"))]), [Err(LinkProblem::Escapes); 2]);
    }

    #[test]
    fn loops_and_deep_chains_are_refused() {
        assert_eq!(links(&[("a", Some("b/x")), ("b", Some("a/y"))]), [Err(LinkProblem::Unresolvable); 2]);
        assert_eq!(links(&[("a", Some("a"))]), [Err(LinkProblem::Unresolvable)]);
        let chain = |n: usize| {
            let names: Vec<String> = (0..=n).map(|i| format!("l{i}")).collect();
            let mut entries: Vec<(String, Option<String>)> =
                (0..n).map(|i| (names[i].clone(), Some(names[i + 1].clone()))).collect();
            entries.push((names[n].clone(), None));
            let borrowed: Vec<(&str, Option<&str>)> =
                entries.iter().map(|(name, t)| (name.as_str(), t.as_deref())).collect();
            accepted(&borrowed)
        };
        assert!(chain(MAX_LINK_DEPTH as usize));
        assert!(!chain(MAX_LINK_DEPTH as usize + 1));
    }

    #[test]
    fn links_through_links_are_resolved_once() {
        // 30 levels of links, each through its level below a thousand times, then 2,000
        // links through the top one: followed afresh each time, this would never end.
        let mut owned: Vec<(String, String)> = vec![("m0".into(), ".".into())];
        for level in 1..30 {
            owned.push((format!("m{level}"), format!("m{}/", level - 1).repeat(1000)));
        }
        owned.extend((0..2_000).map(|i| (format!("x{i}"), "m29/".repeat(1000))));
        let entries: Vec<(&str, Option<&str>)> = owned.iter().map(|(n, t)| (n.as_str(), Some(t.as_str()))).collect();
        let started = std::time::Instant::now();
        assert!(accepted(&entries));
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }
}
