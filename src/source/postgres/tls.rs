//! TLS to a PostgreSQL source, with libpq's `sslmode` and `sslrootcert` meaning what they mean
//! to psql, for both of a source's connections: SQL (tokio-postgres over rustls) and replication
//! (pgwire-replication's rustls). Managed PostgreSQL services require TLS, so a source URL that
//! works with psql has to work here. rustls with ring only: no OpenSSL at run time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// libpq's `sslmode`, less `allow` (plain first, TLS only if the server insists), which no driver
/// here speaks and no managed service needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    /// TLS when the server offers it, unverified; plain otherwise. libpq's default.
    Prefer,
    /// TLS or nothing, unverified (unless a root certificate is given: then as `VerifyCa`).
    Require,
    /// TLS, and the server's certificate chains to a trusted root.
    VerifyCa,
    /// `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode, String> {
        Ok(match s {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            "allow" => return Err("sslmode=allow is not supported: use prefer, require or verify-full".into()),
            other => {
                return Err(format!("sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

/// Where trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The public web's roots (Mozilla's, built in): what a managed service's certificate chains to.
    BuiltIn,
    /// A PEM file of CA certificates (a private CA, a cloud provider's bundle).
    File(PathBuf),
}

/// A source's TLS settings, read from its URL and config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: Mode,
    pub roots: Roots,
}

impl Tls {
    /// Takes `sslmode` and `sslrootcert` out of `url`'s query (the drivers below read neither the
    /// way libpq does), and returns them with the URL that is left. `ca_file` is the config's
    /// `tls_ca_file`: a root certificate that, with no `sslmode` in the URL, turns verify-full on.
    pub fn from_url(url: &url::Url, ca_file: Option<&Path>) -> Result<(url::Url, Tls), String> {
        let mut mode = None;
        let mut root_cert = None;
        let mut rest = Vec::new();
        for (key, value) in url.query_pairs() {
            match &*key {
                "sslmode" => mode = Some(Mode::parse(&value)?),
                "sslrootcert" => root_cert = Some(value.into_owned()),
                "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                    return Err(format!("{key} is not supported: opslive does not present client certificates"));
                }
                _ => rest.push((key.into_owned(), value.into_owned())),
            }
        }
        let roots = match (root_cert.as_deref(), ca_file) {
            (Some(_), Some(_)) => {
                return Err("both sslrootcert in the URL and tls_ca_file are set: keep one".into());
            }
            // PostgreSQL 16's spelling for "the system's roots"; ours are built in.
            (Some("system"), None) => Roots::BuiltIn,
            (Some(path), None) => Roots::File(PathBuf::from(path)),
            (None, Some(path)) => Roots::File(path.to_path_buf()),
            (None, None) => Roots::BuiltIn,
        };
        let mode = match (mode, &roots) {
            (Some(mode), _) => mode,
            (None, Roots::File(_)) if ca_file.is_some() => Mode::VerifyFull,
            // libpq: with a root certificate file present, prefer and require verify the chain.
            (None, Roots::File(_)) => Mode::VerifyCa,
            (None, Roots::BuiltIn) => Mode::Prefer,
        };
        // libpq: require with a root certificate given behaves as verify-ca.
        let mode = match (mode, &roots) {
            (Mode::Require, Roots::File(_)) => Mode::VerifyCa,
            (mode, _) => mode,
        };
        let mut stripped = url.clone();
        if rest.is_empty() {
            stripped.set_query(None);
        } else {
            stripped.query_pairs_mut().clear().extend_pairs(rest);
        }
        Ok((stripped, Tls { mode, roots }))
    }

    /// The mode tokio-postgres negotiates with: it knows whether to ask, not what to verify
    /// (that is the rustls config's job).
    pub fn driver_mode(&self) -> tokio_postgres::config::SslMode {
        match self.mode {
            Mode::Disable => tokio_postgres::config::SslMode::Disable,
            Mode::Prefer => tokio_postgres::config::SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => tokio_postgres::config::SslMode::Require,
        }
    }

    /// The replication connection's settings.
    pub fn replication(&self, host: &str) -> pgwire_replication::TlsConfig {
        use pgwire_replication::{SslMode, TlsConfig};
        let ca = match &self.roots {
            Roots::File(path) => Some(path.clone()),
            Roots::BuiltIn => None,
        };
        let mut config = match self.mode {
            Mode::Disable => TlsConfig::disabled(),
            Mode::Prefer => TlsConfig { mode: SslMode::Prefer, ..TlsConfig::disabled() },
            Mode::Require => TlsConfig::require(),
            Mode::VerifyCa => TlsConfig::verify_ca(ca),
            Mode::VerifyFull => TlsConfig::verify_full(ca),
        };
        // verify-full to an IP address checks the certificate's IP names, as libpq does; the crate
        // refuses an IP host unless it is given as the name to verify.
        if self.mode == Mode::VerifyFull && host.parse::<std::net::IpAddr>().is_ok() {
            config = config.with_sni_hostname(host);
        }
        config
    }

    /// The SQL connection's rustls config.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let roots = Arc::new(self.root_store()?);
        let chain = match self.mode {
            Mode::VerifyFull => return Ok(builder.with_root_certificates(roots).with_no_client_auth()),
            Mode::VerifyCa => Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| format!("TLS setup: {e}"))?,
            ),
            Mode::Disable | Mode::Prefer | Mode::Require => None,
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lenient { chain, provider }))
            .with_no_client_auth();
        Ok(config)
    }

    fn root_store(&self) -> Result<RootCertStore, String> {
        match &self.roots {
            Roots::BuiltIn => Ok(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }),
            Roots::File(path) => {
                let mut store = RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("cannot read the root certificate file {}: {e}", path.display()))?;
                for cert in certs {
                    let cert = cert.map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
                    store.add(cert).map_err(|e| format!("{}: a certificate is not usable: {e}", path.display()))?;
                }
                if store.is_empty() {
                    return Err(format!("{} holds no certificate", path.display()));
                }
                Ok(store)
            }
        }
    }

    /// What went wrong, in words a user can act on, when a TLS handshake failed with `error`.
    pub fn explain(&self, host: &str, error: &rustls::Error) -> String {
        let roots = match &self.roots {
            Roots::File(path) => format!("the root certificate file {}", path.display()),
            Roots::BuiltIn => "the built-in public roots (set sslrootcert or tls_ca_file for a private CA)".into(),
        };
        match error {
            // BadSignature: an issuer of the same name is trusted, but it did not sign this one.
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
                format!(
                    "the server's TLS certificate is not signed by a CA in {roots} (sslmode={})",
                    self.mode.as_str()
                )
            }
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!(
                "the server's TLS certificate is not issued for the host name `{host}` (sslmode=verify-full \
                 checks it; connect by a name the certificate holds, or use verify-ca)"
            ),
            rustls::Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
                "the server's TLS certificate has expired".into()
            }
            other => format!("TLS handshake failed: {other}"),
        }
    }
}

/// The rustls error behind a failed connection, if TLS is what failed.
pub fn rustls_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        cause = e.source();
    }
    None
}

/// What libpq checks below verify-full: with a chain verifier (verify-ca), the chain must verify
/// and the name in it is not checked; without one (prefer, require), the certificate is taken as
/// it comes. Either way the handshake's signatures are checked, so the session key is the
/// server's.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str, ca: Option<&str>) -> Result<(String, Tls), String> {
        let url = url::Url::parse(url).unwrap();
        Tls::from_url(&url, ca.map(Path::new)).map(|(u, t)| (u.to_string(), t))
    }

    #[test]
    fn the_url_loses_its_tls_keys_and_keeps_the_rest() {
        let (url, tls) =
            parse("postgres://u@db:5432/shop?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=3", None).unwrap();
        assert_eq!(url, "postgres://u@db:5432/shop?connect_timeout=3");
        assert_eq!(tls, Tls { mode: Mode::VerifyFull, roots: Roots::File("/ca.pem".into()) });
        let (url, tls) = parse("postgres://u@db/shop?sslmode=require", None).unwrap();
        assert_eq!(url, "postgres://u@db/shop");
        assert_eq!(tls, Tls { mode: Mode::Require, roots: Roots::BuiltIn });
    }

    #[test]
    fn defaults_follow_libpq() {
        assert_eq!(parse("postgres://db/x", None).unwrap().1.mode, Mode::Prefer);
        // A root certificate makes prefer and require verify the chain.
        assert_eq!(parse("postgres://db/x?sslrootcert=/ca.pem", None).unwrap().1.mode, Mode::VerifyCa);
        assert_eq!(parse("postgres://db/x?sslmode=require&sslrootcert=/ca.pem", None).unwrap().1.mode, Mode::VerifyCa);
        assert_eq!(parse("postgres://db/x?sslmode=disable&sslrootcert=/ca.pem", None).unwrap().1.mode, Mode::Disable);
        assert_eq!(parse("postgres://db/x?sslrootcert=system", None).unwrap().1.roots, Roots::BuiltIn);
        // The config's CA file alone asks for the strictest check.
        let (_, tls) = parse("postgres://db/x", Some("/etc/ca.pem")).unwrap();
        assert_eq!(tls, Tls { mode: Mode::VerifyFull, roots: Roots::File("/etc/ca.pem".into()) });
    }

    #[test]
    fn unusable_settings_are_refused_with_the_reason() {
        assert!(parse("postgres://db/x?sslmode=allow", None).unwrap_err().contains("not supported"));
        assert!(parse("postgres://db/x?sslmode=strict", None).unwrap_err().contains("sslmode=strict"));
        assert!(parse("postgres://db/x?sslcert=/c.pem", None).unwrap_err().contains("client certificates"));
        assert!(parse("postgres://db/x?sslrootcert=/a.pem", Some("/b.pem")).unwrap_err().contains("keep one"));
        let missing = Tls { mode: Mode::VerifyFull, roots: Roots::File("/nonexistent/ca.pem".into()) };
        assert!(missing.client_config().unwrap_err().contains("/nonexistent/ca.pem"));
    }
}
