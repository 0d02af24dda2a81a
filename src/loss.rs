//! The unit of work: one customer lost by one staff member at one moment.
//!
//! A [`Loss`] is what the source produces, the store remembers and the renderers show. It keeps
//! only what messages need, so that the outbox stays small and Weiban's many optional, growing
//! fields never reach the rest of the program.

use serde::{Deserialize, Serialize};

/// Who ended the relationship.
///
/// Weiban documents only `external_user` (the customer deleted the staff member) and
/// `deleted_each_other`; anything else — null, a missing relation, a value we do not know —
/// is [`DeleteBy::Unknown`], never blamed on the salesperson.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteBy {
    /// The customer deleted the staff member (`delete_by = "external_user"`).
    Customer,
    /// The staff member deleted the customer (a value that says exactly that).
    Staff,
    /// Both deleted each other (`deleted_each_other`).
    Both,
    /// Weiban did not say, or said something we do not know.
    Unknown,
}

impl DeleteBy {
    /// Reads Weiban's relation fields: `delete_by` and the `deleted_each_other` flag.
    pub fn from_weiban(delete_by: Option<&str>, deleted_each_other: bool) -> Self {
        if deleted_each_other {
            return Self::Both;
        }
        match delete_by.map(str::trim) {
            Some("external_user") => Self::Customer,
            Some("deleted_each_other") => Self::Both,
            Some("staff" | "follow_user" | "user") => Self::Staff,
            _ => Self::Unknown,
        }
    }
}

/// One lost customer relationship.
///
/// Stored in the outbox once per destination, so the stored form is compact: short field
/// names, absent values left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    #[serde(rename = "c")]
    pub customer_id: String,
    #[serde(rename = "n")]
    pub customer_name: String,
    /// The staff member's remark for the customer, when set.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub corp_name: Option<String>,
    #[serde(rename = "s")]
    pub staff_id: String,
    #[serde(rename = "sn")]
    pub staff_name: String,
    #[serde(rename = "se", default, skip_serializing_if = "Option::is_none")]
    pub staff_email: Option<String>,
    /// Unix seconds.
    #[serde(rename = "t")]
    pub outflow_at: i64,
    #[serde(rename = "d")]
    pub delete_by: DeleteBy,
    #[serde(rename = "g", default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// When the staff member added the customer (unix seconds): WeCom's `createtime`, else
    /// when Weiban recorded it (`created_at`).
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub added_at: Option<i64>,
    /// The channel (渠道) parameter the customer came in by (`state`), when known.
    #[serde(rename = "ch", default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// WeCom's add-way code, when known.
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    pub add_way: Option<i64>,
    /// The staff member's department paths (销售一部 / 华东组), when the org chart is read.
    #[serde(rename = "dp", default, skip_serializing_if = "Vec::is_empty")]
    pub departments: Vec<String>,
    /// The staff member has left the company (已离职).
    #[serde(rename = "sl", default, skip_serializing_if = "std::ops::Not::not")]
    pub staff_left: bool,
    /// Colleagues who still follow the customer (names), when looked up.
    #[serde(rename = "sf", default, skip_serializing_if = "Vec::is_empty")]
    pub still_followed_by: Vec<String>,
}

/// Identity of a loss: (outflow time, customer, staff member).
///
/// Ordered by time first, so that the store can prune by age with one range scan. A customer
/// who leaves two staff members is two losses; one who returns and leaves again is a new one.
///
/// The bytes are the time (8), the customer id's length (4, big-endian), the customer id and
/// the staff id: unambiguous for any bytes, so ids that differ only around a NUL byte are two
/// losses, never one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LossKey(Vec<u8>);

impl LossKey {
    pub fn new(outflow_at: i64, customer_id: &str, staff_id: &str) -> Self {
        let mut bytes = Vec::with_capacity(12 + customer_id.len() + staff_id.len());
        bytes.extend_from_slice(&time_prefix(outflow_at));
        let length = u32::try_from(customer_id.len()).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(customer_id.as_bytes());
        bytes.extend_from_slice(staff_id.as_bytes());
        Self(bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// A key as release 0.1 wrote it (time, customer, NUL, staff), in today's form.
    pub fn from_legacy(bytes: &[u8]) -> Option<Self> {
        let prefix: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let rest = &bytes[8..];
        let end = rest.iter().position(|b| *b == 0)?;
        let customer = std::str::from_utf8(&rest[..end]).ok()?;
        let staff = std::str::from_utf8(&rest[end + 1..]).ok()?;
        let at = (u64::from_be_bytes(prefix) ^ (1 << 63)) as i64;
        Some(Self::new(at, customer, staff))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The customer id inside the key, if the key is well formed.
    pub fn customer_id(&self) -> Option<&str> {
        let length: [u8; 4] = self.0.get(8..12)?.try_into().ok()?;
        let length = usize::try_from(u32::from_be_bytes(length)).ok()?;
        std::str::from_utf8(self.0.get(12..12 + length)?).ok()
    }

    /// The outflow time inside the key.
    pub fn outflow_at(&self) -> Option<i64> {
        let prefix: [u8; 8] = self.0.get(..8)?.try_into().ok()?;
        Some((u64::from_be_bytes(prefix) ^ (1 << 63)) as i64)
    }
}

/// Big-endian, sign-flipped seconds: byte order equals time order, negatives included.
pub fn time_prefix(unix_seconds: i64) -> [u8; 8] {
    ((unix_seconds as u64) ^ (1 << 63)).to_be_bytes()
}

impl Loss {
    /// A loss of `customer` by `staff` at `outflow_at`, the customer having deleted the staff
    /// member, with nothing else known: test data.
    #[cfg(test)]
    pub(crate) fn sample(customer: &str, staff: &str, outflow_at: i64) -> Self {
        Self {
            customer_id: customer.into(),
            customer_name: customer.into(),
            remark: None,
            corp_name: None,
            staff_id: staff.into(),
            staff_name: staff.to_uppercase(),
            staff_email: None,
            outflow_at,
            delete_by: DeleteBy::Customer,
            tags: vec![],
            added_at: None,
            channel: None,
            add_way: None,
            departments: Vec::new(),
            staff_left: false,
            still_followed_by: Vec::new(),
        }
    }

    pub fn key(&self) -> LossKey {
        LossKey::new(self.outflow_at, &self.customer_id, &self.staff_id)
    }

    /// The name to show: the remark when it differs from the WeCom name.
    pub fn display_remark(&self) -> Option<&str> {
        self.remark
            .as_deref()
            .filter(|r| !r.is_empty() && *r != self.customer_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_orders_by_time_and_round_trips() {
        let early = LossKey::new(-5, "b", "s");
        let late = LossKey::new(1_736_314_633, "a", "s");
        assert!(early < late);
        assert_eq!(late.outflow_at(), Some(1_736_314_633));
        assert_eq!(early.outflow_at(), Some(-5));
        assert_eq!(late.customer_id(), Some("a"));
    }

    #[test]
    fn keys_are_unambiguous_around_nul_bytes() {
        let one = LossKey::new(1, "a\0b", "c");
        let other = LossKey::new(1, "a", "b\0c");
        assert_ne!(one, other);
        assert_eq!(one.customer_id(), Some("a\0b"));
        assert_eq!(other.customer_id(), Some("a"));
        let mut legacy = time_prefix(7).to_vec();
        legacy.extend_from_slice(b"wm_1\0staff01");
        assert_eq!(
            LossKey::from_legacy(&legacy),
            Some(LossKey::new(7, "wm_1", "staff01"))
        );
    }
}
