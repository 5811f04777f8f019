//! The plots, as SVG (plotters' SVG backend: text is left to the viewer's fonts) and as PNG (the
//! [`raster`](crate::raster) backend with a built-in bitmap font, drawn 1.6 times larger).
//!
//! - [`LATENCY_VS_P`]: median and 99th percentile of each request kind against p, cache on (solid,
//!   circles) and off (dashed, triangles), on a log scale.
//! - [`CRASH_TIMELINE`]: latency over time in the crash run, per kind the slowest request and the
//!   median of each bucket of start times, with every kill (red) and restart (green) marked.

use crate::analysis::{cell, ps, Bucket, SweepCell};
use crate::data::{EventRow, Kind};
use crate::raster::Raster;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// File stem of the latency-against-p plot.
pub const LATENCY_VS_P: &str = "latency-vs-p";
/// File stem of the crash run's timeline.
pub const CRASH_TIMELINE: &str = "crash-timeline";

/// Size of the SVG plots; the PNGs are [`PNG_SCALE`] times larger.
const SIZE: (u32, u32) = (1100, 560);
/// How much larger the PNG is drawn than the SVG (text, lines and canvas alike).
const PNG_SCALE: f64 = 1.6;

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

/// Writes the latency-against-p plot of `cells` into `dir`.
pub fn latency_vs_p(dir: &Path, cells: &[SweepCell]) -> Result<Vec<String>, String> {
    if cells.is_empty() {
        return Ok(Vec::new());
    }
    let svg = dir.join(format!("{LATENCY_VS_P}.svg"));
    draw_sweep(SVGBackend::new(&svg, SIZE).into_drawing_area(), cells, 1.0)?;
    let mut raster = Raster::new(
        (f64::from(SIZE.0) * PNG_SCALE) as u32,
        (f64::from(SIZE.1) * PNG_SCALE) as u32,
    );
    draw_sweep(raster.backend().into_drawing_area(), cells, PNG_SCALE)?;
    raster.write_png(&dir.join(format!("{LATENCY_VS_P}.png")))?;
    Ok(vec![
        format!("{LATENCY_VS_P}.svg"),
        format!("{LATENCY_VS_P}.png"),
    ])
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
    let svg = dir.join(format!("{CRASH_TIMELINE}.svg"));
    draw_timeline(
        SVGBackend::new(&svg, SIZE).into_drawing_area(),
        buckets,
        events,
        bucket_ms,
        1.0,
    )?;
    let mut raster = Raster::new(
        (f64::from(SIZE.0) * PNG_SCALE) as u32,
        (f64::from(SIZE.1) * PNG_SCALE) as u32,
    );
    draw_timeline(
        raster.backend().into_drawing_area(),
        buckets,
        events,
        bucket_ms,
        PNG_SCALE,
    )?;
    raster.write_png(&dir.join(format!("{CRASH_TIMELINE}.png")))?;
    Ok(vec![
        format!("{CRASH_TIMELINE}.svg"),
        format!("{CRASH_TIMELINE}.png"),
    ])
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

/// Scales a length in pixels.
fn px(v: f64, s: f64) -> u32 {
    (v * s).round() as u32
}

fn draw_sweep<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    cells: &[SweepCell],
    s: f64,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(
            "Latency against p (5 clients): cache on (solid) and off (dashed)",
            ("sans-serif", 22.0 * s).into_font().color(&BLACK),
        )
        .map_err(err)?;
    let panels = root.split_evenly((1, 2));
    let xs = ps(cells);
    let (x_lo, x_hi) = (
        xs.first().copied().unwrap_or(0.0) - 0.05,
        xs.last().copied().unwrap_or(1.0) + 0.05,
    );
    let values: Vec<f64> = cells
        .iter()
        .flat_map(|c| [c.stats.p50_us, c.stats.p99_us])
        .filter(|v| *v > 0)
        .map(|v| v as f64 / 1000.0)
        .collect();
    let y_lo = values.iter().copied().fold(f64::INFINITY, f64::min) / 1.5;
    let y_hi = values.iter().copied().fold(0.0, f64::max) * 1.6;
    for (panel, (title, pick)) in panels.iter().zip([
        (
            "median",
            (|c: &SweepCell| c.stats.p50_us) as fn(&SweepCell) -> u64,
        ),
        ("99th percentile", |c: &SweepCell| c.stats.p99_us),
    ]) {
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 18.0 * s).into_font().color(&BLACK))
            .margin(px(10.0, s))
            .x_label_area_size(px(40.0, s))
            .y_label_area_size(px(60.0, s))
            .build_cartesian_2d(
                x_lo..x_hi,
                (y_lo..y_hi)
                    .log_scale()
                    .with_key_points(log_ticks(y_lo, y_hi)),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("p (probability of a purchase after a query)")
            .y_desc("latency (ms, log scale)")
            .x_labels(10)
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_label_formatter(&ms_label)
            .label_style(("sans-serif", 13.0 * s).into_font().color(&BLACK))
            .axis_desc_style(("sans-serif", 14.0 * s).into_font().color(&BLACK))
            .max_light_lines(1)
            .light_line_style(RGBColor(235, 235, 235).stroke_width(px(1.0, s)))
            .bold_line_style(RGBColor(210, 210, 210).stroke_width(px(1.0, s)))
            .axis_style(BLACK.stroke_width(px(1.0, s)))
            .draw()
            .map_err(err)?;
        for kind in Kind::ALL {
            for cache in [true, false] {
                let points: Vec<(f64, f64)> = xs
                    .iter()
                    .filter_map(|p| cell(cells, *p, cache, kind))
                    .filter(|c| c.stats.count > 0)
                    .map(|c| (c.p, pick(c).max(1) as f64 / 1000.0))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                let c = color(kind);
                let line = c.stroke_width(px(2.0, s));
                let label = format!(
                    "{} (cache {})",
                    kind.as_str(),
                    if cache { "on" } else { "off" }
                );
                let marker = px(4.0, s);
                if cache {
                    chart
                        .draw_series(LineSeries::new(points.clone(), line))
                        .map_err(err)?
                        .label(label)
                        .legend(move |(x, y)| {
                            EmptyElement::at((x, y))
                                + PathElement::new(
                                    vec![(-(marker as i32) * 3, 0), (marker as i32 * 3, 0)],
                                    line,
                                )
                                + Circle::new((0, 0), marker, c.filled())
                        });
                    chart
                        .draw_series(points.iter().map(|p| Circle::new(*p, marker, c.filled())))
                        .map_err(err)?;
                } else {
                    chart
                        .draw_series(DashedLineSeries::new(
                            points.clone(),
                            px(6.0, s),
                            px(4.0, s),
                            line,
                        ))
                        .map_err(err)?
                        .label(label)
                        .legend(move |(x, y)| {
                            EmptyElement::at((x, y))
                                + PathElement::new(
                                    vec![(-(marker as i32) * 3, 0), (-(marker as i32), 0)],
                                    line,
                                )
                                + PathElement::new(
                                    vec![(marker as i32, 0), (marker as i32 * 3, 0)],
                                    line,
                                )
                                + TriangleMarker::new((0, 0), marker + 1, c.filled())
                        });
                    chart
                        .draw_series(
                            points
                                .iter()
                                .map(|p| TriangleMarker::new(*p, marker + 1, c.filled())),
                        )
                        .map_err(err)?;
                }
            }
        }
        if title == "median" {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font(("sans-serif", 12.0 * s).into_font().color(&BLACK))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .draw()
                .map_err(err)?;
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

fn draw_timeline<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    buckets: &[Bucket],
    events: &[EventRow],
    bucket_ms: u64,
    s: f64,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let t_hi = buckets
        .iter()
        .map(|b| b.t_ms + bucket_ms)
        .max()
        .unwrap_or(1000) as f64
        / 1000.0;
    let lo = buckets.iter().map(|b| b.p50_us.max(1)).min().unwrap_or(100) as f64 / 1000.0 / 1.5;
    let hi = buckets.iter().map(|b| b.max_us).max().unwrap_or(1000) as f64 / 1000.0 * 2.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Crash run: latency over time ({} ms buckets); kills in red, restarts in green",
                bucket_ms
            ),
            ("sans-serif", 20.0 * s).into_font().color(&BLACK),
        )
        .margin(px(12.0, s))
        .x_label_area_size(px(40.0, s))
        .y_label_area_size(px(60.0, s))
        .build_cartesian_2d(
            0.0..t_hi,
            (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("start of the request (s since the run began)")
        .y_desc("latency (ms, log scale)")
        .y_label_formatter(&ms_label)
        .x_label_formatter(&|v| {
            if t_hi < 10.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            }
        })
        .x_labels(15)
        .label_style(("sans-serif", 13.0 * s).into_font().color(&BLACK))
        .axis_desc_style(("sans-serif", 14.0 * s).into_font().color(&BLACK))
        .max_light_lines(1)
        .light_line_style(RGBColor(238, 238, 238).stroke_width(px(1.0, s)))
        .bold_line_style(RGBColor(215, 215, 215).stroke_width(px(1.0, s)))
        .axis_style(BLACK.stroke_width(px(1.0, s)))
        .draw()
        .map_err(err)?;
    for e in events {
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
            _ => continue,
        };
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(t, lo), (t, hi)],
                c.stroke_width(px(1.5, s)),
            )))
            .map_err(err)?;
        if !label.is_empty() {
            chart
                .draw_series(std::iter::once(Text::new(
                    label,
                    (t, hi / 1.15),
                    ("sans-serif", 12.0 * s).into_font().color(&c).pos(
                        plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Left,
                            plotters::style::text_anchor::VPos::Top,
                        ),
                    ),
                )))
                .map_err(err)?;
        }
    }
    for kind in Kind::ALL {
        let of_kind: Vec<&Bucket> = buckets.iter().filter(|b| b.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        let c = color(kind);
        let mid = bucket_ms as f64 / 2000.0;
        let max_line = c.stroke_width(px(1.5, s));
        chart
            .draw_series(LineSeries::new(
                of_kind.iter().map(|b| {
                    (
                        b.t_ms as f64 / 1000.0 + mid,
                        b.max_us.max(1) as f64 / 1000.0,
                    )
                }),
                max_line,
            ))
            .map_err(err)?
            .label(format!("{}: slowest", kind.as_str()))
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x - px(12.0, s) as i32, y), (x + px(12.0, s) as i32, y)],
                    max_line,
                )
            });
        let median_line = c.mix(0.45).stroke_width(px(1.0, s));
        chart
            .draw_series(LineSeries::new(
                of_kind.iter().map(|b| {
                    (
                        b.t_ms as f64 / 1000.0 + mid,
                        b.p50_us.max(1) as f64 / 1000.0,
                    )
                }),
                median_line,
            ))
            .map_err(err)?
            .label(format!("{}: median", kind.as_str()))
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x - px(12.0, s) as i32, y), (x + px(12.0, s) as i32, y)],
                    median_line,
                )
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 12.0 * s).into_font().color(&BLACK))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
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
