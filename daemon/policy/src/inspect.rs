//! Reads a component's outer imports and exports without compiling it, to tell which
//! `ballast:policy` version it was built against before spending seconds in Cranelift.

use sha2::{Digest, Sha256};
use wasmparser::{Encoding, Parser, Payload};

use super::error::LoadError;

/// The interface version this host serves.
pub const HOST_INTERFACE_VERSION: &str = ballast_sdk::INTERFACE_VERSION;

/// What `ballast plugin inspect` shows, and what loading checks.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ComponentInfo {
    /// Size in bytes.
    pub size: usize,
    /// SHA-256 of the bytes, hex.
    pub digest: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// The `ballast:policy` version the `policy` export was built against, if any.
    pub policy_version: Option<String>,
}

impl ComponentInfo {
    /// Parses the outer layer of a component.
    ///
    /// # Errors
    /// A message if the bytes are not a component (a core module says so).
    pub fn read(bytes: &[u8]) -> Result<Self, String> {
        let mut imports = Vec::new();
        let mut exports = Vec::new();
        let mut depth = 0usize;
        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload.map_err(|e| e.to_string())?;
            match payload {
                Payload::Version { encoding: Encoding::Module, .. } if depth == 0 => {
                    return Err("this is a core wasm module, not a component; build for wasm32-wasip2 \
                                or wrap it with `wasm-tools component new`"
                        .to_string());
                }
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentImportSection(reader) if depth == 0 => {
                    for import in reader {
                        imports.push(import.map_err(|e| e.to_string())?.name.name.to_string());
                    }
                }
                Payload::ComponentExportSection(reader) if depth == 0 => {
                    for export in reader {
                        exports.push(export.map_err(|e| e.to_string())?.name.name.to_string());
                    }
                }
                _ => {}
            }
        }
        let policy_version = exports.iter().find_map(|e| e.strip_prefix("ballast:policy/policy@")).map(str::to_string);
        Ok(ComponentInfo {
            size: bytes.len(),
            digest: hex::encode(Sha256::digest(bytes)),
            imports,
            exports,
            policy_version,
        })
    }

    /// Refuses a component this host cannot serve, naming both versions.
    ///
    /// # Errors
    /// [`LoadError::NotAPolicy`] or [`LoadError::IncompatibleVersion`].
    pub fn check_compatible(&self, plugin: &str) -> Result<(), LoadError> {
        let Some(version) = &self.policy_version else {
            return Err(LoadError::NotAPolicy { plugin: plugin.to_string(), exports: self.exports.join(", ") });
        };
        // Every ballast:policy interface it names must be servable: an import of a newer host
        // interface is as fatal as a newer export.
        let mut versions: Vec<&str> = self
            .imports
            .iter()
            .filter_map(|i| i.strip_prefix("ballast:policy/").and_then(|rest| rest.split_once('@')))
            .map(|(_, v)| v)
            .chain(std::iter::once(version.as_str()))
            .collect();
        versions.sort_by_key(|v| std::cmp::Reverse(parse_version(v)));
        let Some(host_v) = parse_version(HOST_INTERFACE_VERSION) else {
            return Err(LoadError::IncompatibleVersion {
                plugin: plugin.to_string(),
                plugin_version: version.to_string(),
                host_version: HOST_INTERFACE_VERSION.to_string(),
                hint: "this host's own interface version is malformed",
            });
        };
        for found in versions {
            let incompatible = |hint| LoadError::IncompatibleVersion {
                plugin: plugin.to_string(),
                plugin_version: found.to_string(),
                host_version: HOST_INTERFACE_VERSION.to_string(),
                hint,
            };
            let Some(plugin_v) = parse_version(found) else {
                return Err(incompatible("the plugin's version is not of the form MAJOR.MINOR.PATCH"));
            };
            if plugin_v > host_v {
                return Err(incompatible("upgrade Ballast, or rebuild the plugin with the SDK that matches this host"));
            }
            if compat_key(plugin_v) != compat_key(host_v) {
                return Err(incompatible("rebuild the plugin with the current SDK"));
            }
        }
        Ok(())
    }
}

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// Semver compatibility class: the major version, or the minor one below 1.0.
fn compat_key((major, minor, _): (u64, u64, u64)) -> (u64, u64) {
    if major == 0 { (0, minor) } else { (major, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(export: &str) -> ComponentInfo {
        ComponentInfo {
            size: 0,
            digest: String::new(),
            imports: vec![],
            exports: vec![export.into()],
            policy_version: export.strip_prefix("ballast:policy/policy@").map(str::to_string),
        }
    }

    #[test]
    fn versions_are_checked_semver_style() {
        assert!(info("ballast:policy/policy@0.1.0").check_compatible("p").is_ok());
        let newer = info("ballast:policy/policy@0.2.0").check_compatible("p").unwrap_err().to_string();
        assert!(
            newer.contains("ballast:policy@0.2.0")
                && newer.contains(&format!("ballast:policy@{HOST_INTERFACE_VERSION}")),
            "{newer}"
        );
        let older = info("ballast:policy/policy@0.0.9").check_compatible("p").unwrap_err().to_string();
        assert!(older.contains("rebuild"), "{older}");
        let other = info("wasi:cli/run@0.2.0").check_compatible("p").unwrap_err().to_string();
        assert!(other.contains("not a Ballast policy"), "{other}");
    }
}
