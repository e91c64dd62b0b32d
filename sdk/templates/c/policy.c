// A starter Ballast policy in C. Copy this folder and edit `evaluate`.
//
// Build (./build.sh; it needs wit-bindgen, a C compiler for wasm32-wasi and wasm-tools, which
// tests/setup.sh installs into target/tools):
//     ./build.sh path/to/sdk/wit my_policy.wasm
// Try it:
//     ballast plugin run my_policy.wasm --snapshot snapshot.yaml --settings '{"warm-nodes": 2}'
//
// This one keeps `warm-nodes` nodes in every EC2 node group that has pods waiting, as the
// Python and TypeScript templates do.
//
// Memory: what the host hands over (lists from the snapshot's getters) is yours to free with
// the generated *_free helpers; what you return (decisions, strings) must be allocated with
// malloc or plugin_string_dup: the generated code frees it after the host has read it. The
// snapshot is borrowed for one call: drop the borrow before returning (see the end).

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

typedef struct {
    unsigned long warm_nodes;
} settings_t;

// Reads `"warm-nodes": N` from the settings' JSON (absent: 1). On a bad value, writes the
// message into `err` and returns false: the host refuses the plugin with it at load.
static bool parse_settings(const plugin_string_t *text, settings_t *out, plugin_string_t *err) {
    out->warm_nodes = 1;
    char json[1024];
    size_t n = text->len < sizeof json - 1 ? text->len : sizeof json - 1;
    memcpy(json, text->ptr, n);
    json[n] = '\0';
    const char *key = strstr(json, "\"warm-nodes\"");
    if (key == NULL) {
        return true;
    }
    const char *value = key + strlen("\"warm-nodes\"");
    while (*value == ' ' || *value == ':' || *value == '\t' || *value == '\n') {
        value++;
    }
    size_t len = strcspn(value, ",} \t\n");
    char *end = NULL;
    unsigned long warm = strtoul(value, &end, 10);
    if (len == 0 || value[0] < '0' || value[0] > '9' || end != value + len) {
        // Name the setting and the value, as every Ballast error does.
        char message[160];
        snprintf(message, sizeof message, "warm-nodes must be a whole number >= 0, got %.*s", (int)len, value);
        plugin_string_dup(err, message);
        return false;
    }
    out->warm_nodes = warm;
    return true;
}

bool exports_ballast_policy_policy_validate_settings(plugin_string_t *settings, plugin_string_t *err) {
    settings_t parsed;
    return parse_settings(settings, &parsed, err);
}

static void log_info(const char *message) {
    plugin_string_t text;
    plugin_string_set(&text, message);
    ballast_policy_host_log(BALLAST_POLICY_HOST_LEVEL_INFO, &text);
}

static bool evaluate(ballast_policy_snapshot_borrow_snapshot_t snapshot, exports_ballast_policy_policy_evaluation_t *ret,
                     plugin_string_t *err) {
    plugin_string_t text;
    ballast_policy_snapshot_method_snapshot_settings(snapshot, &text);
    settings_t settings;
    bool ok = parse_settings(&text, &settings, err);
    plugin_string_free(&text);
    if (!ok) {
        return false;
    }

    // Each getter fetches from the host on call: read only what you need. pending_shapes
    // groups the pending pods (alike for placement) with a count: far cheaper than
    // pending_pods when many replicas wait.
    ballast_policy_snapshot_list_pending_shape_t shapes;
    ballast_policy_snapshot_method_snapshot_pending_shapes(snapshot, &shapes);
    unsigned long pending = 0;
    for (size_t i = 0; i < shapes.len; i++) {
        pending += shapes.ptr[i].count;
    }
    ballast_policy_snapshot_list_pending_shape_free(&shapes);

    ballast_policy_snapshot_list_node_group_t groups;
    ballast_policy_snapshot_method_snapshot_node_groups(snapshot, &groups);
    ret->decisions.ptr = calloc(groups.len ? groups.len : 1, sizeof *ret->decisions.ptr);
    ret->decisions.len = 0;
    for (size_t i = 0; i < groups.len && pending > 0; i++) {
        const ballast_policy_types_node_group_t *group = &groups.ptr[i];
        if (group->kind != BALLAST_POLICY_TYPES_NODE_GROUP_KIND_ASG) {
            continue;
        }
        unsigned long target = group->desired_size > settings.warm_nodes ? group->desired_size : settings.warm_nodes;
        if (target > group->max_size) {
            target = group->max_size;
        }
        if (target <= group->desired_size) {
            continue;
        }
        exports_ballast_policy_policy_decision_t *decision = &ret->decisions.ptr[ret->decisions.len++];
        decision->action.tag = BALLAST_POLICY_TYPES_ACTION_SCALE_TO;
        plugin_string_dup_n(&decision->action.val.scale_to.group, (const char *)group->id.ptr, group->id.len);
        decision->action.val.scale_to.size = (uint32_t)target;
        char reason[256];
        snprintf(reason, sizeof reason, "%lu pods pending: keep %lu warm nodes in %.*s", pending, target,
                 (int)group->id.len, (const char *)group->id.ptr);
        plugin_string_dup(&decision->reason, reason);
    }
    ballast_policy_snapshot_list_node_group_free(&groups);

    char line[64];
    snprintf(line, sizeof line, "%zu decisions", ret->decisions.len);
    log_info(line);
    // `state` (bytes) is handed back next time by the snapshot's state getter; none keeps
    // the old one.
    ret->state.is_some = false;
    return true;
}

bool exports_ballast_policy_policy_evaluate(exports_ballast_policy_policy_borrow_snapshot_t snapshot,
                                            exports_ballast_policy_policy_evaluation_t *ret, plugin_string_t *err) {
    bool ok = evaluate(snapshot, ret, err);
    // The snapshot is lent for this call only: hand it back before returning, or the host
    // traps the call ("borrow handles still remain").
    ballast_policy_snapshot_snapshot_drop_borrow(snapshot);
    return ok;
}
