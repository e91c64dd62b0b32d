//! The plugin host: one Wasmtime engine, its linker and compile cache, shared by every plugin.
//!
//! Configured once at start-up (policy-server style): the pooling allocator so instantiating a
//! plugin per evaluation costs microseconds, epoch interruption so a call can be stopped at
//! its deadline, and fuel when the host runs in deterministic mode.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::bindings;
use super::cache::ComponentCache;
use super::context::PluginCtx;

/// Host-wide settings. Per-plugin limits live in [`super::PluginLimits`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct HostConfig {
    /// Count fuel so that runs are reproducible instruction for instruction (simulations,
    /// `plugin run`), at some cost in speed. Off in the daemon, where deadlines suffice.
    pub deterministic: bool,
    /// Ceiling for any plugin's `memory-mib`; also the pool's per-memory reservation.
    pub max_memory_mib: u64,
    /// Plugin instances alive at once (the pool's size).
    pub max_instances: u32,
    /// How often the epoch advances, in milliseconds: the precision of deadlines.
    pub epoch_tick_ms: u64,
    /// Chains evaluated at once (the daemon's tick, simulations asked for over the API);
    /// further evaluations wait for a slot.
    pub max_concurrent_evaluations: u32,
    /// Where compiled components are cached; none keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            deterministic: false,
            max_memory_mib: 1024,
            max_instances: 32,
            epoch_tick_ms: 5,
            max_concurrent_evaluations: 2,
            cache_dir: default_cache_dir(),
        }
    }
}

/// `$BALLAST_CACHE_DIR`, else the user's cache directory.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("BALLAST_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("ballast").join("components")))
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the plugin host: {0}")]
pub struct HostError(String);

/// The shared engine. Cheap to clone.
#[derive(Clone)]
pub struct PolicyHost {
    inner: Arc<HostInner>,
}

pub(super) struct HostInner {
    pub config: HostConfig,
    pub engine: Engine,
    pub linker: Linker<PluginCtx>,
    pub cache: ComponentCache,
    /// Slots for evaluations off the async runtime (see [`super::PolicyChain::evaluate`]).
    pub evaluations: Arc<tokio::sync::Semaphore>,
}

impl PolicyHost {
    /// Builds the engine and starts the epoch ticker.
    ///
    /// # Errors
    /// [`HostError`] if Wasmtime refuses the configuration (for instance when the machine
    /// cannot reserve the pool's virtual memory).
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        if config.epoch_tick_ms == 0 {
            return Err(HostError("epoch-tick-ms must be positive, got 0".into()));
        }
        if config.max_concurrent_evaluations == 0 {
            return Err(HostError("max-concurrent-evaluations must be positive, got 0".into()));
        }
        let mut pool = PoolingAllocationConfig::new();
        let instances = config.max_instances.max(1);
        let max_memory = usize::try_from(config.max_memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        // A Rust policy is one core module with one memory; componentize-py and
        // componentize-js components carry several of each, hence the per-component room.
        pool.total_component_instances(instances)
            .max_core_instances_per_component(64)
            .max_memories_per_component(16)
            .max_tables_per_component(32)
            .total_core_instances(instances * 64)
            .total_memories(instances * 8)
            .total_tables(instances * 16)
            .total_stacks(instances)
            .table_elements(100_000)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            .max_memory_size(max_memory)
            .linear_memory_keep_resident(1 << 20);

        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            // Deterministic runs end calls by fuel alone; epochs follow the wall clock.
            .epoch_interruption(!config.deterministic)
            .consume_fuel(config.deterministic)
            .cranelift_opt_level(OptLevel::Speed)
            .parallel_compilation(true)
            .memory_reservation(max_memory as u64)
            .memory_guard_size(64 << 10)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| HostError(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| HostError(format!("{e:#}")))?;
        bindings::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |ctx| ctx)
            .map_err(|e| HostError(format!("{e:#}")))?;

        if !config.deterministic {
            spawn_epoch_ticker(&engine, Duration::from_millis(config.epoch_tick_ms))?;
        }
        let cache = ComponentCache::new(config.cache_dir.clone());
        let evaluations = Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_evaluations as usize));
        Ok(PolicyHost { inner: Arc::new(HostInner { config, engine, linker, cache, evaluations }) })
    }

    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    pub(super) fn evaluation_slots(&self) -> Arc<tokio::sync::Semaphore> {
        self.inner.evaluations.clone()
    }

    pub(super) fn inner(&self) -> &HostInner {
        &self.inner
    }
}

/// Advances the engine's epoch every `period` for as long as the engine lives.
///
/// # Errors
/// Without the ticker no deadline would ever fire, so a thread that cannot start is a
/// start-up error, not a warning.
fn spawn_epoch_ticker(engine: &Engine, period: Duration) -> Result<(), HostError> {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("ballast-epoch".into()).spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(period);
        }
    });
    spawned.map(drop).map_err(|e| HostError(format!("cannot start the epoch ticker thread (plugin deadlines): {e}")))
}
