// A starter Ballast policy in TypeScript. Copy this folder and edit `evaluate`.
//
// Build (npm: typescript, @bytecodealliance/componentize-js):
//   tsc -p tsconfig.json
//   componentize-js out/app.js --wit path/to/sdk/wit -n plugin -d http -d fetch-event -o my_policy.wasm
// Try it:
//   ballast plugin run my_policy.wasm --snapshot snapshot.yaml --settings '{"warm-nodes": 2}'
//
// This one keeps `warm-nodes` nodes in every EC2 node group that has pods waiting.

/// <reference path="../../typescript/ballast-policy.d.ts" />
import { log } from "ballast:policy/host@0.1.16";
import type { Snapshot } from "ballast:policy/snapshot@0.1.16";
import type { Decision } from "ballast:policy/types@0.1.16";

function parseSettings(text: string): { warmNodes: number } {
  const raw = text.trim() && text.trim() !== "null" ? JSON.parse(text) : {};
  const warm = raw["warm-nodes"] ?? 1;
  if (!Number.isInteger(warm) || warm < 0) {
    // Throwing a string refuses the plugin at load with this message.
    throw `warm-nodes must be a whole number >= 0, got ${JSON.stringify(warm)}`;
  }
  return { warmNodes: warm };
}

export const policy: BallastPolicyExport = {
  validateSettings(settings: string): void {
    parseSettings(settings);
  },
  evaluate(snapshot: Snapshot) {
    const settings = parseSettings(snapshot.settings());
    // Each getter fetches from the host on call: read only what you need. pendingShapes()
    // groups the pending pods (alike for placement) with a count: far cheaper than
    // pendingPods() when many replicas wait.
    let pending = 0;
    for (const shape of snapshot.pendingShapes()) pending += shape.count;
    const decisions: Decision[] = [];
    for (const group of snapshot.nodeGroups()) {
      if (group.kind !== "asg" || pending === 0) continue;
      const target = Math.min(group.maxSize, Math.max(group.desiredSize, settings.warmNodes));
      if (target > group.desiredSize) {
        decisions.push({
          action: { tag: "scale-to", val: { group: group.id, size: target } },
          reason: `${pending} pods pending: keep ${target} warm nodes in ${group.id}`,
        });
      }
    }
    log("info", `${decisions.length} decisions`);
    // Return `state` (a Uint8Array) to have it handed back next time as snapshot.state().
    return { decisions };
  },
};
