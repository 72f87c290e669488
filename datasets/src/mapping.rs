//! The label mapping: `mapping/mapping.txt`, one `<id> <name>` per line. Several names may map to
//! one id (many-to-one); ids may be negative (−1 is background, excluded from metrics where the
//! preset says so).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, Result, io_err};

/// Names ↔ ids of the ground-truth classes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// `(id, name)` in file order.
    pub entries: Vec<(i32, String)>,
}

impl Mapping {
    /// Builds a mapping from `(id, name)` pairs; names must be unique.
    pub fn new(entries: Vec<(i32, String)>) -> Result<Self> {
        let mut seen = HashMap::new();
        for (i, (_, name)) in entries.iter().enumerate() {
            if let Some(prev) = seen.insert(name.as_str(), i) {
                return Err(DatasetError::Invalid {
                    what: "mapping".into(),
                    message: format!(
                        "name `{name}` appears twice (entries {} and {})",
                        prev + 1,
                        i + 1
                    ),
                });
            }
        }
        Ok(Mapping { entries })
    }

    /// Reads a mapping file.
    pub fn read(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(DatasetError::Missing {
                what: "mapping file".into(),
                path: path.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        Self::parse(&text, path)
    }

    /// Parses mapping text; `path` is used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let err = |line: usize, message: String| DatasetError::Mapping {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut entries = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(id), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(err(
                    i + 1,
                    format!("expected `<id> <name>`, found `{line}`"),
                ));
            };
            let id: i32 = id
                .parse()
                .map_err(|_| err(i + 1, format!("id `{id}` is not an integer")))?;
            if let Some(prev) = seen.insert(name.to_string(), i + 1) {
                return Err(err(
                    i + 1,
                    format!("name `{name}` already defined on line {prev}"),
                ));
            }
            entries.push((id, name.to_string()));
        }
        if entries.is_empty() {
            return Err(err(0, "the mapping is empty".into()));
        }
        Ok(Mapping { entries })
    }

    /// Writes the mapping in the standard format (atomically).
    pub fn write_to(&self, path: &Path) -> Result<()> {
        let mut text = String::new();
        for (id, name) in &self.entries {
            text.push_str(&format!("{id} {name}\n"));
        }
        crate::fsio::write_bytes_atomic(path, text.as_bytes())
    }

    /// The id of `name`.
    pub fn id(&self, name: &str) -> Option<i32> {
        self.entries
            .iter()
            .find(|(_, n)| n == name)
            .map(|(id, _)| *id)
    }

    /// The first name given for `id`.
    pub fn name(&self, id: i32) -> Option<&str> {
        self.entries
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, n)| n.as_str())
    }

    /// The distinct ids, sorted.
    pub fn ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.entries.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// A lookup table name → id for parsing many label lines.
    pub fn lookup(&self) -> HashMap<&str, i32> {
        self.entries
            .iter()
            .map(|(id, n)| (n.as_str(), *id))
            .collect()
    }
}

/// Parses a ground-truth file's text (one label name per line) into ids.
///
/// Trailing empty lines are ignored; an empty line before the last label is an error, as is a
/// name missing from the mapping (unless it is `background`, which then maps to −1).
pub fn parse_labels(
    text: &str,
    lookup: &HashMap<&str, i32>,
    background: Option<&str>,
    path: &Path,
    mapping_path: &Path,
) -> Result<Vec<i32>> {
    let lines: Vec<&str> = text.lines().collect();
    let n = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |p| p + 1);
    let mut out = Vec::with_capacity(n);
    for (i, raw) in lines[..n].iter().enumerate() {
        let name = raw.trim();
        let id = match lookup.get(name) {
            Some(id) => *id,
            None if Some(name) == background => -1,
            None => {
                return Err(DatasetError::UnknownLabel {
                    path: path.to_path_buf(),
                    line: i + 1,
                    label: if name.is_empty() {
                        "<empty line>".into()
                    } else {
                        name.to_string()
                    },
                    mapping: mapping_path.to_path_buf(),
                });
            }
        };
        out.push(id);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_to_one_and_negative_ids() {
        let m =
            Mapping::parse("0 SIL\n1 a\n1 a_alias\n-1 background\n\n", Path::new("m")).expect("ok");
        assert_eq!(m.ids(), vec![-1, 0, 1]);
        assert_eq!(m.id("a_alias"), Some(1));
        assert_eq!(m.name(1), Some("a"));
        let labels = parse_labels(
            "SIL\na_alias\nbackground\n\n",
            &m.lookup(),
            None,
            Path::new("gt"),
            Path::new("m"),
        )
        .expect("labels");
        assert_eq!(labels, vec![0, 1, -1]);
    }

    #[test]
    fn bad_mapping_lines_name_line() {
        let e = Mapping::parse("0 a\nx b\n", Path::new("map.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("map.txt:2") && e.contains("`x`"), "{e}");
        let e = Mapping::parse("0 a\n1 a\n", Path::new("map.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("map.txt:2") && e.contains("already"), "{e}");
        let e = Mapping::parse("0 a b\n", Path::new("map.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("map.txt:1"), "{e}");
        assert!(Mapping::parse("\n", Path::new("m")).is_err());
    }

    #[test]
    fn unknown_label_names_file_line_label() {
        let m = Mapping::parse("0 a\n", Path::new("m")).expect("ok");
        let e = parse_labels(
            "a\nb\n",
            &m.lookup(),
            None,
            Path::new("gt/v1"),
            Path::new("m"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gt/v1:2") && e.contains("`b`"), "{e}");
        let e = parse_labels(
            "a\n\na\n",
            &m.lookup(),
            None,
            Path::new("gt/v1"),
            Path::new("m"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gt/v1:2") && e.contains("empty"), "{e}");
        let bg = parse_labels(
            "background\n",
            &m.lookup(),
            Some("background"),
            Path::new("g"),
            Path::new("m"),
        );
        assert_eq!(bg.expect("bg"), vec![-1]);
    }
}
