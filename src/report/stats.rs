//! The numbers of a report, computed from the losses Weiban lists for the period, the period
//! before it and the trend's span: totals by who ended it, per staff member and department,
//! how long customers had been known, the commonest tags, and the trend's buckets.

use std::collections::{BTreeMap, HashMap};

use crate::zone::Zone;
use chrono::{Datelike, Days, NaiveDate};

use super::period::{date_of, Period};
use crate::loss::{DeleteBy, Loss};
use crate::render::helpers::days_between;

/// Losses by who ended them: customer, staff, both, unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts(pub [usize; 4]);

impl Counts {
    pub const DIRECTIONS: [DeleteBy; 4] = [
        DeleteBy::Customer,
        DeleteBy::Staff,
        DeleteBy::Both,
        DeleteBy::Unknown,
    ];

    fn add(&mut self, who: DeleteBy) {
        self.0[Self::index(who)] += 1;
    }

    pub fn index(who: DeleteBy) -> usize {
        match who {
            DeleteBy::Customer => 0,
            DeleteBy::Staff => 1,
            DeleteBy::Both => 2,
            DeleteBy::Unknown => 3,
        }
    }

    pub fn get(&self, who: DeleteBy) -> usize {
        self.0[Self::index(who)]
    }

    pub fn total(&self) -> usize {
        self.0.iter().sum()
    }
}

/// One staff member's (or department's) row.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub name: String,
    /// Department paths, joined (staff rows).
    pub departments: String,
    pub counts: Counts,
}

/// How long lost customers had been known.
pub const KNOWN_BUCKETS: [&str; 5] = ["7 天内", "7–30 天", "30–90 天", "90 天以上", "不详"];

/// One bar of the trend chart.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub first: NaiveDate,
    pub counts: Counts,
    /// Inside the reported period.
    pub reported: bool,
}

/// Days or weeks of the trend chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Day,
    Week,
}

/// The trend's span: 30 days ending with the period, or 12 weeks (Monday to Sunday) ending
/// with the week of its last day, for periods longer than a week. The span never reaches past
/// the period: the last week's bar stops at the period's last day.
pub fn trend_span(period: &Period) -> (Step, Period) {
    if period.days() <= 7 {
        let first = period.last - Days::new(29);
        return (
            Step::Day,
            Period {
                first,
                last: period.last,
            },
        );
    }
    let monday = period.last - Days::new(u64::from(period.last.weekday().num_days_from_monday()));
    let first = monday - Days::new(7 * 11);
    (
        Step::Week,
        Period {
            first,
            last: period.last,
        },
    )
}

/// A report's numbers for one destination.
#[derive(Debug, Clone)]
pub struct Summary {
    pub period: Period,
    pub total: Counts,
    pub previous_total: Counts,
    /// Staff sorted by losses, most first.
    pub staff: Vec<Row>,
    /// Departments (first path of each staff member) sorted by losses; empty without the
    /// org chart.
    pub departments: Vec<Row>,
    /// Counts per [`KNOWN_BUCKETS`].
    pub known: [usize; 5],
    /// The commonest tags, most first.
    pub tags: Vec<(String, usize)>,
    pub step: Step,
    pub trend: Vec<Bucket>,
    /// The period's losses, oldest first: the spreadsheet's rows.
    pub losses: Vec<Loss>,
}

impl Summary {
    /// Counts `losses` (which cover at least the period, the previous one and the trend).
    pub fn of(losses: &[Loss], period: Period, tz: Zone, top_tags: usize) -> Self {
        let previous = period.previous();
        let (step, span) = trend_span(&period);
        let mut summary = Self {
            period,
            total: Counts::default(),
            previous_total: Counts::default(),
            staff: Vec::new(),
            departments: Vec::new(),
            known: [0; 5],
            tags: Vec::new(),
            step,
            trend: buckets(step, span, &period),
            losses: Vec::new(),
        };
        let mut departments: BTreeMap<&str, Row> = BTreeMap::new();
        let mut tags: HashMap<&str, usize> = HashMap::new();
        for loss in losses {
            let day = date_of(loss.outflow_at, tz);
            if let Some(bucket) = summary.trend.iter_mut().rev().find(|b| b.first <= day) {
                if span.contains(day) {
                    bucket.counts.add(loss.delete_by);
                }
            }
            if previous.contains(day) {
                summary.previous_total.add(loss.delete_by);
            }
            if !period.contains(day) {
                continue;
            }
            summary.total.add(loss.delete_by);
            summary.losses.push(loss.clone());
            if let Some(department) = loss.departments.first() {
                departments
                    .entry(department)
                    .or_insert_with(|| Row {
                        id: department.clone(),
                        name: department.clone(),
                        departments: String::new(),
                        counts: Counts::default(),
                    })
                    .counts
                    .add(loss.delete_by);
            }
            summary.known[known_bucket(days_between(loss.added_at, loss.outflow_at))] += 1;
            for tag in &loss.tags {
                *tags.entry(tag).or_default() += 1;
            }
        }
        summary.staff = staff_rows(&summary.losses);
        summary.departments = by_losses(departments.into_values());
        let mut tags: Vec<(String, usize)> =
            tags.into_iter().map(|(t, n)| (t.to_owned(), n)).collect();
        tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        tags.truncate(top_tags);
        summary.tags = tags;
        summary.losses.sort_by(|a, b| {
            a.outflow_at
                .cmp(&b.outflow_at)
                .then_with(|| a.key().cmp(&b.key()))
        });
        summary
    }
}

/// Losses per staff member, most first.
pub fn staff_rows(losses: &[Loss]) -> Vec<Row> {
    let mut staff: BTreeMap<&str, Row> = BTreeMap::new();
    for loss in losses {
        staff
            .entry(&loss.staff_id)
            .or_insert_with(|| staff_row(loss))
            .counts
            .add(loss.delete_by);
    }
    by_losses(staff.into_values())
}

fn staff_row(loss: &Loss) -> Row {
    Row {
        id: loss.staff_id.clone(),
        name: loss.staff_name.clone(),
        departments: loss.departments.join("、"),
        counts: Counts::default(),
    }
}

fn by_losses(rows: impl Iterator<Item = Row>) -> Vec<Row> {
    let mut rows: Vec<Row> = rows.collect();
    rows.sort_by(|a, b| {
        b.counts
            .total()
            .cmp(&a.counts.total())
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.id.cmp(&b.id))
    });
    rows
}

fn known_bucket(days: Option<i64>) -> usize {
    match days {
        Some(d) if d < 7 => 0,
        Some(d) if d < 30 => 1,
        Some(d) if d < 90 => 2,
        Some(_) => 3,
        None => 4,
    }
}

fn buckets(step: Step, span: Period, period: &Period) -> Vec<Bucket> {
    let width = match step {
        Step::Day => 1,
        Step::Week => 7,
    };
    let mut out = Vec::new();
    let mut first = span.first;
    while first <= span.last {
        let last = first + Days::new(width - 1);
        out.push(Bucket {
            first,
            counts: Counts::default(),
            reported: first <= period.last && last >= period.first,
        });
        first = first + Days::new(width);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_the_period_and_compares_with_the_one_before() {
        let tz = crate::zone::Zone::shanghai();
        let week = Period::parse("2026-11-16..2026-11-22").unwrap();
        let w = week.window(tz);
        let mut losses = vec![
            Loss::sample("edge-start", "amy", w.start),
            Loss::sample("edge-end", "amy", w.end),
            Loss::sample("before", "bob", w.start - 1),
            Loss::sample("after", "bob", w.end + 1),
        ];
        losses[1].delete_by = DeleteBy::Staff;
        let summary = Summary::of(&losses, week, tz, 5);
        assert_eq!(summary.total.total(), 2);
        assert_eq!(summary.total.get(DeleteBy::Staff), 1);
        assert_eq!(summary.previous_total.total(), 1);
        assert_eq!(summary.staff.len(), 1);
        assert_eq!(summary.staff[0].id, "amy");
        assert_eq!(summary.trend.len(), 30);
        let reported: usize = summary
            .trend
            .iter()
            .filter(|b| b.reported)
            .map(|b| b.counts.total())
            .sum();
        assert_eq!(reported, 2);
        assert_eq!(summary.trend.iter().filter(|b| b.reported).count(), 7);
    }

    #[test]
    fn monthly_trends_are_twelve_weeks() {
        let month = Period::parse("2026-10-01..2026-10-31").unwrap();
        let (step, span) = trend_span(&month);
        assert_eq!(step, Step::Week);
        assert_eq!(span.first.weekday(), chrono::Weekday::Mon);
        assert_eq!(span.last, month.last, "nothing after the month");
        assert_eq!(buckets(step, span, &month).len(), 12);
    }
}
