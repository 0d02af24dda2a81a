//! The trend chart: losses per day (or week) stacked by who ended them, the reported period
//! on a shaded band, drawn in-process with plotters into a PNG.
//!
//! Managers read the chart in Chinese: title, axes and legend. Servers often have no fonts,
//! and system fonts are never used at run time, so the chart brings its own: Noto Sans CJK SC
//! cut down to printable ASCII and the characters of the labels below (11 KB,
//! `assets/fonts/NotoSansSC-chart.otf`, SIL Open Font License), registered with plotters'
//! ab_glyph text renderer. `assets/fonts/subset-cjk.sh` regenerates it from Debian's
//! `fonts-noto-cjk` with the characters listed in `assets/fonts/chart-glyphs.txt`; a new label
//! needs its characters there (a test checks both).

use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::stats::{Counts, Step, Summary};

const FONT: &[u8] = include_bytes!("../../assets/fonts/NotoSansSC-chart.otf");
const WIDTH: u32 = 960;
const HEIGHT: u32 = 420;

/// Bar colours by direction: customer, staff, both, unknown.
const COLOURS: [RGBColor; 4] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(186, 176, 172),
];
/// The legend: who ended the relationship, in the colours' order.
const NAMES: [&str; 4] = ["客户删除员工", "员工删除客户", "互删", "未知"];
const TITLE_DAY: &str = "每日流失客户（近 30 天）";
const TITLE_WEEK: &str = "每周流失客户（近 12 周）";
const X_AXIS: &str = "日期";
const Y_AXIS: &str = "流失客户数";
/// What the colours mean, for the message text beside the picture.
pub const LEGEND: &str = "蓝 = 客户删除员工，橙 = 员工删除客户，红 = 互删，灰 = 未知；黄底为本期";

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("the trend chart could not be drawn: {0}")]
pub struct ChartError(String);

fn error(e: impl std::fmt::Display) -> ChartError {
    ChartError(e.to_string())
}

/// The trend chart of `summary` as PNG bytes.
pub fn draw(summary: &Summary) -> Result<Vec<u8>, ChartError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font("sans-serif", FontStyle::Normal, FONT).map_err(|_| "bad font".into())
        })
        .clone()
        .map_err(ChartError)?;
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    plot(summary, &mut rgb)?;
    encode(&rgb)
}

/// The chart's title and the top of its y axis (room above the highest bar for the legend).
fn frame(summary: &Summary) -> (&'static str, f64) {
    let top = summary
        .trend
        .iter()
        .map(|b| b.counts.total())
        .max()
        .unwrap_or(0)
        .max(4);
    let title = match summary.step {
        Step::Day => TITLE_DAY,
        Step::Week => TITLE_WEEK,
    };
    (title, (top as f64 * 1.35).ceil())
}

fn plot(summary: &Summary, rgb: &mut [u8]) -> Result<(), ChartError> {
    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(error)?;
    let trend = &summary.trend;
    let n = trend.len();
    let (title, y_max) = frame(summary);
    let mut chart = ChartBuilder::on(&root)
        .margin(14)
        .caption(title, ("sans-serif", 20))
        .x_label_area_size(46)
        .y_label_area_size(62)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max)
        .map_err(error)?;
    let labels: Vec<String> = trend
        .iter()
        .map(|b| b.first.format("%m-%d").to_string())
        .collect();
    let label_of = |x: &f64| {
        let i = x.round();
        if (x - i).abs() > 0.01 || i < 0.0 {
            return String::new();
        }
        labels.get(i as usize).cloned().unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.min(16))
        .x_label_formatter(&label_of)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc(X_AXIS)
        .y_desc(Y_AXIS)
        .axis_desc_style(("sans-serif", 14))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(error)?;
    let reported: Vec<usize> = (0..n).filter(|i| trend[*i].reported).collect();
    if let (Some(first), Some(last)) = (reported.first(), reported.last()) {
        let band = Rectangle::new(
            [(*first as f64 - 0.5, 0.0), (*last as f64 + 0.5, y_max)],
            RGBColor(255, 240, 190).filled(),
        );
        chart.draw_series(std::iter::once(band)).map_err(error)?;
    }
    for (d, colour) in COLOURS.iter().enumerate() {
        let bars = trend.iter().enumerate().filter_map(|(i, bucket)| {
            let Counts(counts) = bucket.counts;
            let below: usize = counts[..d].iter().sum();
            (counts[d] > 0).then(|| {
                Rectangle::new(
                    [
                        (i as f64 - 0.36, below as f64),
                        (i as f64 + 0.36, (below + counts[d]) as f64),
                    ],
                    colour.filled(),
                )
            })
        });
        let colour = *colour;
        chart
            .draw_series(bars)
            .map_err(error)?
            .label(NAMES[d])
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(error)?;
    root.present().map_err(error)?;
    Ok(())
}

fn encode(rgb: &[u8]) -> Result<Vec<u8>, ChartError> {
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Best);
    let mut writer = encoder.write_header().map_err(error)?;
    writer.write_image_data(rgb).map_err(error)?;
    writer.finish().map_err(error)?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::Loss;
    use crate::report::period::Period;
    use ab_glyph::Font as _;

    /// Every string the chart draws.
    fn labels() -> Vec<&'static str> {
        let mut labels = vec![TITLE_DAY, TITLE_WEEK, X_AXIS, Y_AXIS, "0123456789-"];
        labels.extend(NAMES);
        labels
    }

    #[test]
    fn the_font_subset_covers_every_label_and_the_script_keeps_it_so() {
        let font = ab_glyph::FontRef::try_from_slice(FONT).expect("the embedded font parses");
        let glyphs = include_str!("../../assets/fonts/chart-glyphs.txt");
        for label in labels() {
            for c in label.chars().filter(|c| !c.is_whitespace()) {
                assert_ne!(
                    font.glyph_id(c).0,
                    0,
                    "{c:?} of {label:?} is not in the font"
                );
                assert!(
                    glyphs.contains(c),
                    "{c:?} of {label:?} is missing from chart-glyphs.txt"
                );
            }
        }
        // Only what the chart needs: far under WeCom's 2 MB, and small in the binary.
        assert!(FONT.len() < 40_000, "{} bytes", FONT.len());
    }

    /// Dark pixels in a rectangle of an RGB image.
    fn ink(rgb: &[u8], x: std::ops::Range<u32>, y: std::ops::Range<u32>) -> usize {
        let mut dark = 0;
        for row in y {
            for col in x.clone() {
                let at = ((row * WIDTH + col) * 3) as usize;
                if rgb[at..at + 3].iter().all(|v| *v < 110) {
                    dark += 1;
                }
            }
        }
        dark
    }

    #[test]
    fn the_chinese_labels_are_drawn_and_the_image_is_small() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).expect("a date");
        let period = Period::last_whole(crate::config::PeriodKind::Day, today);
        let losses: Vec<Loss> = (0..40)
            .map(|i| {
                let at = crate::report::period::midnight(today, crate::zone::Zone::shanghai())
                    - 3600
                    - i * 86_400 / 4;
                Loss::sample(&format!("c{i}"), "s1", at)
            })
            .collect();
        let summary = Summary::of(&losses, period, crate::zone::Zone::shanghai(), 5);
        let png = draw(&summary).expect("the chart draws");
        // `CHART_PNG=/tmp/chart.png cargo test chart` keeps the picture to look at.
        if let Some(path) = std::env::var_os("CHART_PNG") {
            std::fs::write(path, &png).expect("the picture is written");
        }
        assert!(png.len() < 200_000, "{} bytes", png.len());
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let mut reader = decoder.read_info().expect("a PNG");
        let mut rgb = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut rgb).expect("a frame");
        // The title is centred at the top; the y axis' name runs down the left edge.
        assert!(
            ink(&rgb, WIDTH / 2 - 120..WIDTH / 2 + 120, 8..34) > 150,
            "no title"
        );
        assert!(
            ink(&rgb, 10..30, HEIGHT / 2 - 60..HEIGHT / 2 + 60) > 60,
            "no y axis name"
        );
        // Nothing where no text is: the blank margin under the title on the far right.
        assert_eq!(ink(&rgb, WIDTH - 12..WIDTH - 2, 2..10), 0);
    }
}
