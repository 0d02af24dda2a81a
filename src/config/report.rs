//! A `[[report]]` as the config holds it, parsed: what the report module runs.

use serde::Deserialize;

use crate::schedule::Schedule;

/// How long a report's period is (`period` of a `[[report]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    Day,
    Week,
    Month,
}

impl PeriodKind {
    /// The Chinese word for the period: 日 / 周 / 月.
    pub fn word(self) -> &'static str {
        match self {
            Self::Day => "日",
            Self::Week => "周",
            Self::Month => "月",
        }
    }
}

/// A `[[report]]`, parsed.
#[derive(Debug)]
pub struct ReportSpec {
    pub name: String,
    /// The crontab as written, for logs.
    pub cron: String,
    pub schedule: Schedule,
    pub period: PeriodKind,
    pub route: String,
    /// Staff members (and departments) listed by name; the rest are summed.
    pub top: usize,
}

impl ReportSpec {
    /// 客户流失周报 and the like.
    pub fn title(&self) -> String {
        format!("客户流失{}报", self.period.word())
    }
}
