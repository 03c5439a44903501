//! The library's module graph has no import cycle: each file's module may
//! use others only "downward". An edge `a -> b` is any path in `a`'s file
//! (outside comments and its unit tests) that names module `b`: `crate::b`,
//! `super::b`, `self::b`, or `b::` for a child `b`. A folder's `mod.rs`
//! re-exporting its children counts too, so a child that used its parent's
//! items would close a cycle: shared items live in files of their own
//! (`runtime/shared.rs`, `client/facade.rs`, `db/exec.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `runtime/producer.rs` → `runtime::producer`; `db/mod.rs` → `db`;
/// `lib.rs` → the empty path.
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The source without line comments and without a trailing unit-test
/// module.
fn code(src: &str) -> String {
    let src = match src.find("#[cfg(test)]\nmod tests") {
        Some(i) => &src[..i],
        None => src,
    };
    src.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Every `a::b::c` path in `code`, as its segments.
fn paths(code: &str) -> Vec<Vec<String>> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if !is_ident(bytes[i]) || (i > 0 && (is_ident(bytes[i - 1]) || bytes[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let mut segs = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < bytes.len() && is_ident(bytes[j]) {
                j += 1;
            }
            segs.push(bytes[start..j].iter().collect::<String>());
            if j + 2 < bytes.len() && bytes[j] == ':' && bytes[j + 1] == ':' && is_ident(bytes[j + 2]) {
                j += 2;
            } else {
                break;
            }
        }
        // `use super::{a, b}`: each name in the braces too.
        if j + 2 < bytes.len() && bytes[j] == ':' && bytes[j + 1] == ':' && bytes[j + 2] == '{' {
            let end = code[..].chars().skip(j + 3).position(|c| c == '}').map_or(bytes.len(), |p| j + 3 + p);
            let inner: String = bytes[j + 3..end].iter().collect();
            for item in inner.split(',') {
                let first = item.trim().split(|c: char| !is_ident(c)).next().unwrap_or("");
                if !first.is_empty() {
                    let mut p = segs.clone();
                    p.push(first.to_owned());
                    out.push(p);
                }
            }
        }
        if segs.len() > 1 {
            out.push(segs);
        }
        i = j.max(i + 1);
    }
    out
}

/// The module a path in module `from` names, if any: the longest prefix
/// that is a module of the crate.
fn resolve(mods: &BTreeSet<String>, from: &str, path: &[String]) -> Option<String> {
    let mut base: Vec<&str> = if from.is_empty() { Vec::new() } else { from.split("::").collect() };
    let mut rest = path;
    match path[0].as_str() {
        "crate" => {
            base.clear();
            rest = &path[1..];
        }
        "self" => rest = &path[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        // A bare path: only a child module of `from` counts.
        first => {
            let child = if from.is_empty() { first.to_owned() } else { format!("{from}::{first}") };
            if !mods.contains(&child) {
                return None;
            }
        }
    }
    let mut best = None;
    for k in 1..=rest.len() {
        let mut cand: Vec<&str> = base.clone();
        cand.extend(rest[..k].iter().map(String::as_str));
        let cand = cand.join("::");
        if mods.contains(&cand) {
            best = Some(cand);
        }
    }
    // Items re-exported at the crate root (`crate::Error`) name no module.
    best.filter(|m| !m.is_empty())
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        m: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == m) {
            let mut c = stack[i..].to_vec();
            c.push(m.to_owned());
            return Some(c);
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.to_owned());
        for n in &g[m] {
            if let Some(c) = visit(g, n, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|m| visit(graph, m, &mut Vec::new(), &mut done))
}

#[test]
fn the_library_s_modules_import_each_other_without_a_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&root, &mut all);
    let mods: BTreeSet<String> = all.iter().map(|f| module_of(&root, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = mods.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for f in &all {
        let from = module_of(&root, f);
        let src = code(&std::fs::read_to_string(f).unwrap());
        for p in paths(&src) {
            if let Some(to) = resolve(&mods, &from, &p)
                && to != from
                && !from.is_empty()
            {
                graph.get_mut(&from).unwrap().insert(to);
            }
        }
    }
    assert!(graph.values().map(BTreeSet::len).sum::<usize>() > 50, "the graph was read: {graph:?}");
    assert!(graph["runtime::producer"].contains("runtime::shared"), "edges are found: {graph:?}");
    if let Some(c) = cycle(&graph) {
        panic!("import cycle: {}", c.join(" -> "));
    }
}
