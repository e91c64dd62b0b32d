//! How `ballast ctl` prints answers: a table for people, the message itself as JSON or YAML
//! for tools.

use ballast_proto::v1 as pb;
use serde::Serialize;

use super::Format;
use crate::cli::render;

/// Prints `answer` in `format`; `table` renders it for people.
pub fn print<T: Serialize>(format: Format, answer: &T, table: fn(&T) -> String) -> anyhow::Result<()> {
    match format {
        Format::Table => outln!("{}", table(answer)),
        Format::Json => outln!("{}", serde_json::to_string_pretty(answer)?),
        Format::Yaml => outln!("---\n{}", serde_yaml::to_string(answer)?.trim_end()),
    }
    Ok(())
}

fn engine_mode(mode: i32) -> &'static str {
    match pb::EngineMode::try_from(mode) {
        Ok(pb::EngineMode::Enforce) => "enforce",
        Ok(pb::EngineMode::DryRun) => "dry-run",
        Ok(pb::EngineMode::Paused) => "paused",
        _ => "unknown",
    }
}

fn plugin_mode(mode: i32) -> &'static str {
    match pb::PluginMode::try_from(mode) {
        Ok(pb::PluginMode::Enforce) => "enforce",
        Ok(pb::PluginMode::Shadow) => "shadow",
        _ => "unknown",
    }
}

fn time(millis: i64) -> String {
    match u64::try_from(millis) {
        Ok(0) | Err(_) => "-".into(),
        Ok(ms) => {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
        }
    }
}

/// What a leader took over when it started to lead.
fn taken_over(l: &pb::Leadership) -> String {
    if l.taken_over_from.is_empty() {
        return "none taken when it started to lead (cooldowns from its own records)".into();
    }
    let age = l.taken_over_unix_millis.saturating_sub(l.handover_left_unix_millis) / 1000;
    format!("taken from {} at {}, left by it {age} s before", l.taken_over_from, time(l.taken_over_unix_millis))
}

pub fn status(s: &pb::GetStatusResponse) -> String {
    let mut lines = vec![format!("mode:      {}", engine_mode(s.mode)), format!("source:    {}", s.source)];
    if let Some(l) = &s.leadership {
        let leading = match (l.election, l.leading) {
            (false, _) => "single replica, no election".to_string(),
            (true, true) => format!("leading since {}", time(l.since_unix_millis)),
            (true, false) if l.holder.is_empty() => "standby; no leader seen yet".to_string(),
            (true, false) => format!("standby; {} leads", l.holder),
        };
        lines.push(format!("replica:   {} ({leading})", l.identity));
        if l.leading {
            lines.push(format!("handover:  {}", taken_over(l)));
        }
    }
    match &s.last_tick {
        Some(t) => lines.push(format!(
            "last tick: #{} at {} ({}), {} in {} µs: {} proposed, {} accepted, {} changed, {} refused, {} plugin errors{}",
            t.tick,
            time(t.at_unix_millis),
            t.trigger,
            t.outcome,
            t.duration_micros,
            t.proposed,
            t.accepted,
            t.changed,
            t.refused,
            t.plugin_errors,
            if t.error.is_empty() { String::new() } else { format!(" ({})", t.error) }
        )),
        None => lines.push("last tick: none yet".into()),
    }
    if let Some(a) = &s.adapters {
        lines.push(format!(
            "adapters:  watch caches {}, metrics API {}, {} throttled calls, {} unreadable values, {} journal errors",
            if a.watch_caches_synced {
                "synced".to_string()
            } else {
                format!("syncing ({})", a.unsynced_kinds.join(", "))
            },
            a.metrics_api,
            a.throttled_calls,
            a.unreadable_values,
            a.journal_errors
        ));
        if !a.last_unreadable.is_empty() {
            lines.push(format!("unreadable: {}", a.last_unreadable));
        }
    }
    lines.push(plugins(&pb::ListPluginsResponse { plugins: s.plugins.clone() }));
    lines.join("\n")
}

pub fn plugins(p: &pb::ListPluginsResponse) -> String {
    let mut t = render::table(&["plugin", "mode", "calls", "p50 µs", "p99 µs", "errors", "digest", "source"]);
    for p in &p.plugins {
        let errors: Vec<String> = p.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        t.add_row(vec![
            p.name.clone(),
            plugin_mode(p.mode).into(),
            p.calls.to_string(),
            p.latency_p50_micros.to_string(),
            p.latency_p99_micros.to_string(),
            errors.join(", "),
            p.digest.chars().take(12).collect(),
            p.source.clone(),
        ]);
    }
    t.to_string()
}

pub fn groups(g: &pb::ListNodeGroupsResponse) -> String {
    let header =
        ["group", "kind", "min", "max", "desired", "ready", "$/hour", "back-off", "boots in", "instance types"];
    let mut t = render::table(&header);
    for g in &g.groups {
        let types: Vec<String> =
            g.instance_types.iter().map(|i| format!("{} ${:.4}", i.name, i.price_per_hour)).collect();
        let recent = &g.recent_provisioning_seconds;
        let boots = match (recent.iter().min(), recent.iter().max()) {
            (Some(fastest), Some(slowest)) => format!("{fastest}-{slowest} s (last {})", recent.len()),
            _ => String::new(),
        };
        t.add_row(vec![
            g.id.clone(),
            g.kind.clone(),
            g.min_size.to_string(),
            if g.max_size == u32::MAX { "-".into() } else { g.max_size.to_string() },
            g.desired_size.to_string(),
            g.ready_nodes.to_string(),
            format!("{:.4}", g.cost_per_hour),
            g.backoff
                .as_ref()
                .map(|b| format!("until {}: {}", time(b.until_unix_millis), b.reason))
                .unwrap_or_default(),
            boots,
            types.join(", "),
        ]);
    }
    let mut out = t.to_string();
    for (id, r) in g.groups.iter().filter_map(|g| Some((&g.id, g.replacement.as_ref()?))) {
        out.push_str(&format!(
            "\n{id}: replacing its nodes from before {}, {} at a time, {} started; asked by {}: {}",
            time(r.since_unix_millis),
            r.at_once,
            r.started,
            r.asked_by,
            r.reason
        ));
    }
    for group in g.groups.iter().filter(|g| g.drifted_nodes > 0 && g.nodes.is_empty()) {
        let (id, n) = (&group.id, group.drifted_nodes);
        out.push_str(&format!(
            "\n{id}: {n} drifted node(s): of an image, type or template version it no longer launches (--nodes names them)"
        ));
    }
    let nodes: Vec<&pb::Node> = g.groups.iter().flat_map(|g| &g.nodes).collect();
    for node in nodes.iter().filter(|n| !n.drift.is_empty()) {
        out.push_str(&format!("\n{} drifted: {}", node.name, node.drift));
    }
    if !nodes.is_empty() {
        let mut n = render::table(&["node", "group", "type", "ready", "utilisation", "pods", "removal"]);
        for node in nodes {
            let removal = match (node.being_removed, node.removal_blocker.as_str()) {
                (true, _) => "being removed".to_string(),
                (false, "") => "removable".to_string(),
                (false, blocker) => format!("blocked: {blocker}"),
            };
            n.add_row(vec![
                node.name.clone(),
                node.group.clone(),
                node.instance_type.clone(),
                node.ready.to_string(),
                format!("{:.0}%", node.utilisation * 100.0),
                node.pod_count.to_string(),
                removal,
            ]);
        }
        out = format!("{out}\n{n}");
    }
    out
}

/// One line per record, for `decisions --follow`.
pub fn record_lines(r: &pb::ListDecisionsResponse) -> String {
    r.records.iter().map(line).collect::<Vec<_>>().join("\n")
}

fn line(r: &pb::Record) -> String {
    let (who, what, outcome, why) = columns(r);
    format!("#{} tick {} {who}: {what} [{outcome}] {why}", r.id, r.tick)
}

fn columns(r: &pb::Record) -> (String, String, String, String) {
    use pb::record::Kind;
    match &r.kind {
        Some(Kind::Decision(d)) => {
            let mut outcome = format!("{}, {}", d.guard, d.result);
            if !d.why.is_empty() {
                let why: Vec<&str> = d.why.iter().map(|w| w.message.as_str()).collect();
                outcome = format!("{outcome}: {}", why.join("; "));
            }
            if !d.error.is_empty() {
                outcome = format!("{outcome}: {}", d.error);
            }
            let what = d.proposed.as_ref().map(|a| a.text.clone()).unwrap_or_default();
            (d.plugin.clone(), what, outcome, d.reason.clone())
        }
        Some(Kind::TickRecord(t)) => (
            "(tick)".into(),
            super::super::render::tick_saw(t.nodes.into(), t.pending_pods.into(), t.unplaceable_pods.into()),
            format!("{}, {}", t.trigger, engine_mode(t.mode)),
            t.error.clone(),
        ),
        Some(Kind::Removal(rm)) => {
            let why = match rm.cause.is_empty() {
                true => rm.why.clone(),
                false => format!("{} {}", rm.cause, rm.why).trim_end().to_string(),
            };
            ("(removal)".into(), format!("node {} of {}", rm.node, rm.group), rm.outcome.clone(), why)
        }
        Some(Kind::Control(c)) => {
            (format!("(control: {})", c.caller), c.change.clone(), String::new(), c.reason.clone())
        }
        Some(Kind::Expander(e)) => {
            let offered: Vec<String> =
                e.offered.iter().map(|o| format!("{} +{} ({} pods)", o.group, o.node_count, o.pods)).collect();
            let chosen: Vec<&str> = e.chosen.iter().map(|c| c.group.as_str()).collect();
            let outcome = match (e.error.is_empty(), chosen.is_empty()) {
                (false, _) => format!("failed: {}", e.error),
                (true, true) => "none chosen".into(),
                (true, false) => format!("chose {}", chosen.join(", ")),
            };
            let (plugin, reason) =
                e.chosen.first().map_or((String::new(), String::new()), |c| (c.plugin.clone(), c.reason.clone()));
            (format!("(expander) {plugin}"), format!("options {}", offered.join(", ")), outcome, reason)
        }
        None => Default::default(),
    }
}

pub fn records(r: &pb::ListDecisionsResponse) -> String {
    let mut t = render::table(&["id", "tick", "at", "plugin", "proposed", "outcome", "reason"]);
    for record in &r.records {
        let (who, what, outcome, why) = columns(record);
        t.add_row(vec![
            record.id.to_string(),
            record.tick.to_string(),
            time(record.at_unix_millis),
            who,
            what,
            outcome,
            why,
        ]);
    }
    t.to_string()
}

pub fn decision(d: &pb::GetDecisionResponse) -> String {
    let mut out = records(&pb::ListDecisionsResponse {
        records: d.record.iter().cloned().collect(),
        next_page_token: String::new(),
    });
    if let Some(pb::Record { kind: Some(pb::record::Kind::TickRecord(t)), tick, .. }) = &d.tick {
        out.push_str(&format!(
            "\ntick {tick} saw {} nodes ({} ready), {} pending pods, {} workloads, {} nodes being removed",
            t.nodes, t.ready_nodes, t.pending_pods, t.workloads, t.nodes_being_removed
        ));
        for g in &t.groups {
            out.push_str(&format!(
                "\n  group {}: {} desired of {}..{}, {} ready",
                g.id, g.desired, g.min, g.max, g.ready
            ));
        }
        for p in &t.plugins {
            out.push_str(&format!(
                "\n  plugin {}: {} decisions in {} µs {}",
                p.plugin, p.decisions, p.elapsed_micros, p.error
            ));
        }
    }
    out
}

pub fn mode(m: &pb::GetModeResponse) -> String {
    format!("mode: {}", engine_mode(m.mode))
}

pub fn validation(v: &pb::ValidateSettingsResponse) -> String {
    match v.valid {
        true => "settings accepted".into(),
        false => format!("settings refused: {}", v.error),
    }
}

pub fn simulation(s: &pb::SimulateResponse) -> String {
    let summary = serde_json::from_str::<serde_json::Value>(&s.summary_json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| s.summary_json.clone());
    match s.decisions.is_empty() {
        true => summary,
        false => format!(
            "{summary}\n{}",
            records(&pb::ListDecisionsResponse { records: s.decisions.clone(), next_page_token: String::new() })
        ),
    }
}

pub fn explanation(e: &pb::Explanation) -> String {
    let mut out = vec![e.summary.clone()];
    out.extend(e.facts.iter().map(|f| format!("  - {f}")));
    if !e.records.is_empty() {
        out.push("latest records:".into());
        out.extend(e.records.iter().map(|r| format!("  {}", line(r))));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(leadership: pb::Leadership) -> String {
        status(&pb::GetStatusResponse { leadership: Some(leadership), ..Default::default() })
    }

    #[test]
    fn a_standby_names_the_replica_that_leads() {
        let standby = |holder: &str| pb::Leadership {
            election: true,
            identity: "ballast-b".into(),
            leading: false,
            since_unix_millis: 0,
            holder: holder.into(),
            ..Default::default()
        };
        assert!(with(standby("ballast-a")).contains("replica:   ballast-b (standby; ballast-a leads)"));
        assert!(with(standby("")).contains("(standby; no leader seen yet)"));
        assert!(!with(standby("ballast-a")).contains("handover:"), "a standby took nothing");
    }

    #[test]
    fn a_leader_says_whose_handover_it_took_and_how_old_it_was() {
        let leader = |from: &str| pb::Leadership {
            election: true,
            identity: "ballast-b".into(),
            leading: true,
            since_unix_millis: 1_800_000_000_000,
            holder: "ballast-b".into(),
            taken_over_from: from.into(),
            taken_over_unix_millis: 1_800_000_000_000,
            handover_left_unix_millis: 1_799_999_996_000,
        };
        let text = with(leader("ballast-a"));
        assert!(
            text.contains("handover:  taken from ballast-a at 2027-01-15T08:00:00Z, left by it 4 s before"),
            "{text}"
        );
        assert!(with(leader("")).contains("handover:  none taken when it started to lead"));
    }
}
