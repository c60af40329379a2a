//! The core (`src/`) is plain functions over plain data: no file of it may
//! use the actor system, the async runtime, Redis, the HTTP client, the file
//! system, the network or threads. Those belong to the shell (`actors/`),
//! which decides what runs where.

use std::path::{Path, PathBuf};

/// Crates and modules of the shell, as a path's first segments.
const FORBIDDEN: [&str; 10] = [
    "actix",
    "actix_rt",
    "actix_web",
    "tokio",
    "redis",
    "awc",
    "std::fs",
    "std::net",
    "std::thread",
    "std::process",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line: without its `//` comment and with string literals
/// blanked (a doc or a message may name Redis; only a path may not).
fn code_of(line: &str) -> String {
    let mut code = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '/' if chars.peek() == Some(&'/') => break,
            _ => code.push(c),
        }
    }
    code
}

/// The forbidden paths `code` names: `name::…`, `use name;`, and the
/// members of a `use std::{…}` group.
fn forbidden_in(code: &str) -> Vec<&'static str> {
    let flat: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let mut found = Vec::new();
    for name in FORBIDDEN {
        let at_path_start = |i: usize| {
            i == 0 || !flat[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':' || c == '.')
        };
        let named = flat.match_indices(name).any(|(i, _)| {
            let rest = &flat[i + name.len()..];
            at_path_start(i) && (rest.starts_with("::") || rest.starts_with(';') || rest.starts_with(" as"))
        }) || flat.starts_with(&format!("use{name};"))
            || flat.starts_with(&format!("use{name}::"));
        let grouped = name.strip_prefix("std::").is_some_and(|member| {
            flat.find("std::{").is_some_and(|open| {
                flat[open..]
                    .split(['{', '}', ','])
                    .any(|m| m == member || m.starts_with(&format!("{member}::")))
            })
        });
        if named || grouped {
            found.push(name);
        }
    }
    found
}

#[test]
fn the_guard_sees_what_it_must() {
    assert_eq!(forbidden_in("use std::thread;"), ["std::thread"]);
    assert_eq!(forbidden_in("use std::{fs, io};"), ["std::fs"]);
    assert_eq!(forbidden_in("    let t = std::thread::scope(|s| ());"), ["std::thread"]);
    assert_eq!(forbidden_in("use tokio::sync::mpsc;"), ["tokio"]);
    assert_eq!(forbidden_in("use actix::prelude::*;"), ["actix"]);
    assert_eq!(forbidden_in("let c = redis::cmd(x);"), ["redis"]);
    assert_eq!(forbidden_in(&code_of(r#"let key = "redis::x"; // std::fs::read"#)), Vec::<&str>::new());
    assert_eq!(forbidden_in("use crate::keys::redis_key;"), Vec::<&str>::new());
    assert_eq!(forbidden_in("use std::sync::Arc;"), Vec::<&str>::new());
    assert_eq!(forbidden_in("let r = &self.redis;"), Vec::<&str>::new());
}

#[test]
fn core_is_pure() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "found only {} files under {}", files.len(), src.display());
    let mut offences = Vec::new();
    for file in &files {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        // A `use` may span lines: join each statement up to its `;`.
        let mut statement = String::new();
        for (n, line) in text.lines().enumerate() {
            statement.push_str(&code_of(line));
            statement.push(' ');
            if statement.trim_start().starts_with("use ") && !line.contains(';') {
                continue;
            }
            for name in forbidden_in(statement.trim_start()) {
                offences.push(format!("{}:{}: {name}", file.display(), n + 1));
            }
            statement.clear();
        }
    }
    assert!(offences.is_empty(), "the core must not use the shell's crates or I/O:\n{}", offences.join("\n"));
}
