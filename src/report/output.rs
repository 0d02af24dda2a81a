//! A planned report shown instead of sent: printed (dry runs, previews) or written as files
//! (`--out DIR`).

use std::path::Path;

use super::plan::{Planned, ReportError};
use super::ReportSpec;
use crate::render::escape::{terminal, terminal_lines};
use crate::transform::route::Target;

/// Prints each planned report as its destination would get it.
pub(crate) fn print_plan(planned: &[Planned<'_>]) {
    for item in planned {
        let r = &item.rendered;
        crate::cmd::console::show!("══ {} ══", terminal(&item.destination.describe()));
        let summary = match &item.destination.target {
            Target::Wecom { msgtype, .. } if *msgtype == crate::config::WecomMsgType::Text => {
                &r.text
            }
            Target::Wecom { .. } => &r.markdown,
            Target::Email { .. } => &r.text,
        };
        crate::cmd::console::show!("{}\n", terminal_lines(summary));
        crate::cmd::console::show!("── image · trend chart, PNG, {} bytes", r.png.len());
        match &r.xlsx {
            Some((name, bytes)) => {
                crate::cmd::console::show!("── file · {name}, XLSX, {} bytes\n", bytes.len())
            }
            None => crate::cmd::console::show!("── no spreadsheet: no losses in the period\n"),
        }
    }
}

/// Writes each planned report's markdown, HTML, PNG and XLSX into `dir`, one file name per
/// destination. Returns the files written.
pub(crate) fn write_plan(
    dir: &Path,
    spec: &ReportSpec,
    planned: &[Planned<'_>],
) -> Result<Vec<String>, ReportError> {
    let write_error = |path: &Path, source| ReportError::Write {
        report: spec.name.clone(),
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    let mut written = Vec::new();
    for item in planned {
        let stem: String = item
            .destination
            .id
            .to_string()
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let r = &item.rendered;
        let mut files: Vec<(String, &[u8])> = vec![
            (format!("{stem}.md"), r.markdown.as_bytes()),
            (format!("{stem}.txt"), r.text.as_bytes()),
            (format!("{stem}.html"), r.html.as_bytes()),
            (format!("{stem}.png"), &r.png),
        ];
        if let Some((_, bytes)) = &r.xlsx {
            files.push((format!("{stem}.xlsx"), bytes));
        }
        for (name, bytes) in files {
            let path = dir.join(&name);
            std::fs::write(&path, bytes).map_err(|e| write_error(&path, e))?;
            written.push(path.display().to_string());
        }
    }
    Ok(written)
}
