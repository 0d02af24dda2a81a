//! The org chart and customer detail, read under the same limits as the outflow list:
//! `staff/list` (with departments, every status), `department/list` and `external_user/get`
//! (who still follows a customer). Fields are read leniently: the detail's `follow_staffs`
//! shape is not published, and numbers may come as strings.

use serde_json::Value;

use super::{decode, WeibanClient};
use crate::directory::{Department, Directory, StaffMember};
use crate::source::errors::WeibanError;

const STAFF_PATH: &str = "/open-api/staff/list";
const STAFF_ENDPOINT: &str = "staff/list";
const DEPARTMENT_PATH: &str = "/open-api/department/list";
const DEPARTMENT_ENDPOINT: &str = "department/list";
const CUSTOMER_PATH: &str = "/open-api/external_user/get";
const CUSTOMER_ENDPOINT: &str = "external_user/get";
/// Staff per page (Weiban's cap).
const STAFF_PAGE: usize = 100;
/// Pages of staff read at most: 100 000 staff members.
const MAX_STAFF_PAGES: usize = 1000;

/// Who else still follows a customer: (userid, name) of each.
pub(crate) type Followers = Vec<(String, String)>;

impl WeibanClient {
    /// The whole org chart, read now.
    pub async fn directory(&self, now: i64) -> Result<Directory, WeibanError> {
        let body = self.get(DEPARTMENT_ENDPOINT, DEPARTMENT_PATH, &[]).await?;
        let answer: Value = decode(DEPARTMENT_ENDPOINT, &body)?;
        let departments: Vec<Department> = list(&answer, "department")
            .iter()
            .filter_map(department)
            .collect();
        let mut staff = Vec::new();
        for page in 0..MAX_STAFF_PAGES {
            let query = [
                ("limit", STAFF_PAGE.to_string()),
                ("offset", (page * STAFF_PAGE).to_string()),
                ("fields", r#"["department"]"#.to_owned()),
            ];
            let body = self.get(STAFF_ENDPOINT, STAFF_PATH, &query).await?;
            let answer: Value = decode(STAFF_ENDPOINT, &body)?;
            let items = list(&answer, "staff_list");
            staff.extend(items.iter().filter_map(member));
            let total = int(&answer["total"]).and_then(|t| usize::try_from(t).ok());
            if items.is_empty() || total.is_some_and(|t| staff.len() >= t) {
                if let Some(total) = total.filter(|t| staff.len() < *t) {
                    return Err(WeibanError::Inconsistent {
                        endpoint: STAFF_ENDPOINT,
                        reason: format!("total is {total} but {} staff arrived", staff.len()),
                    });
                }
                break;
            }
        }
        if departments.is_empty() {
            return Err(WeibanError::Inconsistent {
                endpoint: DEPARTMENT_ENDPOINT,
                reason: "no departments at all".into(),
            });
        }
        Ok(Directory::new(departments, staff, now))
    }

    /// Who still follows `customer_id`, leniently read from the customer's detail.
    pub async fn followers(&self, customer_id: &str) -> Result<Followers, WeibanError> {
        let query = [("id", customer_id.to_owned())];
        let body = self.get(CUSTOMER_ENDPOINT, CUSTOMER_PATH, &query).await?;
        let answer: Value = decode(CUSTOMER_ENDPOINT, &body)?;
        let entries = match &answer["external_user"]["follow_staffs"] {
            Value::Array(list) => list,
            _ => list(&answer, "follow_staffs"),
        };
        Ok(entries.iter().filter_map(follower).collect())
    }
}

fn list<'a>(answer: &'a Value, key: &str) -> &'a [Value] {
    answer[key].as_array().map_or(&[], Vec::as_slice)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())
}

fn department(v: &Value) -> Option<Department> {
    Some(Department {
        id: int(&v["id"])?,
        name: text(&v["name"]).unwrap_or_default(),
        parent: int(&v["parentid"]).unwrap_or(0),
        order: int(&v["order"]).unwrap_or(0),
    })
}

fn member(v: &Value) -> Option<StaffMember> {
    let departments = list(v, "department")
        .iter()
        .filter_map(|d| int(d).or_else(|| int(&d["id"])))
        .collect();
    Some(StaffMember {
        id: text(&v["id"])?,
        name: text(&v["name"]).unwrap_or_default(),
        email: text(&v["email"]),
        status: int(&v["status"]).unwrap_or(1),
        departments,
    })
}

/// One `follow_staffs` entry, in either shape Weiban sends: nested, the staff object under
/// `staff`; or flat, the staff object itself. In both, `id` (or `userid`) is the WeCom userid,
/// the id the outflow list names staff by; a flat entry's numeric `staff_id` is Weiban's own
/// id and is never compared with a userid.
fn follower(v: &Value) -> Option<(String, String)> {
    if v["deleted"].as_bool() == Some(true) || v["is_deleted"].as_bool() == Some(true) {
        return None;
    }
    let staff = if v["staff"].is_object() {
        &v["staff"]
    } else {
        v
    };
    let id = ["userid", "user_id", "id"]
        .iter()
        .find_map(|k| text(&staff[*k]))?;
    let name = ["name", "staff_name"]
        .iter()
        .find_map(|k| text(&staff[*k]))
        .unwrap_or_else(|| id.clone());
    Some((id, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn followers(answer: &str) -> Vec<(String, String)> {
        let answer: Value = serde_json::from_str(answer).unwrap_or_default();
        list(&answer["external_user"], "follow_staffs")
            .iter()
            .filter_map(follower)
            .collect()
    }

    #[test]
    fn nested_follow_staffs_are_read_by_the_staff_userid() {
        let got = followers(include_str!(
            "../../../tests/fixtures/follow-staffs-nested.json"
        ));
        assert_eq!(got, [("lisi".to_owned(), "李四".to_owned())]);
    }

    #[test]
    fn flat_follow_staffs_are_read_by_userid_never_by_weibans_numeric_id() {
        let got = followers(include_str!(
            "../../../tests/fixtures/follow-staffs-flat.json"
        ));
        assert_eq!(
            got,
            [
                ("zhangsan".to_owned(), "张三".to_owned()),
                ("lisi".to_owned(), "李四".to_owned())
            ]
        );
    }
}
