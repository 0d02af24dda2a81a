//! Reroute stage: where the pending losses of a destination that left the config go.
//!
//! Only to the route's current destinations of the same channel (a removed robot's losses go
//! to robots, never by email). Each outbox entry remembers the robots its loss was queued for
//! ([`Pending::robots`]): when one of them leaves, another of them that no longer holds the
//! loss delivered it, and the loss leaves without being queued again. A robot that was not
//! among them (a key fixed since, a robot added) never had it, so it gets it.
//! Other kinds are not inferred from (a replaced `email_to` address or a department robot
//! never held the loss): their losses are queued to the current destinations, a rare
//! duplicate rather than a loss. A loss with no such destination left stays where it is, stranded and
//! visible, until the destination comes back or a person drops it.

use crate::destination::{DestinationId, DestinationKind};
use crate::loss::{Loss, LossKey};
use crate::store::{Pending, StoreError};

/// What happens to a removed destination's pending losses.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Losses that leave it, each with the destinations it is queued for now (none when
    /// another destination of the route already delivered it).
    pub moves: Vec<(Pending, Vec<DestinationId>)>,
    /// Losses that stay, with nowhere to go.
    pub stranded: usize,
}

/// Plans the moves of `pending` away from `from`. `current` gives a loss's destinations under
/// the current config; `is_pending` says whether a destination still holds a loss.
pub(crate) fn plan(
    from: &DestinationId,
    pending: Vec<Pending>,
    current: impl Fn(&Loss) -> Vec<DestinationId>,
    is_pending: impl Fn(&DestinationId, &LossKey) -> Result<bool, StoreError>,
) -> Result<Plan, StoreError> {
    let mut plan = Plan::default();
    for p in pending {
        let key = p.loss.key();
        let candidates: Vec<DestinationId> = current(&p.loss)
            .into_iter()
            .filter(|d| {
                d.route == from.route && d.kind.channel() == from.kind.channel() && d != from
            })
            .collect();
        if candidates.is_empty() {
            plan.stranded += 1;
            continue;
        }
        // Only a robot the loss was queued for can have delivered it: one added since (a
        // fixed key, a new robot) never held it, and its empty backlog proves nothing.
        let queued_with = |d: &DestinationId| {
            from.kind == DestinationKind::Wecom
                && d.kind == DestinationKind::Wecom
                && p.robots.iter().any(|r| *r == d.to_string())
        };
        let mut delivered = false;
        for sibling in candidates.iter().filter(|d| queued_with(d)) {
            delivered |= !is_pending(sibling, &key)?;
        }
        // A sibling it was queued with still holds it (or delivered it): never queued twice.
        let targets = if delivered {
            Vec::new()
        } else {
            candidates.into_iter().filter(|d| !queued_with(d)).collect()
        };
        plan.moves.push((p, targets));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::DestinationKind::{Email, StaffWecom, Wecom};

    fn pending(customer: &str) -> Pending {
        Pending {
            loss: Loss::sample(customer, "zhang", 100),
            enqueued_at: 100,
            robots: vec![id(Wecom, "0").to_string(), id(Wecom, "1").to_string()],
        }
    }

    fn id(kind: crate::destination::DestinationKind, arg: &str) -> DestinationId {
        DestinationId::new("r", kind, arg)
    }

    #[test]
    fn what_a_sibling_robot_delivered_is_not_sent_again() {
        let from = id(Wecom, "1");
        let plan = plan(
            &from,
            vec![pending("a"), pending("b")],
            |_| vec![id(Wecom, "0"), id(Email, "boss@example.com")],
            // Robot 0 still holds "b" (it failed too), but delivered "a".
            |d, key| Ok(d == &id(Wecom, "0") && key == &pending("b").loss.key()),
        )
        .unwrap();
        assert_eq!(plan.stranded, 0);
        assert_eq!(plan.moves.len(), 2);
        assert!(
            plan.moves.iter().all(|(_, to)| to.is_empty()),
            "nothing is queued again, and never by email: {:?}",
            plan.moves
        );
    }

    #[test]
    fn a_robot_the_loss_was_never_queued_for_gets_it() {
        // Robot 1 had a mistyped key; the operator fixed it (a new fingerprint, "1b") and
        // removed robot 0 in one edit. "1b" holds nothing, but never had the loss either.
        let from = id(Wecom, "1");
        let plan = plan(
            &from,
            vec![pending("a")],
            |_| vec![id(Wecom, "1b")],
            |_, _| Ok(false),
        )
        .unwrap();
        assert_eq!(plan.moves[0].1, [id(Wecom, "1b")]);
    }

    #[test]
    fn a_replaced_email_address_gets_the_losses_of_the_old_one() {
        let from = id(Email, "boss@old.example");
        let plan = plan(
            &from,
            vec![pending("a")],
            |_| vec![id(Email, "boss@new.example")],
            |_, _| Ok(false),
        )
        .unwrap();
        assert_eq!(
            plan.moves[0].1,
            [id(Email, "boss@new.example")],
            "never assumed delivered"
        );
    }

    #[test]
    fn a_staff_robot_removed_hands_its_losses_to_the_group_robot() {
        let from = id(StaffWecom, "zhang");
        let plan = plan(
            &from,
            vec![pending("a")],
            |_| vec![id(Wecom, "0")],
            |_, _| Ok(false),
        )
        .unwrap();
        assert_eq!(plan.moves[0].1, [id(Wecom, "0")]);
    }

    #[test]
    fn with_nowhere_to_go_losses_stay_stranded() {
        let from = id(StaffWecom, "li");
        let plan = plan(
            &from,
            vec![pending("a"), pending("b")],
            |_| vec![id(Email, "boss@example.com")],
            |_, _| Ok(true),
        )
        .unwrap();
        assert_eq!(plan.stranded, 2);
        assert!(plan.moves.is_empty());
    }
}
