//! The plots. Each is drawn by one function generic over plotters' `DrawingBackend` and written
//! twice: as SVG (plotters' SVG backend; the text names its font and the viewer draws it) and as PNG
//! (plotters' bitmap backend, 1.6 times larger). The PNG's text is drawn anti-aliased by
//! plotters' `ab_glyph` feature from DejaVu Sans, compiled into the program, so no system font or
//! font library is needed; the same font measures the text for the layout of both files.
//!
//! - [`LATENCY_VS_P`]: median and 99th percentile of each request kind against p, cache on (solid,
//!   circles) and off (dashed, triangles), on a log scale.
//! - [`CRASH_TIMELINE`]: latency over time in the crash run, per kind the slowest request and the
//!   median of each bucket of start times, with every kill (red) and restart (green) marked.

use crate::analysis::{cell, ps, Bucket, SweepCell};
use crate::data::{EventRow, Kind};
use plotters::coord::combinators::{LogCoord, WithKeyPoints};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DynElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

/// File stem of the latency-against-p plot.
pub const LATENCY_VS_P: &str = "latency-vs-p";
/// File stem of the crash run's timeline.
pub const CRASH_TIMELINE: &str = "crash-timeline";

/// Size of the SVG plots; the PNGs are [`PNG_SCALE`] times larger.
const SIZE: (u32, u32) = (1100, 560);
/// How much larger the PNG is drawn than the SVG (text, lines and canvas alike).
const PNG_SCALE: f64 = 1.6;

/// The font family the plots ask for; the SVG names it, the PNG draws it with [`FONT`].
const FAMILY: &str = "sans-serif";
/// DejaVu Sans 2.37, unmodified, from Debian's `fonts-dejavu-core` package; its licence (Bitstream
/// Vera and Arev, free to copy and distribute) is `assets/DejaVuSans-LICENSE.txt` beside it.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Makes [`FONT`] the [`FAMILY`] of plotters' text, once for the whole program.
fn load_font() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "plot: the built-in font does not load".to_string())
        })
        .clone()
}

/// The chart both plots draw on: p or time across, latency on a log scale up.
type Chart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<RangedCoordf64, WithKeyPoints<LogCoord<f64>>>>;

/// A plot that can be drawn on any backend, `s` times larger than [`SIZE`].
trait Plot {
    /// Draws the plot on `root`, scaling text, lines and margins by `s`.
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, s: f64) -> Result<(), String>;
}

/// Writes `plot` as `<stem>.svg` and `<stem>.png` into `dir`. Returns the files' names.
fn write(dir: &Path, stem: &str, plot: &impl Plot) -> Result<Vec<String>, String> {
    load_font()?;
    let (svg, png) = (format!("{stem}.svg"), format!("{stem}.png"));
    plot.draw(
        SVGBackend::new(&dir.join(&svg), SIZE).into_drawing_area(),
        1.0,
    )?;
    let size = (
        px(f64::from(SIZE.0), PNG_SCALE),
        px(f64::from(SIZE.1), PNG_SCALE),
    );
    plot.draw(
        BitMapBackend::new(&dir.join(&png), size).into_drawing_area(),
        PNG_SCALE,
    )?;
    Ok(vec![svg, png])
}

/// The colour of a request kind.
fn color(kind: Kind) -> RGBColor {
    match kind {
        Kind::Query => RGBColor(31, 119, 180),
        Kind::Buy => RGBColor(255, 127, 14),
        Kind::OrderQuery => RGBColor(148, 103, 189),
    }
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("plot: {e}")
}

/// Text of `size` pixels (before scaling by `s`) in `color`.
fn text(size: f64, s: f64, color: &RGBColor) -> TextStyle<'static> {
    (FAMILY, size * s).into_font().color(color)
}

/// Scales a length in pixels.
fn px(v: f64, s: f64) -> u32 {
    (v * s).round() as u32
}

/// A tick label in ms on a log axis.
fn ms_label(v: &f64) -> String {
    if *v >= 10.0 {
        format!("{v:.0}")
    } else if *v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Ticks of a log axis: 1, 2, 5 times the powers of ten within `lo..hi`.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powi(lo.log10().floor() as i32);
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= lo && v <= hi {
                ticks.push(v);
            }
        }
        decade *= 10.0;
    }
    ticks
}

/// A [`Chart`] on `area` with `caption` over it, `x` across and `lo..hi` (ms, log scale) up.
fn chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    (caption, caption_size): (&str, f64),
    x: Range<f64>,
    (lo, hi): (f64, f64),
    margin: f64,
    s: f64,
) -> Result<Chart<'a, DB>, String> {
    ChartBuilder::on(area)
        .caption(caption, text(caption_size, s, &BLACK))
        .margin(px(margin, s))
        .x_label_area_size(px(40.0, s))
        .y_label_area_size(px(60.0, s))
        .build_cartesian_2d(x, (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)))
        .map_err(err)
}

/// The grid, the axes and their labels; latency in ms up, `x_desc` across.
fn mesh<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    x_desc: &str,
    x_labels: usize,
    x_label: &dyn Fn(&f64) -> String,
    s: f64,
) -> Result<(), String> {
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("latency (ms, log scale)")
        .x_labels(x_labels)
        .x_label_formatter(x_label)
        .y_label_formatter(&ms_label)
        .label_style(text(13.0, s, &BLACK))
        .axis_desc_style(text(14.0, s, &BLACK))
        .max_light_lines(1)
        .light_line_style(RGBColor(235, 235, 235).stroke_width(px(1.0, s)))
        .bold_line_style(RGBColor(210, 210, 210).stroke_width(px(1.0, s)))
        .axis_style(BLACK.stroke_width(px(1.0, s)))
        .draw()
        .map_err(err)
}

/// Width of a series' sample in the legend, before scaling.
const SAMPLE: f64 = 24.0;

/// The box naming every labelled series, at `position`. Each sample is drawn from the point its
/// legend function gets to [`SAMPLE`] to the right of it.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    position: SeriesLabelPosition,
    s: f64,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .margin(px(10.0, s))
        .legend_area_size(px(SAMPLE + 8.0, s))
        .label_font(text(12.0, s, &BLACK))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(err)
}

/// Writes the latency-against-p plot of `cells` into `dir`.
pub fn latency_vs_p(dir: &Path, cells: &[SweepCell]) -> Result<Vec<String>, String> {
    if cells.is_empty() {
        return Ok(Vec::new());
    }
    write(dir, LATENCY_VS_P, &Sweep { cells })
}

/// Writes the crash run's timeline into `dir`.
pub fn crash_timeline(
    dir: &Path,
    buckets: &[Bucket],
    events: &[EventRow],
    bucket_ms: u64,
) -> Result<Vec<String>, String> {
    if buckets.is_empty() {
        return Ok(Vec::new());
    }
    let timeline = Timeline {
        buckets,
        events,
        bucket_ms,
    };
    write(dir, CRASH_TIMELINE, &timeline)
}

/// The latency-against-p plot: a panel for the median and one for the 99th percentile.
struct Sweep<'a> {
    cells: &'a [SweepCell],
}

/// A value shown of a row: its name, and how to read it.
type Pick<T> = (&'static str, fn(&T) -> u64);

/// The panels of [`Sweep`]: title and the percentile shown.
const PANELS: [Pick<SweepCell>; 2] = [
    ("median", |c| c.stats.p50_us),
    ("99th percentile", |c| c.stats.p99_us),
];

impl Plot for Sweep<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, s: f64) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        // The bitmap backend draws a text's capitals a quarter of its size above its layout box.
        let root = root
            .margin(px(8.0, s), 0, 0, 0)
            .titled(
                "Latency against p (5 clients): cache on (solid) and off (dashed)",
                text(22.0, s, &BLACK),
            )
            .map_err(err)?;
        let xs = ps(self.cells);
        let x = xs.first().copied().unwrap_or(0.0) - 0.05..xs.last().copied().unwrap_or(1.0) + 0.05;
        let values: Vec<f64> = self
            .cells
            .iter()
            .flat_map(|c| [c.stats.p50_us, c.stats.p99_us])
            .filter(|v| *v > 0)
            .map(|v| v as f64 / 1000.0)
            .collect();
        let y_lo = values.iter().copied().fold(f64::INFINITY, f64::min) / 1.5;
        let y_hi = values.iter().copied().fold(0.0, f64::max) * 1.6;
        for (panel, (title, pick)) in root.split_evenly((1, 2)).iter().zip(PANELS) {
            let mut chart = chart(panel, (title, 18.0), x.clone(), (y_lo, y_hi), 10.0, s)?;
            let x_desc = "p (probability of a purchase after a query)";
            mesh(&mut chart, x_desc, 10, &|v| format!("{v:.1}"), s)?;
            for kind in Kind::ALL {
                for cache in [true, false] {
                    let points: Vec<(f64, f64)> = xs
                        .iter()
                        .filter_map(|p| cell(self.cells, *p, cache, kind))
                        .filter(|c| c.stats.count > 0)
                        .map(|c| (c.p, pick(c).max(1) as f64 / 1000.0))
                        .collect();
                    sweep_series(&mut chart, points, kind, cache, s)?;
                }
            }
            if title == "median" {
                legend(&mut chart, SeriesLabelPosition::UpperLeft, s)?;
            }
        }
        root.present().map_err(err)
    }
}

/// The marker of a point of the sweep: a circle with the cache on, a triangle with it off.
fn marker<DB: DrawingBackend, C: Clone + 'static>(
    at: C,
    cache: bool,
    size: u32,
    color: RGBColor,
) -> DynElement<'static, DB, C> {
    if cache {
        Circle::new(at, size, color.filled()).into_dyn()
    } else {
        TriangleMarker::new(at, size + 1, color.filled()).into_dyn()
    }
}

/// One kind's line through `points` with its markers: solid with the cache on, dashed with it off.
fn sweep_series<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    points: Vec<(f64, f64)>,
    kind: Kind,
    cache: bool,
    s: f64,
) -> Result<(), String> {
    if points.is_empty() {
        return Ok(());
    }
    let c = color(kind);
    let line = c.stroke_width(px(2.0, s));
    let size = px(4.0, s);
    chart
        .draw_series(points.iter().map(|p| marker(*p, cache, size, c)))
        .map_err(err)?;
    let series = if cache {
        chart.draw_series(LineSeries::new(points, line))
    } else {
        chart.draw_series(DashedLineSeries::new(points, px(6.0, s), px(4.0, s), line))
    };
    let cache_on = if cache { "on" } else { "off" };
    // In the legend the dashed line leaves a gap around its marker, as its dashes do.
    let (m, gap) = (size as i32, if cache { 0 } else { size as i32 });
    let half = px(SAMPLE / 2.0, s) as i32;
    series
        .map_err(err)?
        .label(format!("{} (cache {cache_on})", kind.as_str()))
        .legend(move |(x, y)| {
            EmptyElement::at((x + half, y))
                + PathElement::new(vec![(-half, 0), (-gap, 0)], line)
                + PathElement::new(vec![(gap, 0), (half, 0)], line)
                + marker((0, 0), cache, m as u32, c)
        });
    Ok(())
}

/// The crash run's timeline.
struct Timeline<'a> {
    buckets: &'a [Bucket],
    events: &'a [EventRow],
    bucket_ms: u64,
}

impl Plot for Timeline<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, s: f64) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let b = self.buckets;
        let t_hi = b
            .iter()
            .map(|b| b.t_ms + self.bucket_ms)
            .max()
            .unwrap_or(1000) as f64
            / 1000.0;
        let lo = b.iter().map(|b| b.p50_us.max(1)).min().unwrap_or(100) as f64 / 1000.0 / 1.5;
        let hi = b.iter().map(|b| b.max_us).max().unwrap_or(1000) as f64 / 1000.0 * 2.5;
        let caption = format!(
            "Crash run: latency over time ({} ms buckets); kills in red, restarts in green",
            self.bucket_ms
        );
        let mut chart = chart(&root, (&caption, 20.0), 0.0..t_hi, (lo, hi), 12.0, s)?;
        let x_label = |v: &f64| {
            if t_hi < 10.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            }
        };
        let x_desc = "start of the request (s since the run began)";
        mesh(&mut chart, x_desc, 15, &x_label, s)?;
        for e in self.events {
            event_line(&mut chart, e, (lo, hi), s)?;
        }
        for kind in Kind::ALL {
            let c = color(kind);
            let lines: [(Pick<Bucket>, ShapeStyle); 2] = [
                (("slowest", |b| b.max_us), c.stroke_width(px(1.5, s))),
                (
                    ("median", |b| b.p50_us),
                    c.mix(0.45).stroke_width(px(1.0, s)),
                ),
            ];
            for (pick, style) in lines {
                self.bucket_line(&mut chart, kind, pick, style, s)?;
            }
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight, s)?;
        root.present().map_err(err)
    }
}

impl Timeline<'_> {
    /// A line through `value` of `kind`'s buckets, at the middle of each, labelled `what`.
    fn bucket_line<'a, DB: DrawingBackend + 'a>(
        &self,
        chart: &mut Chart<'a, DB>,
        kind: Kind,
        (what, value): Pick<Bucket>,
        style: ShapeStyle,
        s: f64,
    ) -> Result<(), String> {
        let mid = self.bucket_ms as f64 / 2000.0;
        let points: Vec<(f64, f64)> = self
            .buckets
            .iter()
            .filter(|b| b.kind == kind)
            .map(|b| {
                (
                    b.t_ms as f64 / 1000.0 + mid,
                    value(b).max(1) as f64 / 1000.0,
                )
            })
            .collect();
        if points.is_empty() {
            return Ok(());
        }
        let width = px(SAMPLE, s) as i32;
        chart
            .draw_series(LineSeries::new(points, style))
            .map_err(err)?
            .label(format!("{}: {what}", kind.as_str()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + width, y)], style));
        Ok(())
    }
}

/// A kill (red, labelled with the replica) or a restart (green) across the whole height.
fn event_line<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    e: &EventRow,
    (lo, hi): (f64, f64),
    s: f64,
) -> Result<(), String> {
    let t = e.t_ms as f64 / 1000.0;
    let (c, label) = match e.event.as_str() {
        "kill" => (
            RGBColor(200, 0, 0),
            format!(
                "kill {}{}",
                e.replica,
                if e.leader { " (leader)" } else { "" }
            ),
        ),
        "restart" => (RGBColor(0, 150, 0), String::new()),
        _ => return Ok(()),
    };
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(t, lo), (t, hi)],
            c.stroke_width(px(1.5, s)),
        )))
        .map_err(err)?;
    if !label.is_empty() {
        let style = text(12.0, s, &c).pos(Pos::new(HPos::Left, VPos::Top));
        let beside = (px(4.0, s) as i32, 0);
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((t, hi / 1.15)) + Text::new(label, beside, style),
            ))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Stats;

    #[test]
    fn log_ticks_are_1_2_5() {
        assert_eq!(
            log_ticks(0.15, 30.0),
            vec![0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0]
        );
    }

    #[test]
    fn png_text_is_drawn_anti_aliased_from_the_built_in_font() {
        load_font().unwrap();
        let (w, h) = (220, 40);
        let mut buf = vec![255u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            let style = text(20.0, 1.0, &BLACK);
            root.draw(&Text::new("kill 3 (leader)", (5, 10), style))
                .unwrap();
            root.present().unwrap();
        }
        let pixels: Vec<&[u8]> = buf.chunks(3).collect();
        let dark = pixels.iter().filter(|p| p[0] < 64).count();
        let grey = pixels.iter().filter(|p| (64..224).contains(&p[0])).count();
        assert!(dark > 100, "{dark} dark pixels");
        assert!(grey > 50, "{grey} grey pixels: the edges are not smoothed");
    }

    #[test]
    fn both_plots_are_written_from_synthetic_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut cells = Vec::new();
        for (i, p) in [0.0, 0.4, 0.8].iter().enumerate() {
            for cache in [true, false] {
                for kind in Kind::ALL {
                    let base = 200 * (i as u64 + 1) * if cache { 1 } else { 2 };
                    cells.push(SweepCell {
                        p: *p,
                        cache,
                        kind,
                        stats: Stats::of([base, base * 2, base * 10]),
                    });
                }
            }
        }
        let files = latency_vs_p(dir.path(), &cells).unwrap();
        assert_eq!(files, vec!["latency-vs-p.svg", "latency-vs-p.png"]);
        let svg = std::fs::read_to_string(dir.path().join("latency-vs-p.svg")).unwrap();
        assert!(
            svg.contains("<svg")
                && svg.contains("99th percentile")
                && svg.contains("query (cache off)")
        );

        let buckets = vec![
            Bucket {
                t_ms: 0,
                kind: Kind::Query,
                count: 10,
                p50_us: 300,
                max_us: 900,
            },
            Bucket {
                t_ms: 500,
                kind: Kind::Query,
                count: 10,
                p50_us: 320,
                max_us: 1500,
            },
            Bucket {
                t_ms: 500,
                kind: Kind::Buy,
                count: 10,
                p50_us: 3000,
                max_us: 900_000,
            },
        ];
        let events = vec![EventRow {
            t_ms: 600,
            event: "kill".into(),
            replica: 3,
            leader: true,
        }];
        let files = crash_timeline(dir.path(), &buckets, &events, 500).unwrap();
        assert_eq!(files.len(), 2);
        let svg = std::fs::read_to_string(dir.path().join("crash-timeline.svg")).unwrap();
        assert!(svg.contains("kill 3 (leader)"));
        assert!(
            std::fs::metadata(dir.path().join("crash-timeline.png"))
                .unwrap()
                .len()
                > 1000
        );
        assert!(latency_vs_p(dir.path(), &[]).unwrap().is_empty());
        if let Ok(keep) = std::env::var("PLOT_TEST_KEEP") {
            // To look at the synthetic plots: PLOT_TEST_KEEP=folder cargo test -p experiment plot
            for f in [
                "latency-vs-p.svg",
                "latency-vs-p.png",
                "crash-timeline.svg",
                "crash-timeline.png",
            ] {
                std::fs::copy(dir.path().join(f), Path::new(&keep).join(f)).unwrap();
            }
        }
    }
}
