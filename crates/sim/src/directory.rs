//! The simulated Weiban's org chart and customer detail: `staff/list`, `department/list` and
//! `external_user/get`, with the token check and per-endpoint outages for tests.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// A department: id, name, parent id (0 for the root's children too), order.
#[derive(Debug, Clone)]
pub struct SimDepartment {
    pub id: i64,
    pub name: String,
    pub parent: i64,
}

/// A staff member: WeCom userid, name, email, status (1 active, 4 left), departments.
#[derive(Debug, Clone)]
pub struct SimStaff {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub status: i64,
    pub departments: Vec<i64>,
}

/// The org chart and who still follows which customer.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    pub departments: Vec<SimDepartment>,
    pub staff: Vec<SimStaff>,
    /// Customer id → (userid, name) of the staff who still follow them.
    pub followers: BTreeMap<String, Vec<(String, String)>>,
    /// Answer `follow_staffs` flat (the staff object itself, with Weiban's numeric `staff_id`)
    /// instead of nested under `staff`: Weiban sends both shapes.
    pub flat_followers: bool,
    /// Endpoints (`staff/list`, `department/list`, `external_user/get`) that answer HTTP 500.
    pub down: BTreeSet<String>,
    /// Requests per endpoint, for budget figures.
    pub requests: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    pub access_token: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
    pub id: Option<String>,
}

impl Directory {
    /// The outage switch every directory endpoint shares, and the token check; counts the
    /// request. `None`: answer it.
    pub(crate) fn admit(&mut self, endpoint: &str, token_ok: bool) -> Option<Response> {
        *self.requests.entry(endpoint.to_owned()).or_default() += 1;
        if self.down.contains(endpoint) {
            return Some((StatusCode::INTERNAL_SERVER_ERROR, "down").into_response());
        }
        if !token_ok {
            return Some(Json(json!({"errcode": 10001, "errmsg": "认证错误"})).into_response());
        }
        None
    }

    /// `staff/list`'s answer for `q`'s page.
    pub(crate) fn staff_page(&self, q: &ListQuery) -> Value {
        let parse =
            |v: &Option<String>, d: usize| v.as_deref().and_then(|v| v.parse().ok()).unwrap_or(d);
        let limit = parse(&q.limit, 30).clamp(1, 100);
        let offset = parse(&q.offset, 0);
        let page: Vec<Value> = self
            .staff
            .iter()
            .skip(offset)
            .take(limit)
            .map(|m| {
                json!({"id": m.id, "name": m.name, "email": m.email, "mobile": "", "status": m.status, "department": m.departments})
            })
            .collect();
        json!({"errcode": 0, "errmsg": "ok", "total": self.staff.len(), "staff_list": page})
    }

    /// `department/list`'s answer.
    pub(crate) fn department_answer(&self) -> Value {
        let list: Vec<Value> = self
            .departments
            .iter()
            .enumerate()
            .map(|(i, d)| json!({"id": d.id, "name": d.name, "parentid": d.parent, "order": i}))
            .collect();
        json!({"errcode": 0, "errmsg": "ok", "department": list})
    }

    /// `external_user/get`'s answer for customer `id`, in the nested or the flat shape.
    pub(crate) fn customer_answer(&self, id: &str) -> Value {
        let follow: Vec<Value> = self
            .followers
            .get(id)
            .map(|list| {
                list.iter()
                    .zip(1_688_850_000_i64..)
                    .map(|((uid, name), staff_id)| {
                        if self.flat_followers {
                            json!({"id": uid, "staff_id": staff_id, "name": name, "remark": "", "createtime": 0})
                        } else {
                            json!({"staff": {"id": uid, "name": name}, "remark": "", "createtime": 0})
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({"errcode": 0, "errmsg": "ok", "external_user": {"id": id, "follow_staffs": follow}})
    }
}
