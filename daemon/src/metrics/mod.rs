//! Prometheus metrics (`/metrics` on the admin port, see [`admin`]), named as the metrics
//! people already scrape from Cluster Autoscaler and Karpenter: `ballast_` prefix, counters
//! ending in `_total`, durations as histograms in `_seconds`, snake_case label keys.
//!
//! Where the figures come from:
//! - each tick, through [`crate::engine::live::Live::after_tick`]: ticks and their duration;
//! - each record, by following the [`Recorder`] ([`follow`]): decisions, plugin calls and
//!   errors, node removals, policy reloads, so a metric counts exactly what the journal says;
//! - at scrape time ([`scrape`]): group sizes, back-off, cost, leadership and mode from what
//!   the engine last published, and the adapters' own counters (AWS calls, evictions, watch
//!   restarts) from a [`FiguresProbe`].
//!
//! The README's table lists every metric; `tests` checks that it does.

pub mod admin;
mod exposition;
pub mod follow;
pub mod publish;
mod scrape;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use exposition::Format;
pub use scrape::{AdapterFigures, FiguresProbe, Unreadable};

use crate::engine::live::TickInfo;
use crate::policy::Live;

/// A label set of named strings.
macro_rules! labels {
    ($name:ident { $($field:ident),+ }) => {
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        pub struct $name { $(pub $field: String),+ }
    };
}

labels!(TickLabels { trigger, outcome });
labels!(TriggerLabel { trigger });
labels!(DecisionLabels { plugin, action, guard, result });
labels!(PluginLabel { plugin });
labels!(PluginErrorLabels { plugin, kind });
labels!(ResultLabel { result });
labels!(RemovalLabels { node_group, reason });
labels!(GroupLabel { node_group });
labels!(BackoffLabels { node_group, reason });
labels!(ApiLabels { service, operation });
labels!(StateLabel { state });
labels!(ReasonLabel { reason });
labels!(ModeLabel { mode });
labels!(PluginInfoLabels { plugin, mode, sha256 });
labels!(ReloadLabels { plugin, result });
labels!(AdapterLabel { adapter });
labels!(BufferLabels { namespace, name });
labels!(VersionLabel { version });
labels!(WindowLabels { schedule, duration, reasons });

type FloatGauge = Gauge<f64, AtomicU64>;
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every family Ballast exports.
pub(crate) struct Families {
    pub ticks: Family<TickLabels, Counter>,
    pub tick_duration: Histograms<TriggerLabel>,
    pub last_tick: FloatGauge,
    pub decisions: Family<DecisionLabels, Counter>,
    pub plugin_duration: Histograms<PluginLabel>,
    pub plugin_errors: Family<PluginErrorLabels, Counter>,
    pub plugin_info: Family<PluginInfoLabels, Gauge>,
    pub reloads: Family<ReloadLabels, Counter>,
    pub nodes_removed: Family<RemovalLabels, Counter>,
    pub removals_abandoned: Family<GroupLabel, Counter>,
    pub evictions: Family<ResultLabel, Counter>,
    pub unschedulable: Gauge,
    pub unplaceable: Gauge,
    pub passed_over: Family<ReasonLabel, Gauge>,
    pub capacity_buffers: Family<BufferLabels, Gauge>,
    pub disruption_windows: Family<WindowLabels, Gauge>,
    pub nodes: Family<StateLabel, Gauge>,
    pub drains: Gauge,
    pub group_min: Family<GroupLabel, Gauge>,
    pub group_max: Family<GroupLabel, Gauge>,
    pub group_desired: Family<GroupLabel, Gauge>,
    pub group_ready: Family<GroupLabel, Gauge>,
    pub group_backoff: Family<BackoffLabels, Gauge>,
    pub group_replacing: Family<GroupLabel, Gauge>,
    pub group_drifted: Family<GroupLabel, Gauge>,
    pub group_provisioning: Histograms<GroupLabel>,
    pub group_cost: Family<GroupLabel, FloatGauge>,
    pub fargate_cost: FloatGauge,
    pub aws_calls: Family<ApiLabels, Counter>,
    pub aws_retries: Family<ApiLabels, Counter>,
    pub aws_throttles: Family<ApiLabels, Counter>,
    pub aws_server_errors: Family<ApiLabels, Counter>,
    pub cloudwatch_publishes: Family<ResultLabel, Counter>,
    pub handover_writes: Family<ResultLabel, Counter>,
    pub watch_restarts: Counter,
    pub caches_synced: Gauge,
    pub unreadable: Family<AdapterLabel, Counter>,
    pub leader: Gauge,
    pub mode: Family<ModeLabel, Gauge>,
    pub build_info: Family<VersionLabel, Gauge>,
}

fn tick_histogram() -> Histogram {
    // 5 ms to 41 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

fn provisioning_histogram() -> Histogram {
    // A node's boot: 15 s to 15 minutes (the back-off timeout).
    Histogram::new([15.0, 30.0, 45.0, 60.0, 75.0, 90.0, 120.0, 150.0, 180.0, 240.0, 300.0, 450.0, 600.0, 900.0])
}

fn plugin_histogram() -> Histogram {
    // 100 µs to 6.7 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// The registry and its families, with what scrapes read.
pub struct Metrics {
    registry: Registry,
    pub(crate) f: Families,
    live: Arc<Live>,
    probe: FiguresProbe,
    /// One scrape at a time: refreshing clears and refills the per-group families.
    scraping: std::sync::Mutex<()>,
}

impl Metrics {
    /// Registers every family. `live` is what the engine publishes; `probe` asks the
    /// adapters for their counters at each scrape.
    pub fn new(live: Arc<Live>, probe: FiguresProbe) -> Arc<Self> {
        let f = Families {
            ticks: Family::default(),
            tick_duration: Family::new_with_constructor(tick_histogram),
            last_tick: FloatGauge::default(),
            decisions: Family::default(),
            plugin_duration: Family::new_with_constructor(plugin_histogram),
            plugin_errors: Family::default(),
            plugin_info: Family::default(),
            reloads: Family::default(),
            nodes_removed: Family::default(),
            removals_abandoned: Family::default(),
            evictions: Family::default(),
            unschedulable: Gauge::default(),
            unplaceable: Gauge::default(),
            passed_over: Family::default(),
            capacity_buffers: Family::default(),
            disruption_windows: Family::default(),
            nodes: Family::default(),
            drains: Gauge::default(),
            group_min: Family::default(),
            group_max: Family::default(),
            group_desired: Family::default(),
            group_ready: Family::default(),
            group_backoff: Family::default(),
            group_replacing: Family::default(),
            group_drifted: Family::default(),
            group_provisioning: Family::new_with_constructor(provisioning_histogram),
            group_cost: Family::default(),
            fargate_cost: FloatGauge::default(),
            aws_calls: Family::default(),
            aws_retries: Family::default(),
            aws_throttles: Family::default(),
            aws_server_errors: Family::default(),
            cloudwatch_publishes: Family::default(),
            handover_writes: Family::default(),
            watch_restarts: Counter::default(),
            caches_synced: Gauge::default(),
            unreadable: Family::default(),
            leader: Gauge::default(),
            mode: Family::default(),
            build_info: Family::default(),
        };
        f.build_info.get_or_create(&VersionLabel { version: env!("CARGO_PKG_VERSION").into() }).set(1);
        let mut registry = Registry::with_prefix("ballast");
        register(&mut registry, &f);
        let metrics = Arc::new(Metrics { registry, f, live: live.clone(), probe, scraping: Default::default() });
        let counting = metrics.clone();
        live.after_tick(Arc::new(move |info| counting.tick(info)));
        metrics
    }

    fn tick(&self, info: &TickInfo) {
        let trigger = crate::control::convert::kebab(&info.trigger);
        self.f.ticks.get_or_create(&TickLabels { trigger: trigger.clone(), outcome: info.outcome.into() }).inc();
        self.f.tick_duration.get_or_create(&TriggerLabel { trigger }).observe(info.duration.as_secs_f64());
        self.f.last_tick.set(info.at_millis as f64 / 1000.0);
    }

    /// The exposition in `format`, with the scrape-time figures read now.
    pub fn render(&self, format: Format) -> String {
        let _one = self.scraping.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh();
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "could not encode the metrics");
        }
        exposition::convert(text, format)
    }
}

fn register(r: &mut Registry, f: &Families) {
    r.register("ticks", "Engine ticks, by what started them and how they ended", f.ticks.clone());
    r.register("tick_duration_seconds", "Wall-clock time of a tick, observe to record", f.tick_duration.clone());
    r.register("last_tick_timestamp_seconds", "Unix time of the last tick", f.last_tick.clone());
    r.register("decisions", "Decisions proposed, by plugin, action, guardrail outcome and result", f.decisions.clone());
    r.register("plugin_call_duration_seconds", "Time of one plugin call", f.plugin_duration.clone());
    r.register("plugin_errors", "Plugin calls that failed and were skipped, by kind", f.plugin_errors.clone());
    r.register("plugin_info", "The chain's plugins: mode and component digest (value 1)", f.plugin_info.clone());
    r.register("policy_reloads", "Policy reloads from files: loaded, or kept-previous", f.reloads.clone());
    r.register("nodes_removed", "Nodes drained and terminated, by group and reason", f.nodes_removed.clone());
    r.register("node_removals_abandoned", "Removals given up (node uncordoned)", f.removals_abandoned.clone());
    r.register("evictions", "Eviction requests, by result", f.evictions.clone());
    r.register("unschedulable_pods", "Pods waiting for capacity at the last tick", f.unschedulable.clone());
    r.register(
        "unplaceable_pods",
        "Pods waiting at the last tick that no node group can hold, nor Fargate (each told why by a NotTriggerScaleUp event)",
        f.unplaceable.clone(),
    );
    r.register(
        "passed_over_pods",
        "Pods the scheduler refused at the last tick that no group grows for, as Cluster Autoscaler passes them over, by reason (daemon-set, expendable, nominated)",
        f.passed_over.clone(),
    );
    r.register(
        "capacity_buffer_pods",
        "The pods each CapacityBuffer keeps room for at the last tick, as resolved from its spec (a buffer that does not resolve is absent)",
        f.capacity_buffers.clone(),
    );
    r.register(
        "disruption_window_open",
        "1 while a configured disruption window is open at the last tick (voluntary removals held to its limit), else 0",
        f.disruption_windows.clone(),
    );
    r.register("nodes", "Nodes at the last tick, by state", f.nodes.clone());
    r.register("drains_in_progress", "Nodes being drained for removal", f.drains.clone());
    r.register("node_group_min_size", "A node group's minimum size", f.group_min.clone());
    r.register("node_group_max_size", "A node group's maximum size", f.group_max.clone());
    r.register("node_group_desired_size", "A node group's desired size", f.group_desired.clone());
    r.register("node_group_ready_nodes", "A node group's ready nodes", f.group_ready.clone());
    r.register("node_group_backoff", "1 while a node group is in provisioning back-off", f.group_backoff.clone());
    r.register(
        "node_group_replacement_started",
        "While a node group is replaced node by node (ctl replace group): the replacements started so far",
        f.group_replacing.clone(),
    );
    r.register(
        "node_group_drifted_nodes",
        "A node group's nodes of a machine image, instance type or launch template version it no longer launches (replaced when guardrails.drift.replace is set)",
        f.group_drifted.clone(),
    );
    r.register(
        "node_group_provisioning_duration_seconds",
        "From the tick that asked a node group for a node to the tick that saw it Ready",
        f.group_provisioning.clone(),
    );
    r.register(
        "node_group_cost_per_hour_dollars",
        "A node group's running nodes at their price, USD per hour",
        f.group_cost.clone(),
    );
    r.register("fargate_cost_per_hour_dollars", "Pods on Fargate at their billed size", f.fargate_cost.clone());
    r.register("aws_calls", "AWS API operations started", f.aws_calls.clone());
    r.register("aws_retries", "AWS API attempts beyond the first", f.aws_retries.clone());
    r.register("aws_throttles", "AWS API attempts answered with throttling", f.aws_throttles.clone());
    r.register("aws_server_errors", "AWS API attempts answered with a 5xx", f.aws_server_errors.clone());
    r.register("cloudwatch_publishes", "PutMetricData of Ballast's figures", f.cloudwatch_publishes.clone());
    r.register(
        "handover_writes",
        "Handovers written to the ConfigMap for the next leader, by result",
        f.handover_writes.clone(),
    );
    r.register("kube_watch_restarts", "Kubernetes watches restarted after an error", f.watch_restarts.clone());
    r.register("kube_caches_synced", "1 when every watch cache has listed", f.caches_synced.clone());
    r.register(
        "unreadable_values",
        "Values from the Kubernetes or AWS APIs that could not be read (their objects treated as unknown), by adapter",
        f.unreadable.clone(),
    );
    r.register("leader", "1 while this replica holds the Lease and may act", f.leader.clone());
    r.register("mode", "The engine's mode (value 1)", f.mode.clone());
    r.register("build_info", "The running version (value 1)", f.build_info.clone());
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::record::{
        ActionResult, DecisionRecord, GroupSummary, GuardOutcome, Record, RemovalOutcome, RemovalRecord,
        SnapshotSummary, TickRecord,
    };

    fn metrics() -> Arc<Metrics> {
        Metrics::new(Arc::new(Live::default()), Arc::new(AdapterFigures::default))
    }

    /// Every name `register` gives a family (read from this file: a family with no series
    /// yet is not in the exposition).
    fn registered() -> Vec<String> {
        let source = include_str!("mod.rs");
        let body = &source[source.find("fn register(").unwrap_or(0)..];
        let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
        body.split("r.register(")
            .skip(1)
            .filter_map(|call| call.split('"').nth(1).map(|name| format!("ballast_{name}")))
            .collect()
    }

    #[test]
    fn every_metric_is_in_the_readme_table() {
        let readme = include_str!("../../../README.md");
        let names = registered();
        assert!(names.len() > 25, "{names:?}");
        for name in names {
            // Grouped rows name the suffix only: `ballast_node_group_min_size`, `_max_size`.
            let suffix = name.rsplit_once("node_group").map(|(_, s)| format!("`{s}`")).unwrap_or_default();
            // Counters are listed with their `_total`.
            let listed = readme.contains(&format!("`{name}`"))
                || readme.contains(&format!("`{name}_total`"))
                || (!suffix.is_empty() && readme.contains(&suffix));
            assert!(listed, "{name} is not in the README's metrics table");
        }
    }

    #[test]
    fn records_are_counted_once_by_plugin_action_guard_and_result() {
        let m = metrics();
        let decision = Record::Decision(DecisionRecord {
            tick: 1,
            at_millis: 0,
            plugin: "binpack".into(),
            proposed: ballast_sdk::Action::ScaleTo { group: "general".into(), size: 3 },
            reason: "pending pods".into(),
            guard: GuardOutcome::Accepted,
            result: ActionResult::DryRun,
            repeated: None,
        });
        m.count(&decision);
        m.count(&decision);
        let removal = |evicted, cause: Option<&str>| {
            Record::Removal(RemovalRecord {
                tick: 2,
                at_millis: 0,
                node: "n1".into(),
                group: "general".into(),
                started_tick: 1,
                outcome: RemovalOutcome::Completed { evicted },
                cause: cause.map(str::to_string),
            })
        };
        m.count(&removal(0, None));
        m.count(&removal(3, None));
        m.count(&removal(2, Some("drifted")));
        let text = m.render(Format::Text);
        let line = |series: &str| text.lines().find(|l| l.starts_with(series)).map(str::to_string);
        assert_eq!(
            line(
                "ballast_decisions_total{plugin=\"binpack\",action=\"scale-to\",guard=\"accepted\",result=\"dry-run\"}"
            )
            .as_deref()
            .and_then(|l| l.rsplit(' ').next()),
            Some("2")
        );
        assert!(line("ballast_nodes_removed_total{node_group=\"general\",reason=\"empty\"} 1").is_some(), "{text}");
        assert!(line("ballast_nodes_removed_total{node_group=\"general\",reason=\"underutilized\"} 1").is_some());
        assert!(line("ballast_nodes_removed_total{node_group=\"general\",reason=\"drifted\"} 1").is_some(), "{text}");
        assert!(line("ballast_build_info{version=").is_some());
    }

    #[test]
    fn each_node_a_group_delivers_is_observed_with_the_time_it_took() {
        let m = metrics();
        let group = |id: &str, delivered_seconds: Vec<u32>| GroupSummary {
            id: id.into(),
            min: 0,
            max: 10,
            desired: 2,
            ready: 2,
            backoff_until_millis: None,
            delivered_seconds,
        };
        let tick = Record::Tick(TickRecord {
            tick: 3,
            at_millis: 0,
            mode: crate::engine::Mode::Enforce,
            trigger: crate::engine::record::Trigger::Periodic,
            error: None,
            standby: false,
            saw: SnapshotSummary {
                groups: vec![group("batch", vec![70, 95]), group("web", Vec::new())],
                ..Default::default()
            },
            plugins: Vec::new(),
        });
        m.count(&tick);
        let text = m.render(Format::Text);
        let series = "ballast_node_group_provisioning_duration_seconds";
        let value =
            |s: &str| text.lines().find(|l| l.starts_with(s)).and_then(|l| l.rsplit(' ').next()).map(str::to_string);
        assert_eq!(value(&format!("{series}_count{{node_group=\"batch\"}}")).as_deref(), Some("2"), "{text}");
        assert_eq!(value(&format!("{series}_sum{{node_group=\"batch\"}}")).as_deref(), Some("165.0"));
        assert_eq!(
            value(&format!("{series}_bucket{{le=\"75.0\",node_group=\"batch\"}}")).as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(value(&format!("{series}_bucket{{le=\"120.0\",node_group=\"batch\"}}")).as_deref(), Some("2"));
        assert!(!text.contains(&format!("{series}_count{{node_group=\"web\"}}")), "a group that delivered nothing");
    }
}
