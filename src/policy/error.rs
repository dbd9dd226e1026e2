//! Why a policy file cannot be used; every message names the file, and the role and table
//! when the problem is inside one.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {file}: cannot read it: {error}")]
    Read { file: String, error: std::io::Error },
    #[error("policy {file}: {message}")]
    Syntax { file: String, message: String },
    #[error("policy {file}: {place}: {message}")]
    Invalid { file: String, place: Place, message: String },
}

/// Where in the file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub role: String,
    pub table: Option<String>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.table {
            Some(table) => write!(f, "role `{}`, table `{table}`", self.role),
            None => write!(f, "role `{}`", self.role),
        }
    }
}
