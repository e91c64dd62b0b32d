//! Compiled components, cached by content digest and engine configuration.
//!
//! Compiling a Python or JavaScript component takes seconds; a daemon restart or a test run
//! should pay that once. The disk cache holds artefacts this process (or an earlier one with
//! the same engine configuration) produced, keyed so that a different Wasmtime build or
//! setting (fuel on or off) never reads an incompatible artefact.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component came from on load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheOutcome {
    Memory,
    Disk,
    Compiled,
}

pub struct ComponentCache {
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<String, Component>>,
}

impl ComponentCache {
    /// A cache in `dir`, or in memory only when `None`.
    pub fn new(dir: Option<PathBuf>) -> Self {
        ComponentCache { dir, memory: Mutex::new(HashMap::new()) }
    }

    /// The compiled component for `bytes`, from memory, disk, or a fresh compile.
    ///
    /// # Errors
    /// Cranelift's message when compilation fails. Disk cache failures are logged and
    /// otherwise ignored: the cache is an optimisation.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(Component, CacheOutcome), String> {
        let key = format!("{digest}-{:016x}", engine_hash(engine));
        if let Some(component) = self.memory.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok((component, CacheOutcome::Memory));
        }
        let path = self.dir.as_ref().map(|d| d.join(format!("{key}.cwasm")));
        let (component, outcome) = match path.as_deref().and_then(|p| load(engine, p)) {
            Some(component) => (component, CacheOutcome::Disk),
            None => {
                let started = std::time::Instant::now();
                let serialized = engine.precompile_component(bytes).map_err(|e| format!("{e:#}"))?;
                tracing::info!(digest, elapsed_ms = started.elapsed().as_millis() as u64, "compiled plugin");
                if let Some(path) = &path {
                    store(path, &serialized);
                }
                // SAFETY: the bytes were produced just above by this engine.
                #[allow(unsafe_code)]
                let component = unsafe { Component::deserialize(engine, &serialized) }.map_err(|e| format!("{e:#}"))?;
                (component, CacheOutcome::Compiled)
            }
        };
        if let Ok(mut memory) = self.memory.lock() {
            memory.insert(key, component.clone());
        }
        Ok((component, outcome))
    }
}

fn engine_hash(engine: &Engine) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}

fn load(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: files in the cache directory are written only by `store` below, from
    // `Engine::precompile_component` output, under a key that includes the engine's
    // compatibility hash. Wasmtime still checks the header and refuses a mismatch.
    #[allow(unsafe_code)]
    let loaded = unsafe { Component::deserialize_file(engine, path) };
    match loaded {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "discarding unreadable cached component");
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

/// Writes atomically (temporary file, then rename) so a crash never leaves half an artefact.
fn store(path: &Path, bytes: &[u8]) {
    let result = (|| {
        let dir = path.parent().ok_or_else(|| std::io::Error::other("no parent"))?;
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot write component cache");
    }
}
