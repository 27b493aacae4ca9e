//! README is tested: its `console` blocks run, in order, against a real server, and what
//! they show must be what the commands print; every `hearth …` line of its `sh` blocks must
//! name a command and flags that exist. So README cannot drift from the binary again.
//!
//! Matching, line by line: each shown output line must appear, in order, among the lines
//! the command printed (stdout and stderr, as one stream), compared word by word with runs of spaces
//! collapsed; a word with `…` in it matches any word with the same text around the `…`;
//! dates (`2026-11-25`), times (`17:58:32`) and ids (12 hex digits, UUIDs) match any of
//! their shape. The server's
//! addresses and the test's home are shown as README shows them (`127.0.0.1:8080`, `~/…`).

use std::os::unix::fs::symlink;

use super::*;

/// One `$ command` of a console block and the lines README shows after it.
struct Step {
    line: usize,
    command: String,
    shown: Vec<String>,
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

/// The fenced blocks of `kind` (`console`, `sh`): each block's first line number and lines.
fn blocks(text: &str, kind: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = vec![];
    let mut current: Option<(usize, Vec<String>)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_end() == format!("```{kind}") => current = Some((i + 2, vec![])),
            Some(_) if line.starts_with("```") => out.push(current.take().unwrap()),
            Some((_, lines)) => lines.push(line.to_owned()),
            None => {}
        }
    }
    out
}

fn steps(block: &(usize, Vec<String>)) -> Vec<Step> {
    let mut steps: Vec<Step> = vec![];
    for (i, line) in block.1.iter().enumerate() {
        match (line.strip_prefix("$ "), steps.last_mut()) {
            (Some(command), _) => steps.push(Step { line: block.0 + i, command: command.to_owned(), shown: vec![] }),
            (None, Some(step)) if !line.trim().is_empty() => step.shown.push(line.clone()),
            _ => {}
        }
    }
    steps
}

/// A word of output as compared: dates, times and ids (12 hex digits: instances, short
/// digests; UUIDs: triggers, tokens) by their shape, since each run has its own.
fn word_shape(word: &str) -> String {
    // Punctuation after a word (`ID:`) is compared as it is.
    let w = word.trim_end_matches([':', ',', ';']);
    let tail = &word[w.len()..];
    let shape: String = w
        .chars()
        .map(|c| match c {
            '0'..='9' => '9',
            'a'..='f' => 'x',
            c => c,
        })
        .collect();
    let hex = |s: &str| s.chars().all(|c| c == '9' || c == 'x');
    let uuid = shape.len() == 36 && shape.split('-').map(str::len).eq([8, 4, 4, 4, 12]) && hex(&shape.replace('-', ""));
    let shaped = match shape.as_str() {
        "9999-99-99" => "<date>",
        "99:99:99" => "<time>",
        s if s.len() == 12 && hex(s) => "<id>",
        _ if uuid => "<uuid>",
        _ => return word.to_owned(),
    };
    format!("{shaped}{tail}")
}

fn word_matches(shown: &str, got: &str) -> bool {
    match shown.split_once('…') {
        Some((before, after)) => {
            got.len() >= before.len() + after.len() && got.starts_with(before) && got.ends_with(after)
        }
        None => word_shape(shown) == word_shape(got),
    }
}

fn line_matches(shown: &str, got: &str) -> bool {
    let (s, g): (Vec<&str>, Vec<&str>) = (shown.split_whitespace().collect(), got.split_whitespace().collect());
    s.len() == g.len() && s.iter().zip(&g).all(|(a, b)| word_matches(a, b))
}

/// Output as README shows it: the server's addresses and this test's home in README's words.
fn as_readme_shows(out: &str, server: &Server, home: &Home) -> String {
    let home_dir = home.path().display().to_string();
    out.replace(&server.url, "http://127.0.0.1:8080")
        .replace(&server.trigger_url, "http://127.0.0.1:8081")
        .replace(&format!("{home_dir}/client.toml"), "~/.config/hearth/config.toml")
        .replace(&format!("{home_dir}/data"), "~/.local/share/hearth")
}

/// Checks that every shown line appears in `got`, in order.
fn check(step_line: usize, command: &str, shown: &[String], got: &str) {
    let got: Vec<&str> = got.lines().collect();
    let mut next = 0;
    for s in shown {
        match got[next..].iter().position(|g| line_matches(s, g)) {
            Some(i) => next += i + 1,
            None => panic!(
                "README line {step_line}: `{command}` shows\n    {s}\nwhich is not in what it printed (after the lines already matched):\n{}",
                got[next..].join("\n")
            ),
        }
    }
}

#[test]
fn readme_console_blocks_run_as_shown() {
    let home = Home::new();
    let server = home.up();
    let text = readme();
    let blocks = blocks(&text, "console");
    assert!(blocks.len() >= 4, "README's console blocks were found: {}", blocks.len());
    // Where the commands run: `hearth` on PATH, the examples where README's paths expect them.
    let work = home.path().join("work");
    let bin = home.path().join("bin");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    symlink(BIN, bin.join("hearth")).unwrap();
    symlink(repo().join("examples"), work.join("examples")).unwrap();
    // The WebAssembly examples, built as README's `sh` block builds them.
    hearth_wasm::test_support::example("wasm-hello", "wasm32-wasip1", "wasm-hello.wasm");
    hearth_wasm::test_support::example("wasm-http", "wasm32-wasip2", "wasm_http.wasm");
    hearth_wasm::test_support::rust_example("rust-hello");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut ran = 0;
    for block in &blocks {
        for step in steps(block) {
            if step.command == "scripts/up" {
                // The harness started the server as `scripts/up` does: its banner is checked.
                check(step.line, &step.command, &step.shown, &as_readme_shows(&server.banner, &server, &home));
                continue;
            }
            if step.command.starts_with("alias ") {
                continue;
            }
            let command = step
                .command
                .replace("http://127.0.0.1:8080", &server.url)
                .replace("http://127.0.0.1:8081", &server.trigger_url);
            // One stream, in the order a terminal shows it.
            let command = format!("exec 2>&1; {command}");
            let out = shell(&home).env("PATH", &path).current_dir(&work).args(["-c", &command]).output();
            let out = out.unwrap_or_else(|e| panic!("README line {}: cannot run sh: {e}", step.line));
            let printed = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "README line {}: `{}` failed: {printed}", step.line, step.command);
            check(step.line, &step.command, &step.shown, &as_readme_shows(&printed, &server, &home));
            ran += 1;
        }
    }
    assert!(ran >= 15, "README's commands ran: {ran}");
}

/// `sh`, in the home's environment (as `Home::cmd` runs the binary).
fn shell(home: &Home) -> Command {
    let mut c = Command::new("sh");
    c.env_clear()
        .env("HOME", home.path())
        .env("HEARTH_CLIENT_CONFIG", home.path().join("client.toml"))
        .env("HEARTH_LOG", "warn");
    c
}

#[test]
fn readme_hearth_lines_name_commands_and_flags_that_exist() {
    let text = readme();
    let mut checked = 0;
    for (first, lines) in blocks(&text, "sh") {
        for (i, line) in lines.iter().enumerate() {
            let Some(rest) = line.trim_start().strip_prefix("hearth ") else { continue };
            let words: Vec<&str> = rest.split('#').next().unwrap().split_whitespace().collect();
            // The command is the words before the first flag (placeholders such as `…` left
            // out); `--help` after them prints its flags.
            let path: Vec<&str> =
                words.iter().take_while(|w| !w.starts_with('-')).filter(|w| !w.contains('…')).copied().collect();
            let out = Command::new(BIN).args(&path).arg("--help").output().unwrap();
            let help = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "README line {}: `hearth {}` is not a command", first + i, path.join(" "));
            for flag in words.iter().filter(|w| w.starts_with("--")) {
                let flag = flag.split('=').next().unwrap();
                assert!(
                    help.contains(flag),
                    "README line {}: `hearth {}` has no flag {flag}",
                    first + i,
                    path.join(" ")
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "README's hearth lines were found: {checked}");
}
