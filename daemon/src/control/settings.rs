//! The control API's configuration (`control:` in the daemon's configuration file).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a credential may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Status, node groups, decisions, plugins list, explain, simulate.
    #[default]
    Read,
    /// Also mode and plugin changes.
    Write,
}

/// A bearer token read from a file (a Secret mounted in the pod).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TokenEntry {
    /// Who holds it: named in the records of the changes it makes.
    pub name: String,
    /// The file holding the token (surrounding whitespace ignored).
    pub file: PathBuf,
    pub access: Access,
}

/// TLS for the listener (rustls).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsFiles {
    /// PEM certificate chain and private key of the server.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// PEM CA whose client certificates are accepted (mTLS); they get `client-access`.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    #[serde(default = "write")]
    pub client_access: Access,
}

fn write() -> Access {
    Access::Write
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct ControlSettings {
    /// Serve the control API. On by default: it is how `ballast ctl` talks to the daemon.
    pub enabled: bool,
    /// Where to listen. Loopback by default; in a cluster, `0.0.0.0:50051` with TLS and tokens.
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub tokens: Vec<TokenEntry>,
    /// Whether read-only calls need a credential too (`token`), or are `open`.
    pub read_access: ReadAccess,
    /// Largest request (plugin uploads included) and response, in bytes.
    pub max_message_bytes: usize,
    /// The longest a call may take, whatever deadline the client sets.
    #[serde(with = "crate::duration")]
    pub call_timeout: Duration,
    /// Simulations run at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_simulations: usize,
    /// The longest a simulation may run.
    #[serde(with = "crate::duration")]
    pub simulation_timeout: Duration,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadAccess {
    #[default]
    Open,
    Token,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            tls: None,
            tokens: Vec::new(),
            read_access: ReadAccess::Open,
            max_message_bytes: 16 << 20,
            call_timeout: Duration::from_secs(30),
            max_concurrent_simulations: 1,
            simulation_timeout: Duration::from_secs(120),
        }
    }
}

impl ControlSettings {
    /// Checks what the types cannot; the error names the field (under `control.`) and value.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_message_bytes < 4096 {
            return Err(format!("max-message-bytes: {} is below the least useful size, 4096", self.max_message_bytes));
        }
        if self.max_concurrent_simulations == 0 {
            return Err("max-concurrent-simulations: 0 would refuse every simulation; use 1 or more".into());
        }
        for (what, d) in [("call-timeout", self.call_timeout), ("simulation-timeout", self.simulation_timeout)] {
            if d.is_zero() {
                return Err(format!("{what}: must be more than 0s"));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, token) in self.tokens.iter().enumerate() {
            if token.name.trim().is_empty() {
                return Err(format!("tokens[{i}].name: must not be empty"));
            }
            if !names.insert(&token.name) {
                return Err(format!("tokens[{i}].name: '{}' is used twice", token.name));
            }
        }
        Ok(())
    }
}
