//! The benchmarks' plots, as SVG files (plotters, no fonts needed: the
//! SVG names a font family and the viewer draws the text).

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;

/// Whether there was anything to draw (nothing: no file is written).
type Drawn = Result<bool, Box<dyn std::error::Error>>;

/// One color per series, in order, told apart in grey print too.
const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// A worker's latencies: (concurrency, p50, p99) points.
pub struct LatencySeries<'a> {
    /// The worker, as the legend names it.
    pub label: &'a str,
    /// (concurrency, p50, p99), by concurrency.
    pub points: Vec<(usize, Duration, Duration)>,
}

/// p50 (solid) and p99 (dashed) latency against concurrency, one color per
/// series, concurrency on a log scale; `false` when no series has a point.
pub fn latency(path: &Path, title: &str, series: &[LatencySeries]) -> Drawn {
    if series.iter().all(|one| one.points.is_empty()) {
        return Ok(false);
    }
    let micros = |d: &Duration| d.as_secs_f64() * 1e6;
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, _, p99)| micros(p99)))
        .fold(1.0, f64::max);
    let right = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(c, _, _)| *c as f64))
        .fold(2.0, f64::max);
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..right).log_scale(), (1.0..top * 1.5).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("callers (concurrency)")
        .y_desc("latency, µs (log)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (at, one) in series.iter().enumerate() {
        let color = COLORS[at % COLORS.len()];
        let p50: Vec<(f64, f64)> = one
            .points
            .iter()
            .map(|(c, p50, _)| (*c as f64, micros(p50)))
            .collect();
        let p99: Vec<(f64, f64)> = one
            .points
            .iter()
            .map(|(c, _, p99)| (*c as f64, micros(p99)))
            .collect();
        chart
            .draw_series(LineSeries::new(p50.clone(), color.stroke_width(2)))?
            .label(format!("{} p50", one.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            p50.iter()
                .map(|&point| Circle::new(point, 3, color.filled())),
        )?;
        chart
            .draw_series(DashedLineSeries::new(p99, 6, 4, color.stroke_width(1)))?
            .label(format!("{} p99", one.label))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(true)
}

/// One bar: a label and its stacked parts (name, µs).
pub struct Bar<'a> {
    /// What the bar is, under it.
    pub label: &'a str,
    /// Its parts from the bottom: (name, µs).
    pub parts: Vec<(&'a str, f64)>,
}

/// Stacked bars of CPU µs per event, one per worker, the parts in order
/// from the bottom and each labelled with its value; `false` when there
/// are no bars.
pub fn stacked(path: &Path, title: &str, bars: &[Bar]) -> Drawn {
    // plotters never ends laying out the labels of an axis of no bars.
    if bars.is_empty() {
        return Ok(false);
    }
    let top = bars
        .iter()
        .map(|bar| bar.parts.iter().map(|(_, micros)| micros).sum::<f64>())
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let labels: Vec<&str> = bars.iter().map(|bar| bar.label).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(
            // n - 1 makes n segments, one a bar.
            (0..bars.len().saturating_sub(1).max(1)).into_segmented(),
            0.0..top * 1.25,
        )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc("CPU per event, µs")
        .x_labels(bars.len())
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(at) => labels.get(*at).copied().unwrap_or("").to_owned(),
            _ => String::new(),
        })
        .draw()?;
    let names: Vec<&str> = bars
        .first()
        .map(|bar| bar.parts.iter().map(|(name, _)| *name).collect())
        .unwrap_or_default();
    for (part, name) in names.iter().enumerate() {
        let color = COLORS[part % COLORS.len()];
        let boxes = bars.iter().enumerate().map(|(at, bar)| {
            let below: f64 = bar.parts[..part].iter().map(|(_, micros)| micros).sum();
            let height = bar.parts[part].1;
            Rectangle::new(
                [
                    (SegmentValue::Exact(at), below),
                    (SegmentValue::Exact(at + 1), below + height),
                ],
                color.mix(0.85).filled(),
            )
        });
        chart
            .draw_series(boxes)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        let values = bars.iter().enumerate().map(|(at, bar)| {
            let below: f64 = bar.parts[..part].iter().map(|(_, micros)| micros).sum();
            let height = bar.parts[part].1;
            Text::new(
                format!("{height:.1}"),
                (SegmentValue::CenterOf(at), below + height / 2.0),
                ("sans-serif", 14).into_font().color(&BLACK),
            )
        });
        chart.draw_series(values)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_draw_is_said_not_an_endless_layout() {
        let path = std::env::temp_dir().join(format!("node-host-plot-{}.svg", std::process::id()));
        assert!(!stacked(&path, "none", &[]).unwrap());
        let empty = LatencySeries {
            label: "none",
            points: Vec::new(),
        };
        assert!(!latency(&path, "none", &[empty]).unwrap());
        assert!(!path.exists(), "nothing written");
        let one = Bar {
            label: "one",
            parts: vec![("hub", 3.0), ("worker", 2.0)],
        };
        assert!(stacked(&path, "one", &[one]).unwrap());
        let drawn = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(drawn.contains("<svg"), "{drawn}");
    }
}
