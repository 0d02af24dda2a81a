//! Weiban's answers as they come over the wire, and their conversion into [`Loss`].
//!
//! Every field is optional or defaulted: Weiban sends `null` freely and adds fields over time,
//! and a missing remark must never cost us a loss.

use serde::Deserialize;

use super::lenient;
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
                .filter_map(|raw| Item::read(raw).loss)
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
/// Items stay raw JSON here, each read on its own ([`Item::read`]), so that one item with a
/// surprising shape costs that item at most, never the page.
#[derive(Debug, Deserialize)]
pub(crate) struct OutflowAnswer {
    #[serde(default)]
    pub external_user_list: Vec<Box<serde_json::value::RawValue>>,
    /// `None` when absent or not a number: unknown, never zero.
    #[serde(default, deserialize_with = "lenient::int")]
    pub total_count: Option<i64>,
}

/// The whole page in one pass, every item straight from the page's bytes into
/// [`RawCustomer`] (no item copied out as raw JSON first and read again).
#[derive(Deserialize)]
struct OutflowInOnePass {
    errcode: i64,
    #[serde(default)]
    errmsg: Option<String>,
    #[serde(default)]
    external_user_list: Vec<RawCustomer>,
    #[serde(default, deserialize_with = "lenient::int")]
    total_count: Option<i64>,
}

/// Reads an outflow page: its items and its `total_count`.
///
/// In one pass when every item is an object that makes a loss, as every item of a healthy page
/// does; otherwise item by item ([`OutflowAnswer`], [`Item::read`]), so that one item with a
/// surprising shape costs that item at most, and an item that makes no loss is counted by the
/// hash of its own JSON. Both ways read each item with the same lenient fields, so they agree.
///
/// The envelope comes out of the same pass: a page is the largest answer Weiban gives, and
/// reading it twice (once for its errcode) cost a fifth of the CPU of a poll.
pub(crate) fn read_page(body: &[u8]) -> Result<(Envelope, OutflowPage), serde_json::Error> {
    if let Ok(page) = serde_json::from_slice::<OutflowInOnePass>(body) {
        let envelope = Envelope {
            errcode: page.errcode,
            errmsg: page.errmsg,
        };
        let items: Option<Vec<Item>> = page
            .external_user_list
            .into_iter()
            .map(|raw| raw.into_loss().map(Item::readable))
            .collect();
        if let Some(items) = items {
            return Ok((envelope, (items, page.total_count)));
        }
    }
    let answer: OutflowAnswer = serde_json::from_slice(body)?;
    let envelope = serde_json::from_slice(body)?;
    let items = answer
        .external_user_list
        .iter()
        .map(|raw| Item::read(raw))
        .collect();
    Ok((envelope, (items, answer.total_count)))
}

/// A page's items and its `total_count` (`None`: unknown, never zero).
pub(crate) type OutflowPage = (Vec<Item>, Option<i64>);

/// One outflow item as read: the loss it describes (when it has a customer id and a time),
/// its outflow time, and, for an unreadable one, a hash of its JSON so that it counts once.
#[derive(Debug)]
pub(crate) struct Item {
    pub loss: Option<Loss>,
    pub outflow_at: Option<i64>,
    pub unreadable: u64,
}

impl Item {
    fn readable(loss: Loss) -> Self {
        Self {
            outflow_at: Some(loss.outflow_at),
            unreadable: 0,
            loss: Some(loss),
        }
    }

    pub fn read(raw: &serde_json::value::RawValue) -> Self {
        let loss = serde_json::from_str::<RawCustomer>(raw.get())
            .ok()
            .and_then(RawCustomer::into_loss);
        Self {
            outflow_at: loss.as_ref().map(|l| l.outflow_at),
            unreadable: match loss {
                Some(_) => 0,
                None => xxhash_rust::xxh3::xxh3_64(raw.get().as_bytes()),
            },
            loss,
        }
    }
}

/// One outflow item, every field lenient ([`lenient`]).
#[derive(Debug, Deserialize)]
pub(crate) struct RawCustomer {
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub corp_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub corp_full_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub outflow_at: Option<i64>,
    #[serde(default, deserialize_with = "lenient::tags")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub staff: Option<RawStaff>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub staff_relation: Option<RawRelation>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawStaff {
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub email: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawRelation {
    #[serde(default, deserialize_with = "lenient::text")]
    pub delete_by: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub remark: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub created_at: Option<i64>,
    /// When WeCom says the customer was added (`created_at` is when Weiban recorded it).
    #[serde(default, deserialize_with = "lenient::int")]
    pub createtime: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub deleted_at: Option<i64>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub deleted_each_other: Option<bool>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub add_way: Option<i64>,
    /// The channel (渠道) parameter.
    #[serde(default, deserialize_with = "lenient::text")]
    pub state: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub staff_ext_id: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

impl RawCustomer {
    /// Converts one list item given as a JSON value.
    #[cfg(test)]
    pub fn to_loss(item: &serde_json::Value) -> Option<Loss> {
        RawCustomer::deserialize(item).ok()?.into_loss()
    }

    /// Converts one list item; `None` when it lacks what identifies a loss (customer id and time).
    /// Its texts move into the loss, none copied.
    pub fn into_loss(self) -> Option<Loss> {
        let Self {
            id,
            name,
            corp_name,
            corp_full_name,
            outflow_at,
            tags,
            staff,
            staff_relation,
        } = self;
        let customer_id = non_empty(id)?;
        let relation = staff_relation.unwrap_or_default();
        let outflow_at = outflow_at.or(relation.deleted_at)?;
        let staff = staff.unwrap_or_default();
        let staff_id = non_empty(staff.id)
            .or_else(|| non_empty(relation.staff_ext_id))
            .unwrap_or_else(|| "unknown".to_owned());
        let staff_name = non_empty(staff.name).unwrap_or_else(|| staff_id.clone());
        let delete_by = DeleteBy::from_weiban(
            relation.delete_by.as_deref(),
            relation.deleted_each_other.unwrap_or(false),
        );
        Some(Loss {
            customer_name: non_empty(name).unwrap_or_else(|| customer_id.clone()),
            customer_id,
            remark: non_empty(relation.remark),
            corp_name: non_empty(corp_name).or_else(|| non_empty(corp_full_name)),
            staff_email: non_empty(staff.email),
            staff_id,
            staff_name,
            outflow_at,
            delete_by,
            tags,
            added_at: relation
                .createtime
                .filter(|t| *t > 0)
                .or(relation.created_at),
            channel: non_empty(relation.state),
            add_way: relation.add_way,
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
            .and_then(|raw| Item::read(raw).loss)
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
    fn surprising_shapes_cost_the_field_never_the_item() {
        let raw = serde_json::value::RawValue::from_string(
            r#"{"id":12345,"name":["x"],"outflow_at":"1736314633","tags":["VIP",{"name":"老客"},3,null,{"x":1}],"staff":"mia","staff_relation":{"delete_by":7,"deleted_each_other":1,"created_at":{"a":1},"remark":" "}}"#
                .to_owned(),
        )
        .unwrap();
        let item = Item::read(&raw);
        let loss = item.loss.unwrap();
        assert_eq!(loss.customer_id, "12345");
        assert_eq!(loss.customer_name, "12345", "a list is no name");
        assert_eq!(loss.outflow_at, 1_736_314_633);
        assert_eq!(loss.tags, ["VIP", "老客", "3"]);
        assert_eq!(loss.staff_id, "unknown");
        assert_eq!(loss.delete_by, DeleteBy::Both);
        assert_eq!(loss.added_at, None);
        assert_eq!(loss.remark, None);

        let unreadable =
            serde_json::value::RawValue::from_string(r#"{"name":"no id"}"#.into()).unwrap();
        let item = Item::read(&unreadable);
        assert!(item.loss.is_none() && item.unreadable != 0);
    }

    /// A healthy page is read in one pass, a page with one odd item item by item: the items
    /// come out the same either way, and the odd one costs only itself.
    #[test]
    fn one_pass_and_item_by_item_agree() {
        let item_by_item = |body: &str| {
            let answer: OutflowAnswer = serde_json::from_str(body).unwrap();
            let items: Vec<Item> = answer
                .external_user_list
                .iter()
                .map(|raw| Item::read(raw))
                .collect();
            (items, answer.total_count)
        };
        let same = |(a, at): (Vec<Item>, Option<i64>), (b, bt): (Vec<Item>, Option<i64>)| {
            assert_eq!(at, bt);
            assert_eq!(a.len(), b.len());
            for (a, b) in a.iter().zip(&b) {
                assert_eq!(
                    (&a.loss, a.outflow_at, a.unreadable),
                    (&b.loss, b.outflow_at, b.unreadable)
                );
            }
        };
        let healthy = DOCUMENTED_EXAMPLE;
        let (envelope, page) = read_page(healthy.as_bytes()).unwrap();
        assert_eq!(
            (envelope.errcode, envelope.errmsg.as_deref()),
            (0, Some("ok"))
        );
        same(page, item_by_item(healthy));
        let odd = r#"{"errcode":0,"total_count":"3","external_user_list":[
            {"id":"c1","outflow_at":5,"staff":{"id":"mia"},"tags":[{"name":"VIP"}]},
            {"name":"no id"},
            "not an object",
            {"id":12345,"outflow_at":"7","staff":"mia","staff_relation":{"remark":" ","deleted_each_other":1}}
        ]}"#;
        let (envelope, (items, total)) = read_page(odd.as_bytes()).unwrap();
        assert_eq!(envelope.errcode, 0);
        assert_eq!(total, Some(3));
        assert_eq!(
            items.iter().map(|i| i.loss.is_some()).collect::<Vec<_>>(),
            [true, false, false, true]
        );
        assert!(items[1].unreadable != 0 && items[2].unreadable != 0);
        same((items, total), item_by_item(odd));
        assert!(read_page(b"{\"external_user_list\": [").is_err());
        let refused = r#"{"errcode":10001,"errmsg":"invalid access_token"}"#;
        let (envelope, (items, _)) = read_page(refused.as_bytes()).unwrap();
        assert_eq!(
            envelope.errcode, 10001,
            "the errcode comes out of the one pass"
        );
        assert!(items.is_empty());
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
