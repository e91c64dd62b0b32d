// utilisation-threshold: Escalator-like scaling by requested utilisation per node group.
//
// For each Auto Scaling group: utilisation = max(cpu, memory) of the requests on its ready,
// schedulable nodes plus the pending pods it could take, over their allocatable. Above
// `scale-up-threshold` it adds ceil((util - threshold) / threshold * nodes) nodes (at least one
// when pods are pending); below `scale-down-threshold` it removes the emptiest removable node.
//
// Settings (JSON): {"scale-up-threshold": 0.7, "scale-down-threshold": 0.3, "groups": ["web"]}

/// <reference path="../../sdk/typescript/ballast-policy.d.ts" />
import { log } from "ballast:policy/host@0.1.16";
import type { Snapshot } from "ballast:policy/snapshot@0.1.16";
import type { Decision, Node, NodeGroup, PendingShape } from "ballast:policy/types@0.1.16";

interface Settings {
  scaleUp: number;
  scaleDown: number;
  groups: string[];
}

function parseSettings(text: string): Settings {
  const settings: Settings = { scaleUp: 0.7, scaleDown: 0.3, groups: [] };
  if (!text.trim() || text.trim() === "null") return settings;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw `invalid settings: ${(e as Error).message}`;
  }
  for (const [key, value] of Object.entries(raw)) {
    switch (key) {
      case "scale-up-threshold":
      case "scale-down-threshold":
        if (typeof value !== "number" || !(value > 0 && value <= 1)) throw `${key} must be in (0, 1], got ${JSON.stringify(value)}`;
        if (key === "scale-up-threshold") settings.scaleUp = value;
        else settings.scaleDown = value;
        break;
      case "groups":
        if (!Array.isArray(value) || !value.every((g) => typeof g === "string")) throw `groups must be a list of node group ids, got ${JSON.stringify(value)}`;
        settings.groups = value as string[];
        break;
      default:
        throw `invalid settings: unknown field ${JSON.stringify(key)}`;
    }
  }
  if (settings.scaleDown >= settings.scaleUp) {
    throw `scale-down-threshold (${settings.scaleDown}) must be below scale-up-threshold (${settings.scaleUp})`;
  }
  return settings;
}

/** Whether a new node of `group` could take `pod`; `labels` is the group's labels as a map. */
function admits(group: NodeGroup, labels: Map<string, string>, pod: PendingShape): boolean {
  if (pod.nodeSelector.length === 0 && group.taints.length === 0) return true;
  return (
    pod.nodeSelector.every((s) => labels.get(s.key) === s.value) &&
    group.taints
      .filter((t) => t.effect !== "prefer-no-schedule")
      .every((t) => pod.tolerations.some((tol) => (tol.key === "" ? tol.operatorExists : tol.key === t.key && (tol.operatorExists || tol.value === t.value)) && (tol.effect === undefined || tol.effect === t.effect)))
  );
}

function evaluateGroup(group: NodeGroup, nodes: Node[], pending: PendingShape[], settings: Settings): Decision | undefined {
  const live = nodes.filter((n) => n.ready && !n.cordoned);
  const template = group.instanceTypes[0]?.allocatable;
  let cpu = 0, mem = 0, cpuCap = 0, memCap = 0;
  for (const n of live) {
    cpu += Number(n.requested.cpuMillis);
    mem += Number(n.requested.memoryBytes);
    cpuCap += Number(n.allocatable.cpuMillis);
    memCap += Number(n.allocatable.memoryBytes);
  }
  let waiting = 0;
  for (const p of pending) {
    cpu += Number(p.requests.cpuMillis) * p.count;
    mem += Number(p.requests.memoryBytes) * p.count;
    waiting += p.count;
  }
  // Nodes still booting count as capacity at the template's size.
  const booting = Math.max(0, group.desiredSize - nodes.length);
  if (template) {
    cpuCap += booting * Number(template.cpuMillis);
    memCap += booting * Number(template.memoryBytes);
  }
  const count = live.length + booting;
  if (count === 0) {
    if (waiting === 0 || !template || group.maxSize === 0) return undefined;
    const perNode = Math.max(cpu / Number(template.cpuMillis), mem / Number(template.memoryBytes));
    const size = Math.min(group.maxSize, Math.max(1, Math.ceil(perNode / settings.scaleUp)));
    return { action: { tag: "scale-to", val: { group: group.id, size } }, reason: `${group.id} is empty and ${waiting} pods are pending: ${size} nodes at ${pct(settings.scaleUp)} target utilisation` };
  }
  const util = Math.max(cpuCap ? cpu / cpuCap : 0, memCap ? mem / memCap : 0);
  if (util > settings.scaleUp && group.desiredSize < group.maxSize) {
    const add = Math.max(1, Math.ceil(((util - settings.scaleUp) / settings.scaleUp) * count));
    const size = Math.min(group.maxSize, group.desiredSize + add);
    return { action: { tag: "scale-to", val: { group: group.id, size } }, reason: `${group.id} at ${pct(util)} requested utilisation over ${count} nodes (${waiting} pods pending), above ${pct(settings.scaleUp)}: +${size - group.desiredSize} nodes` };
  }
  if (util < settings.scaleDown && waiting === 0 && group.desiredSize > group.minSize) {
    const candidate = live
      .filter((n) => n.removalBlocker === undefined)
      .sort((a, b) => Number(a.requested.cpuMillis) - Number(b.requested.cpuMillis))[0];
    if (candidate) {
      return { action: { tag: "remove-nodes", val: [candidate.name] }, reason: `${group.id} at ${pct(util)} requested utilisation, below ${pct(settings.scaleDown)}: remove its emptiest node ${candidate.name}` };
    }
  }
  return undefined;
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`;
}

export const policy: BallastPolicyExport = {
  validateSettings(settings: string): void {
    parseSettings(settings);
  },
  evaluate(snapshot: Snapshot) {
    const settings = parseSettings(snapshot.settings());
    let unclaimed = snapshot.pendingShapes();
    const decisions: Decision[] = [];
    for (const group of snapshot.nodeGroups()) {
      if (group.kind !== "asg" || (settings.groups.length > 0 && !settings.groups.includes(group.id))) continue;
      // Pending pods count toward the first group that can take them, not every one.
      const labels = new Map(group.labels.map((l) => [l.key, l.value]));
      const mine: PendingShape[] = [];
      const rest: PendingShape[] = [];
      for (const pod of unclaimed) (admits(group, labels, pod) ? mine : rest).push(pod);
      unclaimed = rest;
      const decision = evaluateGroup(group, snapshot.nodesInGroup(group.id), mine, settings);
      if (decision) decisions.push(decision);
    }
    log("debug", `utilisation-threshold: ${decisions.length} decisions`);
    return { decisions };
  },
};
