//! The layering of the workspace, checked on its sources (the rules of the README's layout):
//!
//! - only the collector's store (`collector/src/store/`) names rusqlite;
//! - the store imports nothing from the collector's other rooms: it is the bottom floor;
//! - the analysis core (`collector/src/analysis/`) does no I/O: it names no tokio, hickory,
//!   rusqlite, `crate::db` or `crate::store`;
//! - no two files of a crate import from each other (a two-file circle), in any crate;
//! - the collector's rooms stand on floors ([`COLLECTOR_FLOORS`]) and import only from rooms
//!   on lower floors: no arrow runs back up.
//!
//! Imports are read as text: `use` declarations and inline paths starting with `crate::`,
//! `super::` or `self::`, resolved to the file that defines the module they name. A path that
//! ends at a `mod.rs` and names an item that file re-exports from a child (`pub use
//! child::Item`) counts as an import of the child, as a reader would follow it. Test code
//! (`#[cfg(test)]` modules and the files they include) is left out: tests may reach anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each crate's source root, relative to the workspace.
const CRATES: &[&str] = &[
    "proto/src",
    "agent/src",
    "collector/src",
    "scripts/testbed-harness/src",
];

/// The collector's rooms, bottom floor first: a room may import from the rooms of the floors
/// below its own, never from its own floor or above (the crate root, `lib.rs` and `main.rs`,
/// stands above them all). A new room gets its floor here, and the README's layout table.
const COLLECTOR_FLOORS: &[&[&str]] = &[
    // The database, and the pure helpers everything may use.
    &["store", "text", "admission"],
    // What the database holds, read as typed values.
    &["settings", "agents"],
    &["bgp", "results", "rpki"],
    // The analysis core (traces + BGP state -> verdicts) and MRT loading.
    &["analysis", "mrt"],
    // What feeds the core from outside (the database, DNS), imports, the data set.
    &["sources", "import", "export", "sync", "live"],
    // What the operator reads and the agents talk to.
    &["report"],
    &["fleet", "alerts"],
    &["server"],
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the collector lies in the workspace")
        .to_path_buf()
}

/// One source file: its module path within the crate and its code without comments,
/// strings and test modules.
struct Source {
    file: PathBuf,
    module: Vec<String>,
    code: String,
}

/// Every non-test source file of the crate rooted at `root`, by module path.
fn crate_sources(root: &Path) -> Vec<Source> {
    let mut out = Vec::new();
    for entry_file in ["lib.rs", "main.rs"] {
        let file = root.join(entry_file);
        if file.exists() {
            collect(&file, &[], &mut out);
        }
    }
    out
}

fn collect(file: &Path, module: &[String], out: &mut Vec<Source>) {
    if out.iter().any(|s| s.file == file) {
        return;
    }
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let code = strip_test_modules(&strip_comments_and_strings(&text));
    let children = declared_modules(&code);
    out.push(Source {
        file: file.to_path_buf(),
        module: module.to_vec(),
        code,
    });
    // A file's child modules live beside it (mod.rs, lib.rs, main.rs) or in a folder of its
    // own name.
    let dir = match file.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs" | "lib.rs" | "main.rs") => file.parent().unwrap().to_path_buf(),
        _ => file.with_extension(""),
    };
    for child in children {
        let candidates = [
            dir.join(format!("{child}.rs")),
            dir.join(&child).join("mod.rs"),
        ];
        if let Some(found) = candidates.iter().find(|c| c.exists()) {
            let mut path = module.to_vec();
            path.push(child);
            collect(found, &path, out);
        }
    }
}

/// `mod name;` declarations (not inline `mod name { ... }` blocks).
fn declared_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.trim();
        let line = line
            .strip_prefix("pub(crate) ")
            .or_else(|| line.strip_prefix("pub(super) "))
            .or_else(|| line.strip_prefix("pub "))
            .unwrap_or(line);
        if let Some(rest) = line.strip_prefix("mod ")
            && let Some(name) = rest.strip_suffix(';')
        {
            out.push(name.trim().to_owned());
        }
    }
    out
}

/// The code with comments and the contents of string and char literals blanked, so that a
/// doc link or a message naming `crate::store` is not read as an import.
fn strip_comments_and_strings(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').map_or(text.len(), |n| i + n);
            i = end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(text.len(), |n| i + n + 2);
            out.extend(text[i..end].chars().filter(|&c| c == '\n'));
            i = end;
        } else if let Some(len) = raw_string_len(rest) {
            out.push_str("\"\"");
            out.extend(rest[..len].chars().filter(|&c| c == '\n'));
            i += len;
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() {
                match rest.as_bytes()[j] {
                    b'\\' => j += 2,
                    b'"' => break,
                    _ => j += 1,
                }
            }
            let len = (j + 1).min(rest.len());
            out.push_str("\"\"");
            out.extend(rest[..len].chars().filter(|&c| c == '\n'));
            i += len;
        } else if let Some(len) = char_literal_len(rest) {
            out.push_str("' '");
            i += len;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The length of a raw string literal (`r"…"`, `r#"…"#`) at the start of `s`.
fn raw_string_len(s: &str) -> Option<usize> {
    let after_r = s.strip_prefix('r').or_else(|| s.strip_prefix("br"))?;
    let hashes = after_r.len() - after_r.trim_start_matches('#').len();
    let body = after_r[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    let end = body.find(&close)?;
    Some(s.len() - body.len() + end + close.len())
}

/// The length of a char literal (`'a'`, `'\n'`, `'\u{7f}'`) at the start of `s`; `None` for
/// a lifetime (`'a`).
fn char_literal_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix('\'')?;
    let len = if body.starts_with('\\') {
        body.find('\'')?
    } else {
        body.chars().next()?.len_utf8()
    };
    body[len..].starts_with('\'').then_some(len + 2)
}

/// The code without `#[cfg(test)]` items (a test module, inline or a file of its own).
fn strip_test_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // The item ends at its `;` (a `mod name;`) or its closing brace, whichever comes
        // first at depth 0.
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Every path the code names from `crate::`, `super::` or `self::`, as absolute module paths
/// (segments after `crate`), with `use` groups expanded.
fn named_paths(source: &Source) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let code = &source.code;
    let starts = ["crate::", "super::", "self::"];
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let boundary = code[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
        if boundary && starts.iter().any(|s| rest.starts_with(s)) {
            let len = path_len(rest);
            for path in expand(&rest[..len]) {
                if let Some(abs) = absolute(&source.module, &path) {
                    out.push(abs);
                }
            }
            i += len.max(1);
        } else {
            i += rest.chars().next().unwrap().len_utf8();
        }
    }
    out
}

/// The length of a path expression at the start of `s`, braces of a `use` group included.
fn path_len(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            c if depth > 0 && (c.is_whitespace() || c == ',') => {}
            c if c.is_alphanumeric() || c == '_' || c == ':' || c == '*' => {}
            _ if depth == 0 => return i,
            _ => {}
        }
    }
    s.len()
}

/// `a::{b, c::{d}}` as `[a::b, a::c::d]`, each split into segments.
fn expand(path: &str) -> Vec<Vec<String>> {
    let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = path.find('{') else {
        return vec![segments(&path)];
    };
    let prefix = &path[..open];
    let inner = &path[open + 1..path.rfind('}').unwrap_or(path.len())];
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.extend(expand(&format!("{prefix}{}", &inner[start..i])));
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < inner.len() {
        out.extend(expand(&format!("{prefix}{}", &inner[start..])));
    }
    out
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .filter(|s| !s.is_empty() && *s != "*")
        .map(|s| s.split(" as ").next().unwrap_or(s).to_owned())
        .collect()
}

/// A path relative to `module` as an absolute module path.
fn absolute(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => {
            let mut m = module.to_vec();
            m.pop()?;
            m
        }
        _ => return None,
    };
    let mut rest = rest;
    while let Some(("super", tail)) = rest.split_first().map(|(h, t)| (h.as_str(), t)) {
        base.pop()?;
        rest = tail;
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The crate's files by module path.
fn index(sources: &[Source]) -> BTreeMap<Vec<String>, usize> {
    sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.module.clone(), i))
        .collect()
}

/// The file a path leads to: the deepest module it names, or, when that module only
/// re-exports the named item from a child, that child.
fn target_file(
    sources: &[Source],
    modules: &BTreeMap<Vec<String>, usize>,
    path: &[String],
) -> Option<usize> {
    let depth = (0..=path.len())
        .rev()
        .find(|&d| modules.contains_key(&path[..d]))?;
    let at = modules[&path[..depth]];
    let Some(item) = path.get(depth) else {
        return Some(at);
    };
    // Follow `pub use child::…::Item` (or a group naming Item) in a module file.
    for re in reexports(&sources[at]) {
        if re.last() == Some(item)
            && let Some(child) = target_file(sources, modules, &re)
            && child != at
        {
            return Some(child);
        }
    }
    Some(at)
}

/// The paths a file re-exports with `pub use` (absolute), groups expanded.
fn reexports(source: &Source) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for statement in source.code.split(';') {
        let s = statement.trim();
        let Some(path) = s
            .strip_prefix("pub use ")
            .or_else(|| s.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        for p in expand(path) {
            let rel = match p.first().map(String::as_str) {
                Some("crate" | "self" | "super") => p,
                // `pub use child::Item` is relative to the module itself.
                _ => std::iter::once("self".to_owned()).chain(p).collect(),
            };
            if let Some(abs) = absolute(&source.module, &rel) {
                out.push(abs);
            }
        }
    }
    out
}

/// File-to-file imports of one crate (no self-edges).
fn import_graph(sources: &[Source]) -> BTreeMap<usize, BTreeSet<usize>> {
    let modules = index(sources);
    let mut graph: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (from, source) in sources.iter().enumerate() {
        for path in named_paths(source) {
            if let Some(to) = target_file(sources, &modules, &path)
                && to != from
            {
                graph.entry(from).or_default().insert(to);
            }
        }
    }
    graph
}

fn relative(file: &Path) -> String {
    file.strip_prefix(workspace())
        .unwrap_or(file)
        .display()
        .to_string()
}

#[test]
fn no_two_files_of_a_crate_import_each_other() {
    let mut circles = Vec::new();
    for root in CRATES {
        let sources = crate_sources(&workspace().join(root));
        assert!(
            sources.len() > 3,
            "{root}: found only {} files",
            sources.len()
        );
        let graph = import_graph(&sources);
        for (&a, tos) in &graph {
            for &b in tos {
                if a < b && graph.get(&b).is_some_and(|back| back.contains(&a)) {
                    circles.push(format!(
                        "{} <-> {}",
                        relative(&sources[a].file),
                        relative(&sources[b].file)
                    ));
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "two-file import circles (move what both need into one of them, or below both):\n{}",
        circles.join("\n")
    );
}

fn collector_sources() -> Vec<Source> {
    crate_sources(&workspace().join("collector/src"))
}

fn in_room(source: &Source, room: &str) -> bool {
    source.module.first().is_some_and(|m| m == room)
}

/// Whole-word occurrences of `word` in `code` (`crate::store` matches `crate::store::X`).
fn names(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

#[test]
fn only_the_store_speaks_sql() {
    let offenders: Vec<String> = collector_sources()
        .iter()
        .filter(|s| !in_room(s, "store") && names(&s.code, "rusqlite"))
        .map(|s| relative(&s.file))
        .collect();
    assert!(
        offenders.is_empty(),
        "files outside collector/src/store/ that name rusqlite: {offenders:?}"
    );
}

#[test]
fn the_store_imports_from_no_other_room() {
    let sources = collector_sources();
    let modules = index(&sources);
    let mut offenders = Vec::new();
    for source in sources.iter().filter(|s| in_room(s, "store")) {
        for path in named_paths(source) {
            if path.first().is_some_and(|m| m != "store")
                && let Some(to) = target_file(&sources, &modules, &path)
            {
                offenders.push(format!(
                    "{} -> {}",
                    relative(&source.file),
                    relative(&sources[to].file)
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the store must be the bottom floor; it imports: {offenders:?}"
    );
}

#[test]
fn the_analysis_core_does_no_io() {
    let forbidden = [
        "tokio",
        "hickory_resolver",
        "rusqlite",
        "crate::db",
        "crate::store",
    ];
    let mut offenders = Vec::new();
    for source in collector_sources()
        .iter()
        .filter(|s| in_room(s, "analysis"))
    {
        for word in forbidden {
            if names(&source.code, word) {
                offenders.push(format!("{} names {word}", relative(&source.file)));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

fn floor_of(room: &str) -> Option<usize> {
    COLLECTOR_FLOORS
        .iter()
        .position(|floor| floor.contains(&room))
}

#[test]
fn no_arrow_runs_back_up() {
    let sources = collector_sources();
    let modules = index(&sources);
    let mut offenders = Vec::new();
    for source in &sources {
        // The crate root re-exports and dispatches: it stands above every room.
        let Some(room) = source.module.first() else {
            continue;
        };
        let Some(floor) = floor_of(room) else {
            offenders.push(format!(
                "room {room} ({}) has no floor in COLLECTOR_FLOORS",
                relative(&source.file)
            ));
            continue;
        };
        for path in named_paths(source) {
            let Some(to) = target_file(&sources, &modules, &path) else {
                continue;
            };
            let Some(to_room) = sources[to].module.first() else {
                continue;
            };
            if to_room != room && floor_of(to_room).is_none_or(|f| f >= floor) {
                offenders.push(format!(
                    "{} -> {} ({room} may not import from {to_room})",
                    relative(&source.file),
                    relative(&sources[to].file)
                ));
            }
        }
    }
    offenders.sort();
    offenders.dedup();
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// The checks above must see what they look for: a circle, a comment and a re-export.
#[test]
fn the_reader_sees_imports_and_skips_comments() {
    let code = strip_comments_and_strings(
        "// crate::store is not named here\nuse crate::{a::B, c::{d, e::F}};\nlet s = \"crate::x\";\n",
    );
    assert!(!code.contains("crate::store") && !code.contains("crate::x"));
    let source = Source {
        file: PathBuf::from("lib.rs"),
        module: vec!["m".to_owned()],
        code,
    };
    let paths = named_paths(&source);
    assert_eq!(
        paths,
        vec![
            vec!["a".to_owned(), "B".to_owned()],
            vec!["c".to_owned(), "d".to_owned()],
            vec!["c".to_owned(), "e".to_owned(), "F".to_owned()],
        ]
    );
    let tests =
        strip_test_modules("fn a() {}\n#[cfg(test)]\nmod tests { use crate::z; }\nfn b() {}");
    assert!(!tests.contains("crate::z") && tests.contains("fn b"));
}
