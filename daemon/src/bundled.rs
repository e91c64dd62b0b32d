//! Policies and an example snapshot compiled into the binary, so `ballast` works with no
//! files at hand. The components are built from `plugins/` by `build.rs`.

/// A policy shipped inside the binary.
pub struct BundledPlugin {
    pub name: &'static str,
    pub summary: &'static str,
    pub wasm: &'static [u8],
}

pub const PLUGINS: &[BundledPlugin] = &[
    BundledPlugin {
        name: "binpack",
        summary: "Cluster Autoscaler-like: cheapest fitting group up, idle nodes down",
        wasm: include_bytes!(concat!(env!("BALLAST_PLUGIN_DIR"), "/binpack.wasm")),
    },
    BundledPlugin {
        name: "consolidation",
        summary: "Karpenter-like: removes nodes whose pods provably fit on the others",
        wasm: include_bytes!(concat!(env!("BALLAST_PLUGIN_DIR"), "/consolidation.wasm")),
    },
    BundledPlugin {
        name: "expiry",
        summary: "Karpenter's expireAfter: nodes past an age replaced, successor first",
        wasm: include_bytes!(concat!(env!("BALLAST_PLUGIN_DIR"), "/expiry.wasm")),
    },
    BundledPlugin {
        name: "fargate-placement",
        summary: "per workload, Fargate or EC2 by cost and eligibility",
        wasm: include_bytes!(concat!(env!("BALLAST_PLUGIN_DIR"), "/fargate_placement.wasm")),
    },
    BundledPlugin {
        name: "headroom",
        summary: "spare room for N pods of a shape, optionally on a schedule",
        wasm: include_bytes!(concat!(env!("BALLAST_PLUGIN_DIR"), "/headroom.wasm")),
    },
    BundledPlugin {
        name: "thresholds",
        summary: "Escalator-like baseline: utilisation thresholds per group",
        wasm: include_bytes!(concat!(env!("BALLAST_PLUGIN_DIR"), "/thresholds.wasm")),
    },
    BundledPlugin {
        name: "static-size",
        summary: "baseline: holds each group at a fixed size",
        wasm: include_bytes!(concat!(env!("BALLAST_PLUGIN_DIR"), "/static_size.wasm")),
    },
];

/// The default policies, in chain order: scale-up by bin-packing at the lowest cost per pod,
/// room made ahead of recurring bursts, consolidation by simulated placement and replacement,
/// then Fargate-or-EC2 placement by cost. `ballast run` loads them when its configuration
/// names none, and `ballast simulate` runs them as the `default` set.
pub const DEFAULT_CHAIN: &[&str] = &["binpack", "headroom", "consolidation", "fargate-placement"];

/// The settings a policy runs with in the default chain (`null`: its own defaults): in it,
/// binpack picks groups by cost per pod and leaves scale-down to consolidation (its own
/// defaults: Karpenter's, reading the host's cooldowns from the snapshot rather than
/// proposing what they would refuse; its learned wait, `churn-window-seconds`, is off: with
/// headroom making room for the demand it can foresee, the wait only kept nodes longer,
/// measured on the shipped scenarios over seeds 1 to 5; `shrink-replace-wait-seconds` is 300:
/// no node is launched to replace or merge nodes of a workload that scaled in within 5
/// minutes, which on morning-ramp's evening moved the same pods twice; `replace-after-cooldown`
/// starts a replacement or merge only if the replaced node's group may shrink by the time
/// the new node is Ready). binpack prices each group for what a growing workload adds over
/// 10 minutes (`growth`), so a climb a pod at a time buys nodes that fill rather than the
/// cheapest for one pod, and spreads a scale-up over groups alike but for their zone
/// (`balance-similar-groups`), as Cluster Autoscaler does with
/// `--balance-similar-node-groups`, at the same price. headroom keeps the room the cluster's
/// CapacityBuffers ask for (contract 0.1.11), learns bursts that recur at a steady period,
/// reads CronJob schedules, and asks for their room 90 s before each is due (a node's boot,
/// 60-75 s in the shipped scenarios, and a tick), or longer before where the group that would hold it took
/// longer to deliver its last nodes (contract 0.1.10). With `ramp` (its defaults: a climb of
/// 5 replicas in 3 steps within 60 s) it makes room for what a climbing workload adds within
/// that lead.
pub fn default_settings(name: &str) -> serde_json::Value {
    match name {
        "binpack" => {
            serde_json::json!({
                "scale-down": false,
                "expander": "price",
                "growth": { "horizon-seconds": 600 },
                "balance-similar-groups": { "enabled": true }
            })
        }
        "consolidation" => {
            serde_json::json!({ "shrink-replace-wait-seconds": 300, "replace-after-cooldown": true })
        }
        "headroom" => {
            serde_json::json!({ "recurring": { "lead-seconds": 90 }, "ramp": {}, "scheduled": { "lead-seconds": 90 } })
        }
        _ => serde_json::Value::Null,
    }
}

/// The default chain, ready to load.
pub fn default_specs() -> Vec<crate::policy::PluginSpec> {
    DEFAULT_CHAIN.iter().filter_map(|name| spec(name, default_settings(name))).collect()
}

/// A bundled policy by name.
pub fn plugin(name: &str) -> Option<&'static BundledPlugin> {
    PLUGINS.iter().find(|p| p.name == name)
}

/// Two empty node groups and twelve pending pods: what `ballast plugin run` evaluates when
/// no snapshot is given.
pub const EXAMPLE_SNAPSHOT: &str = include_str!("../../tests/fixtures/snapshots/two-groups.yaml");

/// A bundled policy ready to load, with these settings and default limits.
pub fn spec(name: &str, settings: serde_json::Value) -> Option<crate::policy::PluginSpec> {
    let plugin = plugin(name)?;
    Some(crate::policy::PluginSpec {
        name: plugin.name.to_string(),
        bytes: std::sync::Arc::from(plugin.wasm),
        settings,
        limits: crate::policy::PluginLimits::default(),
    })
}
