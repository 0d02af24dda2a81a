//! Weiban's answers as they come over the wire, and their conversion into [`Loss`].
//!
//! Every field is optional or defaulted: Weiban sends `null` freely and adds fields over time,
//! and a missing remark must never cost us a loss.

use serde::Deserialize;

use crate::loss::{DeleteBy, Loss};

/// The documented `external_user/list/outflow` answer, byte for byte: the sample `check` and
/// `preview` render. (The simulator crate keeps its own copy as its fixture.)
pub(crate) const DOCUMENTED_EXAMPLE: &str = include_str!("documented-example.json");

/// The losses of the documented example: sample data for `check` and previews.
pub(crate) fn documented_example() -> Vec<Loss> {
    serde_json::from_str::<OutflowAnswer>(DOCUMENTED_EXAMPLE)
        .map(|answer| {
            answer
                .external_user_list
                .iter()
                .filter_map(RawCustomer::to_loss)
                .collect()
        })
        .unwrap_or_default()
}

/// The common envelope: `errcode` and `errmsg` come with every answer.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: Option<String>,
}

/// `POST /open-api/access_token/get`. No `Debug`: it holds the token.
#[derive(Deserialize)]
pub(crate) struct TokenAnswer {
    pub access_token: Option<String>,
    pub expires_in: Option<u64>,
}

/// `GET /open-api/external_user/list/outflow`.
/// Items stay untyped here, so that one item with a surprising field type costs that item at
/// most, never the page.
#[derive(Debug, Deserialize)]
pub(crate) struct OutflowAnswer {
    #[serde(default)]
    pub external_user_list: Vec<serde_json::Value>,
    /// `None` when absent or not a number: unknown, never zero.
    #[serde(default, deserialize_with = "lenient_count")]
    pub total_count: Option<u64>,
}

/// A count sent as a number or a numeric string; anything else is unknown.
fn lenient_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawCustomer {
    pub id: Option<String>,
    pub name: Option<String>,
    pub corp_name: Option<String>,
    pub corp_full_name: Option<String>,
    pub outflow_at: Option<i64>,
    #[serde(default)]
    pub tags: Option<Vec<RawTag>>,
    pub staff: Option<RawStaff>,
    pub staff_relation: Option<RawRelation>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawTag {
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawStaff {
    pub id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawRelation {
    pub delete_by: Option<String>,
    pub remark: Option<String>,
    pub created_at: Option<i64>,
    /// When WeCom says the customer was added (`created_at` is when Weiban recorded it).
    pub createtime: Option<i64>,
    pub deleted_at: Option<i64>,
    pub deleted_each_other: Option<bool>,
    pub add_way: Option<i64>,
    /// The channel (渠道) parameter.
    pub state: Option<String>,
    pub staff_ext_id: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

impl RawCustomer {
    /// Converts one list item as it came over the wire: typed when it matches the documented
    /// shape, field by field otherwise (numbers sent as strings, tags as plain strings).
    pub fn to_loss(item: &serde_json::Value) -> Option<Loss> {
        match RawCustomer::deserialize(item) {
            Ok(raw) => raw.into_loss(),
            Err(_) => Self::lenient(item).into_loss(),
        }
    }

    fn lenient(v: &serde_json::Value) -> Self {
        use serde_json::Value;
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let int = |v: &Value| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok());
        let staff = &v["staff"];
        let relation = &v["staff_relation"];
        Self {
            id: text(&v["id"]),
            name: text(&v["name"]),
            corp_name: text(&v["corp_name"]),
            corp_full_name: text(&v["corp_full_name"]),
            outflow_at: int(&v["outflow_at"]),
            tags: v["tags"].as_array().map(|tags| {
                tags.iter()
                    .map(|t| RawTag {
                        name: text(&t["name"]).or_else(|| text(t)),
                    })
                    .collect()
            }),
            staff: Some(RawStaff {
                id: text(&staff["id"]),
                name: text(&staff["name"]),
                email: text(&staff["email"]),
            }),
            staff_relation: Some(RawRelation {
                delete_by: text(&relation["delete_by"]),
                remark: text(&relation["remark"]),
                created_at: int(&relation["created_at"]),
                createtime: int(&relation["createtime"]),
                deleted_at: int(&relation["deleted_at"]),
                deleted_each_other: relation["deleted_each_other"]
                    .as_bool()
                    .or_else(|| Some(int(&relation["deleted_each_other"])? != 0)),
                add_way: int(&relation["add_way"]),
                state: text(&relation["state"]),
                staff_ext_id: text(&relation["staff_ext_id"]),
            }),
        }
    }

    /// Converts one list item; `None` when it lacks what identifies a loss (customer id and time).
    pub fn into_loss(self) -> Option<Loss> {
        let customer_id = non_empty(self.id)?;
        let relation = self.staff_relation;
        let outflow_at = self
            .outflow_at
            .or_else(|| relation.as_ref().and_then(|r| r.deleted_at))?;
        let staff = self.staff;
        let staff_id = staff
            .as_ref()
            .and_then(|s| non_empty(s.id.clone()))
            .or_else(|| {
                relation
                    .as_ref()
                    .and_then(|r| non_empty(r.staff_ext_id.clone()))
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let staff_name = staff
            .as_ref()
            .and_then(|s| non_empty(s.name.clone()))
            .unwrap_or_else(|| staff_id.clone());
        let delete_by = DeleteBy::from_weiban(
            relation.as_ref().and_then(|r| r.delete_by.as_deref()),
            relation
                .as_ref()
                .and_then(|r| r.deleted_each_other)
                .unwrap_or(false),
        );
        Some(Loss {
            customer_name: non_empty(self.name).unwrap_or_else(|| customer_id.clone()),
            customer_id,
            remark: relation.as_ref().and_then(|r| non_empty(r.remark.clone())),
            corp_name: non_empty(self.corp_name).or_else(|| non_empty(self.corp_full_name)),
            staff_email: staff.and_then(|s| non_empty(s.email)),
            staff_id,
            staff_name,
            outflow_at,
            delete_by,
            tags: self
                .tags
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| non_empty(t.name))
                .collect(),
            added_at: relation
                .as_ref()
                .and_then(|r| r.createtime.filter(|t| *t > 0).or(r.created_at)),
            channel: relation.as_ref().and_then(|r| non_empty(r.state.clone())),
            add_way: relation.and_then(|r| r.add_way),
            departments: Vec::new(),
            staff_left: false,
            still_followed_by: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_converts() {
        let text = DOCUMENTED_EXAMPLE;
        let envelope: Envelope = serde_json::from_str(text).unwrap();
        assert_eq!(envelope.errcode, 0);
        let answer: OutflowAnswer = serde_json::from_str(text).unwrap();
        assert_eq!(answer.total_count, Some(1));
        let loss = answer
            .external_user_list
            .first()
            .and_then(RawCustomer::to_loss)
            .unwrap();
        assert_eq!(loss.customer_id, "wmP_2OPAAAndyggEamnj--LN5MIJbpCQ");
        assert_eq!(loss.customer_name, "子川");
        assert_eq!(loss.staff_id, "mia");
        assert_eq!(loss.staff_name, "左的超长无限同城的名称");
        assert_eq!(loss.outflow_at, 1_736_314_633);
        assert_eq!(loss.delete_by, DeleteBy::Customer);
        assert_eq!(loss.tags, vec!["阿里云101".to_owned()]);
        assert_eq!(
            loss.added_at,
            Some(1_734_951_798),
            "createtime, not created_at"
        );
        assert_eq!(loss.channel.as_deref(), Some("wb:c:2:101050082"));
        assert_eq!(loss.add_way, Some(1));
        assert_eq!(loss.staff_email, None);
        assert_eq!(loss.display_remark(), None);
    }

    #[test]
    fn surprising_types_cost_nothing() {
        let item: serde_json::Value = serde_json::from_str(
            r#"{"id":"c2","outflow_at":"1736314633","tags":["VIP"],"staff":{"id":"mia","name":"Mia"},"staff_relation":{"delete_by":"external_user","created_at":"x"}}"#,
        )
        .unwrap();
        let loss = RawCustomer::to_loss(&item).unwrap();
        assert_eq!(loss.outflow_at, 1_736_314_633);
        assert_eq!(loss.tags, ["VIP"]);
        assert_eq!(loss.staff_id, "mia");
        assert_eq!(loss.delete_by, DeleteBy::Customer);
    }

    #[test]
    fn a_missing_or_odd_total_count_is_unknown_not_zero() {
        let answer: OutflowAnswer =
            serde_json::from_str(r#"{"errcode":0,"external_user_list":[]}"#).unwrap();
        assert_eq!(answer.total_count, None);
        let answer: OutflowAnswer =
            serde_json::from_str(r#"{"external_user_list":[],"total_count":"250"}"#).unwrap();
        assert_eq!(answer.total_count, Some(250));
        let answer: OutflowAnswer =
            serde_json::from_str(r#"{"external_user_list":[],"total_count":null}"#).unwrap();
        assert_eq!(answer.total_count, None);
    }

    #[test]
    fn who_ended_it_is_never_guessed() {
        let with = |relation: &str| {
            let item: serde_json::Value =
                serde_json::from_str(&format!(r#"{{"id":"c","outflow_at":5{relation}}}"#)).unwrap();
            RawCustomer::to_loss(&item).unwrap().delete_by
        };
        assert_eq!(
            with(r#","staff_relation":{"delete_by":"external_user"}"#),
            DeleteBy::Customer
        );
        assert_eq!(
            with(r#","staff_relation":{"delete_by":null}"#),
            DeleteBy::Unknown
        );
        assert_eq!(with(r#","staff_relation":{}"#), DeleteBy::Unknown);
        assert_eq!(with(""), DeleteBy::Unknown);
        assert_eq!(
            with(r#","staff_relation":{"delete_by":"robot"}"#),
            DeleteBy::Unknown
        );
        assert_eq!(
            with(r#","staff_relation":{"delete_by":"staff"}"#),
            DeleteBy::Staff
        );
        assert_eq!(
            with(r#","staff_relation":{"delete_by":"external_user","deleted_each_other":true}"#),
            DeleteBy::Both
        );
        assert_eq!(
            with(r#","staff_relation":{"delete_by":"deleted_each_other"}"#),
            DeleteBy::Both
        );
    }

    #[test]
    fn nulls_everywhere_still_make_a_loss() {
        let item: RawCustomer = serde_json::from_str(
            r#"{"id":"c1","name":null,"outflow_at":5,"staff":null,"staff_relation":null,"tags":null,"new_field":1}"#,
        )
        .unwrap();
        let loss = item.into_loss().unwrap();
        assert_eq!(loss.staff_id, "unknown");
        assert_eq!(loss.customer_name, "c1");
    }
}
