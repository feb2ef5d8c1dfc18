//! The policy cache: compiled policies of the configuration, last-known-good, maximum staleness, allowed and removed policies; performs no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use firefly_core::policy::{CompiledPolicy, Policy};

/// Why a request cannot use the policy it names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyLookupError {
    /// No policy of that name is in the configuration.
    #[error("policy {name:?} is not in the TLSPC configuration (known: {known})")]
    Unknown {
        /// The requested name.
        name: String,
        /// Names known, comma-separated.
        known: String,
    },
    /// The policy was in the configuration and has been removed from it.
    #[error("policy {name:?} has been removed from the TLSPC configuration")]
    Removed {
        /// The requested name.
        name: String,
    },
    /// The configuration's `controllerAllowedPolicyIds` does not list it.
    #[error("policy {name:?} (id {id}) is not in the configuration's controllerAllowedPolicyIds")]
    NotAllowed {
        /// The requested name.
        name: String,
        /// Its id.
        id: String,
    },
    /// The policy is present but cannot be used (shape or pattern error).
    #[error("policy {name:?} is invalid and cannot be used: {reason}")]
    Invalid {
        /// The requested name.
        name: String,
        /// Why.
        reason: String,
    },
    /// No successful refresh for longer than `policyMaxStaleness`: issuance fails closed.
    #[error(
        "policies are stale: last successful TLSPC refresh {age_secs}s ago, beyond bootstrap.vaas.policyMaxStaleness ({max_secs}s); issuance is refused until TLSPC is reachable"
    )]
    Stale {
        /// Seconds since the last successful refresh.
        age_secs: u64,
        /// The configured maximum.
        max_secs: u64,
    },
    /// No configuration has been loaded yet.
    #[error("no TLSPC configuration loaded yet")]
    NotLoaded,
}

impl PolicyLookupError {
    /// Short CamelCase reason for conditions and metric labels (bounded set).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unknown { .. } => "PolicyUnknown",
            Self::Removed { .. } => "PolicyRemoved",
            Self::NotAllowed { .. } => "PolicyNotAllowed",
            Self::Invalid { .. } => "PolicyInvalid",
            Self::Stale { .. } => "PolicyStale",
            Self::NotLoaded => "PolicyNotLoaded",
        }
    }

    /// True when waiting may help (staleness, not loaded yet); false when an administrator must act.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Stale { .. } | Self::NotLoaded)
    }
}

#[derive(Clone, Debug)]
enum Entry {
    Usable(Arc<CompiledPolicy>),
    NotAllowed { id: String },
    Invalid(String),
}

/// What an update changed, for logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    /// Names added.
    pub added: Vec<String>,
    /// Names removed.
    pub removed: Vec<String>,
    /// Names whose document changed.
    pub changed: Vec<String>,
    /// Names refused, with the reason.
    pub invalid: Vec<(String, String)>,
}

/// Compiled policies by name, last-known-good between refreshes.
#[derive(Debug)]
pub struct PolicyCache {
    max_staleness: Duration,
    entries: BTreeMap<String, Entry>,
    documents: BTreeMap<String, Policy>,
    removed: BTreeSet<String>,
    last_success: Option<SystemTime>,
}

impl PolicyCache {
    /// An empty cache that fails closed `max_staleness` after the last successful update.
    pub fn new(max_staleness: Duration) -> PolicyCache {
        PolicyCache {
            max_staleness,
            entries: BTreeMap::new(),
            documents: BTreeMap::new(),
            removed: BTreeSet::new(),
            last_success: None,
        }
    }

    /// Replaces the policies with `policies` (a successful refresh at `now`); when `allowed_ids`
    /// is not empty, only the policies it lists may be used.
    pub fn update(
        &mut self,
        policies: &[Policy],
        allowed_ids: &[String],
        now: SystemTime,
    ) -> UpdateSummary {
        let allowed: BTreeSet<&str> = allowed_ids.iter().map(String::as_str).collect();
        let mut summary = UpdateSummary::default();
        let mut entries = BTreeMap::new();
        let mut documents = BTreeMap::new();
        for doc in policies {
            let name = doc.name.clone();
            let id = doc.id.clone();
            match self.documents.get(&name) {
                None => summary.added.push(name.clone()),
                Some(old) if old != doc => summary.changed.push(name.clone()),
                Some(_) => {}
            }
            let entry = if !allowed.is_empty() && !allowed.contains(id.as_str()) {
                Entry::NotAllowed { id }
            } else {
                match CompiledPolicy::compile(doc) {
                    Ok(p) => Entry::Usable(Arc::new(p)),
                    Err(e) => {
                        summary.invalid.push((name.clone(), e.to_string()));
                        Entry::Invalid(e.to_string())
                    }
                }
            };
            entries.insert(name.clone(), entry);
            documents.insert(name, doc.clone());
        }
        for old in self.documents.keys() {
            if !documents.contains_key(old) {
                summary.removed.push(old.clone());
                self.removed.insert(old.clone());
            }
        }
        for name in documents.keys() {
            self.removed.remove(name);
        }
        self.entries = entries;
        self.documents = documents;
        self.last_success = Some(now);
        summary
    }

    /// The usable policy named `name` at `now`.
    ///
    /// # Errors
    /// Every [`PolicyLookupError`]; staleness is checked first, so a stale cache refuses all.
    pub fn lookup(
        &self,
        name: &str,
        now: SystemTime,
    ) -> Result<Arc<CompiledPolicy>, PolicyLookupError> {
        let last = self.last_success.ok_or(PolicyLookupError::NotLoaded)?;
        let age = now.duration_since(last).unwrap_or_default();
        if age > self.max_staleness {
            return Err(PolicyLookupError::Stale {
                age_secs: age.as_secs(),
                max_secs: self.max_staleness.as_secs(),
            });
        }
        match self.entries.get(name) {
            Some(Entry::Usable(p)) => Ok(p.clone()),
            Some(Entry::NotAllowed { id }) => Err(PolicyLookupError::NotAllowed {
                name: name.to_string(),
                id: id.clone(),
            }),
            Some(Entry::Invalid(reason)) => Err(PolicyLookupError::Invalid {
                name: name.to_string(),
                reason: reason.clone(),
            }),
            None if self.removed.contains(name) => Err(PolicyLookupError::Removed {
                name: name.to_string(),
            }),
            None => Err(PolicyLookupError::Unknown {
                name: name.to_string(),
                known: self.entries.keys().cloned().collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Whether the cache is within its staleness limit at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.last_success
            .is_some_and(|t| now.duration_since(t).unwrap_or_default() <= self.max_staleness)
    }

    /// Time of the last successful update.
    pub fn last_success(&self) -> Option<SystemTime> {
        self.last_success
    }

    /// The longest leaf lifetime among usable policies (for the C24 check).
    pub fn longest_leaf(&self) -> Option<Duration> {
        self.entries
            .values()
            .filter_map(|e| match e {
                Entry::Usable(p) => Some(p.max_validity()),
                _ => None,
            })
            .max()
    }

    /// Names of the usable policies.
    pub fn usable_names(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Usable(_)))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firefly_core::key::KeyAlgorithm;
    use firefly_core::policy::model::{KeyAlgorithmRule, PropertyRule, PropertyType};

    fn policy(id: &str, name: &str, validity: &str) -> Policy {
        let mut p = Policy {
            id: id.into(),
            name: name.into(),
            validity_period: Some(validity.into()),
            key_usages: vec!["digitalSignature".into()],
            extended_key_usages: vec!["SERVER_AUTH".into(), "CLIENT_AUTH".into()],
            key_algorithm: Some(KeyAlgorithmRule {
                allowed_values: vec![KeyAlgorithm::EcP256],
                default_value: Some(KeyAlgorithm::EcP256),
            }),
            ..Default::default()
        };
        p.sans.uniform_resource_identifiers = Some(PropertyRule {
            kind: Some(PropertyType::Required),
            allowed_values: vec!["^spiffe://cluster\\.local/ns/.*/sa/.*".into()],
            default_values: vec![],
            min_occurrences: 1,
            max_occurrences: 1,
        });
        p
    }

    /// A configuration's policies and its allowed policy ids.
    fn config(policies: Vec<Policy>, allowed: Vec<&str>) -> (Vec<Policy>, Vec<String>) {
        (policies, allowed.into_iter().map(String::from).collect())
    }

    fn update(
        cache: &mut PolicyCache,
        (policies, allowed): (Vec<Policy>, Vec<String>),
        now: SystemTime,
    ) -> UpdateSummary {
        cache.update(&policies, &allowed, now)
    }

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn lookup_before_any_update_is_not_loaded() {
        let cache = PolicyCache::new(Duration::from_secs(60));
        assert_eq!(
            cache.lookup("a", t(0)).unwrap_err(),
            PolicyLookupError::NotLoaded
        );
    }

    #[test]
    fn a_known_policy_is_found_and_unknown_names_list_the_known_ones() {
        let mut cache = PolicyCache::new(Duration::from_secs(60));
        update(
            &mut cache,
            config(vec![policy("1", "istio-mtls", "PT1H")], vec![]),
            t(100),
        );
        assert_eq!(
            cache.lookup("istio-mtls", t(100)).unwrap().name(),
            "istio-mtls"
        );
        let err = cache.lookup("other", t(100)).unwrap_err();
        assert!(err.to_string().contains("istio-mtls"), "{err}");
        assert_eq!(cache.longest_leaf(), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn last_known_good_serves_until_max_staleness_then_fails_closed() {
        let mut cache = PolicyCache::new(Duration::from_secs(60));
        update(
            &mut cache,
            config(vec![policy("1", "p", "PT1H")], vec![]),
            t(100),
        );
        assert!(cache.lookup("p", t(160)).is_ok());
        let err = cache.lookup("p", t(161)).unwrap_err();
        assert_eq!(err.reason(), "PolicyStale");
        assert!(!cache.is_fresh(t(161)));
    }

    #[test]
    fn a_policy_outside_controller_allowed_ids_is_refused() {
        let mut cache = PolicyCache::new(Duration::from_secs(60));
        update(
            &mut cache,
            config(
                vec![policy("1", "a", "PT1H"), policy("2", "b", "PT1H")],
                vec!["1"],
            ),
            t(0),
        );
        assert!(cache.lookup("a", t(0)).is_ok());
        assert_eq!(
            cache.lookup("b", t(0)).unwrap_err(),
            PolicyLookupError::NotAllowed {
                name: "b".into(),
                id: "2".into()
            }
        );
    }

    #[test]
    fn a_removed_policy_is_reported_as_removed_and_readding_clears_it() {
        let mut cache = PolicyCache::new(Duration::from_secs(60));
        update(
            &mut cache,
            config(
                vec![policy("1", "a", "PT1H"), policy("2", "b", "PT1H")],
                vec![],
            ),
            t(0),
        );
        let summary = update(
            &mut cache,
            config(vec![policy("1", "a", "PT1H")], vec![]),
            t(1),
        );
        assert_eq!(summary.removed, vec!["b".to_string()]);
        assert_eq!(
            cache.lookup("b", t(1)).unwrap_err().reason(),
            "PolicyRemoved"
        );
        update(
            &mut cache,
            config(
                vec![policy("1", "a", "PT1H"), policy("2", "b", "PT1H")],
                vec![],
            ),
            t(2),
        );
        assert!(cache.lookup("b", t(2)).is_ok());
    }

    #[test]
    fn a_changed_policy_replaces_the_old_one() {
        let mut cache = PolicyCache::new(Duration::from_secs(60));
        update(
            &mut cache,
            config(vec![policy("1", "a", "PT1H")], vec![]),
            t(0),
        );
        let summary = update(
            &mut cache,
            config(vec![policy("1", "a", "PT2H")], vec![]),
            t(1),
        );
        assert_eq!(summary.changed, vec!["a".to_string()]);
        assert_eq!(
            cache.lookup("a", t(1)).unwrap().max_validity(),
            Duration::from_secs(7200)
        );
    }
}
