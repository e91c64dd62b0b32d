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
        name: "fargate-placement",
        summary: "per workload, Fargate or EC2 by cost and eligibility",
        wasm: include_bytes!(concat!(env!("BALLAST_PLUGIN_DIR"), "/fargate_placement.wasm")),
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
