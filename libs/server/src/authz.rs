//! The text form of the services' authorization tables, parsed once for every service: rules
//! separated by `;` or newlines, each `SUBJECT=RPC,RPC` or `SUBJECT=RPC,RPC@SCOPE,SCOPE`.
//! A subject is a SPIFFE ID (`spiffe://td/credential-service`), or every ID below a prefix
//! when it ends in `/` (`spiffe://td/operator/`); `*` is every RPC. What the names and the
//! scopes mean is the service's (key-service scopes rules to key patterns).

use coffer_transport::SpiffeId;

/// Who a rule is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// One identity.
    Exact(SpiffeId),
    /// Every identity whose ID starts with this prefix (which ends in `/`).
    Under(String),
}

impl Subject {
    /// Parses `spiffe://td/name` or `spiffe://td/prefix/`.
    ///
    /// # Errors
    /// Why it is not a SPIFFE ID.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.ends_with('/') {
            // A prefix is valid when an ID below it would be.
            SpiffeId::parse(&format!("{text}x")).map_err(|e| e.to_string())?;
            Ok(Self::Under(text.to_owned()))
        } else {
            SpiffeId::parse(text)
                .map(Self::Exact)
                .map_err(|e| e.to_string())
        }
    }

    /// Whether `caller` is this subject.
    pub fn matches(&self, caller: &SpiffeId) -> bool {
        match self {
            Self::Exact(id) => id == caller,
            Self::Under(prefix) => caller.as_str().starts_with(prefix.as_str()),
        }
    }
}

/// One rule of the text form, checked for shape; the service maps its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule<'a> {
    /// The whole rule, for error messages.
    pub text: &'a str,
    /// Who.
    pub subject: Subject,
    /// The RPC names (or `*`), trimmed.
    pub rpcs: Vec<&'a str>,
    /// What the rule is limited to, after `@`, trimmed; `None` without `@`.
    pub scope: Option<Vec<&'a str>>,
}

/// Splits the text form into rules.
///
/// # Errors
/// A message naming the first malformed rule.
pub fn parse_rules(text: &str) -> Result<Vec<Rule<'_>>, String> {
    text.split([';', '\n'])
        .map(str::trim)
        .filter(|rule| !rule.is_empty())
        .map(|rule| {
            let (subject, grant) = rule
                .split_once('=')
                .ok_or_else(|| format!("rule `{rule}`: expected subject=Rpc,..."))?;
            let subject =
                Subject::parse(subject.trim()).map_err(|e| format!("rule `{rule}`: {e}"))?;
            let (rpcs, scope) = match grant.split_once('@') {
                None => (grant, None),
                Some((rpcs, scope)) => (rpcs, Some(scope.split(',').map(str::trim).collect())),
            };
            let rpcs: Vec<&str> = rpcs.split(',').map(str::trim).collect();
            if rpcs.iter().any(|name| name.is_empty()) {
                return Err(format!("rule `{rule}`: an empty RPC name"));
            }
            Ok(Rule {
                text: rule,
                subject,
                rpcs,
                scope,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_split_into_subjects_names_and_scopes() {
        let rules = parse_rules(
            "spiffe://td/app=Encrypt, Decrypt@tenants/*/keys/k\n; spiffe://td/ops/=*\n\n",
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].rpcs, ["Encrypt", "Decrypt"]);
        assert_eq!(rules[0].scope.as_deref(), Some(&["tenants/*/keys/k"][..]));
        assert!(
            rules[1]
                .subject
                .matches(&SpiffeId::parse("spiffe://td/ops/alice").unwrap())
        );
        assert!(
            !rules[1]
                .subject
                .matches(&SpiffeId::parse("spiffe://td/opsx").unwrap())
        );
        assert!(
            rules[0]
                .subject
                .matches(&SpiffeId::parse("spiffe://td/app").unwrap())
        );
        for bad in [
            "spiffe://td/app",
            "not-an-id=Encrypt",
            "spiffe://td/app=Encrypt,,Decrypt",
        ] {
            assert!(parse_rules(bad).unwrap_err().contains(bad), "{bad}");
        }
    }
}
