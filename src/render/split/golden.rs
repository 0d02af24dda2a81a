//! Golden outputs of the loss templates: what every channel's messages look like, byte for
//! byte, for the documented example and a 300-loss batch.
//!
//! Three checks: the 0.1 whole-message templates (`tests/fixtures/templates-0.1`, kept as an
//! operator's override) still render exactly what 0.1 rendered (`tests/golden/*-0.1.txt`,
//! written by 0.1's code); the built-in pieces render, part for part, exactly what those
//! whole templates render for the same parts; and the built-in output is pinned
//! (`tests/golden/*.txt`). `UPDATE_GOLDEN=1 cargo test golden` rewrites the pinned files
//! (only when a template's text is meant to change).

use std::path::PathBuf;

use super::{pack, pieces::Pieces, plan_parts, render_whole, Batch, Packer, Storm};
use crate::loss::{DeleteBy, Loss};
use crate::render::{Renderer, WindowContext};

/// A varied batch: shared staff names, departments, left staff, every optional field set on
/// some entries, and texts that the escapes must handle.
pub(crate) fn varied(n: usize) -> Vec<Loss> {
    let directions = [
        DeleteBy::Customer,
        DeleteBy::Staff,
        DeleteBy::Both,
        DeleteBy::Unknown,
    ];
    (0..n)
        .map(|i| {
            let staff = i % 13;
            Loss {
                customer_id: format!("wm{i:06}"),
                customer_name: match i % 7 {
                    0 => format!("客户**{i}**"),
                    1 => format!("<b>{i}</b> [链接](http://x.example/{i})"),
                    _ => format!("客户{i:05}号"),
                },
                remark: (i % 3 == 0).then(|| format!("备注{i}")),
                corp_name: (i % 5 == 0).then(|| format!("公司{}", i % 4)),
                staff_id: format!("s{staff}"),
                // s3 and s4 share a name: the heading tells them apart.
                staff_name: if staff == 4 {
                    "员工3".into()
                } else {
                    format!("员工{staff}")
                },
                staff_email: None,
                outflow_at: 1_736_314_633 - (i as i64) * 97,
                delete_by: directions[i % 4],
                tags: (0..i % 3).map(|t| format!("标签{t}")).collect(),
                added_at: (i % 4 != 1).then_some(1_734_951_802 - i as i64 * 3600),
                channel: (i % 6 == 0).then(|| format!("渠道{}", i % 2)),
                add_way: (i % 2 == 0).then_some((i % 12) as i64),
                departments: if staff % 5 == 0 {
                    Vec::new()
                } else {
                    vec![format!("销售{}部", staff % 3)]
                },
                staff_left: staff == 7,
                still_followed_by: if i % 9 == 0 {
                    vec!["同事甲".into()]
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

fn builtin() -> Renderer {
    Renderer::new(crate::zone::Zone::shanghai(), None).expect("built-in templates")
}

/// A renderer with the 0.1 whole-message templates as an operator's override.
fn whole_templates() -> Renderer {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates-0.1");
    Renderer::new(crate::zone::Zone::shanghai(), Some(&dir)).expect("0.1 templates")
}

const WINDOW: Option<WindowContext> = Some(WindowContext {
    start: 1_736_200_000,
    end: 1_736_314_633,
});

/// The loss templates, with the settings each is used with.
const PACKED: [(&str, bool, bool); 6] = [
    ("digest.md.hbs", false, false),
    ("digest.md.hbs", true, false),
    ("digest.txt.hbs", false, false),
    ("digest.txt.hbs", true, false),
    ("staff.md.hbs", false, true),
    ("staff.txt.hbs", false, false),
];

/// Staff templates get one staff member's losses at a time, as `compose` gives them.
fn batches_for(template: &str, losses: &[Loss]) -> Vec<Vec<Loss>> {
    if template.starts_with("staff") {
        crate::render::group_by_staff(losses)
            .into_iter()
            .map(|(_, group)| group.into_iter().cloned().collect())
            .collect()
    } else {
        vec![losses.to_vec()]
    }
}

fn render_all(renderer: &Renderer, losses: &[Loss], storm: Option<Storm>) -> String {
    let mut out = String::new();
    for (template, by_department, mention) in PACKED {
        for losses in &batches_for(template, losses) {
            let batch = Batch {
                window: WINDOW,
                storm,
                mention,
                by_department,
                ..Batch::plain(template, losses, 4096)
            };
            let messages = pack(renderer, &batch).expect("renders");
            write_parts(&mut out, template, by_department, &messages);
        }
    }
    for (template, by_department) in [("digest.html.hbs", false), ("digest.html.hbs", true)] {
        html(&mut out, renderer, template, by_department, losses, WINDOW);
    }
    for (_, group) in crate::render::group_by_staff(losses) {
        let group: Vec<Loss> = group.into_iter().cloned().collect();
        html(&mut out, renderer, "staff.html.hbs", false, &group, WINDOW);
    }
    out
}

fn write_parts(out: &mut String, template: &str, by_department: bool, messages: &[super::Message]) {
    for (i, m) in messages.iter().enumerate() {
        out.push_str(&format!(
            "===== {template} by_department={by_department} part {} of {}, {} losses =====\n{}\n",
            i + 1,
            messages.len(),
            m.losses.len(),
            m.content
        ));
    }
}

fn html(
    out: &mut String,
    renderer: &Renderer,
    template: &str,
    by_department: bool,
    losses: &[Loss],
    window: Option<WindowContext>,
) {
    let batch = Batch {
        window,
        by_department,
        ..Batch::plain(template, losses, usize::MAX)
    };
    let m = render_whole(renderer, &batch).expect("renders");
    out.push_str(&format!(
        "===== {template} by_department={by_department} whole, {} losses =====\n{}\n",
        m.losses.len(),
        m.content
    ));
}

fn golden(name: &str, rendered: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    // What 0.1 rendered is history: it is never rewritten.
    if std::env::var_os("UPDATE_GOLDEN").is_some() && !name.ends_with("-0.1.txt") {
        std::fs::write(&path, rendered).expect("golden file written");
        return;
    }
    let expected = std::fs::read_to_string(&path).expect("golden file present");
    if expected != rendered {
        let line = expected
            .lines()
            .zip(rendered.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{name} differs from the golden output at line {}:\nexpected: {:?}\nrendered: {:?}",
            line + 1,
            expected.lines().nth(line),
            rendered.lines().nth(line)
        );
    }
}

/// The pieces, part for part, against the 0.1 whole templates over the same parts.
fn pieces_match_whole(losses: &[Loss], storm: Option<Storm>, limit: usize) {
    let (pieces_renderer, whole_renderer) = (builtin(), whole_templates());
    let mut compared = 0;
    for (template, by_department, mention) in PACKED {
        for losses in &batches_for(template, losses) {
            let batch = Batch {
                window: WINDOW,
                storm,
                mention,
                by_department,
                ..Batch::plain(template, losses, limit)
            };
            let packer = Packer::new(&pieces_renderer, &batch);
            let pieces = Pieces::render(&packer).expect("pieces render");
            let parts = plan_parts(&pieces, &packer).expect("parts");
            let whole = Packer::new(&whole_renderer, &batch);
            for (i, (range, shorten)) in parts.iter().enumerate() {
                let assembled = pieces
                    .assemble(range.clone(), i + 1, parts.len(), *shorten)
                    .expect("assembles");
                let rendered = whole
                    .render(range.clone(), i + 1, parts.len(), *shorten)
                    .expect("renders");
                assert_eq!(assembled, rendered, "{template}, part {}", i + 1);
                assert!(assembled.len() <= limit, "{template}: {}", assembled.len());
                compared += 1;
            }
        }
    }
    assert!(compared >= PACKED.len());
}

#[test]
fn whole_templates_of_0_1_render_as_0_1_did() {
    let renderer = whole_templates();
    let example = crate::source::model::documented_example();
    golden(
        "documented-example-0.1.txt",
        &render_all(&renderer, &example, None),
    );
    golden(
        "batch-300-0.1.txt",
        &render_all(&renderer, &varied(300), None),
    );
    let storm = Some(Storm {
        threshold: 20,
        list: 5,
    });
    golden(
        "storm-300-0.1.txt",
        &render_all(&renderer, &varied(300), storm),
    );
}

#[test]
fn pieces_render_what_the_whole_templates_render() {
    let example = crate::source::model::documented_example();
    pieces_match_whole(&example, None, 4096);
    pieces_match_whole(&varied(300), None, 4096);
    pieces_match_whole(
        &varied(300),
        Some(Storm {
            threshold: 20,
            list: 5,
        }),
        4096,
    );
    // Small limits: groups split across parts, headings repeated, entries shortened.
    pieces_match_whole(&varied(40), None, 700);
    let mut long = varied(6);
    long[0].customer_name = "长".repeat(3000);
    long[3].staff_name = "名".repeat(3000);
    pieces_match_whole(&long, None, 4096);
}

#[test]
fn the_documented_example_renders_as_before() {
    let losses = crate::source::model::documented_example();
    golden(
        "documented-example.txt",
        &render_all(&builtin(), &losses, None),
    );
}

#[test]
fn a_300_loss_batch_renders_as_before() {
    golden("batch-300.txt", &render_all(&builtin(), &varied(300), None));
}

#[test]
fn a_storm_renders_as_before() {
    let storm = Some(Storm {
        threshold: 20,
        list: 5,
    });
    golden(
        "storm-300.txt",
        &render_all(&builtin(), &varied(300), storm),
    );
}

#[test]
fn a_frame_without_its_body_is_refused_at_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (frame, fault) in [
        ("## 客户流失提醒\n", "no body"),
        ("## 客户流失提醒\n{{body}}\n", "escaped body"),
        ("{{{body}}}\n{{{body}}}\n", "twice"),
    ] {
        std::fs::write(dir.path().join("digest.md.hbs"), frame).expect("written");
        let refused = Renderer::new(crate::zone::Zone::shanghai(), Some(dir.path()));
        let Err(error) = refused else {
            panic!("{fault}: accepted");
        };
        let text = error.to_string();
        assert!(
            text.contains("digest.md.hbs") && text.contains("{{{body}}}"),
            "{fault}: {text}"
        );
    }
}
