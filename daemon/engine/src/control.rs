//! Changes to a running engine asked for by someone (the control API): its mode, the
//! plugins of its chain, and node replacements. Applied between ticks, each recorded with who
//! asked and why.

use super::policies::{PluginMode, Policies, PolicyEntry};
use super::record::{ControlRecord, Record};
use super::{Capacity, Cluster, Engine, Mode};

/// A change to the engine; `E` is its policies' entry type.
pub enum Change<E> {
    Mode(Mode),
    /// Adds a plugin at the end of the chain, or replaces the one of that name.
    Load(E),
    Unload(String),
    PluginMode {
        plugin: String,
        mode: PluginMode,
    },
    /// The whole chain, as a configuration reload arrived at it; `notes` say what could not
    /// be loaded and was kept as it ran.
    Chain {
        entries: Vec<E>,
        notes: Vec<String>,
    },
    /// Replaces a node as an instance retirement is handled, at a tick run at once; what
    /// became of it (done, or refused and why) is that tick's decision record.
    ReplaceNode {
        node: String,
        /// Only record what would be done.
        dry_run: bool,
        answer: super::asked::Answer,
    },
    /// Replaces every node the group has now, `at_once` at a time (see [`super::roll`]).
    ReplaceGroup {
        group: String,
        at_once: u32,
        /// Only say which nodes it would replace.
        dry_run: bool,
    },
    /// Stops replacing the group; drains under way go on.
    CancelGroupReplacement(String),
    /// New guardrails, as a configuration reload read them; the next tick guards with them.
    Guardrails(Box<super::config::Guardrails>),
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// Who asked for a change, and why: what its record says.
#[derive(Clone, Debug)]
pub struct Asked {
    pub caller: String,
    pub reason: String,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChangeError {
    #[error("no plugin named '{0}' is loaded")]
    NoSuchPlugin(String),
    /// Acting is asked for while the engine is paused: it would never be done.
    #[error(
        "the engine is paused: nothing is acted on; set its mode to enforce (or dry-run to see what would be done)"
    )]
    Paused,
    /// Acting is asked of a replica that does not lead: it would never be done.
    #[error("this replica is not the leader: ask the one that holds the lease")]
    NotLeading,
    #[error("no node group '{0}' is managed")]
    NoSuchGroup(String),
    #[error("group {group} is already being replaced, asked by {caller}: cancel that first")]
    AlreadyReplacing { group: String, caller: String },
    #[error("group '{0}' is not being replaced")]
    NotReplacing(String),
    /// The new guardrails do not validate (the message names the field and the value).
    #[error("{0}")]
    InvalidGuardrails(String),
}

impl<C: Cluster, P: Capacity, Q: Policies> Engine<C, P, Q> {
    /// Whether a change that acts (a replacement) would ever be acted on here.
    fn may_be_asked_to_act(&self) -> Result<(), ChangeError> {
        if self.config.mode == super::Mode::Paused {
            return Err(ChangeError::Paused);
        }
        if !self.may_act() {
            return Err(ChangeError::NotLeading);
        }
        Ok(())
    }

    /// Guards with `guardrails` from the next tick; says which fields changed.
    fn set_guardrails(&mut self, guardrails: super::config::Guardrails) -> Result<String, ChangeError> {
        let config = super::EngineConfig { guardrails, ..self.config.clone() };
        config.validate().map_err(ChangeError::InvalidGuardrails)?;
        let changed = self.config.guardrails.changed_fields(&config.guardrails);
        self.config.guardrails = config.guardrails;
        Ok(match changed.is_empty() {
            true => "guardrails unchanged".into(),
            false => format!("guardrails: {} changed", changed.join(", ")),
        })
    }

    /// Makes `change`, records it with `asked`, and returns what the record says changed.
    ///
    /// # Guarantees
    /// Takes effect at the next tick; a refused change changes nothing and records nothing.
    pub fn change(&mut self, change: Change<Q::Entry>, asked: &Asked, now: u64) -> Result<String, ChangeError> {
        let description = self.apply(change, asked, now)?;
        self.live.set_plugins(self.policies.entries().to_vec());
        tracing::info!(caller = %asked.caller, change = %description, reason = %asked.reason, "changed by request");
        self.recorder.record(Record::Control(ControlRecord {
            tick: self.tick,
            at_millis: now,
            caller: asked.caller.clone(),
            change: description.clone(),
            reason: asked.reason.clone(),
        }));
        Ok(description)
    }

    /// Makes `change`; what changed, as the record says it.
    fn apply(&mut self, change: Change<Q::Entry>, asked: &Asked, now: u64) -> Result<String, ChangeError> {
        Ok(match change {
            Change::Mode(mode) => {
                let before = self.mode();
                self.set_mode(mode);
                format!("mode {before} -> {mode}")
            }
            Change::Load(entry) => self.load(entry),
            Change::Unload(name) => {
                self.policies.remove(&name).ok_or_else(|| ChangeError::NoSuchPlugin(name.clone()))?;
                format!("unload plugin {name}")
            }
            Change::PluginMode { plugin, mode } => {
                let before = self
                    .policies
                    .entry(&plugin)
                    .map(|e| e.mode())
                    .ok_or_else(|| ChangeError::NoSuchPlugin(plugin.clone()))?;
                self.policies.set_mode(&plugin, mode);
                format!("plugin {plugin} mode {before} -> {mode}")
            }
            Change::ReplaceNode { node, dry_run, answer } => {
                self.may_be_asked_to_act()?;
                let description = match dry_run {
                    true => format!("replace node {node} (dry-run)"),
                    false => format!("replace node {node}"),
                };
                self.ask_replacement(node, asked, dry_run, answer);
                description
            }
            Change::ReplaceGroup { group, at_once, dry_run } => {
                self.may_be_asked_to_act()?;
                self.ask_roll(group, at_once, dry_run, asked, now)?
            }
            Change::CancelGroupReplacement(group) => self.cancel_roll(&group)?,
            Change::Guardrails(guardrails) => self.set_guardrails(*guardrails)?,
            Change::Chain { entries, notes } => self.replace_chain(entries, notes),
        })
    }

    /// Loads a plugin at the end of the chain, or in the place of the one of its name.
    fn load(&mut self, entry: Q::Entry) -> String {
        let what = format!(
            "plugin {} (sha256 {}) from {} in {} mode",
            entry.name(),
            entry.digest(),
            entry.source(),
            entry.mode()
        );
        match self.policies.insert(entry) {
            Some(_) => format!("replace {what}"),
            None => format!("load {what}"),
        }
    }

    /// A whole chain in the place of the one running, with the notes its reload made.
    fn replace_chain(&mut self, entries: Vec<Q::Entry>, notes: Vec<String>) -> String {
        let names: Vec<String> =
            entries.iter().map(|e| format!("{} ({}, sha256 {})", e.name(), e.mode(), short(e.digest()))).collect();
        self.policies.replace_all(entries);
        let mut description = format!("chain {}", names.join(", "));
        for note in notes {
            description.push_str("; ");
            description.push_str(&note);
        }
        description
    }
}
