#!/usr/bin/env python3
"""Runs the policy sets on scenarios nobody tuned them for, looking for where the default set
does worse than the baselines.

Each scenario is generated from its number alone (groups of random types and sizes, some
spot with interruptions and launch failures, some tainted, Fargate or not, and workloads with
random traces, jobs, PDBs and EBS volumes), so a number names the same scenario on every
machine. Each is run once with `ballast simulate --compare default ca-like karpenter-like`.

    python3 tests/scenario-hunt.py target/release/ballast 0 140 /tmp/hunt

With `--rules` last, each scenario (another one for the same number, named `hunt-rules-N`)
also puts its groups in zones and gives some workloads the placement rules the scheduler
keeps: pods per node and per zone, spreads over nodes and zones (with `minDomains`), and
kept away from, in the zones of, or on the nodes of another workload's pods.

    python3 tests/scenario-hunt.py target/release/ballast 0 150 /tmp/hunt-rules --rules

prints a line a scenario (cost, ratio to the lower bound and pending pod-minutes of each
set, flags where `default` is dearer or waits longer) and a summary: the totals, and the
scenarios where `default` is dominated (dearer and waiting longer than a baseline). The
scenario files are left in the output directory for `ballast simulate --scenario`.
BENCHMARKS.md records what it found (sessions 30 and 31).
"""
import json
import os
import random
import subprocess
import sys

TYPES = ["m5.large", "m5.xlarge", "m5.2xlarge", "m5a.large", "c5.large", "c5.xlarge", "c5.2xlarge",
         "r5.large", "r5.xlarge", "t3.medium", "m6i.large", "m7g.large"]


def trace(r):
    kind = r.choice(["constant", "daily", "spikes", "ramp", "linear", "steps"])
    if kind == "constant":
        return f"{{constant: {r.randint(1, 20)}}}"
    if kind == "daily":
        low = r.randint(1, 6)
        return f"{{daily: {{min: {low}, max: {low + r.randint(2, 40)}, peak: \"{r.randint(0, 23):02d}:00\"}}}}"
    if kind == "spikes":
        base = r.randint(0, 4)
        return (f"{{spikes: {{base: {base}, peak: {base + r.randint(4, 40)}, every: {r.choice([20, 30, 60, 90])}m, "
                f"length: {r.choice([5, 10, 15])}m, start: {r.randint(0, 20)}m, jitter: {r.choice([0, 0.1, 0.3])}}}}}")
    if kind == "ramp":
        low, start = r.randint(1, 5), r.randint(0, 60)
        return f"{{ramp: {{from: {low}, to: {low + r.randint(5, 40)}, start: {start}m, end: {start + r.randint(10, 120)}m}}}}"
    if kind == "steps":
        points = sorted(r.sample(range(0, 230, 10), 3))
        return "{steps: [" + ", ".join(f"{{at: {p}m, replicas: {r.randint(1, 30)}}}" for p in points) + "]}"
    points = sorted(r.sample(range(0, 230, 5), 4))
    return "{linear: [" + ", ".join(f"{{at: {p}m, replicas: {r.randint(1, 40)}}}" for p in points) + "]}"


ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


def group(r, g, lines, tainted, rules=False):
    types = r.sample(TYPES, r.choice([1, 1, 2, 3]))
    low = r.choice([0, 0, 1, 2])
    lines += [f"  - id: g{g}",
              f"    instance-types: [{', '.join(types)}]",
              f"    min-size: {low}",
              f"    max-size: {r.choice([20, 30, 50])}",
              f"    desired-size: {low + r.randint(0, 3)}",
              f"    provisioning-delay: {r.choice([45, 60, 75, 90])}s"]
    if rules:
        lines.append(f"    zones: [{', '.join(r.sample(ZONES, r.choice([1, 1, 2, 3])))}]")
    if g > 0 and r.random() < 0.4:
        lines.append(f"    taints: [{{key: pool, value: g{g}, effect: NoSchedule}}]")
        tainted.append(f"g{g}")
    if g > 0 and r.random() < 0.4:
        lines.append("    capacity-type: spot")
        if r.random() < 0.5:
            start = r.randint(30, 120)
            lines.append(f"    interruptions: [{{from: {start}m, to: {start + 60}m, per-hour: {r.choice([0.5, 1.0, 1.5])}}}]")
        if r.random() < 0.3:
            start = r.randint(30, 150)
            lines.append(f"    launch-failures: [{{from: {start}m, to: {start + 30}m}}]")


def placement_rule(r, w, count):
    """One rule the scheduler keeps for workload `w` of `count`, or none."""
    others = [o for o in range(count) if o != w]
    kind = r.choice(["per-node", "node-skew", "zone-skew", "per-zone", "away", "near", "beside", None, None])
    if kind == "per-node":
        return f"max-per-node: {r.choice([1, 1, 2])}"
    if kind == "node-skew":
        return "max-node-skew: 1" + (f", min-node-domains: {r.randint(2, 4)}" if r.random() < 0.3 else "")
    if kind == "zone-skew":
        return "max-zone-skew: 1" + (f", min-zone-domains: {r.randint(2, 3)}" if r.random() < 0.3 else "")
    if kind == "per-zone":
        return "max-per-zone: 1"
    if kind in ("away", "near", "beside") and others:
        field = {"away": "kept-away", "near": "zone-affinity", "beside": "kept-beside"}[kind]
        return f"{field}: [w{r.choice(others)}]"
    return None


def workload(r, w, tainted, rules=None):
    parts = [f"name: w{w}", f"namespace: ns{w % 3}",
             f"requests: {{cpu: {r.choice(['100m', '250m', '500m', '750m', '1', '1500m', '2'])}, "
             f"memory: {r.choice(['256Mi', '512Mi', '1Gi', '2Gi', '3Gi', '4Gi'])}}}"]
    if r.random() < 0.2:
        parts += ["kind: job", f"batches: {{start: {r.randint(1, 60)}m, every: {r.choice([15, 30, 60])}m, "
                               f"pods: {r.randint(5, 50)}, run-for: {r.choice([5, 10, 12])}m}}"]
    else:
        if r.random() < 0.15:
            parts += ["kind: stateful-set", "volume: ebs"]
        parts.append(f"replicas: {trace(r)}")
        if r.random() < 0.4:
            parts.append(f"disruption-budget: {{max-unavailable: {r.randint(1, 3)}}}")
    if tainted and r.random() < 0.5:
        parts.append("tolerations: [" + ", ".join(f"{{key: pool, value: {t}}}" for t in tainted) + "]")
    if rules is not None and not any(p.startswith("kind: job") for p in parts):
        rule = placement_rule(r, w, rules)
        if rule:
            parts.append(rule)
    return "  - {" + ", ".join(parts) + "}"


def scenario(number, rules=False):
    r = random.Random(f"rules-{number}") if rules else random.Random(number)
    name = f"hunt-rules-{number}" if rules else f"hunt-{number}"
    lines = [f"name: {name}", "duration: 4h", "tick: 10s", f"seed: {number}",
             f"start: \"{r.randint(0, 23):02d}:00\"", "node-groups:"]
    tainted = []
    for g in range(r.randint(1, 3)):
        group(r, g, lines, tainted, rules)
    if r.random() < 0.4:
        lines.append("fargate: {provisioning-delay: 45s}")
    lines += ["workloads:",
              "  - {name: agent, namespace: kube-system, kind: daemon-set, requests: {cpu: 100m, memory: 128Mi}, "
              "tolerations: [{key: pool, operator-exists: true}]}"]
    count = r.randint(2, 6)
    lines += [workload(r, w, tainted, count if rules else None) for w in range(count)]
    return "\n".join(lines) + "\n"


def flags(d, ca, k):
    out = []
    if d["total-cost"] > ca["total-cost"] * 1.01 + 0.01:
        out.append("dearer than ca-like")
    if d["total-cost"] > k["total-cost"] * 1.03 + 0.01:
        out.append("dearer than karpenter-like")
    if d["pending-pod-minutes"] > ca["pending-pod-minutes"] * 1.2 + 10:
        out.append("waits longer than ca-like")
    if d["decisions"]["plugin-errors"]:
        out.append("plugin errors")
    return out


def dominated(d, other):
    return (d["total-cost"] > other["total-cost"] * 1.01 + 0.01
            and d["pending-pod-minutes"] > other["pending-pod-minutes"] * 1.1 + 5)


def main():
    rules = sys.argv[5:] == ["--rules"]
    if len(sys.argv) != 5 + rules:
        sys.exit(__doc__)
    binary, first, end, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    os.makedirs(out, exist_ok=True)
    totals = {"default": [0.0, 0.0], "ca-like": [0.0, 0.0], "karpenter-like": [0.0, 0.0]}
    beaten = {"ca-like": [], "karpenter-like": []}
    for number in range(first, end):
        text = scenario(number, rules)
        path = os.path.join(out, text.split("\n", 1)[0].removeprefix("name: ") + ".yaml")
        with open(path, "w") as f:
            f.write(text)
        run = subprocess.run([binary, "simulate", "--scenario", path, "--compare", "default", "ca-like",
                              "karpenter-like", "-o", "json"], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"{number}: ERROR rc={run.returncode}: {run.stderr.strip()[-400:]}", flush=True)
            continue
        d, ca, k = (x["summary"] for x in json.loads(run.stdout))
        for name, s in zip(totals, (d, ca, k)):
            totals[name][0] += s["total-cost"]
            totals[name][1] += s["pending-pod-minutes"]
        for name, s in (("ca-like", ca), ("karpenter-like", k)):
            if dominated(d, s):
                beaten[name].append(number)
        cells = " | ".join(f"{n} ${s['total-cost']:.2f} {s['cost-to-bound']:.2f}x p{s['pending-pod-minutes']:.0f}"
                           for n, s in zip(totals, (d, ca, k)))
        marks = flags(d, ca, k)
        print(f"{number}: {cells}{'  !! ' + ', '.join(marks) if marks else ''}", flush=True)
    for name, (cost, pending) in totals.items():
        print(f"total {name}: ${cost:.2f}, {pending:.0f} pending pod-minutes")
    for name, numbers in beaten.items():
        print(f"default dearer and waiting longer than {name}: {numbers or 'none'}")


if __name__ == "__main__":
    main()
