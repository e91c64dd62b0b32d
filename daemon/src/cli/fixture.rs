//! Fixture cases for `ballast plugin test`: a snapshot, settings, and the decisions (or error)
//! expected, in one YAML or JSON file per case. See `sdk/README.md` for the format.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use ballast_sdk::{Action, SnapshotData};
use serde::Deserialize;

use crate::input_file;
use crate::policy::{EvaluationInput, Plugin, SharedSnapshot};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Case {
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    /// Plugin settings for this case; otherwise `--settings` or none.
    settings: Option<serde_json::Value>,
    /// Single-step shorthand: `snapshot` and `expect` at the top.
    snapshot: Option<serde_json::Value>,
    expect: Option<Expect>,
    /// Several evaluations in a row, the plugin's state carried from one to the next.
    #[serde(default)]
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Step {
    /// A snapshot file (relative to the case file) or the snapshot itself.
    snapshot: serde_json::Value,
    expect: Expect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Expect {
    /// Exactly these actions, in order.
    decisions: Option<Vec<ExpectedDecision>>,
    /// The call fails with an error containing this text.
    error: Option<String>,
    /// Loading refuses the settings with a message containing this text.
    settings_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ExpectedDecision {
    action: Action,
    #[serde(default)]
    reason_contains: Vec<String>,
}

/// Case files under `path` (or `path` itself), sorted.
///
/// # Errors
/// When the folder cannot be read.
pub fn discover(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut cases: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("{}: cannot read the cases folder", path.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json"))
        .collect();
    cases.sort();
    Ok(cases)
}

/// Runs one case file. `load` loads the plugin with the case's settings (none: the default).
///
/// # Errors
/// What did not match, for people.
pub fn run_case(
    path: &Path,
    load: &dyn Fn(Option<&serde_json::Value>) -> anyhow::Result<Plugin>,
) -> Result<(), String> {
    let case: Case = input_file::load(path).map_err(|e| e.to_string())?;
    let mut steps = case.steps;
    match (case.snapshot, case.expect) {
        (Some(snapshot), Some(expect)) if steps.is_empty() => steps.push(Step { snapshot, expect }),
        (None, None) if !steps.is_empty() => {}
        (None, Some(expect)) if steps.is_empty() && expect.settings_error.is_some() => {
            steps.push(Step { snapshot: serde_json::Value::Object(Default::default()), expect })
        }
        _ => return Err("a case has either `snapshot` and `expect`, or `steps`".into()),
    }

    let plugin = match (load(case.settings.as_ref()), &steps[0].expect.settings_error) {
        (Ok(_), Some(wanted)) => {
            return Err(format!("expected the settings to be refused with {wanted:?}, but they loaded"));
        }
        (Err(e), Some(wanted)) => {
            let text = format!("{e:#}");
            return if text.contains(wanted.as_str()) {
                Ok(())
            } else {
                Err(format!("settings refused with {text:?}, expected {wanted:?}"))
            };
        }
        (Err(e), None) => return Err(format!("{e:#}")),
        (Ok(plugin), None) => plugin,
    };

    let mut state = None;
    let dir = path.parent().unwrap_or(Path::new("."));
    for (index, step) in steps.into_iter().enumerate() {
        let at = |problem: String| format!("steps[{index}]: {problem}");
        let snapshot = snapshot(dir, step.snapshot).map_err(at)?;
        let input = EvaluationInput {
            snapshot: Arc::new(SharedSnapshot::new(Arc::new(snapshot))),
            settings: Arc::from(plugin.settings()),
            state: state.clone(),
            proposals: Vec::new(),
        };
        let report = plugin.evaluate(input);
        match (report.result, step.expect) {
            (Err(e), Expect { error: Some(wanted), .. }) if e.to_string().contains(wanted.as_str()) => {}
            (Err(e), _) => return Err(at(format!("the plugin failed: {} error: {e}", e.kind()))),
            (Ok(_), Expect { error: Some(wanted), .. }) => {
                return Err(at(format!("expected an error containing {wanted:?}, got decisions")));
            }
            (Ok(evaluated), Expect { decisions: Some(wanted), .. }) => {
                let got: Vec<String> = evaluated.decisions.iter().map(|d| d.action.to_string()).collect();
                let want: Vec<String> = wanted.iter().map(|d| d.action.to_string()).collect();
                if got != want {
                    return Err(at(format!("decisions differ\n  expected: {want:?}\n  got:      {got:?}")));
                }
                for (d, w) in evaluated.decisions.iter().zip(&wanted) {
                    for needle in &w.reason_contains {
                        if !d.reason.contains(needle.as_str()) {
                            return Err(at(format!("reason of `{}` lacks {needle:?}: {}", d.action, d.reason)));
                        }
                    }
                }
                if evaluated.state.is_some() {
                    state = evaluated.state;
                }
            }
            (Ok(_), Expect { decisions: None, .. }) => {
                return Err(at("`expect` names neither `decisions` nor `error`".into()));
            }
        }
    }
    Ok(())
}

fn snapshot(dir: &Path, value: serde_json::Value) -> Result<SnapshotData, String> {
    let (origin, snapshot): (String, SnapshotData) = match value {
        serde_json::Value::String(file) => {
            let path = dir.join(file);
            (path.display().to_string(), input_file::load(&path).map_err(|e| e.to_string())?)
        }
        inline => {
            ("snapshot".into(), input_file::from_value(Path::new("snapshot"), inline).map_err(|e| e.to_string())?)
        }
    };
    snapshot.fargate_pricing.check().map_err(|e| format!("{origin}: {e}"))?;
    Ok(snapshot)
}
