//! Policies' own state kept on disk, so that a restart does not forget what they learnt
//! (idle timers, recurring bursts, replica histories).
//!
//! After each evaluation the chain writes every policy's state, with the digest of the
//! component that returned it and the snapshot time, to one JSON file; at start it hands
//! each policy back what the same component wrote, if it is recent enough
//! ([`crate::chain::PolicyChain::restore`]). The bytes are opaque to the host.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What the chain held after one evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SavedStates {
    /// Snapshot time of the evaluation that returned them, milliseconds since the Unix epoch.
    pub at_millis: u64,
    /// By policy name.
    pub policies: BTreeMap<String, SavedState>,
}

/// One policy's state and the component that returned it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SavedState {
    /// SHA-256 of the component, as `ballast plugin inspect` prints it.
    pub digest: String,
    /// The state's bytes, hex-encoded.
    pub state: String,
}

/// What went wrong with the state file. None is fatal: the policies start afresh.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// At start; not retried: the file is overwritten after the first evaluation.
    #[error("reading the policy state {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// At start; not retried, as `Read`.
    #[error("the policy state {} does not parse: {source}", path.display())]
    Parse { path: PathBuf, source: serde_json::Error },
    /// Retryable: the next evaluation writes again.
    #[error("writing the policy state {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// The file the chain's states are kept in.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// A write failed and was reported; the next success is reported too.
    failing: bool,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into(), failing: false }
    }

    /// What was saved last, or `None` when nothing was (no file yet).
    ///
    /// # Errors
    /// A file that cannot be read or does not parse, naming it.
    pub fn load(&self) -> Result<Option<SavedStates>, StateFileError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateFileError::Read { path: self.path.clone(), source }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| StateFileError::Parse { path: self.path.clone(), source })
    }

    /// Replaces the file with `saved`.
    ///
    /// # Guarantees
    /// Written to a temporary file beside it, synced, then renamed over it: a reader (or a
    /// restart after a crash mid-write) finds the previous states or these, never a mix.
    ///
    /// # Errors
    /// The write that failed, naming the file; the previous file is left as it was.
    pub fn store(&mut self, saved: &SavedStates) -> Result<(), StateFileError> {
        let result = self.write(saved).map_err(|source| StateFileError::Write { path: self.path.clone(), source });
        match (&result, self.failing) {
            (Err(error), false) => tracing::warn!(%error, "policy states not saved; a restart would start them afresh"),
            (Ok(()), true) => tracing::info!(path = %self.path.display(), "policy states saved again"),
            _ => {}
        }
        self.failing = result.is_err();
        result
    }

    fn write(&self, saved: &SavedStates) -> std::io::Result<()> {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        let temporary = self.path.with_file_name(name);
        let mut file = std::fs::File::create(&temporary)?;
        serde_json::to_writer(&mut file, saved)?;
        file.flush()?;
        file.sync_all()?;
        std::fs::rename(&temporary, &self.path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn two_policies() -> SavedStates {
        let state = |digest: &str, bytes: &[u8]| SavedState { digest: digest.into(), state: hex::encode(bytes) };
        SavedStates {
            at_millis: 1_700_000_000_000,
            policies: [
                ("binpack".into(), state("ab12", b"{\"under\":{}}")),
                ("headroom".into(), state("cd34", b"\x00\xff")),
            ]
            .into(),
        }
    }

    #[test]
    fn what_is_stored_loads_back_and_no_file_is_nothing_saved_yet() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = StateFile::new(dir.path().join("policy-state.json"));
        assert_eq!(file.load().unwrap(), None);
        file.store(&two_policies()).unwrap();
        assert_eq!(file.load().unwrap(), Some(two_policies()));
        assert!(!dir.path().join("policy-state.json.tmp").exists(), "the temporary file was renamed");
    }

    #[test]
    fn a_file_that_does_not_parse_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy-state.json");
        std::fs::write(&path, "{\"at-millis\": \"yesterday\"}").unwrap();
        let error = StateFile::new(&path).load().unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()) && error.contains("yesterday"), "{error}");
    }

    #[test]
    fn a_failed_write_names_the_file_and_leaves_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy-state.json");
        let mut file = StateFile::new(&path);
        file.store(&two_policies()).unwrap();
        // The temporary file cannot be created where a directory of its name stands.
        std::fs::create_dir(dir.path().join("policy-state.json.tmp")).unwrap();
        let error = file.store(&SavedStates::default()).unwrap_err();
        assert!(matches!(error, StateFileError::Write { .. }), "{error:?}");
        assert!(error.to_string().contains(&path.display().to_string()), "{error}");
        assert_eq!(file.load().unwrap(), Some(two_policies()));
    }
}
