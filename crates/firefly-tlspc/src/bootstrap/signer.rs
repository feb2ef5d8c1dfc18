//! The signer handle the controller holds: current sub-CA, policies, readiness, usage counters and audit settings; performs no I/O.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use super::Clock;
use crate::policy_cache::{PolicyCache, PolicyLookupError};
use crate::wire::UsageReport;
use firefly_core::ca::{IssueOptions, SubCa};
use firefly_core::issuance::{self, IssuanceRequest, Issued, Outcome};
use firefly_core::policy::CompiledPolicy;

pub use firefly_core::issuance::{AuditSettings, Readiness};

/// Leaves valid at most this long count as ultra-short-lived in usage reports.
pub const ULTRA_SHORT_LIVED_MAX: Duration = Duration::from_secs(24 * 3600);
/// Leaves valid at most this long (and longer than a day) count as short-lived.
pub const SHORT_LIVED_MAX: Duration = Duration::from_secs(30 * 24 * 3600);

/// One activated sub-CA with its TLSPC id and usage counters.
pub(crate) struct ActiveSubCa {
    pub(crate) sub_ca: Arc<SubCa>,
    /// The same key the sub-CA signs with, kept typed for lock status (and tests).
    pub(crate) key: Arc<super::locked_key::LockedKey>,
    pub(crate) id: String,
    pub(crate) provider_fingerprint: String,
    long_lived: AtomicI64,
    short_lived: AtomicI64,
    ultra_short_lived: AtomicI64,
}

impl ActiveSubCa {
    pub(crate) fn new(
        sub_ca: Arc<SubCa>,
        key: Arc<super::locked_key::LockedKey>,
        id: String,
        provider_fingerprint: String,
    ) -> ActiveSubCa {
        ActiveSubCa {
            sub_ca,
            key,
            id,
            provider_fingerprint,
            long_lived: AtomicI64::new(0),
            short_lived: AtomicI64::new(0),
            ultra_short_lived: AtomicI64::new(0),
        }
    }

    pub(crate) fn usage(&self) -> UsageReport {
        UsageReport {
            long_lived_cert_count: self.long_lived.load(Ordering::Relaxed),
            short_lived_cert_count: self.short_lived.load(Ordering::Relaxed),
            ultra_short_lived_cert_count: self.ultra_short_lived.load(Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
pub(crate) struct Blockers {
    /// Set when the configuration requires a FIPS build and this build is not one.
    pub(crate) fips: Option<String>,
    /// Set when TLSPC withdrew this instance's authorization (account detached, revoked or
    /// refused): issuance stops until a refresh succeeds again.
    pub(crate) withdrawn: Option<String>,
    /// The last lifecycle or refresh problem (does not block while a sub-CA is valid).
    pub(crate) last_problem: Option<String>,
    /// Background tasks that keep failing, by name, with why (not ready while any is listed).
    pub(crate) stalled: std::collections::BTreeMap<&'static str, String>,
}

pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) active: RwLock<Option<Arc<ActiveSubCa>>>,
    pub(crate) policies: RwLock<PolicyCache>,
    pub(crate) audit: RwLock<AuditSettings>,
    pub(crate) blockers: RwLock<Blockers>,
    /// [`super::Settings::rotation_floor`].
    pub(crate) rotation_floor: Duration,
}

/// The controller's handle on the signing side. Cheap to clone; every method is non-blocking
/// (short read locks, atomics).
#[derive(Clone)]
pub struct Signer {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("ready", &self.ready().ready)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The sub-CA to sign with now; `None` when none is active and valid, or issuance is blocked
    /// (FIPS requirement) — the caller keeps requests Pending.
    pub fn current(&self) -> Option<Arc<SubCa>> {
        {
            let blockers = read(&self.shared.blockers);
            if blockers.fips.is_some() || blockers.withdrawn.is_some() {
                return None;
            }
        }
        let now = self.shared.clock.now();
        read(&self.shared.active)
            .as_ref()
            .filter(|a| a.sub_ca.not_before() <= now && now < a.sub_ca.not_after())
            .map(|a| a.sub_ca.clone())
    }

    /// The usable policy named `name`.
    ///
    /// # Errors
    /// Unknown, not in `controllerAllowedPolicyIds`, removed, invalid, or stale beyond
    /// `policyMaxStaleness`.
    pub fn policy(&self, name: &str) -> Result<Arc<CompiledPolicy>, PolicyLookupError> {
        read(&self.shared.policies).lookup(name, self.shared.clock.now())
    }

    /// Whether issuance is possible now, and why not.
    pub fn ready(&self) -> Readiness {
        let blockers = read(&self.shared.blockers);
        if let Some(withdrawn) = &blockers.withdrawn {
            return Readiness {
                ready: false,
                message: format!("TLSPC withdrew this instance's authorization: {withdrawn}"),
            };
        }
        if let Some(fips) = &blockers.fips {
            return Readiness {
                ready: false,
                message: fips.clone(),
            };
        }
        if let Some(stalled) = blockers.stalled.values().next() {
            return Readiness {
                ready: false,
                message: stalled.clone(),
            };
        }
        let now = self.shared.clock.now();
        let active = read(&self.shared.active).clone();
        let Some(active) = active else {
            let why = blockers
                .last_problem
                .clone()
                .unwrap_or_else(|| "no sub-CA obtained yet".into());
            return Readiness {
                ready: false,
                message: format!("no sub-CA: {why}"),
            };
        };
        if now >= active.sub_ca.not_after() {
            let why = blockers.last_problem.clone().unwrap_or_default();
            return Readiness {
                ready: false,
                message: format!(
                    "the sub-CA has expired and no successor could be obtained: {why}"
                ),
            };
        }
        if now < active.sub_ca.not_before() {
            return Readiness {
                ready: false,
                message: "the sub-CA is not valid yet (clock skew?)".into(),
            };
        }
        let policies = read(&self.shared.policies);
        if !policies.is_fresh(now) {
            let why = blockers.last_problem.clone().unwrap_or_default();
            return Readiness {
                ready: false,
                message: format!(
                    "policies are older than bootstrap.vaas.policyMaxStaleness: {why}"
                ),
            };
        }
        let left = active
            .sub_ca
            .not_after()
            .duration_since(now)
            .unwrap_or_default();
        let mut message = format!(
            "sub-CA {} active, valid for {}; policies: {}",
            active.id,
            firefly_core::duration::format_go_duration(Duration::from_secs(left.as_secs().max(1))),
            policies.usable_names().join(", ")
        );
        if let Some(problem) = &blockers.last_problem {
            message.push_str(&format!("; degraded: {problem}"));
        }
        if let Some(shortfall) = super::subca::floor_shortfall(
            active.sub_ca.not_before(),
            active.sub_ca.not_after(),
            self.shared.rotation_floor,
            now,
        ) {
            message.push_str(&format!("; degraded: {shortfall}"));
        }
        Readiness {
            ready: true,
            message,
        }
    }

    /// Counts one issued leaf for the usage report of the active sub-CA. Never blocks.
    pub fn record_issued(&self, not_before: SystemTime, not_after: SystemTime) {
        let Some(active) = read(&self.shared.active).clone() else {
            return;
        };
        let lifetime = not_after.duration_since(not_before).unwrap_or_default();
        let counter = if lifetime <= ULTRA_SHORT_LIVED_MAX {
            &active.ultra_short_lived
        } else if lifetime <= SHORT_LIVED_MAX {
            &active.short_lived
        } else {
            &active.long_lived
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The audit settings of the TLSPC configuration.
    pub fn audit(&self) -> AuditSettings {
        *read(&self.shared.audit)
    }

    /// Whether the active sub-CA key's pages are locked in RAM (false under `lockMode: disabled`).
    pub fn key_is_locked(&self) -> bool {
        read(&self.shared.active)
            .as_ref()
            .is_some_and(|a| a.key.is_locked())
    }

    /// TLSPC id of the active sub-CA (the intermediate-certificate request id).
    pub fn current_id(&self) -> Option<String> {
        read(&self.shared.active).as_ref().map(|a| a.id.clone())
    }
}

/// The bootstrap as the issuing core's signer: policy lookup, the active sub-CA and readiness
/// mapped onto the core's [`Outcome`].
impl firefly_core::Signer for Signer {
    fn readiness(&self) -> Readiness {
        self.ready()
    }

    fn issue(
        &self,
        request: &IssuanceRequest<'_>,
        opts: &IssueOptions,
        now: SystemTime,
    ) -> Outcome {
        // Who may ask comes first: a requester or namespace the scope refuses learns nothing of
        // the configuration (which policies exist, whether a sub-CA is active) and waits for
        // nothing. The core checks the scope again; the check reads no policy.
        if let Err(refused) = request.scope.authorize(request.policy) {
            return refused.into();
        }
        // Then the policy: an unknown or disallowed policy is the request's fault even while no
        // sub-CA is active, and must fail at once rather than wait.
        let policy = match self.policy(request.policy) {
            Ok(policy) => policy,
            Err(e) if e.is_transient() => {
                return Outcome::Retry {
                    reason: e.reason(),
                    message: e.to_string(),
                };
            }
            Err(e) => {
                return Outcome::Refused {
                    reason: e.reason(),
                    message: e.to_string(),
                };
            }
        };
        let Some(sub_ca) = self.current() else {
            return Outcome::Retry {
                reason: "SignerNotReady",
                message: format!("cannot sign now: {}", self.ready().message),
            };
        };
        issuance::issue(&sub_ca, &policy, request, opts, now)
    }

    fn chain_pems(&self) -> Option<Vec<String>> {
        self.current().map(|ca| ca.chain_pems())
    }

    fn sub_ca_not_after(&self) -> Option<SystemTime> {
        self.current().map(|ca| ca.not_after())
    }

    fn audit(&self) -> AuditSettings {
        Signer::audit(self)
    }

    fn record_issued(&self, issued: &Issued) {
        Signer::record_issued(self, issued.not_before, issued.not_after);
    }

    fn policy(&self, name: &str) -> Option<Arc<CompiledPolicy>> {
        Signer::policy(self, name).ok()
    }
}

/// Reads through a poisoned lock: the data are plain values, valid even if a writer panicked.
pub(crate) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes through a poisoned lock (see [`read`]).
pub(crate) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::locked_key::LockMode;
    use crate::bootstrap::locked_key::LockedKey;
    use firefly_core::KeyAlgorithm;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    use std::sync::atomic::AtomicU64;

    /// A clock the test sets by hand (seconds since the epoch).
    struct ManualClock(AtomicU64);

    impl Clock for ManualClock {
        fn now(&self) -> SystemTime {
            SystemTime::UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
        }
    }

    fn ca_params(cn: &str, path_len: Option<u8>) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(path_len.map_or(
            BasicConstraints::Unconstrained,
            BasicConstraints::Constrained,
        ));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p
    }

    /// A signer whose active sub-CA is valid [1_000_000 s, 1_000_000 s + 3 h) after the epoch.
    fn signer_at(clock: Arc<ManualClock>) -> Signer {
        signer_with_floor(clock, Duration::ZERO)
    }

    /// [`signer_at`] with a rotation floor.
    fn signer_with_floor(clock: Arc<ManualClock>, rotation_floor: Duration) -> Signer {
        let root_key = KeyPair::generate().unwrap();
        let root = ca_params("root", None).self_signed(&root_key).unwrap();
        let issuer = Issuer::new(ca_params("root", None), root_key);
        let key = Arc::new(LockedKey::generate(KeyAlgorithm::EcP256, LockMode::Disabled).unwrap());
        let mut p = ca_params("sub", Some(0));
        p.not_before =
            rcgen::date_time_ymd(1970, 1, 12) + Duration::from_secs(13 * 3600 + 46 * 60 + 40);
        p.not_after = p.not_before + Duration::from_secs(3 * 3600);
        let cert = p.signed_by(key.as_ref(), &issuer).unwrap();
        let sub_ca =
            SubCa::new(cert.der().to_vec(), vec![root.der().to_vec()], key.clone()).unwrap();
        assert_eq!(
            sub_ca.not_before(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
        );
        let mut policies = PolicyCache::new(Duration::from_secs(3600 * 24));
        policies.update(&[], &[], clock.now());
        let shared = Shared {
            clock,
            active: RwLock::new(Some(Arc::new(ActiveSubCa::new(
                Arc::new(sub_ca),
                key,
                "id-1".into(),
                String::new(),
            )))),
            policies: RwLock::new(policies),
            audit: RwLock::new(AuditSettings::default()),
            blockers: RwLock::new(Blockers::default()),
            rotation_floor,
        };
        Signer {
            shared: Arc::new(shared),
        }
    }

    #[test]
    fn readiness_follows_the_sub_ca_validity_window() {
        let clock = Arc::new(ManualClock(AtomicU64::new(1_000_000)));
        let signer = signer_at(clock.clone());
        assert!(signer.ready().ready, "{}", signer.ready().message);
        assert!(signer.current().is_some());
        clock.0.store(1_000_000 + 3 * 3600, Ordering::SeqCst);
        assert!(
            signer.current().is_none(),
            "an expired sub-CA is never handed out"
        );
        assert!(
            signer.ready().message.contains("expired"),
            "{}",
            signer.ready().message
        );
        clock.0.store(999_999, Ordering::SeqCst);
        assert!(
            signer.current().is_none(),
            "a not-yet-valid sub-CA is never handed out"
        );
    }

    #[test]
    fn a_fips_block_or_withdrawn_authorization_stops_signing() {
        let clock = Arc::new(ManualClock(AtomicU64::new(1_000_100)));
        let signer = signer_at(clock);
        write(&signer.shared.blockers).fips = Some("requires FIPS".into());
        assert!(signer.current().is_none());
        assert!(!signer.ready().ready);
        write(&signer.shared.blockers).fips = None;
        write(&signer.shared.blockers).withdrawn = Some("detached".into());
        assert!(signer.current().is_none());
        assert!(
            signer.ready().message.contains("withdrew"),
            "{}",
            signer.ready().message
        );
    }

    #[test]
    fn degraded_stays_ready_and_says_why() {
        let clock = Arc::new(ManualClock(AtomicU64::new(1_000_100)));
        let signer = signer_at(clock);
        write(&signer.shared.blockers).last_problem = Some("TLSPC answered HTTP 503".into());
        let ready = signer.ready();
        assert!(ready.ready);
        assert!(
            ready.message.contains("degraded: TLSPC answered HTTP 503"),
            "{}",
            ready.message
        );
    }

    #[test]
    fn readiness_says_when_the_sub_ca_has_less_life_left_than_the_floor() {
        let floor = crate::bootstrap::subca::POD_CERTIFICATE_ROTATION_FLOOR;
        let clock = Arc::new(ManualClock(AtomicU64::new(1_000_000 + 3600)));
        let signer = signer_with_floor(clock.clone(), floor);
        let ready = signer.ready();
        assert!(
            ready.ready && !ready.message.contains("degraded"),
            "{}",
            ready.message
        );
        // 3 h sub-CA, 2 h in: 1 h left, under 1h0m10s. Still ready (CertificateRequests are
        // served), and it says so.
        clock.0.store(1_000_000 + 2 * 3600, Ordering::SeqCst);
        let ready = signer.ready();
        assert!(ready.ready, "{}", ready.message);
        assert!(
            ready
                .message
                .contains("degraded: pod certificates need 1h0m10s of sub-CA life and the sub-CA has 1h0m0s left"),
            "{}",
            ready.message
        );
        // Without the floor, nothing to say.
        let plain = signer_at(clock);
        assert!(!plain.ready().message.contains("pod certificates"));
    }

    #[test]
    fn issued_leaves_are_counted_by_lifetime_class() {
        let clock = Arc::new(ManualClock(AtomicU64::new(1_000_100)));
        let signer = signer_at(clock);
        let t = SystemTime::UNIX_EPOCH;
        signer.record_issued(t, t + Duration::from_secs(3600));
        signer.record_issued(t, t + ULTRA_SHORT_LIVED_MAX + Duration::from_secs(1));
        signer.record_issued(t, t + SHORT_LIVED_MAX + Duration::from_secs(1));
        let usage = read(&signer.shared.active).as_ref().unwrap().usage();
        assert_eq!(
            (
                usage.ultra_short_lived_cert_count,
                usage.short_lived_cert_count,
                usage.long_lived_cert_count
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn the_core_signer_authorizes_then_resolves_the_policy_then_signs_or_says_why_not() {
        use firefly_core::Signer as _;
        use firefly_core::issuance::{AssertedIdentity, Scope, Subject};
        use firefly_core::policy::model::{KeyAlgorithmRule, Policy, PropertyRule, PropertyType};

        let clock = Arc::new(ManualClock(AtomicU64::new(1_000_100)));
        let signer = signer_at(clock.clone());
        let mut policy = Policy {
            id: "p-1".into(),
            name: "workloads".into(),
            validity_period: Some("PT1H".into()),
            key_usages: vec!["digitalSignature".into()],
            extended_key_usages: vec!["SERVER_AUTH".into(), "CLIENT_AUTH".into()],
            key_algorithm: Some(KeyAlgorithmRule {
                allowed_values: vec![KeyAlgorithm::EcP256],
                default_value: Some(KeyAlgorithm::EcP256),
            }),
            ..Policy::default()
        };
        policy.sans.uniform_resource_identifiers = Some(PropertyRule {
            kind: Some(PropertyType::Required),
            allowed_values: vec![r"^spiffe://cluster\.local/ns/.*/sa/.*".into()],
            default_values: vec![],
            min_occurrences: 1,
            max_occurrences: 1,
        });
        write(&signer.shared.policies).update(&[policy], &[], clock.now());
        let key = KeyPair::generate().unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let identity = AssertedIdentity {
            spiffe_id: "spiffe://cluster.local/ns/apps/sa/web".parse().unwrap(),
            dns_names: vec![],
        };
        let namespaces = vec!["*".to_owned()];
        let request = |policy| IssuanceRequest {
            subject: Subject::AssertedKey {
                public_key_der: &spki,
                identity: &identity,
            },
            scope: Scope::Signer {
                namespace: "apps",
                namespaces: &namespaces,
            },
            policy,
            duration: Some("30m"),
            usages: None,
            is_ca: false,
            trust_domain: None,
        };
        let opts = IssueOptions::default();
        match signer.issue(&request("workloads"), &opts, clock.now()) {
            Outcome::Issued(issued) => {
                assert_eq!(issued.spiffe_id, Some(identity.spiffe_id.clone()));
                firefly_core::Signer::record_issued(&signer, &issued);
                let usage = read(&signer.shared.active).as_ref().unwrap().usage();
                assert_eq!(usage.ultra_short_lived_cert_count, 1);
            }
            other => panic!("expected a certificate, got {other:?}"),
        }
        assert!(matches!(
            signer.issue(&request("nope"), &opts, clock.now()),
            Outcome::Refused {
                reason: "PolicyUnknown",
                ..
            }
        ));
        // A namespace the scope refuses is refused before the policy is looked up: an unknown
        // policy is not revealed to it.
        let elsewhere = vec!["other".to_owned()];
        let refused_scope = |policy| IssuanceRequest {
            scope: Scope::Signer {
                namespace: "apps",
                namespaces: &elsewhere,
            },
            ..request(policy)
        };
        for policy in ["workloads", "nope"] {
            assert!(matches!(
                signer.issue(&refused_scope(policy), &opts, clock.now()),
                Outcome::Refused {
                    reason: firefly_core::issuance::reason::NAMESPACE_NOT_ALLOWED,
                    ..
                }
            ));
        }
        write(&signer.shared.blockers).fips = Some("requires FIPS".into());
        assert!(matches!(
            signer.issue(&request("workloads"), &opts, clock.now()),
            Outcome::Retry {
                reason: "SignerNotReady",
                ..
            }
        ));
        // ... and without waiting for a sub-CA either.
        assert!(matches!(
            signer.issue(&refused_scope("workloads"), &opts, clock.now()),
            Outcome::Refused {
                reason: firefly_core::issuance::reason::NAMESPACE_NOT_ALLOWED,
                ..
            }
        ));
    }
}
