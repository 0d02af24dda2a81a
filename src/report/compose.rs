//! A report's content, rendered once per destination: the summary through the `report.*`
//! templates, the trend chart, the spreadsheet, and from them the messages each sink takes.
//!
//! A robot gets the summary as markdown (or text) split at line ends to fit its byte limit
//! (by the byte arithmetic of loss messages, [`crate::render::split::fit`]),
//! then the chart as an `image` message, then the spreadsheet as a `file` message. A mailbox
//! gets one email: the summary as text and HTML, the chart inline (`cid:trend`), the
//! spreadsheet attached. A period without losses sends no spreadsheet.

use std::sync::Arc;

use crate::zone::Zone;
use serde::Serialize;

use super::chart::{self, ChartError, LEGEND};
use super::stats::{Counts, Row, Step, Summary, KNOWN_BUCKETS};
use super::xlsx::{self, direction_text, SheetError};
use crate::config::WecomMsgType;
use crate::render::split::lines::split_lines;
use crate::render::{RenderError, Renderer};
use crate::sink::wecom::IMAGE_LIMIT;
use crate::sink::{EmailFile, EmailMessage, WecomBody};

/// The content id the HTML summary shows the chart by.
const CHART_ID: &str = "trend";

/// Why a report could not be put together.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error(transparent)]
    Sheet(#[from] SheetError),
    #[error("the trend chart is {0} bytes, more than a robot takes (2 MB)")]
    ChartTooLarge(usize),
}

/// What a report template receives. Documented for template authors in the README.
#[derive(Debug, Serialize)]
pub(crate) struct ReportContext {
    pub title: String,
    /// `2026-11-16 ~ 2026-11-22`.
    pub period: String,
    pub total: usize,
    /// `客户删除员工 3，员工删除客户 1` (directions with losses only).
    pub directions: String,
    /// `较上周 +3（+25%）` and the like.
    pub change: String,
    pub staff: Vec<RowContext>,
    /// The staff members beyond `top`, summed.
    pub staff_rest: Option<RestContext>,
    pub departments: Vec<RowContext>,
    /// The departments beyond `top`, summed (`staff` counts departments here).
    pub departments_rest: Option<RestContext>,
    /// `7 天内 3，7–30 天 2`.
    pub known: String,
    /// `VIP 3、老客户 2`.
    pub tags: String,
    pub trend_title: &'static str,
    /// What the chart's colours mean.
    pub legend: &'static str,
    /// The spreadsheet's file name, when one goes along.
    pub attachment: Option<String>,
    /// The HTML summary's `cid:` of the chart.
    pub chart_id: &'static str,
}

/// One staff member's or department's line.
#[derive(Debug, Serialize)]
pub(crate) struct RowContext {
    pub rank: usize,
    /// The name, with the userid when two staff members share it.
    pub label: String,
    pub name: String,
    pub departments: String,
    pub total: usize,
    pub customer: usize,
    pub staff: usize,
    pub both: usize,
    pub unknown: usize,
    pub directions: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct RestContext {
    pub staff: usize,
    pub losses: usize,
}

/// A report for one destination, rendered.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    pub title: String,
    pub period: String,
    pub total: usize,
    pub markdown: String,
    pub text: String,
    pub html: String,
    pub png: Arc<[u8]>,
    /// (file name, bytes), when the period has losses.
    pub xlsx: Option<(String, Arc<[u8]>)>,
}

/// What a report is called and compared with.
pub(crate) struct Heading<'a> {
    /// 客户流失周报.
    pub title: &'a str,
    /// 周 / 日 / 月, or 期 for a period picked by hand.
    pub word: &'a str,
    pub top: usize,
}

/// Renders `summary` for one destination.
pub(crate) fn render(
    renderer: &Renderer,
    heading: &Heading<'_>,
    summary: &Summary,
    tz: Zone,
) -> Result<Rendered, BuildError> {
    let png = chart::draw(summary)?;
    if png.len() > IMAGE_LIMIT {
        return Err(BuildError::ChartTooLarge(png.len()));
    }
    let xlsx = if summary.losses.is_empty() {
        None
    } else {
        let name = format!(
            "{}_{}_{}.xlsx",
            heading.title, summary.period.first, summary.period.last
        );
        Some((name, Arc::from(xlsx::workbook(&summary.losses, tz)?)))
    };
    let context = context(heading, summary, xlsx.as_ref().map(|(n, _)| n.clone()));
    Ok(Rendered {
        title: heading.title.to_owned(),
        period: summary.period.label(),
        total: summary.total.total(),
        markdown: renderer.render("report.md.hbs", &context)?,
        text: renderer.render("report.txt.hbs", &context)?,
        html: renderer.render("report.html.hbs", &context)?,
        png: Arc::from(png),
        xlsx,
    })
}

impl Rendered {
    /// A robot's messages, labelled for the ledger: the summary split to `limit` bytes
    /// (`summary-1`, `summary-2`…), the chart (`chart`), the spreadsheet (`list`).
    pub fn robot_bodies(&self, msgtype: WecomMsgType, limit: usize) -> Vec<(String, WecomBody)> {
        let summary = match msgtype {
            WecomMsgType::Markdown => &self.markdown,
            WecomMsgType::Text => &self.text,
        };
        let mut bodies: Vec<(String, WecomBody)> = split_lines(summary, limit, &self.title)
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                (
                    format!("summary-{}", i + 1),
                    WecomBody::written(msgtype, part, Vec::new()),
                )
            })
            .collect();
        bodies.push(("chart".into(), WecomBody::Image(Arc::clone(&self.png))));
        if let Some((filename, bytes)) = &self.xlsx {
            let file = WecomBody::File {
                filename: filename.clone(),
                bytes: Arc::clone(bytes),
            };
            bodies.push(("list".into(), file));
        }
        bodies
    }

    /// A mailbox's one email.
    pub fn email(&self, to: String) -> EmailMessage {
        let mut files = vec![EmailFile {
            filename: "trend.png".into(),
            content_type: "image/png",
            bytes: Arc::clone(&self.png),
            inline_id: Some(CHART_ID.into()),
        }];
        if let Some((filename, bytes)) = &self.xlsx {
            files.push(EmailFile {
                filename: filename.clone(),
                content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                bytes: Arc::clone(bytes),
                inline_id: None,
            });
        }
        EmailMessage {
            to,
            subject: format!(
                "【{}】{} 共 {} 位客户流失",
                self.title, self.period, self.total
            ),
            text: self.text.clone(),
            html: self.html.clone(),
            files,
        }
    }
}

fn context(heading: &Heading<'_>, summary: &Summary, attachment: Option<String>) -> ReportContext {
    // Names that two staff members share get the userid beside them.
    let mut seen = std::collections::HashSet::new();
    let shared: std::collections::HashSet<&str> = summary
        .staff
        .iter()
        .map(|row| row.name.as_str())
        .filter(|name| !seen.insert(*name))
        .collect();
    let rows = |rows: &[Row], with_id: bool| -> Vec<RowContext> {
        rows.iter()
            .take(heading.top)
            .enumerate()
            .map(|(i, row)| row_context(i + 1, row, with_id && shared.contains(row.name.as_str())))
            .collect()
    };
    let rest = |rows: &[Row]| {
        let rest: Vec<&Row> = rows.iter().skip(heading.top).collect();
        (!rest.is_empty()).then(|| RestContext {
            staff: rest.len(),
            losses: rest.iter().map(|r| r.counts.total()).sum(),
        })
    };
    ReportContext {
        title: heading.title.to_owned(),
        period: summary.period.label(),
        total: summary.total.total(),
        directions: directions(&summary.total),
        change: change(
            summary.total.total(),
            summary.previous_total.total(),
            heading.word,
        ),
        staff: rows(&summary.staff, true),
        staff_rest: rest(&summary.staff),
        departments: rows(&summary.departments, false),
        departments_rest: rest(&summary.departments),
        known: listed(
            KNOWN_BUCKETS
                .iter()
                .zip(summary.known)
                .map(|(label, n)| (label.to_string(), n)),
            "，",
            " ",
        ),
        tags: listed(summary.tags.iter().cloned(), "、", " "),
        trend_title: match summary.step {
            Step::Day => "近 30 天每日流失",
            Step::Week => "近 12 周每周流失",
        },
        legend: LEGEND,
        attachment,
        chart_id: CHART_ID,
    }
}

fn row_context(rank: usize, row: &Row, with_id: bool) -> RowContext {
    let [customer, staff, both, unknown] = row.counts.0;
    RowContext {
        rank,
        label: if with_id {
            format!("{}（{}）", row.name, row.id)
        } else {
            row.name.clone()
        },
        name: row.name.clone(),
        departments: row.departments.clone(),
        total: row.counts.total(),
        customer,
        staff,
        both,
        unknown,
        directions: directions(&row.counts),
    }
}

/// `客户删除员工 3，员工删除客户 1`: the directions that have losses.
fn directions(counts: &Counts) -> String {
    listed(
        Counts::DIRECTIONS
            .iter()
            .map(|d| (direction_text(*d).to_owned(), counts.get(*d))),
        "，",
        " ",
    )
}

fn listed(items: impl Iterator<Item = (String, usize)>, between: &str, inside: &str) -> String {
    items
        .filter(|(_, n)| *n > 0)
        .map(|(label, n)| format!("{label}{inside}{n}"))
        .collect::<Vec<_>>()
        .join(between)
}

/// `较上周 +3（+25%）`, `与上周持平`, `上周为 0`.
fn change(now: usize, before: usize, word: &str) -> String {
    let (now, before) = (now as i64, before as i64);
    if now == before {
        return format!("与上{word}持平（{before} 位）");
    }
    if before == 0 {
        return format!("上{word}为 0 位");
    }
    let diff = now - before;
    let percent = (diff * 100) as f64 / before as f64;
    format!("较上{word} {diff:+}（{percent:+.0}%，上{word} {before} 位）")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_signed_and_relative() {
        assert_eq!(change(12, 10, "周"), "较上周 +2（+20%，上周 10 位）");
        assert_eq!(change(5, 10, "周"), "较上周 -5（-50%，上周 10 位）");
        assert_eq!(change(3, 3, "日"), "与上日持平（3 位）");
        assert_eq!(change(3, 0, "月"), "上月为 0 位");
    }
}
