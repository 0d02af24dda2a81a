//! The org chart: staff members, departments and where each staff member sits.
//!
//! Read from Weiban (`staff/list` with departments, `department/list`), kept in the store as
//! the last good copy (a Weiban outage never breaks routing), and asked by routing (is this
//! staff member in that department or one of its sub-departments?) and rendering (the
//! department path 销售一部 / 华东组, 已离职).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A department as Weiban lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Department {
    pub id: i64,
    pub name: String,
    /// The parent's id (0 or itself for a root).
    pub parent: i64,
    pub order: i64,
}

/// A staff member as Weiban lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffMember {
    /// The WeCom userid (used for mentions and in the config).
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    /// 1 active, 2 disabled, 4 inactive or left.
    pub status: i64,
    pub departments: Vec<i64>,
}

impl StaffMember {
    /// Whether the staff member left the company (or was never activated).
    pub fn has_left(&self) -> bool {
        self.status == 4
    }

    /// The status in words.
    pub fn status_text(&self) -> &'static str {
        match self.status {
            1 => "在职",
            2 => "已禁用",
            4 => "已离职",
            _ => "未知",
        }
    }
}

/// A department as the config names it: by name or by id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(untagged)]
pub enum DepartmentRef {
    Id(i64),
    Name(String),
}

impl DepartmentRef {
    /// A table key (`"12"` or `"销售一部"`) as a reference.
    pub fn from_key(key: &str) -> Self {
        key.trim()
            .parse()
            .map_or_else(|_| Self::Name(key.trim().to_owned()), Self::Id)
    }
}

impl std::fmt::Display for DepartmentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// Why a department reference does not name exactly one department.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no department `{0}` in Weiban's directory")]
    Unknown(String),
    #[error("`{name}` names {} departments: {}; write the id instead", .candidates.len(), .candidates.join("; "))]
    Ambiguous {
        name: String,
        /// `path (id N)` of each.
        candidates: Vec<String>,
    },
}

/// The whole org chart, with when it was read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Directory {
    pub departments: BTreeMap<i64, Department>,
    pub staff: BTreeMap<String, StaffMember>,
    /// Unix seconds when it was read from Weiban.
    pub fetched_at: i64,
}

impl Directory {
    pub fn new(departments: Vec<Department>, staff: Vec<StaffMember>, fetched_at: i64) -> Self {
        Self {
            departments: departments.into_iter().map(|d| (d.id, d)).collect(),
            staff: staff.into_iter().map(|s| (s.id.clone(), s)).collect(),
            fetched_at,
        }
    }

    /// The ids a reference names: one, or every department of that name (ambiguous).
    pub fn lookup(&self, reference: &DepartmentRef) -> Vec<i64> {
        match reference {
            DepartmentRef::Id(id) => self
                .departments
                .contains_key(id)
                .then_some(*id)
                .into_iter()
                .collect(),
            DepartmentRef::Name(name) => self
                .departments
                .values()
                .filter(|d| d.name == *name)
                .map(|d| d.id)
                .collect(),
        }
    }

    /// The one department a reference names.
    pub fn resolve(&self, reference: &DepartmentRef) -> Result<i64, ResolveError> {
        match self.lookup(reference).as_slice() {
            [id] => Ok(*id),
            [] => Err(ResolveError::Unknown(reference.to_string())),
            ids => Err(ResolveError::Ambiguous {
                name: reference.to_string(),
                candidates: ids
                    .iter()
                    .map(|id| format!("{} (id {id})", self.path(*id)))
                    .collect(),
            }),
        }
    }

    /// `销售一部 / 华东组`: the department's names from the top, without the company root.
    pub fn path(&self, id: i64) -> String {
        let chain = self.chain(id);
        let shown: Vec<&str> = chain
            .iter()
            .rev()
            .filter(|d| chain.len() == 1 || !self.is_root(d))
            .map(|d| d.name.as_str())
            .collect();
        if shown.is_empty() {
            id.to_string()
        } else {
            shown.join(" / ")
        }
    }

    /// The department and its ancestors, nearest first (cycles cut).
    fn chain(&self, id: i64) -> Vec<&Department> {
        let mut chain = Vec::new();
        let mut seen = BTreeSet::new();
        let mut next = Some(id);
        while let Some(id) = next.filter(|id| seen.insert(*id)) {
            let Some(d) = self.departments.get(&id) else {
                break;
            };
            chain.push(d);
            next = (d.parent != d.id && d.parent != 0).then_some(d.parent);
        }
        chain
    }

    fn is_root(&self, d: &Department) -> bool {
        d.parent == 0 || d.parent == d.id || !self.departments.contains_key(&d.parent)
    }

    /// Whether `department` is `ancestor` or one of its sub-departments.
    pub fn within(&self, department: i64, ancestor: i64) -> bool {
        self.chain(department).iter().any(|d| d.id == ancestor)
    }

    /// Whether `staff_id` sits in `ancestor` or one of its sub-departments.
    pub fn staff_within(&self, staff_id: &str, ancestor: i64) -> bool {
        self.staff
            .get(staff_id)
            .is_some_and(|s| s.departments.iter().any(|d| self.within(*d, ancestor)))
    }

    /// The department paths of a staff member.
    pub fn paths_of(&self, staff_id: &str) -> Vec<String> {
        self.staff
            .get(staff_id)
            .map(|s| s.departments.iter().map(|d| self.path(*d)).collect())
            .unwrap_or_default()
    }

    pub fn knows(&self, staff_id: &str) -> bool {
        self.staff.contains_key(staff_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Directory {
        let d = |id, name: &str, parent| Department {
            id,
            name: name.into(),
            parent,
            order: id,
        };
        let s = |id: &str, departments: Vec<i64>, status| StaffMember {
            id: id.into(),
            name: id.to_uppercase(),
            email: None,
            status,
            departments,
        };
        Directory::new(
            vec![
                d(1, "公司", 0),
                d(2, "销售一部", 1),
                d(3, "华东组", 2),
                d(4, "销售二部", 1),
                d(5, "华东组", 4),
            ],
            vec![
                s("zhang", vec![3], 1),
                s("li", vec![4], 4),
                s("both", vec![3, 4], 1),
            ],
            100,
        )
    }

    #[test]
    fn sub_departments_are_within_and_paths_read_from_the_top() {
        let dir = sample();
        assert!(dir.staff_within("zhang", 2), "华东组 is under 销售一部");
        assert!(!dir.staff_within("zhang", 4));
        assert!(dir.staff_within("both", 2) && dir.staff_within("both", 4));
        assert_eq!(dir.path(3), "销售一部 / 华东组");
        assert_eq!(dir.paths_of("both"), ["销售一部 / 华东组", "销售二部"]);
        assert!(dir.staff["li"].has_left());
    }

    #[test]
    fn ambiguous_names_list_their_candidates_with_paths() {
        let dir = sample();
        let err = dir
            .resolve(&DepartmentRef::Name("华东组".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("销售一部 / 华东组 (id 3)") && err.contains("销售二部 / 华东组 (id 5)"),
            "{err}"
        );
        assert_eq!(dir.resolve(&DepartmentRef::from_key("5")), Ok(5));
        assert!(matches!(
            dir.resolve(&DepartmentRef::Name("市场部".into())),
            Err(ResolveError::Unknown(_))
        ));
    }
}
