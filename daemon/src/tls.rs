//! The TLS crypto provider, chosen once for the process.
//!
//! rustls refuses to pick one when more than one is compiled in (kube and the AWS SDK can
//! each bring their own), and every client then fails at its first connection. Both adapters
//! call [`install`] before building clients, so the choice never depends on feature
//! unification.

/// Installs aws-lc-rs (what the AWS SDK uses) as the process default, unless one is set.
pub fn install() {
    // An error only means a provider was installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
