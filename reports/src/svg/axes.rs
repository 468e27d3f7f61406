//! Scales, "nice" ticks and the plot frame.

use super::{Svg, GRID, INK, MUTED};
use crate::text::short;

/// Maps a data interval onto a pixel interval, linearly or by log2.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub log: bool,
    pub d0: f64,
    pub d1: f64,
    pub r0: f64,
    pub r1: f64,
}

impl Scale {
    pub fn map(&self, v: f64) -> f64 {
        let f = |x: f64| {
            if self.log {
                x.max(f64::MIN_POSITIVE).log2()
            } else {
                x
            }
        };
        let (a, b) = (f(self.d0), f(self.d1));
        if (b - a).abs() < f64::EPSILON {
            return (self.r0 + self.r1) / 2.0;
        }
        self.r0 + (f(v) - a) / (b - a) * (self.r1 - self.r0)
    }
}

/// Ticks covering [min, max] with a 1/2/5 × 10^k step, about `target` of
/// them; returns (ticks, low end, high end).
pub fn nice_ticks(min: f64, max: f64, target: usize) -> (Vec<f64>, f64, f64) {
    let (min, max) = if !min.is_finite() || !max.is_finite() {
        (0.0, 1.0)
    } else if (max - min).abs() < 1e-12 {
        if max == 0.0 {
            (0.0, 1.0)
        } else {
            (min.min(0.0), max.max(0.0) * 1.0 + max.abs() * 0.1)
        }
    } else {
        (min, max)
    };
    let raw = (max - min) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let lo = (min / step).floor() * step;
    let hi = (max / step).ceil() * step;
    let mut ticks = Vec::new();
    let mut v = lo;
    while v <= hi + step * 1e-9 && ticks.len() < 50 {
        ticks.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        v += step;
    }
    (ticks, lo, hi)
}

/// The plot area of a chart.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
}

/// How a value axis labels its ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TickFormat {
    Number,
    Percent,
}

pub fn fmt_tick(v: f64, f: TickFormat) -> String {
    match f {
        TickFormat::Number => short(v),
        TickFormat::Percent => format!("{}%", short(v * 100.0)),
    }
}

/// Horizontal grid lines and y tick labels.
pub fn y_axis(svg: &mut Svg, fr: &Frame, y: &Scale, ticks: &[f64], fmt: TickFormat, label: &str) {
    for &t in ticks {
        let py = y.map(t);
        svg.line(fr.left, py, fr.right, py, GRID, 1.0);
        svg.text(
            fr.left - 6.0,
            py + 4.0,
            11.0,
            "end",
            MUTED,
            &fmt_tick(t, fmt),
        );
    }
    let cy = (fr.top + fr.bottom) / 2.0;
    svg.raw(&format!(
        "<text x=\"14\" y=\"{cy:.1}\" font-size=\"12\" text-anchor=\"middle\" fill=\"{INK}\" transform=\"rotate(-90 14 {cy:.1})\">{}</text>",
        crate::text::escape(label)
    ));
}

/// The x axis line, tick marks and labels (positions in pixels), title.
pub fn x_axis(svg: &mut Svg, fr: &Frame, ticks: &[(f64, String)], label: &str) {
    svg.line(fr.left, fr.bottom, fr.right, fr.bottom, INK, 1.0);
    svg.line(fr.left, fr.top, fr.left, fr.bottom, INK, 1.0);
    // Thin out labels that would overlap.
    let widest = ticks
        .iter()
        .map(|(_, s)| super::text_width(s, 11.0))
        .fold(0.0, f64::max);
    let span = (fr.right - fr.left).max(1.0);
    let every = if ticks.len() > 1 {
        let need = (widest + 8.0) * ticks.len() as f64;
        (need / span).ceil().max(1.0) as usize
    } else {
        1
    };
    let mut last = f64::NEG_INFINITY;
    for (i, (px, s)) in ticks.iter().enumerate() {
        svg.line(*px, fr.bottom, *px, fr.bottom + 4.0, INK, 1.0);
        if i % every == 0 && *px - last >= widest + 4.0 {
            svg.text(*px, fr.bottom + 17.0, 11.0, "middle", MUTED, s);
            last = *px;
        }
    }
    svg.text(
        (fr.left + fr.right) / 2.0,
        fr.bottom + 36.0,
        12.0,
        "middle",
        INK,
        label,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_cover_the_range() {
        let (t, lo, hi) = nice_ticks(0.0, 317.0, 5);
        assert_eq!(lo, 0.0);
        assert!(hi >= 317.0);
        assert_eq!(t.first(), Some(&0.0));
        assert!(t.len() >= 4 && t.len() <= 9, "{t:?}");
        let (t, _, _) = nice_ticks(0.0, 0.0, 5);
        assert_eq!(t.first(), Some(&0.0));
    }

    #[test]
    fn log_scale_maps_doublings_evenly() {
        let s = Scale {
            log: true,
            d0: 50.0,
            d1: 800.0,
            r0: 0.0,
            r1: 400.0,
        };
        assert!((s.map(100.0) - 100.0).abs() < 1e-9);
        assert!((s.map(400.0) - 300.0).abs() < 1e-9);
    }
}
