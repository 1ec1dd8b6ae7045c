//! Latency-by-percentile plots: the shape that shows tails honestly.
//!
//! The x axis is in "nines": x = -log10(1 - p), so 0 → p0, 1 → p90, 2 → p99,
//! 3 → p99.9, 4 → p99.99. Each series stops at the resolution its sample
//! count supports (10,000 samples can say something about p99.99, not p99.999)
//! and ends in its maximum.

use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use plotters::prelude::*;

/// One line of the plot.
pub struct Series<'a> {
    pub label: String,
    pub histogram: &'a Histogram<u64>,
}

/// Points (nines, milliseconds) for one histogram of microseconds.
pub fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return vec![];
    }
    let max_nines = (h.len() as f64).log10().clamp(0.0, 5.0);
    let steps = (max_nines * 50.0).ceil() as usize;
    let mut pts: Vec<(f64, f64)> = (0..=steps)
        .map(|i| {
            let x = (i as f64 / 50.0).min(max_nines);
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect();
    pts.push((max_nines, h.max() as f64 / 1000.0));
    pts
}

/// Labels of the nines axis.
pub fn nines_label(x: f64) -> String {
    match x.round() as i32 {
        0 => "0%".into(),
        n => format!("{}%", 100.0 - 100.0 * 10f64.powi(-n)),
    }
}

/// Writes an SVG with one line per series.
pub fn write_svg(path: &Path, title: &str, series: &[Series<'_>]) -> Result<()> {
    let lines: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| (s.label.clone(), percentile_points(s.histogram)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    let x_max = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(1.0f64, f64::max)
        .ceil();
    let y_max = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(0.1f64, f64::max)
        * 1.1;

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&|x| nines_label(*x))
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .draw()
        .map_err(draw_err)?;
    for (i, (label, pts)) in lines.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(draw_err)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plot: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, record};

    #[test]
    fn labels_in_nines() {
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(3.0), "99.9%");
        assert_eq!(nines_label(4.0), "99.99%");
    }

    #[test]
    fn points_rise_and_stop_at_sample_resolution() {
        let mut h = new_histogram();
        for us in 1..=1000 {
            record(&mut h, us * 10);
        }
        let pts = percentile_points(&h);
        assert!(pts.windows(2).all(|w| w[1].1 >= w[0].1 && w[1].0 >= w[0].0));
        let last = pts.last().unwrap();
        assert!((last.0 - 3.0).abs() < 1e-9, "1000 samples reach 3 nines");
        assert!((last.1 - 10.0).abs() < 0.1, "ends at max = 10 ms: {last:?}");
        assert!(percentile_points(&new_histogram()).is_empty());
    }

    #[test]
    fn writes_an_svg() {
        let mut h = new_histogram();
        for us in 1..=5000 {
            record(&mut h, 500 + us);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        write_svg(
            &path,
            "test",
            &[Series {
                label: "a".into(),
                histogram: &h,
            }],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("99.9%") && svg.contains("<polyline"));
    }
}
