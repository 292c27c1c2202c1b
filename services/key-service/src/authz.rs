//! Who may call what: a table from caller SPIFFE ID to allowed RPCs on which keys.
//!
//! A rule's subject is either an exact SPIFFE ID or a prefix ending in `/`, which matches every
//! ID below it. A rule may be limited to keys matching name patterns; a call is allowed when
//! any rule matching the caller lists the RPC and, for an RPC on one key, matches the key.
//! RPCs that are not about one key (ListKeys, RotateRootKey) need a rule without patterns.
//!
//! Text form (configuration): rules separated by `;` or newlines, each
//! `subject=Rpc,Rpc` (every key) or `subject=Rpc,Rpc@pattern,pattern`. A pattern is
//! `tenants/{t}/keys/{k}` where each of `{t}`, `{k}` is an id, `*` (any), or a prefix ending
//! in `*` (`audit-*`). `*` for the RPCs means all of them.
//!
//! Default for trust domain `td` (each service may use only its own keys, so neither can
//! unwrap the other's secrets):
//! - `spiffe://td/credential-service`: [`SERVICE_RPCS`] on `tenants/*/keys/credentials` and
//!   `tenants/*/keys/credential-audit`;
//! - `spiffe://td/auth-service`: [`SERVICE_RPCS`] on `tenants/coffer-system/keys/auth-signing`,
//!   `tenants/*/keys/auth-audit` and `tenants/*/keys/auth-factors` (users' TOTP secrets);
//! - `spiffe://td/operator/` (every operator): all RPCs on every key.
//!
//! A forwarder (the REST gateway, see [`coffer_authn::forwarded`]) is not in the table: its
//! calls carry the bearer credential of the client it forwards, and that principal alone
//! decides ([`Policy::allows_principal`]): its own tenant's keys only (another tenant's key is
//! NOT_FOUND), each RPC needing one scope ([`Rpc::scope`]), and the keys reserved for Coffer's
//! services ([`DEFAULT_RESERVED`]) readable but never usable, so no bearer can unwrap a stored
//! credential or forge an audit link past the service that owns the key.

use coffer_authn::{Denied, Principal, Scope};
use coffer_server::authz::Subject;
use coffer_transport::SpiffeId;

use crate::names::{KeyName, TenantId};
use crate::{Error, Result};

/// The keys Coffer's own services use, by default: a principal may read them (GetKey,
/// ListKeys) but no other RPC touches them with a bearer credential.
pub(crate) const DEFAULT_RESERVED: &[&str] = &[
    "tenants/*/keys/credentials",
    "tenants/*/keys/credential-audit",
    "tenants/*/keys/auth-audit",
    "tenants/*/keys/auth-factors",
    "tenants/coffer-system/keys/*",
];

/// Every key-service RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rpc {
    /// `CreateKey`.
    CreateKey,
    /// `GetKey`.
    GetKey,
    /// `ListKeys`.
    ListKeys,
    /// `RotateKey`.
    RotateKey,
    /// `UpdateKeyPolicy`.
    UpdateKeyPolicy,
    /// `GenerateDataKey`.
    GenerateDataKey,
    /// `Encrypt`.
    Encrypt,
    /// `Decrypt`.
    Decrypt,
    /// `Rewrap`.
    Rewrap,
    /// `BatchDecrypt`.
    BatchDecrypt,
    /// `BatchRewrap`.
    BatchRewrap,
    /// `ScheduleKeyDeletion`.
    ScheduleKeyDeletion,
    /// `CancelKeyDeletion`.
    CancelKeyDeletion,
    /// `DisableKey`.
    DisableKey,
    /// `EnableKey`.
    EnableKey,
    /// `RotateRootKey`.
    RotateRootKey,
    /// `ListKeyChanges` (answers only the keys the caller may call it on).
    ListKeyChanges,
}

/// What the Coffer services get by default: the data plane, plus reading and creating keys so a
/// service can set up its tenant's key on first use.
pub(crate) const SERVICE_RPCS: &[Rpc] = &[
    Rpc::CreateKey,
    Rpc::GetKey,
    Rpc::GenerateDataKey,
    Rpc::Encrypt,
    Rpc::Decrypt,
    Rpc::Rewrap,
    Rpc::BatchDecrypt,
    Rpc::BatchRewrap,
    Rpc::ListKeyChanges,
];

impl Rpc {
    /// Every RPC.
    pub(crate) const ALL: [Rpc; 17] = [
        Rpc::CreateKey,
        Rpc::GetKey,
        Rpc::ListKeys,
        Rpc::RotateKey,
        Rpc::UpdateKeyPolicy,
        Rpc::GenerateDataKey,
        Rpc::Encrypt,
        Rpc::Decrypt,
        Rpc::Rewrap,
        Rpc::BatchDecrypt,
        Rpc::BatchRewrap,
        Rpc::ScheduleKeyDeletion,
        Rpc::CancelKeyDeletion,
        Rpc::DisableKey,
        Rpc::EnableKey,
        Rpc::RotateRootKey,
        Rpc::ListKeyChanges,
    ];

    /// The RPC's name as in the proto.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Rpc::CreateKey => "CreateKey",
            Rpc::GetKey => "GetKey",
            Rpc::ListKeys => "ListKeys",
            Rpc::RotateKey => "RotateKey",
            Rpc::UpdateKeyPolicy => "UpdateKeyPolicy",
            Rpc::GenerateDataKey => "GenerateDataKey",
            Rpc::Encrypt => "Encrypt",
            Rpc::Decrypt => "Decrypt",
            Rpc::Rewrap => "Rewrap",
            Rpc::BatchDecrypt => "BatchDecrypt",
            Rpc::BatchRewrap => "BatchRewrap",
            Rpc::ScheduleKeyDeletion => "ScheduleKeyDeletion",
            Rpc::CancelKeyDeletion => "CancelKeyDeletion",
            Rpc::DisableKey => "DisableKey",
            Rpc::EnableKey => "EnableKey",
            Rpc::RotateRootKey => "RotateRootKey",
            Rpc::ListKeyChanges => "ListKeyChanges",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// The scope a bearer principal needs for the RPC; `None` for the RPCs no principal may
    /// call (RotateRootKey, ListKeyChanges: operators and services only).
    pub(crate) fn scope(self) -> Option<Scope> {
        Some(match self {
            Rpc::GetKey | Rpc::ListKeys => Scope::KeyRead,
            Rpc::GenerateDataKey | Rpc::Encrypt | Rpc::Rewrap | Rpc::BatchRewrap => {
                Scope::KeyEncrypt
            }
            Rpc::Decrypt | Rpc::BatchDecrypt => Scope::KeyDecrypt,
            Rpc::CreateKey
            | Rpc::RotateKey
            | Rpc::UpdateKeyPolicy
            | Rpc::DisableKey
            | Rpc::EnableKey
            | Rpc::ScheduleKeyDeletion
            | Rpc::CancelKeyDeletion => Scope::KeyAdmin,
            Rpc::RotateRootKey | Rpc::ListKeyChanges => return None,
        })
    }
}

/// The authorization table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    /// Keys a bearer principal may only read (see the module docs).
    reserved: Vec<KeyPattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    subject: Subject,
    allowed: u32,
    /// `None`: every key, and the RPCs that are not about one key.
    keys: Option<Vec<KeyPattern>>,
}

/// `tenants/{tenant}/keys/{key}` with a [`Segment`] for each part.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyPattern {
    tenant: Segment,
    key: Segment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Any,
    Prefix(String),
    Exact(String),
}

/// What a call touches: one key, or nothing key-specific.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// An RPC on one key.
    Key(&'a KeyName),
    /// ListKeys: the keys of one tenant.
    Tenant(&'a TenantId),
    /// RotateRootKey, ListKeyChanges.
    Service,
}

impl Policy {
    /// The default table for `trust_domain` (see the module docs).
    pub(crate) fn default_for(trust_domain: &str) -> Self {
        let mut rules = Vec::new();
        for (service, keys) in [
            (
                "credential-service",
                [
                    "tenants/*/keys/credentials",
                    "tenants/*/keys/credential-audit",
                ]
                .as_slice(),
            ),
            (
                "auth-service",
                [
                    "tenants/coffer-system/keys/auth-signing",
                    "tenants/*/keys/auth-audit",
                    "tenants/*/keys/auth-factors",
                ]
                .as_slice(),
            ),
        ] {
            if let Ok(id) = SpiffeId::new(trust_domain, service) {
                rules.push(Rule {
                    subject: Subject::Exact(id),
                    allowed: bits(SERVICE_RPCS),
                    keys: Some(
                        keys.iter()
                            .filter_map(|k| KeyPattern::parse(k).ok())
                            .collect(),
                    ),
                });
            }
        }
        rules.push(Rule {
            subject: Subject::Under(format!("spiffe://{trust_domain}/operator/")),
            allowed: bits(&Rpc::ALL),
            keys: None,
        });
        Self {
            rules,
            reserved: default_reserved(),
        }
    }

    /// Parses the text form.
    ///
    /// # Errors
    /// A message naming the first bad rule.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for rule in coffer_server::authz::parse_rules(text)? {
            let keys = rule
                .scope
                .map(|patterns| {
                    patterns
                        .into_iter()
                        .map(KeyPattern::parse)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("rule `{}`: {e}", rule.text))
                })
                .transpose()?;
            let mut allowed = 0;
            for name in rule.rpcs {
                if name == "*" {
                    allowed |= bits(&Rpc::ALL);
                    continue;
                }
                let rpc = Rpc::ALL
                    .into_iter()
                    .find(|rpc| rpc.name() == name)
                    .ok_or_else(|| format!("rule `{}`: unknown RPC `{name}`", rule.text))?;
                allowed |= rpc.bit();
            }
            rules.push(Rule {
                subject: rule.subject,
                allowed,
                keys,
            });
        }
        Ok(Self {
            rules,
            reserved: default_reserved(),
        })
    }

    /// The same rules, with `patterns` (comma-separated key patterns, empty for none) as the
    /// keys a bearer principal may only read, instead of [`DEFAULT_RESERVED`].
    ///
    /// # Errors
    /// A message naming the first bad pattern.
    pub(crate) fn reserving(mut self, patterns: &str) -> Result<Self, String> {
        self.reserved = patterns
            .split(',')
            .map(str::trim)
            .filter(|pattern| !pattern.is_empty())
            .map(KeyPattern::parse)
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// Whether a bearer `principal` may call `rpc` on `target` (see the module docs).
    ///
    /// # Errors
    /// [`Error::NotFound`] for another tenant's key or tenant, checked first so nothing about
    /// it leaks; [`Error::NotForBearers`], [`Error::ScopeMissing`] or [`Error::ReservedKey`].
    pub(crate) fn allows_principal(
        &self,
        principal: &Principal,
        rpc: Rpc,
        target: Target<'_>,
    ) -> Result<()> {
        let (tenant, resource) = match target {
            Target::Key(name) => (name.tenant(), name.to_string()),
            Target::Tenant(tenant) => (tenant, tenant.name()),
            Target::Service => return Err(Error::NotForBearers(rpc.name())),
        };
        let scope = rpc.scope().ok_or(Error::NotForBearers(rpc.name()))?;
        principal
            .authorize(tenant.as_str(), scope)
            .map_err(|denied| match denied {
                Denied::OtherTenant => Error::NotFound(resource),
                Denied::Missing(missing) => Error::ScopeMissing(missing.0),
            })?;
        match target {
            Target::Key(name)
                if scope != Scope::KeyRead && self.reserved.iter().any(|p| p.matches(name)) =>
            {
                Err(Error::ReservedKey(name.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Whether any rule lets `caller` call `rpc` on some key (for RPCs whose answer is then
    /// filtered key by key with [`Policy::allows`]).
    pub(crate) fn grants(&self, caller: &SpiffeId, rpc: Rpc) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.subject.matches(caller) && rule.allowed & rpc.bit() != 0)
    }

    /// Whether `caller` may call `rpc` on `target`.
    pub(crate) fn allows(&self, caller: &SpiffeId, rpc: Rpc, target: Target<'_>) -> bool {
        self.rules.iter().any(|rule| {
            let subject = rule.subject.matches(caller);
            let keys = match (&rule.keys, target) {
                (None, _) => true,
                (Some(patterns), Target::Key(name)) => patterns.iter().any(|p| p.matches(name)),
                (Some(_), Target::Tenant(_) | Target::Service) => false,
            };
            subject && keys && rule.allowed & rpc.bit() != 0
        })
    }
}

// === impl KeyPattern ===

impl KeyPattern {
    fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let ["tenants", tenant, "keys", key] = parts.as_slice() else {
            return Err(format!(
                "key pattern `{text}`: expected tenants/{{t}}/keys/{{k}}"
            ));
        };
        Ok(Self {
            tenant: Segment::parse(text, tenant)?,
            key: Segment::parse(text, key)?,
        })
    }

    fn matches(&self, name: &KeyName) -> bool {
        self.tenant.matches(name.tenant().as_str()) && self.key.matches(name.id())
    }
}

impl Segment {
    fn parse(pattern: &str, text: &str) -> Result<Self, String> {
        let literal = text.strip_suffix('*').unwrap_or(text);
        if literal.contains('*') || (literal.is_empty() && text.is_empty()) {
            return Err(format!(
                "key pattern `{pattern}`: a part is an id, `*`, or a prefix ending in `*`"
            ));
        }
        Ok(match (text.ends_with('*'), literal.is_empty()) {
            (true, true) => Segment::Any,
            (true, false) => Segment::Prefix(literal.to_owned()),
            (false, _) => Segment::Exact(literal.to_owned()),
        })
    }

    fn matches(&self, part: &str) -> bool {
        match self {
            Segment::Any => true,
            Segment::Prefix(prefix) => part.starts_with(prefix.as_str()),
            Segment::Exact(exact) => part == exact,
        }
    }
}

fn default_reserved() -> Vec<KeyPattern> {
    DEFAULT_RESERVED
        .iter()
        .filter_map(|pattern| KeyPattern::parse(pattern).ok())
        .collect()
}

fn bits(rpcs: &[Rpc]) -> u32 {
    rpcs.iter().fold(0, |acc, rpc| acc | rpc.bit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    fn key(name: &str) -> KeyName {
        KeyName::parse("name", name).unwrap()
    }

    #[test]
    fn default_policy_separates_services_operators_and_strangers() {
        let policy = Policy::default_for("coffer.local");
        let cred = id("spiffe://coffer.local/credential-service");
        let own = key("tenants/acme/keys/credentials");
        assert!(policy.allows(&cred, Rpc::Decrypt, Target::Key(&own)));
        assert!(!policy.allows(&cred, Rpc::RotateRootKey, Target::Service));
        assert!(!policy.allows(&cred, Rpc::ScheduleKeyDeletion, Target::Key(&own)));
        let operator = id("spiffe://coffer.local/operator/alice");
        assert!(
            Rpc::ALL
                .iter()
                .all(|rpc| policy.allows(&operator, *rpc, Target::Service))
        );
        for stranger in [
            "spiffe://coffer.local/operator",
            "spiffe://coffer.local/operatorx/alice",
            "spiffe://other.domain/operator/alice",
            "spiffe://coffer.local/credential-service/x",
        ] {
            assert!(
                !policy.allows(&id(stranger), Rpc::GetKey, Target::Key(&own)),
                "{stranger}"
            );
        }
    }

    #[test]
    fn each_service_may_use_only_its_own_keys_by_default() {
        let policy = Policy::default_for("coffer.local");
        let cred = id("spiffe://coffer.local/credential-service");
        let auth = id("spiffe://coffer.local/auth-service");
        let signing = key("tenants/coffer-system/keys/auth-signing");
        let credentials = key("tenants/acme/keys/credentials");
        assert!(policy.allows(&auth, Rpc::Decrypt, Target::Key(&signing)));
        assert!(!policy.allows(&cred, Rpc::Decrypt, Target::Key(&signing)));
        let factors = key("tenants/acme/keys/auth-factors");
        assert!(policy.allows(&auth, Rpc::Encrypt, Target::Key(&factors)));
        assert!(!policy.allows(&cred, Rpc::Decrypt, Target::Key(&factors)));
        assert!(policy.allows(&cred, Rpc::Decrypt, Target::Key(&credentials)));
        assert!(!policy.allows(&auth, Rpc::Decrypt, Target::Key(&credentials)));
        assert!(!policy.allows(
            &auth,
            Rpc::Decrypt,
            Target::Key(&key("tenants/acme/keys/other"))
        ));
        assert!(!policy.allows(&cred, Rpc::ListKeys, Target::Service));
        // Key changes: granted, then filtered to the service's own keys.
        assert!(policy.grants(&cred, Rpc::ListKeyChanges));
        assert!(!policy.allows(&cred, Rpc::ListKeyChanges, Target::Key(&signing)));
        assert!(!policy.grants(&id("spiffe://coffer.local/stranger"), Rpc::ListKeyChanges));
    }

    fn principal(tenant: &str, scopes: &str) -> Principal {
        Principal {
            tenant: tenant.into(),
            subject: "ada".into(),
            scopes: coffer_authn::Scopes::parse(scopes).unwrap(),
            roles: Vec::new(),
            api_key: None,
        }
    }

    #[test]
    fn a_bearer_principal_acts_in_its_own_tenant_with_the_scope_each_rpc_needs() {
        let policy = Policy::default_for("coffer.local");
        let app = key("tenants/acme/keys/app");
        let user = principal("acme", "key:read key:encrypt");
        assert!(
            policy
                .allows_principal(&user, Rpc::Encrypt, Target::Key(&app))
                .is_ok()
        );
        assert!(matches!(
            policy.allows_principal(&user, Rpc::Decrypt, Target::Key(&app)),
            Err(Error::ScopeMissing(Scope::KeyDecrypt))
        ));
        assert!(matches!(
            policy.allows_principal(&user, Rpc::RotateKey, Target::Key(&app)),
            Err(Error::ScopeMissing(Scope::KeyAdmin))
        ));
        let acme = TenantId::parse("parent", "acme").unwrap();
        assert!(
            policy
                .allows_principal(&user, Rpc::ListKeys, Target::Tenant(&acme))
                .is_ok()
        );
        // Another tenant is not there, whatever the scopes.
        let admin = principal("globex", "key:read key:encrypt key:decrypt key:admin");
        assert!(matches!(
            policy.allows_principal(&admin, Rpc::Encrypt, Target::Key(&app)),
            Err(Error::NotFound(name)) if name == "tenants/acme/keys/app"
        ));
        assert!(matches!(
            policy.allows_principal(&admin, Rpc::ListKeys, Target::Tenant(&acme)),
            Err(Error::NotFound(name)) if name == "tenants/acme"
        ));
        // Operators' and services' RPCs are never a principal's.
        let everything = principal(
            "acme",
            "key:read key:encrypt key:decrypt key:admin org:admin",
        );
        for (rpc, target) in [
            (Rpc::RotateRootKey, Target::Service),
            (Rpc::ListKeyChanges, Target::Key(&app)),
        ] {
            assert!(matches!(
                policy.allows_principal(&everything, rpc, target),
                Err(Error::NotForBearers(_))
            ));
        }
    }

    #[test]
    fn the_services_keys_are_readable_but_never_usable_with_a_bearer() {
        let policy = Policy::default_for("coffer.local");
        let admin = principal("acme", "key:read key:encrypt key:decrypt key:admin");
        for name in [
            "tenants/acme/keys/credentials",
            "tenants/acme/keys/credential-audit",
            "tenants/acme/keys/auth-audit",
            "tenants/acme/keys/auth-factors",
        ] {
            let reserved = key(name);
            assert!(
                policy
                    .allows_principal(&admin, Rpc::GetKey, Target::Key(&reserved))
                    .is_ok()
            );
            for rpc in [Rpc::Decrypt, Rpc::Encrypt, Rpc::Rewrap, Rpc::DisableKey] {
                assert!(
                    matches!(
                        policy.allows_principal(&admin, rpc, Target::Key(&reserved)),
                        Err(Error::ReservedKey(_))
                    ),
                    "{name} {rpc:?}"
                );
            }
        }
        let system = principal("coffer-system", "key:read key:decrypt");
        let signing = key("tenants/coffer-system/keys/auth-signing");
        assert!(matches!(
            system.authorize("coffer-system", Scope::KeyDecrypt),
            Ok(())
        ));
        assert!(matches!(
            policy.allows_principal(&system, Rpc::Decrypt, Target::Key(&signing)),
            Err(Error::ReservedKey(_))
        ));
        // Configured otherwise, the list is what the operator says.
        let open = Policy::default_for("coffer.local")
            .reserving("tenants/*/keys/vault")
            .unwrap();
        let credentials = key("tenants/acme/keys/credentials");
        assert!(
            open.allows_principal(&admin, Rpc::Decrypt, Target::Key(&credentials))
                .is_ok()
        );
        assert!(matches!(
            open.allows_principal(
                &admin,
                Rpc::Decrypt,
                Target::Key(&key("tenants/acme/keys/vault"))
            ),
            Err(Error::ReservedKey(_))
        ));
        assert!(Policy::default_for("td").reserving("keys/x").is_err());
    }

    #[test]
    fn text_rules_parse() {
        let policy =
            Policy::parse("spiffe://td/runtime=Encrypt, Decrypt; spiffe://td/admins/=*").unwrap();
        let any = key("tenants/t/keys/k");
        assert!(policy.allows(&id("spiffe://td/runtime"), Rpc::Decrypt, Target::Key(&any)));
        assert!(!policy.allows(
            &id("spiffe://td/runtime"),
            Rpc::RotateKey,
            Target::Key(&any)
        ));
        assert!(policy.allows(
            &id("spiffe://td/admins/bob"),
            Rpc::RotateRootKey,
            Target::Service
        ));
    }

    #[test]
    fn key_patterns_limit_a_rule_to_matching_keys() {
        let policy =
            Policy::parse("spiffe://td/app=Encrypt@tenants/*/keys/app-*,tenants/ops/keys/main")
                .unwrap();
        let app = id("spiffe://td/app");
        for (name, allowed) in [
            ("tenants/acme/keys/app-1", true),
            ("tenants/ops/keys/main", true),
            ("tenants/acme/keys/main", false),
            ("tenants/ops/keys/app", false),
        ] {
            assert_eq!(
                policy.allows(&app, Rpc::Encrypt, Target::Key(&key(name))),
                allowed,
                "{name}"
            );
        }
        assert!(!policy.allows(&app, Rpc::Encrypt, Target::Service));
    }

    #[test]
    fn bad_rules_are_named() {
        for (text, needle) in [
            ("spiffe://td/x", "expected"),
            ("spiffe://td/x=Nope", "unknown RPC `Nope`"),
            ("http://td/x=Encrypt", "spiffe"),
            ("spiffe://td/x=Encrypt@keys/k", "expected tenants/"),
            ("spiffe://td/x=Encrypt@tenants/a*b/keys/k", "a part is"),
            ("spiffe://td/x=Encrypt@tenants//keys/k", "a part is"),
        ] {
            let error = Policy::parse(text).unwrap_err();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }
}
