//! Opening connections to a MariaDB source from its URL, every one with the same session
//! settings (UTF-8 text, UTC time), so the snapshot prints values the way the decoder reads
//! the binlog's.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use super::error::MariaError;
use crate::config::SecretUrl;
use crate::error::SourceError;

/// Connection settings of one source.
#[derive(Clone)]
pub struct Endpoint {
    pub source_name: String,
    pub url: SecretUrl,
    opts: mysql_async::Opts,
}

/// Text in UTF-8 whatever a column's charset, TIMESTAMP in UTC, no implicit conversions.
const SESSION: &str =
    "SET NAMES utf8mb4, time_zone = '+00:00', sql_mode = CONCAT(@@sql_mode, ',NO_ENGINE_SUBSTITUTION')";

/// The options of a MariaDB URL (`mysql://` or `mariadb://`): mysql_async knows the `mysql`
/// scheme only. The simulator's helpdesk connections read their URL here too.
pub fn driver_opts(url: &str) -> Result<mysql_async::Opts, String> {
    let url = match url.strip_prefix("mariadb:") {
        Some(rest) => format!("mysql:{rest}"),
        None => url.to_string(),
    };
    mysql_async::Opts::from_url(&url).map_err(|e| format!("not a valid MariaDB URL: {e}"))
}

impl Endpoint {
    /// With `ca_file`, TLS is required and the server's certificate must chain to it.
    pub fn new(source_name: &str, url: &SecretUrl, ca_file: Option<&std::path::Path>) -> Result<Endpoint, SourceError> {
        let opts = driver_opts(url.0.as_str()).map_err(|detail| SourceError::Connect {
            source_name: source_name.into(),
            url: url.to_string(),
            detail,
        })?;
        let ssl = match ca_file {
            Some(ca) => {
                // The server's certificate must chain to this CA, whatever the URL says.
                let roots = vec![ca.to_path_buf().into()];
                Some(
                    opts.ssl_opts()
                        .cloned()
                        .unwrap_or_default()
                        .with_root_certs(roots)
                        .with_disable_built_in_roots(true),
                )
            }
            None => opts.ssl_opts().cloned(),
        };
        if ssl.is_some() && rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let opts = mysql_async::OptsBuilder::from_opts(opts)
            .ssl_opts(ssl)
            .conn_ttl(None)
            .setup(vec![SESSION.to_string()])
            .tcp_keepalive(Some(Duration::from_secs(10)))
            .into();
        Ok(Endpoint { source_name: source_name.into(), url: url.clone(), opts })
    }

    pub async fn connect(&self) -> Result<mysql_async::Conn, SourceError> {
        match tokio::time::timeout(Duration::from_secs(10), mysql_async::Conn::new(self.opts.clone())).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(SourceError::Connect {
                source_name: self.source_name.clone(),
                url: self.url.to_string(),
                detail: e.to_string(),
            }),
            Err(_) => Err(SourceError::Connect {
                source_name: self.source_name.clone(),
                url: self.url.to_string(),
                detail: "no answer within 10 s".into(),
            }),
        }
    }

    /// Wraps a driver error with what was being done.
    pub fn sql(&self, context: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> SourceError + '_ {
        let context = context.into();
        move |error| MariaError::Sql { source_name: self.source_name.clone(), context, error }.into()
    }
}

/// Runs one statement, wrapping its error.
pub async fn exec(conn: &mut mysql_async::Conn, endpoint: &Endpoint, sql: &str) -> Result<(), SourceError> {
    conn.query_drop(sql).await.map_err(endpoint.sql(format!("running `{sql}`")))
}
