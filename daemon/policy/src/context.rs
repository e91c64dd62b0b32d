//! The per-call store context: what a plugin's imports can reach, and the meters that bound
//! it (memory limiter, log budget).
//!
//! WASI is linked because every Rust, Python and JavaScript component imports it, but the
//! context grants nothing: no preopened directories, no environment or arguments, no
//! sockets, no stdin. What a plugin prints to stdout or stderr is captured
//! ([`super::output`]) and becomes log lines under its name, within the same budget as
//! `log`. In deterministic mode its clocks read the snapshot's time and its random numbers
//! come from a fixed seed, so two runs see the same inputs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use wasmtime::ResourceLimiter;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{host, snapshot, types};
use super::input::{EvaluationInput, SnapshotResource};
use super::output::CapturePipe;

/// Longest log line kept; longer lines are cut.
const MAX_LOG_LINE: usize = 1024;

/// A line a plugin logged during a call.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

pub struct PluginCtx {
    plugin: std::sync::Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    input: EvaluationInput,
    deterministic: bool,
    pub(super) limiter: MemoryLimiter,
    pub(super) logs: Vec<LogLine>,
    pub(super) dropped_logs: usize,
    max_log_lines: usize,
    stdout: CapturePipe,
    stderr: CapturePipe,
}

impl PluginCtx {
    pub fn new(
        plugin: std::sync::Arc<str>,
        input: EvaluationInput,
        deterministic: bool,
        memory_cap: usize,
        max_log_lines: usize,
    ) -> Self {
        let (stdout, stderr) = (CapturePipe::default(), CapturePipe::default());
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        if deterministic {
            let at = Duration::from_millis(input.snapshot.taken_at_millis());
            wasi.wall_clock(FixedClock(at))
                .monotonic_clock(FixedClock(at))
                .secure_random(rand::rngs::StdRng::seed_from_u64(0x0062_616c_6c61_7374))
                .insecure_random(rand::rngs::StdRng::seed_from_u64(0x7365_6564))
                .insecure_random_seed(0);
        }
        PluginCtx {
            plugin,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            input,
            deterministic,
            limiter: MemoryLimiter::new(memory_cap),
            logs: Vec::new(),
            dropped_logs: 0,
            max_log_lines,
            stdout,
            stderr,
        }
    }

    /// Turns what the plugin printed into log lines (stdout at info, stderr at warn) and
    /// returns the stderr lines, which carry a guest panic's message.
    pub(super) fn drain_output(&mut self) -> Vec<String> {
        let (out, out_dropped) = self.stdout.take_lines();
        let (err, err_dropped) = self.stderr.take_lines();
        for line in out {
            self.push_log(host::Level::Info, line);
        }
        for line in &err {
            self.push_log(host::Level::Warn, line.clone());
        }
        if out_dropped + err_dropped > 0 {
            self.dropped_logs += 1;
        }
        err
    }

    fn push_log(&mut self, level: host::Level, mut message: String) {
        if self.logs.len() >= self.max_log_lines {
            self.dropped_logs += 1;
            return;
        }
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = &*self.plugin;
        let level = match level {
            host::Level::Trace => {
                tracing::trace!(plugin, "{message}");
                "trace"
            }
            host::Level::Debug => {
                tracing::debug!(plugin, "{message}");
                "debug"
            }
            host::Level::Info => {
                tracing::info!(plugin, "{message}");
                "info"
            }
            host::Level::Warn => {
                tracing::warn!(plugin, "{message}");
                "warn"
            }
            host::Level::Error => {
                tracing::error!(plugin, "{message}");
                "error"
            }
        };
        self.logs.push(LogLine { level, message });
    }

    /// Registers the snapshot resource handed to `evaluate`.
    pub fn snapshot_handle(&mut self) -> wasmtime::Result<Resource<SnapshotResource>> {
        Ok(self.table.push(SnapshotResource)?)
    }
}

impl WasiView for PluginCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A clock that always reads the snapshot's time.
struct FixedClock(Duration);

impl wasmtime_wasi::HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

impl wasmtime_wasi::HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        u64::try_from(self.0.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Caps the linear memory a plugin holds, summed over all its memories (a Python component
/// has several), and remembers a refusal so that the trap that follows is reported as what
/// it is: memory exhaustion, not a mysterious `unreachable`.
pub struct MemoryLimiter {
    cap: usize,
    total: usize,
    pub(super) refused: Option<usize>,
}

impl MemoryLimiter {
    fn new(cap: usize) -> Self {
        MemoryLimiter { cap, total: 0, refused: None }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.total - current.min(self.total) + desired;
        if total > self.cap {
            self.refused = Some(total);
            return Ok(false);
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables are bounded by the pool's per-table element limit.
        Ok(desired <= 1_000_000)
    }
}

impl types::Host for PluginCtx {}

impl host::Host for PluginCtx {
    fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        self.push_log(level, message);
        Ok(())
    }

    fn now_millis(&mut self) -> wasmtime::Result<u64> {
        if self.deterministic {
            return Ok(self.input.snapshot.taken_at_millis());
        }
        Ok(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0))
    }
}

impl snapshot::Host for PluginCtx {}

impl snapshot::HostSnapshot for PluginCtx {
    fn taken_at_millis(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<u64> {
        Ok(self.input.snapshot.taken_at_millis())
    }
    fn node_groups(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::NodeGroup>> {
        Ok(self.input.snapshot.node_groups())
    }
    fn nodes(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::Node>> {
        Ok(self.input.snapshot.nodes())
    }
    fn nodes_in_group(&mut self, _: Resource<SnapshotResource>, group: String) -> wasmtime::Result<Vec<types::Node>> {
        Ok(self.input.snapshot.nodes_in_group(&group))
    }
    fn pending_pods(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::PendingPod>> {
        Ok(self.input.snapshot.pending_pods())
    }
    fn pending_shapes(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::PendingShape>> {
        Ok(self.input.snapshot.pending_shapes())
    }
    fn workloads(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::Workload>> {
        Ok(self.input.snapshot.workloads())
    }
    fn fargate_pricing(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<types::FargatePricing> {
        Ok(self.input.snapshot.fargate_pricing())
    }
    fn settings(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<String> {
        Ok(self.input.settings.to_string())
    }
    fn state(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.input.state.clone())
    }
    fn proposals(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::Proposal>> {
        Ok(self.input.proposals.clone())
    }
    fn metrics(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::MetricSeries>> {
        Ok(self.input.snapshot.metrics())
    }
    fn group_options(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::GroupOptions>> {
        Ok(self.input.snapshot.group_options())
    }
    fn pods_on_node(&mut self, _: Resource<SnapshotResource>, node: String) -> wasmtime::Result<Vec<types::PodShape>> {
        Ok(self.input.snapshot.pods_on_node(&node))
    }
    fn scheduled_runs(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::ScheduledRun>> {
        Ok(self.input.snapshot.scheduled_runs())
    }
    fn group_cooldowns(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::GroupCooldown>> {
        Ok(self.input.snapshot.group_cooldowns())
    }
    fn horizontal_autoscalers(
        &mut self,
        _: Resource<SnapshotResource>,
    ) -> wasmtime::Result<Vec<types::HorizontalAutoscaler>> {
        Ok(self.input.snapshot.horizontal_autoscalers())
    }
    fn placement_cooldowns(
        &mut self,
        _: Resource<SnapshotResource>,
    ) -> wasmtime::Result<Vec<types::PlacementCooldown>> {
        Ok(self.input.snapshot.placement_cooldowns())
    }
    fn launch_failures(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::LaunchFailure>> {
        Ok(self.input.snapshot.launch_failures())
    }
    fn provisioning_times(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::ProvisioningTime>> {
        Ok(self.input.snapshot.provisioning_times())
    }
    fn capacity_buffers(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::CapacityBuffer>> {
        Ok(self.input.snapshot.capacity_buffers())
    }
    fn per_node_limits(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::PerNodeLimit>> {
        Ok(self.input.snapshot.per_node_limits())
    }
    fn zone_spreads(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::ZoneSpread>> {
        Ok(self.input.snapshot.zone_spreads())
    }
    fn node_group_storage(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<Vec<u64>>> {
        Ok(self.input.snapshot.node_group_storage())
    }
    fn node_storage(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::NodeStorage>> {
        Ok(self.input.snapshot.node_storage())
    }
    fn nodes_in_group_storage(
        &mut self,
        _: Resource<SnapshotResource>,
        group: String,
    ) -> wasmtime::Result<Vec<types::NodeStorage>> {
        Ok(self.input.snapshot.nodes_in_group_storage(&group))
    }
    fn pending_pod_storage(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<u64>> {
        Ok(self.input.snapshot.pending_pod_storage())
    }
    fn pending_shape_storage(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<u64>> {
        Ok(self.input.snapshot.pending_shape_storage())
    }
    fn pods_on_node_storage(&mut self, _: Resource<SnapshotResource>, node: String) -> wasmtime::Result<Vec<u64>> {
        Ok(self.input.snapshot.pods_on_node_storage(&node))
    }
    fn workload_storage(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<u64>> {
        Ok(self.input.snapshot.workload_storage())
    }
    fn scheduled_run_storage(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<u64>> {
        Ok(self.input.snapshot.scheduled_run_storage())
    }
    fn capacity_buffer_storage(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<u64>> {
        Ok(self.input.snapshot.capacity_buffer_storage())
    }
    fn fargate_storage_price(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<f64> {
        Ok(self.input.snapshot.data().fargate_pricing.per_storage_gb_hour)
    }
    fn kept_away(&mut self, _: Resource<SnapshotResource>) -> wasmtime::Result<Vec<types::KeptAway>> {
        Ok(self.input.snapshot.kept_away())
    }
    fn drop(&mut self, handle: Resource<SnapshotResource>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}
