//! A loaded plugin: compiled, linked, settings accepted, and ready to be instantiated afresh
//! for every evaluation so that no state leaks from one call to the next.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_sdk::{Decision, SnapshotData};
use wasmtime::component::Resource;
use wasmtime::{Store, Trap};

use super::bindings;
use super::cache::CacheOutcome;
use super::context::{LogLine, PluginCtx};
use super::error::{CallError, LoadError};
use super::host::PolicyHost;
use super::input::{EvaluationInput, SharedSnapshot, SnapshotResource};
use super::inspect::ComponentInfo;
use super::limits::PluginLimits;
use super::validate;

/// What to load: a name, the component's bytes, its settings and limits.
#[derive(Clone, Debug)]
pub struct PluginSpec {
    pub name: String,
    pub bytes: Arc<[u8]>,
    pub settings: serde_json::Value,
    pub limits: PluginLimits,
}

impl PluginSpec {
    /// Reads the component from `path`; the plugin is named after the file.
    ///
    /// # Errors
    /// [`LoadError::Read`] naming the path.
    pub fn from_file(path: &std::path::Path) -> Result<Self, LoadError> {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".into());
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            plugin: name.clone(),
            path: path.to_path_buf(),
            source,
        })?;
        Ok(PluginSpec { name, bytes: bytes.into(), settings: serde_json::Value::Null, limits: PluginLimits::default() })
    }
}

/// A plugin ready to evaluate. Cheap to clone; safe to call from several threads at once.
#[derive(Clone)]
pub struct Plugin {
    name: Arc<str>,
    info: Arc<ComponentInfo>,
    settings: Arc<str>,
    limits: PluginLimits,
    /// The component, kept so that it can be loaded again elsewhere (a simulation).
    bytes: Arc<[u8]>,
    pre: bindings::PluginPre<PluginCtx>,
    host: PolicyHost,
    cache_outcome: CacheOutcome,
}

/// The result of one call with what it cost.
#[derive(Clone, Debug)]
pub struct CallReport {
    pub plugin: Arc<str>,
    pub elapsed: Duration,
    /// Fuel consumed, in deterministic mode.
    pub fuel_used: Option<u64>,
    pub logs: Vec<LogLine>,
    pub dropped_logs: usize,
    pub result: Result<Evaluated, CallError>,
}

impl CallReport {
    /// A call that never reached the plugin.
    pub fn failed(plugin: &Plugin, message: String) -> Self {
        CallReport {
            plugin: plugin.name.clone(),
            elapsed: Duration::ZERO,
            fuel_used: None,
            logs: Vec::new(),
            dropped_logs: 0,
            result: Err(CallError::Host { message }),
        }
    }
}

/// A successful evaluation's output, already validated against the snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluated {
    pub decisions: Vec<Decision>,
    /// None: keep the previous state.
    pub state: Option<Vec<u8>>,
}

impl PolicyHost {
    /// Loads a plugin: checks its interface version, compiles it (or takes it from the
    /// cache), links it, and has it validate its settings.
    ///
    /// # Errors
    /// A [`LoadError`] naming the plugin and what is wrong.
    pub fn load(&self, spec: PluginSpec) -> Result<Plugin, LoadError> {
        let name = spec.name.clone();
        spec.limits
            .validate(self.config().max_memory_mib)
            .map_err(|reason| LoadError::Limits { plugin: name.clone(), reason })?;
        let Linked { info, pre, cache_outcome } = self.link(&name, &spec.bytes)?;
        let settings: Arc<str> = match &spec.settings {
            serde_json::Value::Null => Arc::from(""),
            value => Arc::from(value.to_string()),
        };
        let plugin = Plugin {
            name: Arc::from(name.as_str()),
            info: Arc::new(info),
            settings,
            limits: spec.limits,
            bytes: spec.bytes,
            pre,
            host: self.clone(),
            cache_outcome,
        };
        plugin.check_settings()?;
        Ok(plugin)
    }
}

/// A component compiled, linked and type-checked against the contract.
struct Linked {
    info: ComponentInfo,
    pre: bindings::PluginPre<PluginCtx>,
    cache_outcome: CacheOutcome,
}

impl PolicyHost {
    /// Checks that this host can run the component, without calling it: a component, of a
    /// servable interface version, that compiles, whose imports the host provides and whose
    /// exports have the contract's signatures. What `ballast plugin inspect` reports.
    ///
    /// # Errors
    /// The first [`LoadError`], naming the plugin (and the function, for a signature).
    pub fn check(&self, name: &str, bytes: &[u8]) -> Result<ComponentInfo, LoadError> {
        self.link(name, bytes).map(|linked| linked.info)
    }

    fn link(&self, name: &str, bytes: &[u8]) -> Result<Linked, LoadError> {
        let info = ComponentInfo::read(bytes)
            .map_err(|reason| LoadError::NotAComponent { plugin: name.to_string(), reason })?;
        info.check_compatible(name)?;
        let inner = self.inner();
        let (component, cache_outcome) = inner
            .cache
            .get_or_compile(&inner.engine, &info.digest, bytes)
            .map_err(|reason| LoadError::Compile { plugin: name.to_string(), reason })?;
        let instance_pre = inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link { plugin: name.to_string(), reason: format!("{e:#}") })?;
        super::signature::check(&instance_pre, &info, name)?;
        let pre = bindings::PluginPre::new(instance_pre)
            .map_err(|e| LoadError::Link { plugin: name.to_string(), reason: format!("{e:#}") })?;
        Ok(Linked { info, pre, cache_outcome })
    }
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> &ComponentInfo {
        &self.info
    }

    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    pub fn settings(&self) -> &str {
        &self.settings
    }

    /// What this plugin was loaded from: load it again with it, on another host.
    pub fn spec(&self) -> PluginSpec {
        PluginSpec {
            name: self.name.to_string(),
            bytes: self.bytes.clone(),
            settings: serde_json::from_str(&self.settings).unwrap_or(serde_json::Value::Null),
            limits: self.limits.clone(),
        }
    }

    pub(super) fn host(&self) -> &PolicyHost {
        &self.host
    }

    /// Whether loading compiled the component or found it cached.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache_outcome
    }

    fn check_settings(&self) -> Result<(), LoadError> {
        let input = EvaluationInput::new(
            Arc::new(SharedSnapshot::new(Arc::new(SnapshotData::default()))),
            self.settings.clone(),
        );
        let settings = self.settings.to_string();
        let (result, _) = self.call(input, |store, instance, _| {
            instance.ballast_policy_policy().call_validate_settings(store, &settings)
        });
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(LoadError::SettingsRejected { plugin: self.name.to_string(), message }),
            Err(source) => Err(LoadError::SettingsCheck { plugin: self.name.to_string(), source }),
        }
    }

    /// Evaluates the plugin on `input`. Never panics and never fails the caller: whatever the
    /// plugin does, the report says what happened.
    pub fn evaluate(&self, input: EvaluationInput) -> CallReport {
        let started = Instant::now();
        let snapshot = input.snapshot.clone();
        let (result, meters) =
            self.call(input, |store, instance, handle| instance.ballast_policy_policy().call_evaluate(store, handle));
        let result = result.and_then(|r| r.map_err(|message| CallError::Policy { message })).and_then(|evaluation| {
            validate::output_size(&evaluation, &self.limits)?;
            let decisions: Vec<Decision> =
                evaluation.decisions.into_iter().map(super::convert::decision_from_wit).collect();
            validate::decisions(&decisions, snapshot.data())?;
            Ok(Evaluated { decisions, state: evaluation.state })
        });
        CallReport {
            plugin: self.name.clone(),
            elapsed: started.elapsed(),
            fuel_used: meters.fuel_used,
            logs: meters.logs,
            dropped_logs: meters.dropped_logs,
            result,
        }
    }

    /// Instantiates a fresh instance under this plugin's limits and runs `f` on it.
    ///
    /// # Guarantees
    /// Returns whatever the guest does: a trap, a deadline, a refused memory grow, and even a
    /// panic of the host while serving the guest become a [`CallError`].
    ///
    /// # Caveats
    /// Blocks the calling thread for up to the plugin's deadline, and WASI's blocking calls
    /// (a guest's `println!`, a socket) enter a Tokio runtime: never call it from an async
    /// task, only from a plain or `spawn_blocking` thread ([`super::PolicyChain::evaluate`]
    /// does that).
    fn call<R>(
        &self,
        input: EvaluationInput,
        f: impl FnOnce(&mut Store<PluginCtx>, &bindings::Plugin, Resource<SnapshotResource>) -> wasmtime::Result<R>,
    ) -> (Result<R, CallError>, Meters) {
        let contained = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.call_unguarded(input, f)));
        contained.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            tracing::error!(plugin = %self.name, %message, "the host panicked serving this plugin; call abandoned");
            (
                Err(CallError::Host { message: format!("the host panicked serving the call: {message}") }),
                Meters::default(),
            )
        })
    }

    fn call_unguarded<R>(
        &self,
        input: EvaluationInput,
        f: impl FnOnce(&mut Store<PluginCtx>, &bindings::Plugin, Resource<SnapshotResource>) -> wasmtime::Result<R>,
    ) -> (Result<R, CallError>, Meters) {
        let inner = self.host.inner();
        let deterministic = inner.config.deterministic;
        let ctx = PluginCtx::new(
            self.name.clone(),
            input,
            deterministic,
            self.limits.memory_bytes(),
            self.limits.max_log_lines,
        );
        let mut store = Store::new(&inner.engine, ctx);
        store.limiter(|ctx| &mut ctx.limiter);
        if deterministic {
            // Only fuel ends a deterministic call, so a report never depends on machine load.
            if let Err(e) = store.set_fuel(self.limits.fuel) {
                return (Err(CallError::Host { message: format!("{e:#}") }), Meters::default());
            }
        } else {
            let ticks = self.limits.deadline_ms.div_ceil(inner.config.epoch_tick_ms).max(1);
            store.set_epoch_deadline(ticks);
            store.epoch_deadline_trap();
        }

        let result = match self.pre.instantiate(&mut store) {
            Ok(instance) => match store.data_mut().snapshot_handle() {
                Ok(handle) => f(&mut store, &instance, handle).map_err(|e| self.classify(e, &store)),
                Err(e) => Err(CallError::Host { message: format!("{e:#}") }),
            },
            Err(e) if e.downcast_ref::<Trap>().is_some() || store.data().limiter.refused.is_some() => {
                Err(self.classify(e, &store))
            }
            Err(e) => Err(CallError::Host { message: format!("cannot instantiate: {e:#}") }),
        };
        let fuel_used = deterministic.then(|| self.limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0)));
        let stderr = store.data_mut().drain_output();
        let result = result.map_err(|error| with_guest_message(error, &stderr));
        let ctx = store.into_data();
        (result, Meters { fuel_used, logs: ctx.logs, dropped_logs: ctx.dropped_logs })
    }

    /// Names what stopped a call, most specific first: a refused memory grow explains the
    /// trap that follows it.
    fn classify(&self, error: wasmtime::Error, store: &Store<PluginCtx>) -> CallError {
        if let Some(requested) = store.data().limiter.refused {
            return CallError::MemoryExhausted {
                cap_mib: self.limits.memory_mib,
                requested_mib: (requested as u64).div_ceil(1 << 20),
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => CallError::DeadlineExceeded { deadline_ms: self.limits.deadline_ms },
            Some(Trap::OutOfFuel) => CallError::FuelExhausted { fuel: self.limits.fuel },
            Some(trap) => CallError::Trap { message: format!("{trap}") },
            None => CallError::Trap { message: format!("{error:#}") },
        }
    }
}

/// A trap says little ("unreachable executed"); what the guest wrote to stderr just before
/// it (Rust's panic message, a Python traceback) says why, so it joins the error.
fn with_guest_message(error: CallError, stderr: &[String]) -> CallError {
    let CallError::Trap { message } = error else { return error };
    let said: Vec<&str> =
        stderr.iter().map(|l| l.trim()).filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE")).collect();
    if said.is_empty() {
        return CallError::Trap { message };
    }
    let mut guest = said[said.len().saturating_sub(8)..].join(" | ");
    if guest.len() > 1024 {
        let mut cut = 1024;
        while !guest.is_char_boundary(cut) {
            cut -= 1;
        }
        guest.truncate(cut);
        guest.push('…');
    }
    CallError::Trap { message: format!("{message}; the plugin wrote: {guest}") }
}

#[derive(Default)]
struct Meters {
    fuel_used: Option<u64>,
    logs: Vec<LogLine>,
    dropped_logs: usize,
}
