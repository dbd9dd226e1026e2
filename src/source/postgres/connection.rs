//! Opening connections to a PostgreSQL source: plain SQL (tokio-postgres) and replication
//! (pgwire-replication), both from one URL, with the same TLS settings and the same pinned
//! session settings, so snapshot and stream print values identically.

use std::path::Path;
use std::time::Duration;

use pgwire_replication::{Lsn, ReplicationConfig};
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::text::PINNED_OPTIONS;
use super::tls::{Tls, rustls_cause};
use crate::config::SecretUrl;
use crate::error::{SourceError, describe_pg_error};

/// Connection settings of one source.
#[derive(Clone)]
pub struct Endpoint {
    pub source_name: String,
    pub url: SecretUrl,
    config: tokio_postgres::Config,
    tls: Tls,
    connector: MakeRustlsConnect,
}

impl Endpoint {
    /// `ca_file` is the config's `tls_ca_file` (see [`Tls::from_url`]).
    pub fn new(source_name: &str, url: &SecretUrl, ca_file: Option<&Path>) -> Result<Endpoint, SourceError> {
        let invalid =
            |detail: String| SourceError::Connect { source_name: source_name.into(), url: url.to_string(), detail };
        let (driver_url, tls) = Tls::from_url(&url.0, ca_file).map_err(invalid)?;
        let mut config: tokio_postgres::Config = driver_url
            .as_str()
            .parse()
            .map_err(|e: tokio_postgres::Error| invalid(format!("not a valid PostgreSQL URL: {e}")))?;
        config.options(PINNED_OPTIONS);
        config.application_name("opslive");
        config.connect_timeout(Duration::from_secs(10));
        config.ssl_mode(tls.driver_mode());
        let connector = MakeRustlsConnect::new(tls.client_config().map_err(invalid)?);
        Ok(Endpoint { source_name: source_name.into(), url: url.clone(), config, tls, connector })
    }

    fn connect_error(&self, detail: impl std::fmt::Display) -> SourceError {
        SourceError::Connect {
            source_name: self.source_name.clone(),
            url: self.url.to_string(),
            detail: detail.to_string(),
        }
    }

    /// An SQL session; its connection task ends with the returned client.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, SourceError> {
        let (client, connection) =
            self.config.connect(self.connector.clone()).await.map_err(|e| match rustls_cause(&e) {
                Some(tls) => self.connect_error(self.tls.explain(&self.host().0, tls)),
                None => self.connect_error(describe_pg_error(&e)),
            })?;
        let source = self.source_name.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(source = %source, error = %e, "source SQL connection closed");
            }
        });
        Ok(client)
    }

    fn host(&self) -> (String, u16) {
        match (self.config.get_hosts().first(), self.config.get_ports().first()) {
            (Some(Host::Tcp(h)), port) => (h.clone(), port.copied().unwrap_or(5432)),
            (Some(Host::Unix(path)), port) => (path.display().to_string(), port.copied().unwrap_or(5432)),
            (None, port) => ("127.0.0.1".to_string(), port.copied().unwrap_or(5432)),
        }
    }

    /// Settings for a replication session on `slot`, streaming `publication`.
    pub fn replication(&self, slot: &str, publication: &str, start: Lsn) -> Result<ReplicationConfig, SourceError> {
        let (host, port) = self.host();
        let user = self.config.get_user().unwrap_or("postgres").to_string();
        let password = self.config.get_password().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
        let dbname = self.config.get_dbname().unwrap_or(&user).to_string();
        let tls = self.tls.replication(&host);
        Ok(ReplicationConfig::new(host, user, password, dbname, slot, publication)
            .with_port(port)
            .with_tls(tls)
            .with_start_lsn(start)
            .with_options(PINNED_OPTIONS)
            .with_application_name(format!("opslive:{}", self.source_name))
            // Acks are cheap; a short interval keeps the slot close to what was applied.
            .with_status_interval(Duration::from_secs(1))
            .with_wakeup_interval(Duration::from_secs(5)))
    }
}
