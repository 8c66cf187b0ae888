//! The module graph of `src/` and of the stand-in's `sim/src/` has no
//! cycle: each top-level module imports only from modules that do not
//! import it back, directly or through others. Read from the source, so a
//! new `use` that closes a loop fails here with the loop spelled out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::harness::files::repo;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/a.rs`, `src/a/b.rs` → `a`).
fn top_module(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file without comments and string contents, enough to find
/// paths (`crate::x`, `use crate::{x, y::z}`).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if !in_str && c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// The top-level modules named after `crate::` in `code`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(i) = code[at..].find("crate::") {
        let start = at + i;
        at = start + "crate::".len();
        let before = start.checked_sub(1).map(|j| bytes[j] as char);
        if before.is_some_and(|c| c == '$' || c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e}}`: the first name of each item at depth 0.
            let mut depth = 0;
            let mut item = String::new();
            let mut expecting = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !item.is_empty() {
                            refs.insert(std::mem::take(&mut item));
                        }
                        expecting = true;
                    }
                    c if expecting && depth == 0 && (c.is_alphanumeric() || c == '_') => {
                        item.push(c)
                    }
                    _ if expecting && !item.is_empty() => {
                        refs.insert(std::mem::take(&mut item));
                        expecting = false;
                    }
                    _ => {}
                }
            }
            if !item.is_empty() {
                refs.insert(item);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                refs.insert(name);
            }
        }
    }
    refs
}

fn graph(root: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| top_module(root, f))
        .filter(|m| m != "main" && m != "lib")
        .collect();
    let mut g = Graph::new();
    for file in &files {
        let from = top_module(root, file);
        if from == "main" || from == "lib" {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let deps = g.entry(from.clone()).or_default();
        for to in crate_refs(&code) {
            if to != from && modules.contains(&to) {
                deps.insert(to);
            }
        }
    }
    g
}

/// A cycle of the graph, if there is one, as `a -> b -> a`.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &Graph,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let i = stack.iter().position(|s| s == m).unwrap();
                    let mut cycle = stack[i..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn assert_acyclic(root: &Path) {
    let g = graph(root);
    assert!(
        g.len() > 3,
        "{}: too few modules found: {g:?}",
        root.display()
    );
    if let Some(cycle) = find_cycle(&g) {
        let listing: Vec<String> = g
            .iter()
            .map(|(m, deps)| {
                format!(
                    "  {m} -> {}",
                    deps.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        panic!(
            "{}: the modules import each other in a cycle: {}\nthe graph:\n{}",
            root.display(),
            cycle.join(" -> "),
            listing.join("\n")
        );
    }
}

#[test]
fn module_graph_is_acyclic() {
    assert_acyclic(&repo().join("src"));
}

#[test]
fn sim_module_graph_is_acyclic() {
    assert_acyclic(&repo().join("sim/src"));
}

#[test]
fn the_cycle_check_finds_a_cycle_and_reads_grouped_imports() {
    let code = code_only(
        "use crate::{a, b::{c, d}, e::f};\n// crate::commented\nlet s = \"crate::in_string\";\nx = crate::g::h();\n$crate::macro_only\n",
    );
    let refs: Vec<String> = crate_refs(&code).into_iter().collect();
    assert_eq!(refs, ["a", "b", "e", "g"]);
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default();
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
}
