//! What a role may *do*, beside what it may read: manage KPIs and alerts, manage notification
//! channels, revoke tokens, ask for a table's resync.
//!
//! Listed per role in the policy file (`permissions = ["manage_kpis", "resync"]`), so that who
//! may change the shared dashboard is written next to who may read what, and changes with it
//! when the file is reloaded. Deny by default: a role without the key may do none of these.

use std::fmt;

/// One thing a role may be allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Create, change and delete KPIs (`createKpi`, `updateKpi`, `deleteKpi`).
    ManageKpis,
    /// Create, change and delete alert rules, acknowledge alerts, set silences.
    ManageAlerts,
    /// Configure where notifications go (Slack, email, SMS).
    ManageNotifications,
    /// Revoke tokens before they expire.
    RevokeTokens,
    /// Ask for a table to be copied again (`POST /tables/{name}/resync`).
    Resync,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::ManageKpis,
        Permission::ManageAlerts,
        Permission::ManageNotifications,
        Permission::RevokeTokens,
        Permission::Resync,
    ];

    /// The name in the policy file.
    pub fn name(self) -> &'static str {
        match self {
            Permission::ManageKpis => "manage_kpis",
            Permission::ManageAlerts => "manage_alerts",
            Permission::ManageNotifications => "manage_notifications",
            Permission::RevokeTokens => "revoke_tokens",
            Permission::Resync => "resync",
        }
    }

    /// Reads a name from the file; an unknown one is refused with the list of known ones (a
    /// misspelt permission must not silently grant nothing).
    pub fn parse(name: &str) -> Result<Permission, String> {
        Permission::ALL.into_iter().find(|p| p.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Permission::ALL.iter().map(|p| p.name()).collect();
            format!("unknown permission `{name}` (permissions: {})", known.join(", "))
        })
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
