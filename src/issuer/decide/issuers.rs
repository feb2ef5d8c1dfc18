//! Pure Issuer/ClusterIssuer readiness decisions: whether a referenced issuer may sign now, and
//! which Ready condition an issuer should carry for the authority's readiness; performs no I/O
//! and reads no clock (time is passed in).

use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::{IssuerState, READY, time};
use crate::crd::{IssuerSpec, IssuerStatus};
use crate::issuer::authority::Readiness;

/// An issuer's readiness as the request state machine sees it: Ready=True for its current
/// generation, or why not.
pub fn issuer_readiness(
    spec: IssuerSpec,
    status: Option<&IssuerStatus>,
    generation: Option<i64>,
) -> IssuerState {
    match ready_condition(status) {
        None => IssuerState::NotReady {
            message: "it has no Ready condition yet".to_owned(),
        },
        Some(c) if c.status != "True" => IssuerState::NotReady {
            message: format!("{}: {}", c.reason, c.message),
        },
        Some(c) if c.observed_generation != generation => IssuerState::NotReady {
            message: format!(
                "its Ready condition is for generation {:?}, not the current {:?}",
                c.observed_generation, generation
            ),
        },
        Some(_) => IssuerState::Ready(spec),
    }
}

/// The Ready condition an issuer should carry, or `None` when it already does.
///
/// # Guarantees
/// While Ready, only a change of status, reason or generation asks for a write (the readiness
/// message carries a countdown that would otherwise rewrite every issuer every second);
/// `lastTransitionTime` moves only when the status changes.
pub fn desired_issuer_condition(
    current: Option<&IssuerStatus>,
    generation: Option<i64>,
    readiness: &Readiness,
    now: SystemTime,
) -> Option<Condition> {
    let (status, reason) = if readiness.ready {
        ("True", "Ready")
    } else {
        ("False", "NotReady")
    };
    let previous = ready_condition(current);
    // While Ready, only a change of state is worth a write: each write re-triggers the issuer's
    // pending requests. While not Ready the message says why, and a new reason is worth telling.
    if let Some(p) = previous
        && p.status == status
        && p.reason == reason
        && p.observed_generation == generation
        && (readiness.ready || p.message == readiness.message)
    {
        return None;
    }
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => time(now),
    };
    Some(Condition {
        type_: READY.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: readiness.message.clone(),
        last_transition_time,
        observed_generation: generation,
    })
}

fn ready_condition(status: Option<&IssuerStatus>) -> Option<&Condition> {
    status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == READY))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn status(generation: i64, s: &str) -> IssuerStatus {
        IssuerStatus {
            conditions: Some(vec![Condition {
                type_: "Ready".into(),
                status: s.into(),
                reason: if s == "True" { "Ready" } else { "NotReady" }.into(),
                message: "m".into(),
                last_transition_time: time(SystemTime::UNIX_EPOCH),
                observed_generation: Some(generation),
            }]),
        }
    }

    fn readiness(ready: bool, message: &str) -> Readiness {
        Readiness {
            ready,
            message: message.into(),
        }
    }

    #[test]
    fn issuer_is_ready_only_for_its_current_generation() {
        // (case, status, current generation, ready?)
        let cases: [(&str, Option<IssuerStatus>, i64, bool); 4] = [
            (
                "ready for this generation",
                Some(status(2, "True")),
                2,
                true,
            ),
            (
                "ready for an older generation",
                Some(status(1, "True")),
                2,
                false,
            ),
            ("not ready", Some(status(2, "False")), 2, false),
            ("no condition yet", None, 2, false),
        ];
        for (case, s, generation, ready) in cases {
            let state = issuer_readiness(IssuerSpec::default(), s.as_ref(), Some(generation));
            assert_eq!(
                matches!(state, IssuerState::Ready(_)),
                ready,
                "{case}: {state:?}"
            );
        }
    }

    #[test]
    fn not_ready_issuer_says_why() {
        let state = issuer_readiness(IssuerSpec::default(), Some(&status(1, "True")), Some(2));
        assert_eq!(
            state,
            IssuerState::NotReady {
                message: "its Ready condition is for generation Some(1), not the current Some(2)"
                    .into()
            }
        );
        let state = issuer_readiness(IssuerSpec::default(), Some(&status(2, "False")), Some(2));
        assert_eq!(
            state,
            IssuerState::NotReady {
                message: "NotReady: m".into()
            }
        );
    }

    /// An issuer whose first Ready condition was written at `now` for generation 1.
    struct Written {
        now: SystemTime,
        /// Five seconds after `now`.
        later: SystemTime,
        /// The readiness the first condition was written for.
        active: Readiness,
        first: Condition,
        status: IssuerStatus,
    }

    fn written_ready() -> Written {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let active = readiness(true, "sub-CA active");
        let first = desired_issuer_condition(None, Some(1), &active, now).unwrap();
        Written {
            now,
            later: now + Duration::from_secs(5),
            status: IssuerStatus {
                conditions: Some(vec![first.clone()]),
            },
            active,
            first,
        }
    }

    #[test]
    fn issuer_condition_is_rewritten_only_when_something_changed() {
        let Written {
            now,
            later,
            active,
            status: written,
            ..
        } = written_ready();
        let down =
            desired_issuer_condition(Some(&written), Some(1), &readiness(false, "x"), now).unwrap();
        let not_ready = IssuerStatus {
            conditions: Some(vec![down]),
        };
        // (case, current status, generation, readiness, expected (status, reason) or no write)
        let cases = [
            ("same state", &written, 1, active.clone(), None),
            (
                "a new message alone does not rewrite a Ready issuer",
                &written,
                1,
                readiness(true, "sub-CA active, valid for 1h"),
                None,
            ),
            (
                "a new generation",
                &written,
                2,
                active.clone(),
                Some(("True", "Ready")),
            ),
            (
                "readiness lost",
                &written,
                1,
                readiness(false, "policy stale"),
                Some(("False", "NotReady")),
            ),
            (
                "the same reason to be not ready",
                &not_ready,
                1,
                readiness(false, "x"),
                None,
            ),
            (
                "a new reason to be not ready",
                &not_ready,
                1,
                readiness(false, "policy stale"),
                Some(("False", "NotReady")),
            ),
        ];
        for (case, current, generation, r, expected) in cases {
            let got = desired_issuer_condition(Some(current), Some(generation), &r, later);
            let got = got.as_ref().map(|c| (c.status.as_str(), c.reason.as_str()));
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn issuer_transition_time_moves_only_when_the_status_changes() {
        let Written {
            later,
            active,
            first,
            status: written,
            ..
        } = written_ready();
        let bumped = desired_issuer_condition(Some(&written), Some(2), &active, later).unwrap();
        assert_eq!(bumped.observed_generation, Some(2));
        assert_eq!(bumped.last_transition_time, first.last_transition_time);
        let down =
            desired_issuer_condition(Some(&written), Some(1), &readiness(false, "stale"), later)
                .unwrap();
        assert_eq!(down.message, "stale");
        assert_ne!(down.last_transition_time, first.last_transition_time);
    }
}
