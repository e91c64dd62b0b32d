//! The engine's records and views as the control API's messages.

use ballast_proto::v1 as pb;
use ballast_sdk::{Action, PlacementTarget, Resources, WorkloadRef};
use serde::Serialize;

use crate::engine::Mode;
use crate::engine::record::{
    ChosenOption, DecisionRecord, ExpanderRecord, GroupSummary, GuardOutcome, Record, RemovalOutcome, RemovalRecord,
    Stamped, TickRecord,
};
use crate::policy::PluginMode;

/// A unit enum's kebab-case name, as the journal writes it.
pub fn kebab<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(map)) => map.values().next().and_then(|v| v.as_str()).unwrap_or("").to_string(),
        _ => String::new(),
    }
}

pub fn mode(mode: Mode) -> pb::EngineMode {
    match mode {
        Mode::Enforce => pb::EngineMode::Enforce,
        Mode::DryRun => pb::EngineMode::DryRun,
        Mode::Paused => pb::EngineMode::Paused,
    }
}

pub fn plugin_mode(mode: PluginMode) -> pb::PluginMode {
    match mode {
        PluginMode::Enforce => pb::PluginMode::Enforce,
        PluginMode::Shadow => pb::PluginMode::Shadow,
    }
}

pub fn resources(r: &Resources) -> pb::Resources {
    pb::Resources {
        cpu_millis: r.cpu_millis,
        memory_bytes: r.memory_bytes,
        pods: r.pods,
        gpus: r.gpus,
        ephemeral_storage_bytes: r.ephemeral_storage_bytes,
    }
}

pub fn workload(w: &WorkloadRef) -> pb::WorkloadRef {
    pb::WorkloadRef { kind: kebab(&w.kind), namespace: w.namespace.clone(), name: w.name.clone() }
}

pub fn action(a: &Action) -> pb::Action {
    use pb::action::Action as A;
    let inner = match a {
        Action::ScaleTo { group, size } => A::ScaleTo(pb::ScaleTo { group: group.clone(), size: *size }),
        Action::ScaleBy { group, delta } => A::ScaleBy(pb::ScaleBy { group: group.clone(), delta: *delta }),
        Action::RemoveNodes { nodes } => A::RemoveNodes(pb::RemoveNodes { nodes: nodes.clone() }),
        Action::Place { workload: w, target } => {
            let (target, group) = match target {
                PlacementTarget::Fargate => ("fargate", String::new()),
                PlacementTarget::Ec2(group) => ("ec2", group.clone().unwrap_or_default()),
            };
            A::Place(pb::Place { workload: Some(workload(w)), target: target.into(), group })
        }
    };
    pb::Action { action: Some(inner), text: a.to_string() }
}

pub fn record(stamped: &Stamped) -> pb::Record {
    use pb::record::Kind;
    let r = &stamped.record;
    let kind = match r {
        Record::Tick(t) => Kind::TickRecord(tick_record(t)),
        Record::Decision(d) => Kind::Decision(decision_record(d)),
        Record::Removal(rm) => Kind::Removal(removal_record(rm)),
        Record::Control(c) => Kind::Control(pb::ControlRecord {
            caller: c.caller.clone(),
            change: c.change.clone(),
            reason: c.reason.clone(),
        }),
        Record::Expander(e) => Kind::Expander(expander_record(e)),
    };
    pb::Record {
        id: stamped.id,
        tick: r.tick(),
        at_unix_millis: r.at_millis() as i64,
        kind: Some(kind),
        json: stamped.json().to_string(),
    }
}

fn tick_record(t: &TickRecord) -> pb::TickRecord {
    let group = |g: &GroupSummary| pb::GroupSize {
        id: g.id.clone(),
        min: g.min,
        max: g.max,
        desired: g.desired,
        ready: g.ready,
        backoff_until_unix_millis: g.backoff_until_millis.unwrap_or(0) as i64,
        delivered_seconds: g.delivered_seconds.clone(),
    };
    pb::TickRecord {
        mode: mode(t.mode) as i32,
        trigger: kebab(&t.trigger),
        error: t.error.clone().unwrap_or_default(),
        standby: t.standby,
        nodes: t.saw.nodes as u32,
        ready_nodes: t.saw.ready_nodes as u32,
        pending_pods: t.saw.pending_pods as u32,
        workloads: t.saw.workloads as u32,
        nodes_being_removed: t.saw.nodes_being_removed as u32,
        unplaceable_pods: t.saw.unplaceable_pods as u32,
        groups: t.saw.groups.iter().map(group).collect(),
        plugins: t.plugins.iter().map(plugin_run).collect(),
    }
}

fn decision_record(d: &DecisionRecord) -> pb::DecisionRecord {
    let (applied, why) = match &d.guard {
        GuardOutcome::Accepted => (Vec::new(), Vec::new()),
        GuardOutcome::Changed { applied, why } => (applied.iter().map(action).collect(), why.clone()),
        GuardOutcome::Refused { why } => (Vec::new(), why.clone()),
    };
    pb::DecisionRecord {
        plugin: d.plugin.clone(),
        proposed: Some(action(&d.proposed)),
        reason: d.reason.clone(),
        guard: d.guard.name().into(),
        applied,
        why: why.iter().map(|w| pb::Why { rule: kebab(&w.rule), message: w.message.clone() }).collect(),
        result: d.result.name().into(),
        error: d.result.error().unwrap_or_default().to_string(),
        failure_kind: d.result.failure_kind().map(|k| kebab(&k)).unwrap_or_default(),
        repeat_count: d.repeated.as_ref().map_or(0, |r| r.count),
        first_tick: d.repeated.as_ref().map_or(0, |r| r.first_tick),
        last_tick: d.repeated.as_ref().map_or(0, |r| r.last_tick),
        first_id: d.repeated.as_ref().map_or(0, |r| r.first_id),
    }
}

fn removal_record(rm: &RemovalRecord) -> pb::RemovalRecord {
    let (outcome, evicted, why) = match &rm.outcome {
        RemovalOutcome::Completed { evicted } => ("completed", *evicted, String::new()),
        RemovalOutcome::Abandoned { why } => ("abandoned", 0, why.clone()),
    };
    pb::RemovalRecord {
        node: rm.node.clone(),
        group: rm.group.clone(),
        started_tick: rm.started_tick,
        outcome: outcome.into(),
        evicted,
        why,
        cause: rm.cause.clone().unwrap_or_default(),
    }
}

fn expander_record(e: &ExpanderRecord) -> pb::ExpanderRecord {
    let choice = |c: &ChosenOption| pb::ExpanderChoice {
        group: c.group.clone(),
        plugin: c.plugin.clone(),
        proposed: Some(action(&c.proposed)),
        reason: c.reason.clone(),
    };
    pb::ExpanderRecord {
        offered: e
            .offered
            .iter()
            .map(|o| pb::ExpanderOffer { group: o.group.clone(), node_count: o.node_count, pods: o.pods as u32 })
            .collect(),
        chosen: e.chosen.iter().map(choice).collect(),
        plugins: e.plugins.iter().map(plugin_run).collect(),
        error: e.error.clone().unwrap_or_default(),
    }
}

fn plugin_run(p: &crate::engine::record::PluginRun) -> pb::PluginRun {
    pb::PluginRun {
        plugin: p.plugin.clone(),
        elapsed_micros: p.elapsed_micros,
        decisions: p.decisions as u32,
        error: p.error.clone().unwrap_or_default(),
    }
}
