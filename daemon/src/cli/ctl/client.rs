//! The connection `ballast ctl` makes: server, TLS, the bearer token, a deadline per call.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Where the daemon is and how to prove who you are.
#[derive(Debug, Args)]
pub struct Connection {
    /// The control API's address (`https://` for TLS).
    #[arg(long, global = true, env = "BALLAST_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// A file holding a bearer token (default: the one `ballast run --simulate` writes, when it exists).
    #[arg(long, global = true, env = "BALLAST_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM CA that signed the server's certificate.
    #[arg(long, global = true, env = "BALLAST_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for mTLS.
    #[arg(long, global = true, env = "BALLAST_CERT_FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    #[arg(long, global = true, env = "BALLAST_KEY_FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Deadline of each call.
    #[arg(long, global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert("authorization", token.clone());
        }
        Ok(request)
    }
}

fn read(what: &str, path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{what} {}", path.display()))
}

impl Connection {
    fn bearer(&self) -> anyhow::Result<Bearer> {
        let path = match &self.token_file {
            Some(path) => Some(path.clone()),
            None => Some(crate::cli::serve::default_token_file()).filter(|p| p.exists()),
        };
        let Some(path) = path else { return Ok(Bearer(None)) };
        let token = String::from_utf8(read("--token-file", &path)?)
            .with_context(|| format!("--token-file {}: not text", path.display()))?;
        let value = format!("Bearer {}", token.trim())
            .parse()
            .with_context(|| format!("--token-file {}: not a usable token", path.display()))?;
        Ok(Bearer(Some(value)))
    }

    /// Connects (lazily: the first call connects).
    pub fn channel(&self) -> anyhow::Result<(Channel, Bearer)> {
        crate::tls::install();
        let mut endpoint = Endpoint::from_shared(self.server.clone())
            .with_context(|| format!("--server {}: not a URL", self.server))?
            .timeout(self.timeout)
            .connect_timeout(Duration::from_secs(5));
        if self.server.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            tls = match &self.ca_file {
                Some(ca) => tls.ca_certificate(Certificate::from_pem(read("--ca-file", ca)?)),
                None => tls.with_native_roots(),
            };
            if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
                tls = tls.identity(Identity::from_pem(read("--cert-file", cert)?, read("--key-file", key)?));
            }
            endpoint = endpoint.tls_config(tls).context("TLS settings")?;
        }
        Ok((endpoint.connect_lazy(), self.bearer()?))
    }
}

/// A failed call as the user reads it: the server's status code and message.
pub fn failed(status: tonic::Status) -> anyhow::Error {
    let code = format!("{:?}", status.code());
    let mut name = String::new();
    for (i, c) in code.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    anyhow::anyhow!("{name}: {}", status.message())
}
