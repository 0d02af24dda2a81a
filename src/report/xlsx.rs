//! The full list as a spreadsheet (rust_xlsxwriter): sheet 1 one row per loss, with a frozen
//! header row and filters on; sheet 2 the losses per staff member by who ended them. Used by
//! reports and by storm summaries that leave customers out of the message.

use crate::zone::Zone;
use rust_xlsxwriter::{Color, Format, Workbook, Worksheet, XlsxError};

use super::stats::{staff_rows, Counts, Row};
use crate::loss::{DeleteBy, Loss};
use crate::render::helpers::days_between;

/// Excel's longest cell text is 32 767 characters; longer customer texts are shortened.
const CELL_CHARS: usize = 32_000;

/// Why the spreadsheet could not be written.
#[derive(Debug, thiserror::Error)]
#[error("the spreadsheet could not be written: {0}")]
pub struct SheetError(#[from] XlsxError);

/// How a direction is written in the sheet and in messages.
pub fn direction_text(who: DeleteBy) -> &'static str {
    match who {
        DeleteBy::Customer => "客户删除员工",
        DeleteBy::Staff => "员工删除客户",
        DeleteBy::Both => "互删",
        DeleteBy::Unknown => "未知",
    }
}

/// The workbook for `losses` (in the order given), as XLSX bytes.
pub fn workbook(losses: &[Loss], tz: Zone) -> Result<Vec<u8>, SheetError> {
    let mut book = Workbook::new();
    let header = Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0xDDEBF7));
    list_sheet(book.add_worksheet(), losses, tz, &header)?;
    staff_sheet(book.add_worksheet(), &staff_rows(losses), &header)?;
    Ok(book.save_to_buffer()?)
}

fn list_sheet(
    sheet: &mut Worksheet,
    losses: &[Loss],
    tz: Zone,
    header: &Format,
) -> Result<(), SheetError> {
    sheet.set_name("流失明细")?;
    let columns = [
        ("流失时间", 20.0),
        ("客户", 18.0),
        ("备注", 18.0),
        ("企业", 20.0),
        ("员工", 12.0),
        ("员工 ID", 14.0),
        ("部门", 22.0),
        ("谁删除了谁", 14.0),
        ("相识天数", 10.0),
        ("标签", 28.0),
    ];
    for (col, (title, width)) in columns.iter().enumerate() {
        let col = col as u16;
        sheet.write_string_with_format(0, col, *title, header)?;
        sheet.set_column_width(col, *width)?;
    }
    for (i, loss) in losses.iter().enumerate() {
        let row = i as u32 + 1;
        let time = chrono::DateTime::from_timestamp(loss.outflow_at, 0)
            .unwrap_or_default()
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let texts = [
            time,
            loss.customer_name.clone(),
            loss.remark.clone().unwrap_or_default(),
            loss.corp_name.clone().unwrap_or_default(),
            loss.staff_name.clone(),
            loss.staff_id.clone(),
            loss.departments.join("、"),
            direction_text(loss.delete_by).to_owned(),
        ];
        for (col, text) in texts.iter().enumerate() {
            sheet.write_string(row, col as u16, cell(text))?;
        }
        if let Some(days) = days_between(loss.added_at, loss.outflow_at) {
            sheet.write_number(row, 8, days as f64)?;
        }
        sheet.write_string(row, 9, cell(&loss.tags.join("、")))?;
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofilter(0, 0, losses.len() as u32, columns.len() as u16 - 1)?;
    Ok(())
}

fn staff_sheet(sheet: &mut Worksheet, rows: &[Row], header: &Format) -> Result<(), SheetError> {
    sheet.set_name("按员工统计")?;
    let mut titles = vec!["员工", "员工 ID", "部门", "合计"];
    titles.extend(Counts::DIRECTIONS.iter().map(|d| direction_text(*d)));
    for (col, title) in titles.iter().enumerate() {
        sheet.write_string_with_format(0, col as u16, *title, header)?;
        sheet.set_column_width(col as u16, 14.0)?;
    }
    for (i, staff) in rows.iter().enumerate() {
        let row = i as u32 + 1;
        sheet.write_string(row, 0, cell(&staff.name))?;
        sheet.write_string(row, 1, cell(&staff.id))?;
        sheet.write_string(row, 2, cell(&staff.departments))?;
        sheet.write_number(row, 3, staff.counts.total() as f64)?;
        for (d, n) in staff.counts.0.iter().enumerate() {
            sheet.write_number(row, 4 + d as u16, *n as f64)?;
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofilter(0, 0, rows.len() as u32, titles.len() as u16 - 1)?;
    Ok(())
}

fn cell(text: &str) -> String {
    if text.chars().count() <= CELL_CHARS {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(CELL_CHARS - 1).collect();
    short.push('…');
    short
}
