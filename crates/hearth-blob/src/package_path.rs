//! The one rule for what an entry name inside a package may be.

/// Why an entry name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathProblem {
    Absolute,
    Traversal,
    Malformed,
}

/// Normalises an entry name to `a/b/c` (both `/` and `\` separate; empty and `.` parts
/// dropped). Refuses absolute names, drive letters, `..` anywhere, and NUL bytes.
pub(crate) fn normalize(name: &str) -> Result<Vec<&str>, PathProblem> {
    if name.contains('\0') {
        return Err(PathProblem::Malformed);
    }
    if name.starts_with('/') || name.starts_with('\\') {
        return Err(PathProblem::Absolute);
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return Err(PathProblem::Absolute);
    }
    let mut parts = Vec::new();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err(PathProblem::Traversal),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(PathProblem::Malformed);
    }
    Ok(parts)
}

/// Whether a symlink at `link` (normalised parts) pointing at `target` stays inside the
/// package root.
pub(crate) fn symlink_stays_inside(link: &[&str], target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') || target.starts_with('\\') || target.contains('\0') {
        return false;
    }
    let mut depth = link.len().saturating_sub(1) as i64;
    for part in target.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
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
        assert_eq!(normalize("./"), Err(PathProblem::Malformed));
    }

    #[test]
    fn symlinks() {
        assert!(symlink_stays_inside(&["lib", "link"], "../main.py"));
        assert!(symlink_stays_inside(&["link"], "lib/x"));
        assert!(!symlink_stays_inside(&["link"], "../x"));
        assert!(!symlink_stays_inside(&["a", "link"], "../../x"));
        assert!(!symlink_stays_inside(&["link"], "/etc/shadow"));
        assert!(!symlink_stays_inside(&["link"], "a/../../x"));
    }
}
