//! The trend chart: losses per day (or week) stacked by who ended them, the reported period
//! on a shaded band, drawn in-process with plotters into a PNG.
//!
//! Servers often have no fonts installed, so the chart brings its own: DejaVu Sans cut down
//! to printable ASCII (10 KB, `assets/fonts`, Bitstream Vera licence), registered with
//! plotters' ab_glyph text renderer. Its labels are therefore digits and Latin words; the
//! Chinese legend travels in the message text beside the picture.

use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::stats::{Counts, Step, Summary};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-ascii.ttf");
const WIDTH: u32 = 960;
const HEIGHT: u32 = 420;

/// Bar colours by direction: customer, staff, both, unknown.
const COLOURS: [RGBColor; 4] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(186, 176, 172),
];
const LATIN_NAMES: [&str; 4] = ["by customer", "by staff", "both", "unknown"];
/// What [`LATIN_NAMES`] and the colours mean, for the message text.
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
        Step::Day => "Lost customers per day, last 30 days",
        Step::Week => "Lost customers per week, last 12 weeks",
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
        .x_label_area_size(34)
        .y_label_area_size(46)
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
            .label(LATIN_NAMES[d])
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
