//! Who may call what: a table from caller SPIFFE ID to allowed RPCs.
//!
//! A rule's subject is either an exact SPIFFE ID or a prefix ending in `/`, which matches every
//! ID below it. A call is allowed when any rule matching the caller lists the RPC. The text form
//! (configuration) is `subject=Rpc,Rpc;subject=*`, rules separated by `;` or newlines.
//!
//! Default for trust domain `td`:
//! - `spiffe://td/credential-service` and `spiffe://td/auth-service`: [`SERVICE_RPCS`];
//! - `spiffe://td/operator/` (every operator): all RPCs.

use coffer_transport::SpiffeId;

/// Every key-service RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
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
    /// `ReWrap`.
    ReWrap,
    /// `BatchDecrypt`.
    BatchDecrypt,
    /// `BatchReWrap`.
    BatchReWrap,
    /// `ScheduleKeyDeletion`.
    ScheduleKeyDeletion,
    /// `CancelKeyDeletion`.
    CancelKeyDeletion,
    /// `RotateRootKey`.
    RotateRootKey,
}

/// What the Coffer services get by default: the data plane, plus reading and creating keys so a
/// service can set up its tenant's key on first use.
pub const SERVICE_RPCS: &[Rpc] = &[
    Rpc::CreateKey,
    Rpc::GetKey,
    Rpc::GenerateDataKey,
    Rpc::Encrypt,
    Rpc::Decrypt,
    Rpc::ReWrap,
    Rpc::BatchDecrypt,
    Rpc::BatchReWrap,
];

impl Rpc {
    /// Every RPC.
    pub const ALL: [Rpc; 14] = [
        Rpc::CreateKey,
        Rpc::GetKey,
        Rpc::ListKeys,
        Rpc::RotateKey,
        Rpc::UpdateKeyPolicy,
        Rpc::GenerateDataKey,
        Rpc::Encrypt,
        Rpc::Decrypt,
        Rpc::ReWrap,
        Rpc::BatchDecrypt,
        Rpc::BatchReWrap,
        Rpc::ScheduleKeyDeletion,
        Rpc::CancelKeyDeletion,
        Rpc::RotateRootKey,
    ];

    /// The RPC's name as in the proto.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::CreateKey => "CreateKey",
            Rpc::GetKey => "GetKey",
            Rpc::ListKeys => "ListKeys",
            Rpc::RotateKey => "RotateKey",
            Rpc::UpdateKeyPolicy => "UpdateKeyPolicy",
            Rpc::GenerateDataKey => "GenerateDataKey",
            Rpc::Encrypt => "Encrypt",
            Rpc::Decrypt => "Decrypt",
            Rpc::ReWrap => "ReWrap",
            Rpc::BatchDecrypt => "BatchDecrypt",
            Rpc::BatchReWrap => "BatchReWrap",
            Rpc::ScheduleKeyDeletion => "ScheduleKeyDeletion",
            Rpc::CancelKeyDeletion => "CancelKeyDeletion",
            Rpc::RotateRootKey => "RotateRootKey",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// The authorization table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    subject: Subject,
    allowed: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    Exact(SpiffeId),
    Under(String),
}

impl Policy {
    /// The default table for `trust_domain` (see the module docs).
    pub fn default_for(trust_domain: &str) -> Self {
        let mut rules = Vec::new();
        for service in ["credential-service", "auth-service"] {
            if let Ok(id) = SpiffeId::new(trust_domain, service) {
                rules.push(Rule {
                    subject: Subject::Exact(id),
                    allowed: bits(SERVICE_RPCS),
                });
            }
        }
        rules.push(Rule {
            subject: Subject::Under(format!("spiffe://{trust_domain}/operator/")),
            allowed: bits(&Rpc::ALL),
        });
        Self { rules }
    }

    /// Parses the text form.
    ///
    /// # Errors
    /// A message naming the first bad rule.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for rule in text
            .split([';', '\n'])
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            let (subject, rpcs) = rule
                .split_once('=')
                .ok_or_else(|| format!("rule `{rule}`: expected subject=Rpc,..."))?;
            let subject = subject.trim();
            let subject = if subject.ends_with('/') {
                SpiffeId::parse(&format!("{subject}x"))
                    .map_err(|e| format!("rule `{rule}`: {e}"))?;
                Subject::Under(subject.to_owned())
            } else {
                Subject::Exact(SpiffeId::parse(subject).map_err(|e| format!("rule `{rule}`: {e}"))?)
            };
            let mut allowed = 0;
            for name in rpcs.split(',').map(str::trim) {
                if name == "*" {
                    allowed |= bits(&Rpc::ALL);
                    continue;
                }
                let rpc = Rpc::ALL
                    .into_iter()
                    .find(|rpc| rpc.name() == name)
                    .ok_or_else(|| format!("rule `{rule}`: unknown RPC `{name}`"))?;
                allowed |= rpc.bit();
            }
            rules.push(Rule { subject, allowed });
        }
        Ok(Self { rules })
    }

    /// Whether `caller` may call `rpc`.
    pub fn allows(&self, caller: &SpiffeId, rpc: Rpc) -> bool {
        self.rules.iter().any(|rule| {
            let matches = match &rule.subject {
                Subject::Exact(id) => id == caller,
                Subject::Under(prefix) => caller.as_str().starts_with(prefix.as_str()),
            };
            matches && rule.allowed & rpc.bit() != 0
        })
    }
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

    #[test]
    fn default_policy_separates_services_operators_and_strangers() {
        let policy = Policy::default_for("coffer.local");
        let cred = id("spiffe://coffer.local/credential-service");
        assert!(policy.allows(&cred, Rpc::Decrypt));
        assert!(!policy.allows(&cred, Rpc::RotateRootKey));
        assert!(!policy.allows(&cred, Rpc::ScheduleKeyDeletion));
        let operator = id("spiffe://coffer.local/operator/alice");
        assert!(Rpc::ALL.iter().all(|rpc| policy.allows(&operator, *rpc)));
        for stranger in [
            "spiffe://coffer.local/operator",
            "spiffe://coffer.local/operatorx/alice",
            "spiffe://other.domain/operator/alice",
            "spiffe://coffer.local/credential-service/x",
        ] {
            assert!(!policy.allows(&id(stranger), Rpc::GetKey), "{stranger}");
        }
    }

    #[test]
    fn text_rules_parse() {
        let policy =
            Policy::parse("spiffe://td/runtime=Encrypt, Decrypt; spiffe://td/admins/=*").unwrap();
        assert!(policy.allows(&id("spiffe://td/runtime"), Rpc::Decrypt));
        assert!(!policy.allows(&id("spiffe://td/runtime"), Rpc::RotateKey));
        assert!(policy.allows(&id("spiffe://td/admins/bob"), Rpc::RotateRootKey));
    }

    #[test]
    fn bad_rules_are_named() {
        assert!(
            Policy::parse("spiffe://td/x")
                .unwrap_err()
                .contains("expected")
        );
        assert!(
            Policy::parse("spiffe://td/x=Nope")
                .unwrap_err()
                .contains("unknown RPC `Nope`")
        );
        assert!(
            Policy::parse("http://td/x=Encrypt")
                .unwrap_err()
                .contains("spiffe")
        );
    }
}
