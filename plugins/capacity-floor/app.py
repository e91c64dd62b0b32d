"""capacity-floor: keep a minimum number of nodes in a group during set hours.

A policy for the morning ramp: capacity that takes a minute to boot is cheaper to start a
little before people arrive than to wait for pods to go pending. Outside the windows it
proposes nothing, and other policies (binpack) shrink the group as they see fit.

Settings (JSON):
    {
      "utc-offset-hours": -5,
      "floors": [
        {"group": "web", "min-nodes": 6, "from": "08:00", "to": "19:00",
         "days": ["mon", "tue", "wed", "thu", "fri"], "lead-minutes": 15}
      ]
    }
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import policy
from wit_world.imports import host, types

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def parse_clock(text, where):
    try:
        hours, minutes = text.split(":")
        h, m = int(hours), int(minutes)
    except (ValueError, AttributeError):
        raise Err(f"{where}: expected HH:MM, got {text!r}")
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m != 0):
        raise Err(f"{where}: expected HH:MM between 00:00 and 24:00, got {text!r}")
    return h * 60 + m


def parse_settings(text):
    if not text.strip() or text.strip() == "null":
        return {"offset": 0, "floors": []}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise Err(f"invalid settings: {e}")
    if not isinstance(raw, dict):
        raise Err(f"invalid settings: expected an object, got {type(raw).__name__}")
    unknown = set(raw) - {"utc-offset-hours", "floors"}
    if unknown:
        raise Err(f"invalid settings: unknown field {sorted(unknown)[0]!r}")
    offset = raw.get("utc-offset-hours", 0)
    if not isinstance(offset, (int, float)) or not -12 <= offset <= 14:
        raise Err(f"utc-offset-hours must be between -12 and 14, got {offset!r}")
    floors = []
    for i, f in enumerate(raw.get("floors", [])):
        where = f"floors[{i}]"
        if not isinstance(f, dict):
            raise Err(f"{where}: expected an object")
        extra = set(f) - {"group", "min-nodes", "from", "to", "days", "lead-minutes"}
        if extra:
            raise Err(f"{where}: unknown field {sorted(extra)[0]!r}")
        group = f.get("group")
        if not isinstance(group, str) or not group:
            raise Err(f"{where}.group: expected a node group id, got {group!r}")
        min_nodes = f.get("min-nodes")
        if not isinstance(min_nodes, int) or min_nodes < 0:
            raise Err(f"{where}.min-nodes: expected a whole number >= 0, got {min_nodes!r}")
        days = f.get("days", DAYS)
        for d in days:
            if d not in DAYS:
                raise Err(f"{where}.days: {d!r} is not one of {', '.join(DAYS)}")
        lead = f.get("lead-minutes", 10)
        if not isinstance(lead, int) or not 0 <= lead <= 240:
            raise Err(f"{where}.lead-minutes: expected 0 to 240, got {lead!r}")
        floors.append({
            "group": group,
            "min": min_nodes,
            "from": parse_clock(f.get("from"), f"{where}.from"),
            "to": parse_clock(f.get("to"), f"{where}.to"),
            "from_text": f.get("from"),
            "to_text": f.get("to"),
            "days": set(days),
            "lead": lead,
        })
    return {"offset": offset, "floors": floors}


def active(floor, minute_of_week):
    """True if `minute_of_week` (0 = Monday 00:00 local) is in the window, lead included."""
    for day_index, day in enumerate(DAYS):
        if day not in floor["days"]:
            continue
        start = day_index * 1440 + floor["from"] - floor["lead"]
        end = day_index * 1440 + floor["to"]
        if floor["to"] <= floor["from"]:  # crosses midnight
            end += 1440
        for shift in (0, 7 * 1440, -7 * 1440):
            if start <= minute_of_week + shift < end:
                return True
    return False


class Policy(exports.Policy):
    def validate_settings(self, settings: str) -> None:
        parse_settings(settings)

    def evaluate(self, snapshot) -> policy.Evaluation:
        settings = parse_settings(snapshot.settings())
        if not settings["floors"]:
            return policy.Evaluation(decisions=[], state=None)
        now_ms = snapshot.taken_at_millis()
        local_minutes = now_ms // 60_000 + int(settings["offset"] * 60)
        # 1970-01-01 was a Thursday (index 3 from Monday).
        minute_of_week = (local_minutes + 3 * 1440) % (7 * 1440)
        groups = {g.id: g for g in snapshot.node_groups()}
        decisions = []
        for floor in settings["floors"]:
            group = groups.get(floor["group"])
            if group is None:
                host.log(host.Level.WARN, f"capacity-floor: no node group {floor['group']!r} in the snapshot")
                continue
            if not active(floor, minute_of_week):
                continue
            target = min(floor["min"], group.max_size)
            if group.desired_size >= target:
                continue
            lead = f", starting {floor['lead']} min early" if floor["lead"] else ""
            decisions.append(types.Decision(
                action=types.Action_ScaleTo(types.ScaleTo(group=group.id, size=target)),
                reason=(f"capacity floor {floor['from_text']}-{floor['to_text']} "
                        f"(UTC{settings['offset']:+g}{lead}): {group.id} keeps at least {target} nodes, "
                        f"has {group.desired_size}"),
            ))
        return policy.Evaluation(decisions=decisions, state=None)
