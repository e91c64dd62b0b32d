//! The exports of a component type-checked against the contract at load, before any call:
//! a component that names `ballast:policy/policy` but exports a function with another
//! signature is refused with the function's name, not discovered at its first call.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{InstancePre, Resource};

use super::bindings::exports::ballast::policy::policy::Evaluation;
use super::context::PluginCtx;
use super::error::LoadError;
use super::input::SnapshotResource;
use super::inspect::ComponentInfo;

/// # Errors
/// [`LoadError::Signature`] naming the first function whose signature differs, or that is
/// missing.
pub(super) fn check(pre: &InstancePre<PluginCtx>, info: &ComponentInfo, plugin: &str) -> Result<(), LoadError> {
    let version = info.policy_version.as_deref().unwrap_or(super::HOST_INTERFACE_VERSION);
    let interface = format!("ballast:policy/policy@{version}");
    let component = pre.component();
    let refuse = |function: &str, reason: String| LoadError::Signature {
        plugin: plugin.to_string(),
        function: function.to_string(),
        reason,
    };
    let (_, instance) =
        component.get_export(None, interface.as_str()).ok_or_else(|| refuse(&interface, "not exported".into()))?;
    let instance_type = pre.instance_type();
    let func = |name: &str| match component.get_export(Some(&instance), name) {
        Some((ComponentItem::ComponentFunc(f), _)) => Ok(f),
        Some(_) => Err(refuse(name, "not a function".into())),
        None => Err(refuse(name, "not exported".into())),
    };
    func("validate-settings")?
        .typecheck::<(&str,), (Result<(), String>,)>(&instance_type)
        .map_err(|e| refuse("validate-settings", format!("{e:#}")))?;
    func("evaluate")?
        .typecheck::<(Resource<SnapshotResource>,), (Result<Evaluation, String>,)>(&instance_type)
        .map_err(|e| refuse("evaluate", format!("{e:#}")))?;
    Ok(())
}
