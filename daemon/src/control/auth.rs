//! Who is calling and what they may do: bearer tokens from files (compared in constant time)
//! and mTLS client certificates from a configured CA.
//!
//! Read-only calls are open or need a credential, by configuration; calls that change the
//! daemon always need a credential with write access. No credential: UNAUTHENTICATED; a
//! read-only one on a change: PERMISSION_DENIED.

use std::path::Path;

use subtle::ConstantTimeEq;
use tonic::{Request, Status};

use super::settings::{Access, ControlSettings, ReadAccess};

/// A token, loaded.
struct Token {
    name: String,
    secret: Vec<u8>,
    access: Access,
}

/// The credentials the server accepts.
pub struct Credentials {
    tokens: Vec<Token>,
    read: ReadAccess,
    /// What a client certificate that verified against the client CA may do.
    client_access: Option<Access>,
}

/// Who made a call, as its records name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub access: Access,
}

#[derive(Debug, thiserror::Error)]
#[error("control.tokens[{index}].file: cannot read {path}: {reason}")]
pub struct TokenFileError {
    index: usize,
    path: String,
    reason: String,
}

impl Credentials {
    /// Reads the token files.
    ///
    /// # Errors
    /// A file that cannot be read or is empty, named with its field.
    pub fn load(settings: &ControlSettings) -> Result<Self, TokenFileError> {
        let mut tokens = Vec::new();
        for (index, entry) in settings.tokens.iter().enumerate() {
            let secret = read_token(&entry.file).map_err(|reason| TokenFileError {
                index,
                path: entry.file.display().to_string(),
                reason,
            })?;
            tokens.push(Token { name: entry.name.clone(), secret, access: entry.access });
        }
        let client_access = settings.tls.as_ref().filter(|t| t.client_ca.is_some()).map(|t| t.client_access);
        Ok(Credentials { tokens, read: settings.read_access, client_access })
    }

    /// Adds a token held in memory (the one `ballast run --simulate` writes for `ctl`).
    pub fn with_token(mut self, name: &str, secret: &str, access: Access) -> Self {
        self.tokens.push(Token { name: name.into(), secret: secret.as_bytes().to_vec(), access });
        self
    }

    /// Checks that the caller of `request` may make a call that needs `needed`.
    ///
    /// # Errors
    /// UNAUTHENTICATED without a valid credential (when one is needed), PERMISSION_DENIED when
    /// the credential does not allow `needed`.
    pub fn authorize<T>(&self, request: &Request<T>, needed: Access) -> Result<Caller, Status> {
        let caller = self.identify(request)?;
        match caller {
            Some(caller) if caller.access >= needed => Ok(caller),
            Some(caller) => Err(Status::permission_denied(format!(
                "{} has read-only access; this call changes the daemon and needs write access",
                caller.name
            ))),
            None if needed == Access::Read && self.read == ReadAccess::Open => {
                Ok(Caller { name: "anonymous".into(), access: Access::Read })
            }
            None => Err(Status::unauthenticated(match needed {
                Access::Write => {
                    "this call changes the daemon: send a bearer token with write access \
                                  (authorization: Bearer ...) or a client certificate"
                }
                Access::Read => "this server needs a bearer token or a client certificate for every call",
            })),
        }
    }

    fn identify<T>(&self, request: &Request<T>) -> Result<Option<Caller>, Status> {
        if let Some(value) = request.metadata().get("authorization") {
            let value = value.to_str().map_err(|_| Status::unauthenticated("authorization: not readable text"))?;
            let presented = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| Status::unauthenticated("authorization: expected 'Bearer TOKEN'"))?
                .trim()
                .as_bytes();
            // Every token is compared, each in constant time, so the time taken says nothing
            // about which one (or how much of one) matched.
            let mut found = None;
            for token in &self.tokens {
                if bool::from(token.secret.as_slice().ct_eq(presented)) {
                    found = Some(Caller { name: token.name.clone(), access: token.access });
                }
            }
            return found.map(Some).ok_or_else(|| Status::unauthenticated("authorization: unknown token"));
        }
        if let (Some(access), Some(certs)) = (self.client_access, request.peer_certs())
            && let Some(cert) = certs.first()
        {
            return Ok(Some(Caller { name: certificate_name(cert.as_ref()), access }));
        }
        Ok(None)
    }
}

fn read_token(path: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let token = text.trim();
    if token.is_empty() {
        return Err("the file is empty".into());
    }
    Ok(token.as_bytes().to_vec())
}

/// Names a client certificate in records: its subject's common name when one is readable,
/// and its SHA-256 fingerprint, which identifies it whatever its subject says.
fn certificate_name(der: &[u8]) -> String {
    use sha2::Digest;
    let fingerprint = hex::encode(sha2::Sha256::digest(der));
    match common_name(der) {
        Some(cn) => format!("cn={cn} (sha256:{})", &fingerprint[..16]),
        None => format!("client certificate sha256:{}", &fingerprint[..16]),
    }
}

/// The last commonName attribute (OID 2.5.4.3) in the certificate: the subject's, which
/// follows the issuer's in the DER. Only for display; authorisation never reads it.
fn common_name(der: &[u8]) -> Option<String> {
    const OID: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let at = der.windows(OID.len()).rposition(|w| w == OID)? + OID.len();
    let (tag, len) = (*der.get(at)?, *der.get(at + 1)? as usize);
    if !matches!(tag, 0x0c | 0x13 | 0x16) || len >= 0x80 {
        return None;
    }
    let value = der.get(at + 2..at + 2 + len)?;
    std::str::from_utf8(value).ok().map(str::to_string)
}
