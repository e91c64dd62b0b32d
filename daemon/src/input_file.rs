//! Reading YAML or JSON input files (snapshots, fixture cases) with errors that name the
//! file, the field path and the value's problem.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use thiserror::Error;

/// Why an input file could not be used.
#[derive(Debug, Error)]
pub enum InputError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML or JSON: {message}")]
    Syntax { path: PathBuf, message: String },
    /// The document parsed but a field is wrong; `field` is a path like `nodes[2].allocatable.cpu`.
    #[error("{path}: field `{field}`: {message}")]
    Field { path: PathBuf, field: String, message: String },
}

/// Parses `text` (YAML, of which JSON is a subset) into `T`, naming `path` in errors.
///
/// YAML merge keys (`<<: *anchor`) are applied, and enums are written as one-key maps
/// (`{scale-to: {group: m5, size: 3}}`), as in JSON.
///
/// # Errors
/// [`InputError::Syntax`] or [`InputError::Field`].
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, InputError> {
    let syntax = |message: String| InputError::Syntax { path: path.to_path_buf(), message };
    let mut yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| syntax(e.to_string()))?;
    yaml.apply_merge().map_err(|e| syntax(e.to_string()))?;
    let json = serde_json::to_value(yaml).map_err(|e| syntax(e.to_string()))?;
    from_value(path, json)
}

/// Deserialises an already parsed document, naming `path` and the field in errors.
///
/// # Errors
/// [`InputError::Field`].
pub fn from_value<T: DeserializeOwned>(path: &Path, value: serde_json::Value) -> Result<T, InputError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        InputError::Field {
            path: path.to_path_buf(),
            field: if field == "." { "(document)".to_string() } else { field },
            message: e.into_inner().to_string(),
        }
    })
}

/// Reads and parses a file.
///
/// # Errors
/// Any [`InputError`].
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, InputError> {
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Read { path: path.to_path_buf(), source })?;
    parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_sdk::SnapshotData;

    #[test]
    fn errors_name_the_field_and_value() {
        let text = "node-groups:\n  - id: m5\n    min-size: -1\n";
        let err = parse::<SnapshotData>(Path::new("s.yaml"), text).unwrap_err().to_string();
        assert!(err.starts_with("s.yaml: field `node-groups[0].min-size`"), "{err}");
        assert!(err.contains("-1"), "{err}");

        let text = "nodes:\n  - name: a\n    allocatable: {cpu: 2x}\n";
        let err = parse::<SnapshotData>(Path::new("s.yaml"), text).unwrap_err().to_string();
        assert!(err.contains("nodes[0].allocatable.cpu") && err.contains("\"2x\""), "{err}");

        let err = parse::<SnapshotData>(Path::new("s.yaml"), "pending: []\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `pending`"), "{err}");
    }
}
