//! `ballast expander --config FILE`: the listener Cluster Autoscaler connects to, the policy
//! chain that answers, prices and the journal. Unknown or wrong fields are errors naming the
//! file, the field and the value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::control::ControlSettings;
use crate::control::settings::{ReadAccess, TlsFiles, TokenEntry};
use crate::daemon_config::PolicyEntry;

/// CA's own deadline on a BestOptions call.
pub const CA_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct ExpanderConfig {
    /// Where CA connects (`--grpc-expander-url`).
    pub listen: SocketAddr,
    /// Required: CA connects only over TLS, trusting `--grpc-expander-cert`.
    pub tls: Option<TlsFiles>,
    /// Bearer tokens for `ballast.v1.Decisions` on the same listener (CA needs none).
    pub tokens: Vec<TokenEntry>,
    /// Whether reading decisions needs a token (`token`) or is `open`.
    pub read_access: ReadAccess,
    /// Largest request, in bytes (CA sends every pending pod of every option).
    pub max_message_bytes: usize,
    /// The longest a call may take before it is answered with DEADLINE_EXCEEDED, leaving CA
    /// its own choice. Below CA's 5 s, so the answer is CA's to use.
    #[serde(with = "crate::duration")]
    pub call_timeout: Duration,
    /// The chain that answers, in order; by default `binpack` choosing by price.
    pub policies: Vec<PolicyEntry>,
    /// Expander records on disk (JSON lines), for `ballast decisions --journal`.
    pub journal: Option<PathBuf>,
    /// Records kept in memory for `ballast.v1.Decisions`.
    pub ring_size: usize,
    /// On-demand prices (USD per hour) by instance type, over the bundled us-east-1 table.
    pub on_demand_prices: BTreeMap<String, f64>,
    /// A spot template's price as a fraction of its on-demand price.
    pub spot_price_ratio: f64,
}

impl Default for ExpanderConfig {
    fn default() -> Self {
        ExpanderConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 7443)),
            tls: None,
            tokens: Vec::new(),
            read_access: ReadAccess::Open,
            max_message_bytes: 64 << 20,
            call_timeout: Duration::from_secs(4),
            policies: vec![PolicyEntry {
                settings: serde_json::json!({"expander": "price", "scale-down": false}),
                ..PolicyEntry::named("binpack")
            }],
            journal: None,
            ring_size: 10_000,
            on_demand_prices: BTreeMap::new(),
            spot_price_ratio: crate::sim::catalogue::SPOT_PRICE_RATIO,
        }
    }
}

impl ExpanderConfig {
    /// Checks what the types cannot.
    ///
    /// # Errors
    /// The field and the value at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.tls.is_none() {
            return Err("tls: required: Cluster Autoscaler connects to its expander only over TLS \
                        (--grpc-expander-cert); set tls.cert and tls.key"
                .into());
        }
        if self.call_timeout.is_zero() || self.call_timeout >= CA_DEADLINE {
            return Err(format!(
                "call-timeout: {:?} must be more than 0s and less than CA's deadline, 5s",
                self.call_timeout
            ));
        }
        if self.policies.is_empty() {
            return Err("policies: empty: no policy would ever choose an option".into());
        }
        if !(self.spot_price_ratio > 0.0 && self.spot_price_ratio <= 1.0) {
            return Err(format!("spot-price-ratio: {} is not in (0, 1]", self.spot_price_ratio));
        }
        if let Some((name, price)) = self.on_demand_prices.iter().find(|(_, p)| !(p.is_finite() && **p > 0.0)) {
            return Err(format!("on-demand-prices.{name}: {price} is not a price above 0"));
        }
        self.server().validate()
    }

    /// The listener's settings in the control API's terms (TLS, tokens, caps, deadline).
    pub fn server(&self) -> ControlSettings {
        ControlSettings {
            enabled: true,
            listen: self.listen,
            tls: self.tls.clone(),
            tokens: self.tokens.clone(),
            read_access: self.read_access,
            max_message_bytes: self.max_message_bytes,
            call_timeout: self.call_timeout,
            ..ControlSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<ExpanderConfig, String> {
        let config: ExpanderConfig = crate::input_file::parse(Path::new("e.yaml"), text).map_err(|e| e.to_string())?;
        config.validate().map(|()| config)
    }

    #[test]
    fn tls_is_required_and_a_timeout_past_cas_deadline_is_refused_naming_the_field() {
        let tls = "tls: {cert: c.pem, key: k.pem}\n";
        assert!(parse("listen: 127.0.0.1:1\n").unwrap_err().starts_with("tls: required"));
        assert!(parse(&format!("{tls}call-timeout: 5s\n")).unwrap_err().starts_with("call-timeout: 5s"));
        assert!(parse(&format!("{tls}spot-price-ratio: 0\n")).unwrap_err().starts_with("spot-price-ratio: 0"));
        assert!(parse(&format!("{tls}poilcies: []\n")).unwrap_err().contains("poilcies"));
        let config = parse(tls).unwrap();
        assert_eq!(config.policies[0].plugin, "binpack");
        assert_eq!(config.call_timeout, Duration::from_secs(4));
    }
}
