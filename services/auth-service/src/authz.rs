//! Who is calling: the mTLS peer, and the bearer token it presents.
//!
//! Every call arrives over mutual TLS, so it has a SPIFFE peer identity. Calls inside a
//! tenant also carry `authorization: Bearer <access token or mcp_sk_ API key>`, verified here
//! against this service's own keys, revocation list and API keys; the tenant comes from that
//! credential only.
//! Operators (`spiffe://{trust-domain}/operator/...`) may administer without a bearer.
//! Here too: whose account a call about grants or second factors concerns
//! ([`grant_owner`], [`factor_owner`]), and who may manage an API key.

use coffer_authn::{Denied, Principal, Scope, Scopes};
use coffer_server::authz::Subject;
use coffer_transport::SpiffeId;
use secrecy::SecretString;
use tonic::Request;

use crate::ids::PrincipalName;
use crate::ops::Auth;
use crate::source::Source;
use crate::store::ApiKeyRow;
use crate::{Error, Result};

/// Longest `authorization` value accepted, checked before parsing.
const MAX_AUTHORIZATION_LEN: usize = coffer_authn::jwt::MAX_TOKEN_LEN + 16;

/// The verified caller of one request.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// An operator certificate, no bearer.
    Operator(SpiffeId),
    /// A bearer token's principal.
    Principal(Principal),
}

/// The RPCs other services call with their certificate alone (no bearer): what
/// [`Policy`] grants. Operators may call them too, and every other RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServiceRpc {
    /// `Introspect`.
    Introspect,
    /// `VerifyApiKey`.
    VerifyApiKey,
    /// `ListRevocations`.
    ListRevocations,
    /// The OAuth authorization server's RPCs (RegisterClient, StartAuthorization, SignIn,
    /// FinishAuthorization, ExchangeToken, RevokeClientToken): the gateway's HTTP side.
    OAuth,
}

impl ServiceRpc {
    const ALL: [Self; 4] = [
        Self::Introspect,
        Self::VerifyApiKey,
        Self::ListRevocations,
        Self::OAuth,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Introspect => "Introspect",
            Self::VerifyApiKey => "VerifyApiKey",
            Self::ListRevocations => "ListRevocations",
            Self::OAuth => "OAuth",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// auth-service's authorization table (`COFFER_AUTH_SERVICE__AUTHZ`): which service
/// identities may call [`ServiceRpc`]s, in the text form of
/// [`coffer_server::authz`] (`spiffe://td/gateway=Introspect,VerifyApiKey`). By default
/// credential-service, key-service (for the bearers the gateway forwards to it) and the
/// gateway may call all three. Operators
/// (`spiffe://{td}/operator/...`) may call every RPC, the directory ones (CreateTenant,
/// CreatePrincipal, ...) with their certificate alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<(Subject, u8)>,
}

impl Policy {
    /// credential-service, key-service and the gateway of `trust_domain` may call
    /// Introspect, VerifyApiKey and ListRevocations; the gateway also the OAuth RPCs.
    pub fn default_for(trust_domain: &str) -> Self {
        let verify = [
            ServiceRpc::Introspect,
            ServiceRpc::VerifyApiKey,
            ServiceRpc::ListRevocations,
        ]
        .iter()
        .fold(0, |bits, rpc| bits | rpc.bit());
        Self {
            rules: [
                ("credential-service", verify),
                ("key-service", verify),
                ("gateway", verify | ServiceRpc::OAuth.bit()),
            ]
            .iter()
            .filter_map(|(name, bits)| Some((SpiffeId::new(trust_domain, name).ok()?, *bits)))
            .map(|(id, bits)| (Subject::Exact(id), bits))
            .collect(),
        }
    }

    /// Parses the text form; `*` is every [`ServiceRpc`].
    ///
    /// # Errors
    /// A message naming the first bad rule.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut rules = Vec::new();
        for rule in coffer_server::authz::parse_rules(text)? {
            if rule.scope.is_some() {
                return Err(format!(
                    "rule `{}`: auth-service rules have no @scope",
                    rule.text
                ));
            }
            let mut allowed = 0;
            for name in rule.rpcs {
                allowed |= match ServiceRpc::ALL.into_iter().find(|rpc| rpc.name() == name) {
                    Some(rpc) => rpc.bit(),
                    None if name == "*" => ServiceRpc::ALL.iter().fold(0, |b, rpc| b | rpc.bit()),
                    None => {
                        return Err(format!(
                            "rule `{}`: `{name}` is not one of Introspect, VerifyApiKey, \
                             ListRevocations, OAuth (operators may call everything)",
                            rule.text
                        ));
                    }
                };
            }
            rules.push((rule.subject, allowed));
        }
        Ok(Self { rules })
    }

    fn allows(&self, caller: &SpiffeId, rpc: ServiceRpc) -> bool {
        self.rules
            .iter()
            .any(|(subject, allowed)| subject.matches(caller) && allowed & rpc.bit() != 0)
    }
}

/// Which peer identities are trusted for what: operators, and the [`Policy`].
#[derive(Debug, Clone)]
pub(crate) struct Identities {
    operator_prefix: String,
    policy: Policy,
    forwarders: Vec<SpiffeId>,
}

impl Identities {
    /// Operators are `spiffe://{trust_domain}/operator/...`; `policy` says who else may call
    /// the [`ServiceRpc`]s; `forwarders` may name the client they call for (see
    /// [`Identities::source`]).
    pub(crate) fn new(trust_domain: &str, policy: Policy, forwarders: Vec<SpiffeId>) -> Self {
        Self {
            operator_prefix: format!("spiffe://{trust_domain}/operator/"),
            policy,
            forwarders,
        }
    }

    /// Where the request comes from, for the per-source limits: the peer, or, from a
    /// forwarder (the gateway), the client address it names in `x-forwarded-for` (see
    /// [`coffer_authn::forwarded`]); so one REST client's failures block that client, not
    /// everyone behind the gateway.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] without a usable client certificate.
    pub(crate) fn source<T>(&self, request: &Request<T>) -> Result<Source> {
        let peer = peer(request)?;
        let headers = request.metadata().as_ref();
        match coffer_authn::forwarded::forwarded_client(headers, &peer, &self.forwarders) {
            Some(address) => Source::on_behalf_of(&peer, &address.to_string()),
            None => Ok(Source::peer(&peer)),
        }
    }

    fn is_operator(&self, id: &SpiffeId) -> bool {
        id.as_str().starts_with(&self.operator_prefix)
    }
}

/// The request's peer identity.
///
/// # Errors
/// [`Error::Unauthenticated`] without a usable client certificate.
pub(crate) fn peer<T>(request: &Request<T>) -> Result<SpiffeId> {
    SpiffeId::from_request(request).ok_or(Error::unauthenticated("no client certificate identity"))
}

/// Authenticates the caller: a bearer token if present, else an operator certificate.
///
/// # Errors
/// [`Error::Unauthenticated`] for a bad bearer, or no bearer from a non-operator.
pub(crate) async fn caller<T>(
    auth: &Auth,
    identities: &Identities,
    request: &Request<T>,
) -> Result<Caller> {
    let peer = peer(request)?;
    match bearer(request)? {
        Some(token) if token.starts_with(coffer_crypto::apikey::PREFIX) => {
            let key = auth
                .verify_api_key(
                    &secrecy::SecretString::from(token),
                    &identities.source(request)?,
                )
                .await?;
            Ok(Caller::Principal(key.principal()))
        }
        Some(token) => Ok(Caller::Principal(
            auth.verify_access_token(&token).await?.principal,
        )),
        None if identities.is_operator(&peer) => Ok(Caller::Operator(peer)),
        None => Err(Error::unauthenticated("no bearer token")),
    }
}

/// Requires an operator certificate.
///
/// # Errors
/// [`Error::PermissionDenied`] for anyone else.
pub(crate) fn require_operator<T>(
    identities: &Identities,
    request: &Request<T>,
) -> Result<SpiffeId> {
    let peer = peer(request)?;
    if identities.is_operator(&peer) {
        Ok(peer)
    } else {
        Err(Error::PermissionDenied {
            why: format!("{peer} is not an operator"),
        })
    }
}

/// Requires an operator or an identity the [`Policy`] lets call `rpc`, and returns it.
///
/// # Errors
/// [`Error::PermissionDenied`] for anyone else.
pub(crate) fn require_service<T>(
    identities: &Identities,
    request: &Request<T>,
    rpc: ServiceRpc,
) -> Result<SpiffeId> {
    let peer = peer(request)?;
    if identities.is_operator(&peer) || identities.policy.allows(&peer, rpc) {
        Ok(peer)
    } else {
        Err(Error::PermissionDenied {
            why: format!("{peer} may not call {}", rpc.name()),
        })
    }
}

/// Whose grants a ListGrants or RevokeGrant call may see: the browser sign-in's user
/// (from the gateway), else the bearer's own (`user:token`), or anyone's for operators.
/// `parent` (`tenants/{t}/principals/{p}`, or empty for the caller) must name that user.
pub(crate) async fn grant_owner<T>(
    auth: &Auth,
    identities: &Identities,
    request: &Request<T>,
    session: &str,
    parent: &str,
) -> Result<(String, String)> {
    let named = if parent.is_empty() {
        None
    } else {
        let name = PrincipalName::parse("parent", parent)?;
        Some((name.tenant().to_string(), name.id().to_owned()))
    };
    let owner = if session.is_empty() {
        match caller(auth, identities, request).await? {
            Caller::Operator(_) => named
                .clone()
                .ok_or_else(|| Error::invalid("parent", "operators name the user"))?,
            Caller::Principal(principal) => {
                principal
                    .require(Scope::UserToken)
                    .map_err(|missing| Error::ScopeMissing(missing.0))?;
                (principal.tenant.clone(), principal.subject.clone())
            }
        }
    } else {
        require_service(identities, request, ServiceRpc::OAuth)?;
        auth.session_user(&SecretString::from(session.to_owned()))
            .await?
    };
    match named {
        // Another user's grants are not found, whether they exist or not.
        Some(named) if named != owner => Err(Error::NotFound(parent.to_owned())),
        _ => Ok(owner),
    }
}

/// Whose second factor a call manages, and who acts: the browser sign-in's user (from
/// the gateway), else the bearer's own account (`user:token`). With `others`, also a
/// user `parent` names, by that tenant's admins (`org:admin`) or an operator; without
/// (enrolling), operators are refused, since enrolling hands out the user's secret, and so
/// are API keys and the tokens exchanged for them.
pub(crate) async fn factor_owner<T>(
    auth: &Auth,
    identities: &Identities,
    request: &Request<T>,
    session: &str,
    parent: &str,
    others: bool,
) -> Result<FactorOwner> {
    let named = if parent.is_empty() {
        None
    } else {
        let name = PrincipalName::parse("parent", parent)?;
        Some((name.tenant().to_string(), name.id().to_owned()))
    };
    let someone_else = |(tenant, id): (String, String), actor: String| FactorOwner {
        tenant,
        id,
        actor,
        own: false,
    };
    let owner = if session.is_empty() {
        let caller = caller(auth, identities, request).await?;
        let actor = caller.actor();
        match (&caller, named.clone()) {
            (Caller::Operator(_), Some(named)) if others => {
                return Ok(someone_else(named, actor));
            }
            (Caller::Operator(_), _) if others => {
                return Err(Error::invalid("parent", "operators name the user"));
            }
            (Caller::Operator(_), _) => {
                return Err(Error::PermissionDenied {
                    why: "operators cannot enroll a user's second factor".into(),
                });
            }
            (Caller::Principal(me), Some(named))
                if others && (&me.tenant, &me.subject) != (&named.0, &named.1) =>
            {
                caller.require(&named.0, Scope::OrgAdmin, || parent.to_owned())?;
                return Ok(someone_else(named, actor));
            }
            // A leaked API key must not be able to put a factor of its holder's choosing
            // on the account, which would lock the user out of their next sign-in.
            (Caller::Principal(me), _) if !others && me.api_key.is_some() => {
                return Err(Error::PermissionDenied {
                    why: "an API key cannot set up two-step sign-in: sign in with the password"
                        .into(),
                });
            }
            (Caller::Principal(me), _) => {
                me.require(Scope::UserToken)
                    .map_err(|missing| Error::ScopeMissing(missing.0))?;
                FactorOwner {
                    tenant: me.tenant.clone(),
                    id: me.subject.clone(),
                    actor,
                    own: true,
                }
            }
        }
    } else {
        require_service(identities, request, ServiceRpc::OAuth)?;
        let (tenant, id) = auth
            .session_user(&SecretString::from(session.to_owned()))
            .await?;
        FactorOwner {
            actor: id.clone(),
            tenant,
            id,
            own: true,
        }
    };
    match named {
        // Another user's factor is not found, whether it exists or not.
        Some(named) if named != (owner.tenant.clone(), owner.id.clone()) => {
            Err(Error::NotFound(parent.to_owned()))
        }
        _ => Ok(owner),
    }
}

/// The user whose second factor a call manages, and who acts (for the audit chain).
pub(crate) struct FactorOwner {
    pub(crate) tenant: String,
    pub(crate) id: String,
    pub(crate) actor: String,
    /// Whether the user acts on their own factor.
    pub(crate) own: bool,
}

impl Caller {
    /// Who acts, as audit events name it: the principal id, or the operator's SPIFFE ID.
    pub(crate) fn actor(&self) -> String {
        match self {
            Caller::Operator(id) => id.to_string(),
            Caller::Principal(principal) => principal.subject.clone(),
        }
    }

    /// Checks that the caller may act in `tenant` with `scope`: operators anywhere, principals
    /// in their own tenant only. Another tenant's objects are reported as `not_found`, never
    /// as forbidden, so their existence does not leak.
    ///
    /// # Errors
    /// [`Error::NotFound`] (`not_found`) for another tenant; [`Error::PermissionDenied`] for a
    /// missing scope.
    pub(crate) fn require(
        &self,
        tenant: &str,
        scope: Scope,
        not_found: impl FnOnce() -> String,
    ) -> Result<()> {
        match self {
            Caller::Operator(_) => Ok(()),
            Caller::Principal(principal) => {
                principal
                    .authorize(tenant, scope)
                    .map_err(|denied| match denied {
                        Denied::OtherTenant => Error::NotFound(not_found()),
                        Denied::Missing(missing) => Error::ScopeMissing(missing.0),
                    })
            }
        }
    }
}

/// What a caller wants to do with an existing API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Manage {
    /// RevokeApiKey.
    Revoke,
    /// RollApiKey.
    Roll,
}

impl Caller {
    /// Whether the caller may `action` the key `row` (named `name`, already known to be in a
    /// tenant the caller may act in with `user:token`).
    ///
    /// Who may: an operator; the key's owner; anyone else with `org:admin`. And, for a
    /// principal, authority never grows: a roll hands out a secret with the key's scopes, so
    /// the caller must hold every one of them; a revoke takes authority away, so a caller
    /// lacking some of them needs `org:admin` (a narrow key of the owner cannot switch off
    /// the owner's broad keys).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; [`Error::Corrupt`] for unknown stored scopes.
    pub(crate) fn may_manage(&self, row: &ApiKeyRow, action: Manage, name: &str) -> Result<()> {
        let Caller::Principal(me) = self else {
            return Ok(());
        };
        if me.subject != row.principal_id {
            self.require(&row.tenant, Scope::OrgAdmin, || name.to_owned())?;
        }
        let key_scopes =
            Scopes::parse(&row.scopes).map_err(|_| Error::Corrupt("unknown stored scope"))?;
        let excess = key_scopes.beyond(&me.scopes);
        let allowed =
            excess.is_empty() || (action == Manage::Revoke && me.scopes.contains(Scope::OrgAdmin));
        if allowed {
            Ok(())
        } else {
            Err(Error::PermissionDenied {
                why: format!("{action:?} of {name}: the key holds {excess}, the caller does not"),
            })
        }
    }

    /// Refuses a grant of any scope the caller does not hold itself (operators excepted): an
    /// `org:admin` key cannot mint an `org_admin` user or hand out `credential:reveal`.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`].
    pub(crate) fn may_grant(&self, granted: &Scopes) -> Result<()> {
        let Caller::Principal(me) = self else {
            return Ok(());
        };
        let excess = granted.beyond(&me.scopes);
        if excess.is_empty() {
            Ok(())
        } else {
            Err(Error::PermissionDenied {
                why: format!("grant of {excess}, which the caller does not hold"),
            })
        }
    }
}

/// The bearer token of the `authorization` metadata, if any.
fn bearer<T>(request: &Request<T>) -> Result<Option<String>> {
    let Some(value) = request.metadata().get("authorization") else {
        return Ok(None);
    };
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(Error::unauthenticated("authorization header too large"));
    }
    let text = value
        .to_str()
        .map_err(|_| Error::unauthenticated("authorization not ASCII"))?;
    let token = text.strip_prefix("Bearer ").ok_or(Error::unauthenticated(
        "authorization is not a Bearer token",
    ))?;
    Ok(Some(token.trim().to_owned()))
}
