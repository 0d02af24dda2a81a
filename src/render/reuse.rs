//! One Handlebars context for all the entries of a message, rewritten in place per entry.
//!
//! Handlebars renders from a `serde_json::Value`. Handing it each entry's
//! [`CustomerContext`] to convert builds a fresh tree per entry: a map, its twelve keys and
//! every text copied, some two dozen allocations before a byte is rendered, for each of the
//! thousands of entries of a large window. Entries all have the same shape, so
//! [`EntryContext`] keeps one tree and overwrites its values: a text goes into the string
//! the previous entry left there, a list into its list. Allocation then happens only when an
//! entry's text is longer than any before it, or a field that was null has a value.
//!
//! The tree must stay exactly what `serde_json::to_value` makes of a [`CustomerContext`]:
//! templates see nothing else. The tests check that for every field, from any previous
//! entry.

use handlebars::Context;
use serde_json::{Map, Value};

use super::context::CustomerContext;
use crate::loss::DeleteBy;

/// The context an entry template renders from, reused from entry to entry.
pub(crate) struct EntryContext(Context);

impl EntryContext {
    pub fn new() -> Self {
        Self(Context::null())
    }

    /// The context, now holding `customer` (and nothing of the entry before).
    pub fn holding(&mut self, customer: &CustomerContext<'_>) -> &Context {
        let data = self.0.data_mut();
        if !data.is_object() {
            *data = Value::Object(Map::new());
        }
        if let Value::Object(map) = data {
            write(map, customer);
        }
        &self.0
    }
}

/// `customer` into `map`, key by key as its `Serialize` writes them. Taken apart field by
/// field, so that a field added to [`CustomerContext`] does not compile until it is written
/// here too.
fn write(map: &mut Map<String, Value>, customer: &CustomerContext<'_>) {
    let CustomerContext {
        id,
        name,
        remark,
        corp_name,
        outflow_at,
        delete_by: ended_by,
        tags,
        added_at,
        days_known,
        channel,
        add_way,
        still_followed_by,
    } = customer;
    text(map, "id", Some(id));
    text(map, "name", Some(name));
    text(map, "remark", remark.as_deref());
    text(map, "corp_name", corp_name.as_deref());
    int(map, "outflow_at", Some(*outflow_at));
    text(map, "delete_by", Some(delete_by(*ended_by)));
    texts(map, "tags", tags);
    int(map, "added_at", *added_at);
    int(map, "days_known", *days_known);
    text(map, "channel", channel.as_deref());
    text(map, "add_way", *add_way);
    texts(map, "still_followed_by", still_followed_by);
}

/// As `DeleteBy` serializes (`snake_case`).
fn delete_by(delete_by: DeleteBy) -> &'static str {
    match delete_by {
        DeleteBy::Customer => "customer",
        DeleteBy::Staff => "staff",
        DeleteBy::Both => "both",
        DeleteBy::Unknown => "unknown",
    }
}

/// Fills the value under `key`, created (null) for the first entry only.
fn with_slot(map: &mut Map<String, Value>, key: &str, fill: impl FnOnce(&mut Value)) {
    match map.get_mut(key) {
        Some(slot) => fill(slot),
        None => fill(map.entry(key).or_insert(Value::Null)),
    }
}

fn text(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    with_slot(map, key, |slot| put_text(slot, value));
}

fn put_text(slot: &mut Value, value: Option<&str>) {
    match (slot, value) {
        (Value::String(old), Some(new)) => {
            old.clear();
            old.push_str(new);
        }
        (slot, Some(new)) => *slot = Value::String(new.to_owned()),
        (slot, None) => *slot = Value::Null,
    }
}

fn int(map: &mut Map<String, Value>, key: &str, value: Option<i64>) {
    with_slot(map, key, |slot| {
        *slot = value.map_or(Value::Null, Value::from)
    });
}

fn texts(map: &mut Map<String, Value>, key: &str, values: &[String]) {
    with_slot(map, key, |slot| {
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        if let Value::Array(list) = slot {
            list.truncate(values.len());
            for (old, new) in list.iter_mut().zip(values) {
                put_text(old, Some(new));
            }
            let kept = list.len();
            list.extend(values[kept..].iter().map(|v| Value::String(v.clone())));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::Loss;

    /// Losses as different as entries come: every field set, none set, long texts, short
    /// ones, each way of ending a relationship.
    fn losses() -> Vec<Loss> {
        let mut full = Loss::sample("c-full", "s1", 1_700_000_000);
        full.customer_name = "一位名字很长很长的客户".into();
        full.remark = Some("老客户，年底续约".into());
        full.corp_name = Some("某某科技有限公司".into());
        full.tags = vec!["VIP".into(), "华东".into(), "续约".into()];
        full.added_at = Some(1_690_000_000);
        full.channel = Some("展会".into());
        full.add_way = Some(1);
        full.still_followed_by = vec!["李四".into(), "王五".into()];
        full.delete_by = DeleteBy::Customer;
        let mut bare = Loss::sample("c", "s2", 1_700_000_100);
        bare.customer_name = "王".into();
        bare.delete_by = DeleteBy::Unknown;
        let mut one_tag = Loss::sample("c-tag", "s3", 1_700_000_200);
        one_tag.tags = vec!["新".into()];
        one_tag.delete_by = DeleteBy::Staff;
        let mut both = Loss::sample("c-both", "s4", 1_700_000_300);
        both.delete_by = DeleteBy::Both;
        vec![full, bare, one_tag, both]
    }

    #[test]
    fn every_entry_reads_as_its_own_context_whatever_came_before() {
        let losses = losses();
        for first in &losses {
            for second in &losses {
                let mut reused = EntryContext::new();
                reused.holding(&CustomerContext::from(first));
                let second = CustomerContext::from(second);
                let expected = serde_json::to_value(&second).unwrap();
                assert_eq!(reused.holding(&second).data(), &expected);
            }
        }
    }

    #[test]
    fn a_shortened_entry_reads_as_its_shortened_context() {
        let losses = losses();
        let mut reused = EntryContext::new();
        reused.holding(&CustomerContext::from(&losses[0]));
        let mut short = CustomerContext::from(&losses[0]);
        short.shorten(3);
        let expected = serde_json::to_value(&short).unwrap();
        assert_eq!(reused.holding(&short).data(), &expected);
    }
}
