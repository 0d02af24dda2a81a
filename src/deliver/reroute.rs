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
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use crate::loss::Loss;
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
/// the current config; `held_by` the keys of the losses a destination still holds, asked once
/// per destination however many losses move (a sibling's outbox is read once, not once per
/// loss: 10 000 losses against 100 pages would read a million pages).
pub(crate) fn plan(
    from: &DestinationId,
    pending: Vec<Pending>,
    current: impl Fn(&Loss) -> Vec<DestinationId>,
    held_by: impl Fn(&DestinationId) -> Result<HashSet<Vec<u8>>, StoreError>,
) -> Result<Plan, StoreError> {
    let mut plan = Plan::default();
    let mut held: HashMap<DestinationId, HashSet<Vec<u8>>> = HashMap::new();
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
            let keys = match held.entry(sibling.clone()) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => new.insert(held_by(sibling)?),
            };
            delivered |= !keys.contains(key.as_bytes());
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

    /// The keys of `customers`' losses, when `holds`.
    fn holding(holds: bool, customers: &[&str]) -> HashSet<Vec<u8>> {
        customers
            .iter()
            .filter(|_| holds)
            .map(|c| pending(c).loss.key().as_bytes().to_vec())
            .collect()
    }

    #[test]
    fn each_sibling_is_asked_once_however_many_losses_move() {
        let from = id(Wecom, "1");
        let asked = std::cell::Cell::new(0);
        let many: Vec<Pending> = (0..50).map(|i| pending(&format!("c{i}"))).collect();
        let plan = plan(
            &from,
            many,
            |_| vec![id(Wecom, "0")],
            |_| {
                asked.set(asked.get() + 1);
                Ok(HashSet::new())
            },
        )
        .unwrap();
        assert_eq!(plan.moves.len(), 50);
        assert_eq!(asked.get(), 1, "robot 0's outbox read once");
    }

    #[test]
    fn what_a_sibling_robot_delivered_is_not_sent_again() {
        let from = id(Wecom, "1");
        let plan = plan(
            &from,
            vec![pending("a"), pending("b")],
            |_| vec![id(Wecom, "0"), id(Email, "boss@example.com")],
            // Robot 0 still holds "b" (it failed too), but delivered "a".
            |d| Ok(holding(d == &id(Wecom, "0"), &["b"])),
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
            |_| Ok(HashSet::new()),
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
            |_| Ok(HashSet::new()),
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
            |_| Ok(HashSet::new()),
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
            |_| Ok(holding(true, &["a", "b"])),
        )
        .unwrap();
        assert_eq!(plan.stranded, 2);
        assert!(plan.moves.is_empty());
    }
}
