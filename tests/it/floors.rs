//! The crate keeps to its floors: every top-level module of `src/` imports
//! only modules of the floors below its own, as the table in `src/lib.rs`
//! ("The crate in floors") lists them. So no two modules import each other,
//! the checks never import one another, and nothing imports the gate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Items of the crate root that are another module's, re-exported.
const ROOT_ITEMS: [(&str, &str); 2] = [("ConfigError", "error"), ("Answer", "answer")];

/// The floor of each module, read from the table of `src/lib.rs`.
fn floors(lib: &str) -> BTreeMap<String, u32> {
    let section = lib
        .split("## The crate in floors")
        .nth(1)
        .expect("src/lib.rs has the floors section");
    let mut floors = BTreeMap::new();
    for line in section
        .lines()
        .map(|line| line.trim_start_matches("//!").trim())
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(floor) = cells.get(1).and_then(|cell| cell.parse::<u32>().ok()) else {
            continue;
        };
        for module in cells[2].split(',') {
            floors.insert(module.trim().trim_matches('`').to_owned(), floor);
        }
    }
    floors
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            out.push(path);
        }
    }
}

/// The code of `text` without comments and without its unit tests.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level names `code` reaches through `crate::`.
fn imports(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.push(name);
            }
            continue;
        }
        names.push(
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect(),
        );
    }
    names
}

#[test]
fn every_module_imports_only_the_floors_below_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(root.join("lib.rs")).unwrap();
    let floors = floors(&lib);
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&root).unwrap();
        let first = relative.components().next().unwrap();
        let module = first.as_os_str().to_str().unwrap().trim_end_matches(".rs");
        if module == "lib" {
            continue;
        }
        let Some(&floor) = floors.get(module) else {
            wrong.push(format!(
                "`{module}` is not in the floors table of src/lib.rs"
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for name in imports(&code(&text)) {
            let target = ROOT_ITEMS
                .iter()
                .find(|(item, _)| *item == name)
                .map_or(name.as_str(), |(_, module)| module);
            if target == module || target.is_empty() {
                continue;
            }
            match floors.get(target) {
                Some(&below) if below < floor => {}
                Some(&other) => wrong.push(format!(
                    "{} (floor {floor}) imports `{target}` (floor {other})",
                    relative.display()
                )),
                None => wrong.push(format!(
                    "{} imports `crate::{name}`, which the floors table does not list",
                    relative.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The table names the floors the way the README does.
    let readme = include_str!("../../README.md");
    for module in floors.keys() {
        assert!(
            readme.contains(&format!("`{module}`")),
            "the README's floors leave out `{module}`"
        );
    }
}

#[test]
fn the_floor_reader_sees_what_is_wrong() {
    let lib = "//! ## The crate in floors\n//! | floor | modules | what |\n//! |---|---|---|\n//! | 1 | `error`, `clock` | x |\n//! | 2 | `gate` | y |\n";
    let floors = floors(lib);
    assert_eq!(floors["clock"], 1);
    assert_eq!(floors["gate"], 2);
    let code = code(
        "use crate::{gate::Gate, clock};\n// crate::hidden\nuse crate::error::X;\n#[cfg(test)]\nmod tests {\n use crate::later;\n}\n",
    );
    assert_eq!(imports(&code), ["gate", "clock", "error"]);
}
