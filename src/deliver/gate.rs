//! Gate stage: whether a destination is tried now.
//!
//! A destination that failed permanently waits for a person (`state retry`); one that failed
//! transiently waits for its retry time; otherwise quiet hours hold its alerts on losses
//! (prepared messages, reports and staff-deletion alerts, go out in them). Pure, so every
//! decision is tested without a clock.

use crate::store::{DeliveryStatus, DestinationState};

/// What the gate decided for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Try now.
    Open,
    /// Quiet hours: held until `until` (unix seconds). Not a failure.
    Held { until: i64 },
    /// Not now: why, and when to look again (`None`: when a person acts).
    Wait {
        reason: String,
        retry_at: Option<i64>,
    },
}

/// The gate for a destination of route `route` with `state`, at `now`, when quiet hours (if
/// any) end at `quiet_until`. `address` fingerprints where it sends now: a failure recorded
/// for another address (the URL was fixed in the config) is not waited out.
pub(crate) fn gate(
    route: &str,
    state: Option<&DestinationState>,
    address: u64,
    quiet_until: Option<i64>,
    now: i64,
) -> Gate {
    // A destination that waits (a refusal, a back-off) waits in quiet hours too: quiet hours
    // hold alerts on losses only, and reports and staff-deletion alerts go out in them, so
    // they must not walk past a back-off.
    let state = state.filter(|s| s.target.is_none_or(|t| t == address));
    match state {
        Some(s) if s.status == DeliveryStatus::Failed => Gate::Wait {
            reason: format!(
                "failed permanently: {}; fix the config, then run `churn-alert state retry --route {route}`",
                s.reason
            ),
            retry_at: None,
        },
        Some(s) if s.retry_at.is_some_and(|at| at > now) => Gate::Wait {
            reason: format!("waiting to retry after: {}", s.reason),
            retry_at: s.retry_at,
        },
        _ => match quiet_until {
            Some(until) => Gate::Held { until },
            None => Gate::Open,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: DeliveryStatus, retry_at: Option<i64>) -> DestinationState {
        DestinationState {
            status,
            reason: "robot answered 45009".into(),
            since: 0,
            retry_at,
            attempts: 1,
            target: Some(7),
        }
    }

    #[test]
    fn quiet_hours_hold_a_healthy_destination_and_never_open_a_waiting_one() {
        // Reports go out in quiet hours: a failed or backing-off destination must still wait.
        let failed = state(DeliveryStatus::Failed, None);
        assert!(matches!(
            gate("r", Some(&failed), 7, Some(500), 100),
            Gate::Wait { retry_at: None, .. }
        ));
        let backing_off = state(DeliveryStatus::Retrying, Some(300));
        assert!(matches!(
            gate("r", Some(&backing_off), 7, Some(500), 100),
            Gate::Wait {
                retry_at: Some(300),
                ..
            }
        ));
        assert_eq!(
            gate("r", None, 7, Some(500), 100),
            Gate::Held { until: 500 }
        );
    }

    #[test]
    fn failures_wait_for_a_person_or_for_their_time() {
        let failed = state(DeliveryStatus::Failed, None);
        let Gate::Wait { reason, retry_at } = gate("sales", Some(&failed), 7, None, 100) else {
            panic!("a permanent failure must wait");
        };
        assert!(reason.contains("state retry --route sales"), "{reason}");
        assert_eq!(retry_at, None);

        let retrying = state(DeliveryStatus::Retrying, Some(200));
        assert!(matches!(
            gate("r", Some(&retrying), 7, None, 100),
            Gate::Wait {
                retry_at: Some(200),
                ..
            }
        ));
        assert_eq!(gate("r", Some(&retrying), 7, None, 200), Gate::Open);
        assert_eq!(gate("r", None, 7, None, 100), Gate::Open);
    }

    #[test]
    fn a_failure_of_an_address_no_longer_configured_is_not_waited_out() {
        let failed = state(DeliveryStatus::Failed, None);
        assert_eq!(gate("r", Some(&failed), 8, None, 100), Gate::Open);
    }
}
