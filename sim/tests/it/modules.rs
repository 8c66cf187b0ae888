//! The sim's modules import each other as a DAG: a module cycle in `src/` fails here.
//! The graph is read from the source: every `crate::NAME` (also inside `use crate::{a, b}`)
//! in `src/NAME.rs` is an edge; comments are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut g = BTreeMap::new();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("rs") {
            continue;
        }
        let name = p.file_stem().unwrap().to_str().unwrap().to_string();
        if name == "main" {
            continue; // the crate root declares every module
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let mut deps = BTreeSet::new();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                let before = rest[..i].chars().last();
                rest = &rest[i + "crate::".len()..];
                if before == Some('$') {
                    continue; // `$crate::` in a macro of this module
                }
                let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                    group
                        .split('}')
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(|s| s.trim().split("::").next().unwrap_or(""))
                        .collect()
                } else {
                    vec![rest
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or("")]
                };
                for n in names.into_iter().filter(|n| !n.is_empty() && *n != name) {
                    deps.insert(n.to_string());
                }
            }
        }
        g.insert(name, deps);
    }
    g
}

/// A cycle as a list of modules, if any.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(c) = visit(n, g, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn module_imports_form_a_dag() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(g.len() > 10, "modules not found: {g:?}");
    assert!(g["servers"].contains("api"), "edges not read: {g:?}");
    if let Some(c) = find_cycle(&g) {
        panic!("module cycle in sim/src: {}", c.join(" -> "));
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    g.entry("d".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap().join(" "), "a b c a");
    g.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
}
