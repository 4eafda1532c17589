//! The layering rule of docs/architecture.md, checked on the source: every top-level module
//! of `src/` refers only to modules of a lower layer (`crate::<module>` paths), so calls go one
//! way — workers → http → domain → state → db → base — and no import cycle can come back.

use std::collections::BTreeMap;
use std::path::Path;

/// Layer of each top-level module; a module may refer to modules of a strictly lower layer
/// (and to itself).
const LAYERS: [(&str, u8); 14] = [
    ("alloc", 0),
    ("config", 0),
    ("error", 0),
    ("time", 0),
    ("crypto", 0),
    ("sched", 0),
    ("password", 1),
    ("relay", 1),
    ("db", 2),
    ("state", 3),
    ("domain", 4),
    ("http", 5),
    ("workers", 6),
    ("cli", 7),
];

fn sources(dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(std::fs::read_to_string(&p).expect("read source"));
        }
    }
}

#[test]
fn modules_only_call_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rank: BTreeMap<&str, u8> = LAYERS.into_iter().collect();
    let mut bad = Vec::new();
    for (module, r) in LAYERS {
        let mut texts = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            sources(&dir, &mut texts);
        }
        if let Ok(t) = std::fs::read_to_string(src.join(format!("{module}.rs"))) {
            texts.push(t);
        }
        assert!(!texts.is_empty(), "no source for module {module}");
        for t in &texts {
            for (i, _) in t.match_indices("crate::") {
                let name: String = t[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                match rank.get(name.as_str()) {
                    Some(&other) if name != module && other >= r => bad.push(format!(
                        "{module} (layer {r}) uses crate::{name} (layer {other})"
                    )),
                    _ => {}
                }
            }
        }
    }
    bad.sort();
    bad.dedup();
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn every_top_level_module_has_a_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("lib.rs");
    for line in lib.lines() {
        if let Some(m) = line
            .strip_prefix("pub mod ")
            .and_then(|l| l.strip_suffix(';'))
        {
            assert!(
                LAYERS.iter().any(|(n, _)| *n == m),
                "module {m} has no layer in tests/it/layers.rs"
            );
        }
    }
}
