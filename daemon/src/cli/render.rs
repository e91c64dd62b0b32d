//! Tables for people, JSON for programs.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

use ballast_sdk::Decision;

pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(header);
    table.set_width(width());
    table
}

/// `$COLUMNS` when set and numeric, else 140: output is often piped, where there is no
/// terminal to ask.
fn width() -> u16 {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(140)
}

pub fn decisions(decisions: &[Decision]) -> Table {
    let mut t = table(&["#", "action", "reason"]);
    for (i, d) in decisions.iter().enumerate() {
        t.add_row(vec![i.to_string(), d.action.to_string(), d.reason.clone()]);
    }
    t
}

/// Formats a duration in the unit that reads best.
pub fn duration(d: std::time::Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.1} µs")
    } else if micros < 1e6 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{:.2} s", micros / 1e6)
    }
}

/// What a tick saw, in a table cell: its nodes and pending pods, and the pending pods no
/// node group can hold when there are any.
pub fn tick_saw(nodes: u64, pending: u64, unplaceable: u64) -> String {
    match unplaceable {
        0 => format!("{nodes} nodes, {pending} pending pods"),
        n => format!("{nodes} nodes, {pending} pending pods ({n} no group can hold)"),
    }
}
