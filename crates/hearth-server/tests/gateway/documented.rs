//! What README promises is tested: every error code it names is asserted by some test, and
//! every setting in its configuration table is read by the one configuration module and
//! exercised by some test. A code or setting added to README without a test fails here.

use std::collections::BTreeSet;

use super::*;

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Backticked words of README that name error codes: `CamelCase` alone or after a status
/// (`429 NodeMemoryFull`). Lambda invocation types and /proc field names are not codes.
fn readme_codes(readme: &str) -> BTreeSet<String> {
    const NOT_CODES: &[&str] = &["RequestResponse", "DryRun", "VmRSS"];
    // Lambda's operation and field names, which README's Lambda API section lists.
    const LAMBDA_NAMES: &[&str] = &[
        "ListFunctions",
        "GetFunction",
        "GetFunctionConfiguration",
        "CreateFunction",
        "UpdateFunctionCode",
        "UpdateFunctionConfiguration",
        "DeleteFunction",
        "PublishVersion",
        "ListVersionsByFunction",
        "ZipFile",
        "EphemeralStorage",
        "FileSystemConfigs",
        "ImageUri",
        "VpcConfig",
        "MemorySize",
        "PackageType",
        "CodeSha256",
        "RevisionId",
        "RepositoryType",
        "FunctionArn",
        "S3Bucket",
        "S3Key",
        "NextMarker",
    ];
    let mut codes = BTreeSet::new();
    for quoted in readme.split('`').skip(1).step_by(2) {
        let word = quoted.rsplit(' ').next().unwrap_or_default();
        let status_first = quoted.split(' ').count() == 1
            || quoted.split(' ').next().is_some_and(|s| s.len() == 3 && s.parse::<u16>().is_ok());
        let camel = word.len() > 3
            && word.starts_with(|c: char| c.is_ascii_uppercase())
            && word.chars().all(|c| c.is_ascii_alphanumeric())
            && word.chars().skip(1).any(|c| c.is_ascii_uppercase())
            && word.chars().any(|c| c.is_ascii_lowercase());
        if status_first && camel && !NOT_CODES.contains(&word) && !LAMBDA_NAMES.contains(&word) {
            codes.insert(word.to_owned());
        }
    }
    codes
}

/// The text of every test: the crates' test folders, their in-file test modules, and the
/// test fixtures in their sources (`fixtures.rs`: hostile archives with the code each must
/// be refused with, which the tests run through).
fn all_tests() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("target") && !p.ends_with("fixtures") {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                match p.components().any(|c| c.as_os_str() == "tests") || p.ends_with("fixtures.rs") {
                    true => out.push_str(&text),
                    false => out.push_str(text.split("#[cfg(test)]").nth(1).unwrap_or_default()),
                }
            }
        }
    }
    let mut out = String::new();
    walk(&repo().join("crates"), &mut out);
    out
}

#[test]
fn every_error_code_readme_names_is_asserted_by_a_test() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let codes = readme_codes(&readme);
    assert!(codes.len() > 25, "README's codes were found: {codes:?}");
    for sure in ["FunctionNotFound", "TooManyRequests", "InstanceUnavailable", "ZipSymlinkEscape"] {
        assert!(codes.contains(sure), "{sure} in {codes:?}");
    }
    let tests = all_tests();
    let untested: Vec<&String> = codes.iter().filter(|c| !tests.contains(&format!("\"{c}\""))).collect();
    assert!(untested.is_empty(), "README names codes no test asserts: {untested:?}");
}

#[test]
fn every_setting_readme_lists_is_read_in_one_place_and_tested() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let table = readme.split("## Configuration").nth(1).unwrap().split("\n## ").next().unwrap();
    let settings: BTreeSet<&str> = table
        .lines()
        .filter(|l| l.starts_with('|'))
        .flat_map(|l| l.split('`'))
        .filter(|w| w.starts_with("HEARTH_"))
        .map(|w| w.split('=').next().unwrap())
        .collect();
    assert!(settings.len() > 20 && settings.contains("HEARTH_QUEUE_WAIT_MS"), "{settings:?}");
    // The configuration module: config.rs and the files of its folder.
    let mut config = std::fs::read_to_string(repo().join("crates/hearth-cli/src/config.rs")).unwrap();
    for e in std::fs::read_dir(repo().join("crates/hearth-cli/src/config")).unwrap().flatten() {
        config.push_str(&std::fs::read_to_string(e.path()).unwrap());
    }
    let tests = all_tests();
    for s in settings {
        // HEARTH_LOG is read by the tracing set-up, the rest by the configuration module.
        assert!(config.contains(s) || s == "HEARTH_LOG", "{s} is not read by the configuration module");
        assert!(tests.contains(s), "README lists {s}, but no test sets it");
    }
}
