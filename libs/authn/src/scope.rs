//! Scopes and roles.
//!
//! | role | scopes |
//! |---|---|
//! | `org_admin` | every scope |
//! | `developer` | `mcp:read mcp:write user:read user:token org:read key:read key:encrypt` |
//! | `viewer` | `mcp:read user:read org:read key:read` |
//!
//! `credential:reveal` (reading a stored secret in the clear) and `key:decrypt` (turning a
//! ciphertext back into plaintext) are `org_admin`'s alone among the roles; a service account
//! can be given them explicitly.

use std::collections::BTreeSet;
use std::fmt;

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read MCP servers and their credentials, masked.
    McpRead,
    /// Create and change MCP credentials.
    McpWrite,
    /// Administer MCP configuration.
    McpAdmin,
    /// Read users.
    UserRead,
    /// Create and change users.
    UserWrite,
    /// Manage one's own tokens and API keys.
    UserToken,
    /// Read the organization (tenant).
    OrgRead,
    /// Change the organization.
    OrgWrite,
    /// Administer the organization: principals, roles, signing keys.
    OrgAdmin,
    /// Read stored secrets in the clear (always audited).
    CredentialReveal,
    /// Read the tenant's keys (metadata, never key material).
    KeyRead,
    /// Encrypt with the tenant's keys, generate data keys, re-wrap ciphertexts.
    KeyEncrypt,
    /// Decrypt with the tenant's keys.
    KeyDecrypt,
    /// Create, rotate, disable and schedule the deletion of the tenant's keys.
    KeyAdmin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 14] = [
        Scope::McpRead,
        Scope::McpWrite,
        Scope::McpAdmin,
        Scope::UserRead,
        Scope::UserWrite,
        Scope::UserToken,
        Scope::OrgRead,
        Scope::OrgWrite,
        Scope::OrgAdmin,
        Scope::CredentialReveal,
        Scope::KeyRead,
        Scope::KeyEncrypt,
        Scope::KeyDecrypt,
        Scope::KeyAdmin,
    ];

    /// The wire form, e.g. `mcp:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::McpRead => "mcp:read",
            Scope::McpWrite => "mcp:write",
            Scope::McpAdmin => "mcp:admin",
            Scope::UserRead => "user:read",
            Scope::UserWrite => "user:write",
            Scope::UserToken => "user:token",
            Scope::OrgRead => "org:read",
            Scope::OrgWrite => "org:write",
            Scope::OrgAdmin => "org:admin",
            Scope::CredentialReveal => "credential:reveal",
            Scope::KeyRead => "key:read",
            Scope::KeyEncrypt => "key:encrypt",
            Scope::KeyDecrypt => "key:decrypt",
            Scope::KeyAdmin => "key:admin",
        }
    }

    /// What it allows, for people (the OAuth consent page).
    pub fn description(self) -> &'static str {
        match self {
            Scope::McpRead => "Read MCP servers and their credentials (masked)",
            Scope::McpWrite => "Create and change MCP credentials",
            Scope::McpAdmin => "Administer MCP configuration",
            Scope::UserRead => "See the users of your organization",
            Scope::UserWrite => "Create and change users",
            Scope::UserToken => "Manage your tokens and API keys",
            Scope::OrgRead => "See your organization",
            Scope::OrgWrite => "Change your organization",
            Scope::OrgAdmin => "Administer your organization: users, roles, signing keys",
            Scope::CredentialReveal => "Read stored secrets in the clear (audited)",
            Scope::KeyRead => "See your organization's keys (never key material)",
            Scope::KeyEncrypt => "Encrypt with your organization's keys",
            Scope::KeyDecrypt => "Decrypt with your organization's keys",
            Scope::KeyAdmin => "Create, rotate, disable and delete your organization's keys",
        }
    }

    /// Parses the wire form.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes; its text form is space-separated, as OAuth's `scope` parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// Parses a space-separated list.
    ///
    /// # Errors
    /// The first unknown scope, verbatim (scope names are not secret).
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split_ascii_whitespace()
            .map(|s| Scope::parse(s).ok_or_else(|| s.to_owned()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Parses a list of scope names, one per item (a `repeated string scopes` field).
    ///
    /// # Errors
    /// The first unknown scope, verbatim (scope names are not secret).
    pub fn parse_list(names: &[String]) -> Result<Self, String> {
        names
            .iter()
            .map(|s| Scope::parse(s).ok_or_else(|| s.clone()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The scope names, in the fixed order (for a `repeated string scopes` field).
    pub fn names(&self) -> Vec<String> {
        self.iter().map(|scope| scope.as_str().to_owned()).collect()
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// The scopes, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes of `self` that `holder` lacks, in a fixed order: empty exactly when `self`
    /// is a subset of `holder`. Every grant, roll or derived credential is checked with this
    /// (authority never grows).
    pub fn beyond(&self, holder: &Scopes) -> Scopes {
        self.0.difference(&holder.0).copied().collect()
    }

    /// The scopes in both sets (a derived credential's authority, bounded by its holder's).
    pub fn intersection(&self, other: &Scopes) -> Scopes {
        self.0.intersection(&other.0).copied().collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(" "))
    }
}

/// A role: a named bundle of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Everything in the tenant.
    OrgAdmin,
    /// Day-to-day work on MCP servers and credentials, without reveal.
    Developer,
    /// Read-only.
    Viewer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::OrgAdmin, Role::Developer, Role::Viewer];

    /// The wire form, e.g. `org_admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::OrgAdmin => "org_admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }

    /// Parses the wire form.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }

    /// The scopes this role grants.
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Role::OrgAdmin => &Scope::ALL,
            Role::Developer => &[
                Scope::McpRead,
                Scope::McpWrite,
                Scope::UserRead,
                Scope::UserToken,
                Scope::OrgRead,
                Scope::KeyRead,
                Scope::KeyEncrypt,
            ],
            Role::Viewer => &[
                Scope::McpRead,
                Scope::UserRead,
                Scope::OrgRead,
                Scope::KeyRead,
            ],
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The union of the scopes of `roles`.
pub fn scopes_of(roles: &[Role]) -> Scopes {
    roles
        .iter()
        .flat_map(|role| role.scopes().iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_text_roundtrips_and_unknown_scopes_are_named() {
        let scopes = Scopes::parse("mcp:write  mcp:read credential:reveal").unwrap();
        assert_eq!(scopes.to_string(), "mcp:read mcp:write credential:reveal");
        assert_eq!(Scopes::parse(&scopes.to_string()).unwrap(), scopes);
        assert_eq!(Scopes::parse("mcp:read mcp:root").unwrap_err(), "mcp:root");
        assert!(Scopes::parse("").unwrap().is_empty());
    }

    #[test]
    fn beyond_names_exactly_the_scopes_the_holder_lacks() {
        let narrow = Scopes::parse("mcp:read user:token").unwrap();
        let broad = scopes_of(&[Role::OrgAdmin]);
        assert!(narrow.beyond(&broad).is_empty());
        let excess = broad.beyond(&narrow);
        assert!(!excess.contains(Scope::McpRead) && excess.contains(Scope::OrgAdmin));
        assert_eq!(excess.iter().count(), Scope::ALL.len() - 2);
        assert_eq!(broad.intersection(&narrow), narrow);
        assert!(Scopes::default().beyond(&Scopes::default()).is_empty());
    }

    #[test]
    fn roles_grant_their_documented_scopes() {
        let viewer = scopes_of(&[Role::Viewer]);
        assert!(viewer.contains(Scope::McpRead) && !viewer.contains(Scope::McpWrite));
        let developer = scopes_of(&[Role::Developer]);
        assert!(
            developer.contains(Scope::McpWrite) && !developer.contains(Scope::CredentialReveal)
        );
        assert!(developer.contains(Scope::KeyEncrypt) && !developer.contains(Scope::KeyDecrypt));
        assert!(viewer.contains(Scope::KeyRead) && !viewer.contains(Scope::KeyEncrypt));
        let admin = scopes_of(&[Role::OrgAdmin]);
        assert!(Scope::ALL.iter().all(|s| admin.contains(*s)));
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}
