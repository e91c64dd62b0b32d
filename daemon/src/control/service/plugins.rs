//! `Plugins`: list, load (bytes or a path, optionally pinned by SHA-256), unload, reload,
//! validate settings, and per-plugin mode.

use std::sync::Arc;

use ballast_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::super::ControlState;
use super::super::convert;
use super::super::settings::Access;
use crate::engine::control::Asked;
use crate::policy::Change;
use crate::policy::{ChainEntry, LoadError, PluginLimits, PluginMode, PluginSpec};

pub struct PluginsService(pub Arc<ControlState>);

pub fn plugin_status(entry: &ChainEntry) -> pb::PluginStatus {
    let stats = entry.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let info = entry.plugin.info();
    let [p50, p99] = stats.latency_micros([0.5, 0.99]);
    pb::PluginStatus {
        name: entry.plugin.name().into(),
        digest: info.digest.clone(),
        interface_version: info.policy_version.clone().unwrap_or_default(),
        settings_json: entry.plugin.settings().into(),
        mode: convert::plugin_mode(entry.mode) as i32,
        calls: stats.calls,
        latency_p50_micros: p50,
        latency_p99_micros: p99,
        errors: stats.errors.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        last_error: stats.last_error.unwrap_or_default(),
        source: entry.source.clone(),
    }
}

/// A component to load, as asked: its bytes and where they came from.
struct Component {
    bytes: Arc<[u8]>,
    source: String,
}

/// Reads a path or `bundled:NAME` on the daemon's side.
fn read_path(field: &str, path: &str) -> Result<Component, Status> {
    if let Some(name) = path.strip_prefix("bundled:") {
        let bundled = crate::bundled::plugin(name).ok_or_else(|| {
            let known: Vec<&str> = crate::bundled::PLUGINS.iter().map(|p| p.name).collect();
            Status::invalid_argument(format!("{field}: '{path}' is not bundled (bundled: {})", known.join(", ")))
        })?;
        return Ok(Component { bytes: Arc::from(bundled.wasm), source: path.into() });
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Status::invalid_argument(format!("{field}: cannot read '{path}' on the daemon: {e}")))?;
    Ok(Component { bytes: bytes.into(), source: path.into() })
}

fn check_sha256(field: &str, expected: &str, bytes: &[u8]) -> Result<(), Status> {
    if expected.is_empty() {
        return Ok(());
    }
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Status::invalid_argument(format!("{field}: '{expected}' is not a SHA-256 (64 hex digits)")));
    }
    use sha2::Digest;
    let actual = hex::encode(sha2::Sha256::digest(bytes));
    match actual.eq_ignore_ascii_case(expected) {
        true => Ok(()),
        false => Err(Status::failed_precondition(format!(
            "{field}: the component's SHA-256 is {actual}, not {expected}; nothing was loaded"
        ))),
    }
}

fn settings(field: &str, json: &str) -> Result<serde_json::Value, Status> {
    if json.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_str(json).map_err(|e| Status::invalid_argument(format!("{field}: '{json}' is not JSON: {e}")))
}

fn plugin_name(name: &str) -> Result<String, Status> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    match ok {
        true => Ok(name.into()),
        false => {
            Err(Status::invalid_argument(format!("name: '{name}' is not a plugin name (1-63 of a-z, 0-9, '-', '_')")))
        }
    }
}

fn mode(field: &str, value: i32, unset: Option<PluginMode>) -> Result<PluginMode, Status> {
    match pb::PluginMode::try_from(value) {
        Ok(pb::PluginMode::Enforce) => Ok(PluginMode::Enforce),
        Ok(pb::PluginMode::Shadow) => Ok(PluginMode::Shadow),
        Ok(pb::PluginMode::Unspecified) if unset.is_some() => Ok(unset.unwrap_or_default()),
        _ => Err(Status::invalid_argument(format!(
            "{field}: {value} is not a plugin mode; use PLUGIN_MODE_ENFORCE or PLUGIN_MODE_SHADOW"
        ))),
    }
}

/// A load error as the caller's fault: the component or its settings.
fn refused(error: LoadError) -> Status {
    Status::invalid_argument(error.to_string())
}

impl PluginsService {
    /// Compiles and checks a plugin off the async runtime.
    async fn load(&self, spec: PluginSpec) -> Result<crate::policy::Plugin, Status> {
        let host = self.0.host.clone();
        tokio::task::spawn_blocking(move || host.load(spec))
            .await
            .map_err(|e| Status::internal(format!("loading failed on its thread: {e}")))?
            .map_err(refused)
    }

    fn entry(&self, name: &str) -> Result<ChainEntry, Status> {
        self.0
            .live
            .plugins()
            .iter()
            .find(|e| e.plugin.name() == name)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("name: no plugin '{name}' is loaded")))
    }

    async fn install(&self, entry: ChainEntry, asked: Asked) -> Result<Response<pb::PluginStatus>, Status> {
        let status = plugin_status(&entry);
        super::apply(&self.0, Change::Load(entry), asked).await?;
        Ok(Response::new(status))
    }
}

#[tonic::async_trait]
impl pb::plugins_server::Plugins for PluginsService {
    async fn list(
        &self,
        request: Request<pb::ListPluginsRequest>,
    ) -> Result<Response<pb::ListPluginsResponse>, Status> {
        self.0.credentials.authorize(&request, Access::Read)?;
        let plugins = self.0.live.plugins().iter().map(plugin_status).collect();
        Ok(Response::new(pb::ListPluginsResponse { plugins }))
    }

    async fn load(&self, request: Request<pb::LoadPluginRequest>) -> Result<Response<pb::PluginStatus>, Status> {
        let caller = self.0.credentials.authorize(&request, Access::Write)?;
        let body = request.into_inner();
        let name = plugin_name(&body.name)?;
        let mode = mode("mode", body.mode, Some(PluginMode::Enforce))?;
        let asked = super::asked(caller, &body.reason)?;
        let component = match body.component {
            Some(pb::load_plugin_request::Component::Wasm(bytes)) => {
                Component { bytes: bytes.into(), source: "upload".into() }
            }
            Some(pb::load_plugin_request::Component::Path(path)) => read_path("path", &path)?,
            None => return Err(Status::invalid_argument("component: send the component's bytes (wasm) or a path")),
        };
        check_sha256("expected_sha256", &body.expected_sha256, &component.bytes)?;
        let spec = PluginSpec {
            name,
            bytes: component.bytes,
            settings: settings("settings_json", &body.settings_json)?,
            limits: PluginLimits::default(),
        };
        let plugin = self.load(spec).await?;
        self.install(ChainEntry::new(plugin, mode, component.source), asked).await
    }

    async fn unload(
        &self,
        request: Request<pb::UnloadPluginRequest>,
    ) -> Result<Response<pb::UnloadPluginResponse>, Status> {
        let caller = self.0.credentials.authorize(&request, Access::Write)?;
        let body = request.into_inner();
        let asked = super::asked(caller, &body.reason)?;
        super::apply(&self.0, Change::Unload(body.name), asked).await?;
        Ok(Response::new(pb::UnloadPluginResponse {}))
    }

    async fn reload(&self, request: Request<pb::ReloadPluginRequest>) -> Result<Response<pb::PluginStatus>, Status> {
        let caller = self.0.credentials.authorize(&request, Access::Write)?;
        let body = request.into_inner();
        let asked = super::asked(caller, &body.reason)?;
        let current = self.entry(&body.name)?;
        if current.source == "upload" {
            return Err(Status::failed_precondition(format!(
                "name: plugin '{}' was uploaded; load it again with its new bytes",
                body.name
            )));
        }
        let component = read_path("source", &current.source)?;
        check_sha256("expected_sha256", &body.expected_sha256, &component.bytes)?;
        let spec = PluginSpec { bytes: component.bytes, ..current.plugin.spec() };
        let plugin = self.load(spec).await?;
        self.install(ChainEntry::new(plugin, current.mode, current.source), asked).await
    }

    async fn validate_settings(
        &self,
        request: Request<pb::ValidateSettingsRequest>,
    ) -> Result<Response<pb::ValidateSettingsResponse>, Status> {
        self.0.credentials.authorize(&request, Access::Read)?;
        let body = request.into_inner();
        let bytes = match body.component {
            Some(pb::validate_settings_request::Component::Wasm(bytes)) => bytes.into(),
            Some(pb::validate_settings_request::Component::Path(path)) => read_path("path", &path)?.bytes,
            Some(pb::validate_settings_request::Component::Plugin(name)) => self.entry(&name)?.plugin.spec().bytes,
            None => return Err(Status::invalid_argument("component: send wasm, a path or a loaded plugin's name")),
        };
        let spec = PluginSpec {
            name: "validate".into(),
            bytes,
            settings: settings("settings_json", &body.settings_json)?,
            limits: PluginLimits::default(),
        };
        let host = self.0.host.clone();
        let loaded = tokio::task::spawn_blocking(move || host.load(spec))
            .await
            .map_err(|e| Status::internal(format!("validation failed on its thread: {e}")))?;
        let answer = match loaded {
            Ok(_) => pb::ValidateSettingsResponse { valid: true, error: String::new() },
            Err(LoadError::SettingsRejected { message, .. }) => {
                pb::ValidateSettingsResponse { valid: false, error: message }
            }
            Err(other) => return Err(refused(other)),
        };
        Ok(Response::new(answer))
    }

    async fn set_mode(&self, request: Request<pb::SetPluginModeRequest>) -> Result<Response<pb::PluginStatus>, Status> {
        let caller = self.0.credentials.authorize(&request, Access::Write)?;
        let body = request.into_inner();
        let mode = mode("mode", body.mode, None)?;
        let asked = super::asked(caller, &body.reason)?;
        super::apply(&self.0, Change::PluginMode { plugin: body.name.clone(), mode }, asked).await?;
        Ok(Response::new(plugin_status(&self.entry(&body.name)?)))
    }
}
