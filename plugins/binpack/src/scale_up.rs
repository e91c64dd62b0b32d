//! Scale-up: first-fit decreasing of pending pods onto new nodes, cheapest group first.

use ballast_sdk::prelude::*;

/// A group's answer for a set of pods: how many it places on how many new nodes.
struct Fit<'a> {
    group: &'a NodeGroup,
    template: Resources,
    price: f64,
    new_nodes: u32,
    /// Indices (into the pending list) of the pods placed.
    placed: Vec<usize>,
}

impl Fit<'_> {
    fn cost(&self) -> f64 {
        self.new_nodes as f64 * self.price
    }
}

pub fn plan(snapshot: &dyn Snapshot) -> Vec<Decision> {
    let pods = snapshot.pending_pods();
    if pods.is_empty() {
        return Vec::new();
    }
    // Largest first, by the dimension that is scarcest on a typical node (CPU then memory).
    let mut order: Vec<usize> = (0..pods.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (&pods[a].requests, &pods[b].requests);
        (rb.cpu_millis, rb.memory_bytes).cmp(&(ra.cpu_millis, ra.memory_bytes))
    });
    let mut waiting = order;
    let mut decisions = Vec::new();
    let mut groups: Vec<&NodeGroup> = snapshot
        .node_groups()
        .iter()
        .filter(|g| g.kind == NodeGroupKind::Asg && !g.instance_types.is_empty())
        .collect();

    while !waiting.is_empty() && !groups.is_empty() {
        let fits: Vec<Fit> = groups.iter().map(|g| fit(g, pods, &waiting)).filter(|f| !f.placed.is_empty()).collect();
        // Most pods placed, then lowest cost, then fewest nodes.
        let Some(best) = fits.iter().min_by(|a, b| {
            b.placed.len().cmp(&a.placed.len()).then(a.cost().total_cmp(&b.cost())).then(a.new_nodes.cmp(&b.new_nodes))
        }) else {
            break;
        };
        if best.new_nodes > 0 {
            decisions.push(Decision::new(
                Action::ScaleTo { group: best.group.id.clone(), size: best.group.desired_size + best.new_nodes },
                reason(best, &fits, pods),
            ));
        }
        waiting.retain(|i| !best.placed.contains(i));
        let chosen = best.group.id.clone();
        groups.retain(|g| g.id != chosen);
    }
    decisions
}

/// Packs `waiting` pods (largest first) onto the group's nodes that are not ready yet (asked
/// for, booting, or registered but not Ready: the scheduler cannot use them, but soon will),
/// then onto new ones up to the group's max. Reads no node list, so a plugin that only scales
/// up never pays for copying the nodes.
fn fit<'a>(group: &'a NodeGroup, pods: &[PendingPod], waiting: &[usize]) -> Fit<'a> {
    let template = group.guaranteed_allocatable();
    let booting = group.desired_size.saturating_sub(group.ready_nodes);
    let headroom = group.max_size.saturating_sub(group.desired_size);
    let mut bins: Vec<Resources> = vec![template; booting as usize];
    let mut placed = Vec::new();
    for &i in waiting {
        let pod = &pods[i];
        let request = Resources { pods: pod.requests.pods.max(1), ..pod.requests };
        if !group.admits(pod) || !template.fits(&request) {
            continue;
        }
        let index = match bins.iter().position(|free| free.fits(&request)) {
            Some(index) => index,
            None if bins.len() < (booting + headroom) as usize => {
                bins.push(template);
                bins.len() - 1
            }
            None => continue,
        };
        let free = &mut bins[index];
        *free = free.saturating_sub(&request);
        placed.push(i);
    }
    let new_nodes = (bins.len() as u32).saturating_sub(booting);
    Fit { group, template, price: group.max_price_per_hour(), new_nodes, placed }
}

fn reason(best: &Fit, all: &[Fit], pods: &[PendingPod]) -> String {
    let count = best.placed.len();
    let sample = &pods[best.placed[0]].requests;
    let same = best.placed.iter().all(|&i| {
        pods[i].requests.cpu_millis == sample.cpu_millis && pods[i].requests.memory_bytes == sample.memory_bytes
    });
    let what = if same { format!("{count} pending pods ({} each)", sample) } else { format!("{count} pending pods") };
    let type_name = best.group.instance_types.first().map(|t| t.name.as_str()).unwrap_or("?");
    let mut text = format!(
        "{what} fit on {} new {type_name} node(s) ({} allocatable each) at ${:.4}/h each = ${:.4}/h",
        best.new_nodes,
        best.template,
        best.price,
        best.cost()
    );
    let others: Vec<String> = all
        .iter()
        .filter(|f| f.group.id != best.group.id)
        .map(|f| format!("{}: {} pods on {} nodes, ${:.4}/h", f.group.id, f.placed.len(), f.new_nodes, f.cost()))
        .collect();
    if !others.is_empty() {
        text.push_str(&format!("; cheapest of {} groups (others: {})", all.len(), others.join("; ")));
    }
    text
}
