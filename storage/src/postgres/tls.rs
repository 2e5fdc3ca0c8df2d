//! TLS to PostgreSQL (rustls with ring), set by Temporal's `sql.tls` keys as its PostgreSQL
//! plugin maps them to libpq's `sslmode`: `enabled` asks for `require`, and
//! `enableHostVerification` for `verify-full`; `connectAttributes.sslmode` may name the mode
//! instead. As in libpq, `require` with a `caFile` verifies the server's chain (`verify-ca`).
//!
//! | mode          | chain checked against `caFile` | name checked (`serverName`, else the host) |
//! |---------------|--------------------------------|--------------------------------------------|
//! | `require`     | no (yes with a `caFile`)       | no                                         |
//! | `verify-ca`   | yes                            | no                                         |
//! | `verify-full` | yes                            | yes                                        |
//!
//! The system's root certificates are not used: a mode that verifies needs `caFile`.
//! `certFile` and `keyFile` (both or neither) give the client certificate.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use deadpool_postgres::tokio_postgres::tls::{self, ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::options::TlsOptions;
use crate::{Error, Result};

/// How much of the server's identity is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verify {
    /// Encrypt only (`sslmode=require` without a `caFile`).
    Nothing,
    /// The chain, not the name (`verify-ca`).
    Chain,
    /// The chain and the name (`verify-full`).
    Full,
}

/// Connects a socket with TLS, or (when TLS is off) is never asked to.
#[derive(Clone, Debug)]
pub struct MakeTls {
    config: Option<Arc<ClientConfig>>,
    /// The name to send and check instead of the host (`tls.serverName`).
    server_name: Option<String>,
}

fn invalid(key: &str, why: impl std::fmt::Display) -> Error {
    Error::Backend(format!("PostgreSQL option `{key}`: {why}"))
}

impl MakeTls {
    /// No TLS: the connection's `sslmode` is `disable` (or `prefer`, then in plain text).
    pub(super) fn off() -> Self {
        MakeTls {
            config: None,
            server_name: None,
        }
    }

    /// TLS as `options` and `verify` say; reads the certificate and key files.
    pub(super) fn new(options: &TlsOptions, verify: Verify) -> Result<Self> {
        let provider = Arc::new(crypto::ring::default_provider());
        let roots = match &options.ca_file {
            Some(path) => Some(Arc::new(root_store(path)?)),
            None if verify == Verify::Nothing => None,
            None => {
                return Err(invalid(
                    "tls.caFile",
                    "verifying the server needs it (the system's root certificates are not used)",
                ));
            }
        };
        let chain = match roots {
            Some(roots) => Some(
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| invalid("tls.caFile", e))?,
            ),
            None => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (verify, chain) {
            (Verify::Full, Some(full)) => full,
            (_, chain) => Arc::new(Lax {
                chain,
                algorithms: provider.signature_verification_algorithms,
            }),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("tls", e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&options.cert_file, &options.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let certs = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                    .map_err(|e| invalid("tls.certFile", format!("{}: {e}", cert.display())))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| invalid("tls.keyFile", format!("{}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| invalid("tls.keyFile", e))?
            }
            (Some(_), None) => return Err(invalid("tls.keyFile", "needed with tls.certFile")),
            (None, Some(_)) => return Err(invalid("tls.certFile", "needed with tls.keyFile")),
        };
        Ok(MakeTls {
            config: Some(Arc::new(config)),
            server_name: options.server_name.clone().filter(|n| !n.is_empty()),
        })
    }
}

/// The certificates of `path` (PEM) as trust roots.
fn root_store(path: &Path) -> Result<RootCertStore> {
    let bad = |e: &dyn std::fmt::Display| invalid("tls.caFile", format!("{}: {e}", path.display()));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate in the file"));
    }
    Ok(roots)
}

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Tls<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> io::Result<Connect> {
        // Asked for every connection, TLS or not: nothing is checked until a handshake.
        Ok(Connect {
            connector: self.config.clone().map(TlsConnector::from),
            name: self.server_name.as_deref().unwrap_or(host).to_string(),
        })
    }
}

/// One TLS handshake to come (none when TLS is off).
pub struct Connect {
    connector: Option<TlsConnector>,
    name: String,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Tls<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Tls<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let connector = self
                .connector
                .ok_or_else(|| io::Error::other("TLS was asked for, but tls.enabled is false"))?;
            let name = ServerName::try_from(self.name)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Ok(Tls(connector.connect(name, stream).await?))
        })
    }
}

/// A connection inside TLS.
pub struct Tls<S>(TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tls::TlsStream for Tls<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Tls<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Tls<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// What `require` and `verify-ca` check: with a `chain` verifier, that the certificate leads to
/// a trusted root (its name is not checked); without, nothing, as libpq's `require` accepts any
/// certificate. Either way the handshake's signatures are checked, so the session is encrypted
/// to the holder of the certificate's key.
#[derive(Debug)]
struct Lax {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lax {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
