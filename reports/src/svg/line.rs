//! Line charts: several series over a numeric x axis.

use super::axes::{nice_ticks, x_axis, y_axis, Frame, Scale, TickFormat};
use super::{legend, LegendItem, Svg, HEIGHT, WIDTH};
use crate::text::short;

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: String,
    /// SVG stroke-dasharray, e.g. `6 4`.
    pub dash: Option<String>,
    pub points: Vec<(f64, f64)>,
    pub markers: bool,
    /// Draw as a step function (for CDFs).
    pub step: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XTicks {
    /// One tick per distinct x value of the data (concurrency levels); a
    /// log2 axis when the values span a factor of 8 or more.
    Data,
    /// Evenly spaced nice ticks on a linear axis.
    Nice,
}

#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub x_ticks: XTicks,
    pub y_format: TickFormat,
    /// Fix the top of the y axis (e.g. 1.0 for a CDF).
    pub y_max: Option<f64>,
    /// A note under the legend (e.g. "approximated from percentiles").
    pub note: Option<String>,
    /// Points to ring and label (e.g. each system's limit).
    pub marks: Vec<Mark>,
}

/// A ringed, labelled point.
#[derive(Debug, Clone)]
pub struct Mark {
    pub x: f64,
    pub y: f64,
    pub color: String,
    pub label: String,
}

impl LineChart {
    pub fn render(&self) -> String {
        let mut svg = Svg::new(&self.title);
        let items: Vec<LegendItem> = self
            .series
            .iter()
            .map(|s| LegendItem {
                label: s.name.clone(),
                color: s.color.clone(),
                dash: s.dash.clone(),
                square: false,
            })
            .collect();
        let mut top = legend(&mut svg, &items, 30.0);
        if let Some(n) = &self.note {
            svg.text(16.0, top + 6.0, 11.0, "start", super::MUTED, n);
            top += 14.0;
        }
        let fr = Frame {
            left: 64.0,
            top: top + 10.0,
            right: WIDTH - 24.0,
            bottom: HEIGHT - 48.0,
        };
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if pts.is_empty() {
            svg.no_data("no data");
            return svg.finish();
        }
        // y axis from 0.
        let ymax = self
            .y_max
            .unwrap_or_else(|| pts.iter().map(|p| p.1).fold(0.0, f64::max));
        let (yt, ylo, yhi) = nice_ticks(0.0, ymax, 5);
        let y = Scale {
            log: false,
            d0: ylo,
            d1: yhi,
            r0: fr.bottom,
            r1: fr.top,
        };
        y_axis(&mut svg, &fr, &y, &yt, self.y_format, &self.y_label);

        let mut xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        let (xmin, xmax) = (xs[0], xs[xs.len() - 1]);
        let pad = 14.0;
        let (x, xticks): (Scale, Vec<f64>) = match self.x_ticks {
            XTicks::Data => {
                let log = xmin > 0.0 && xmax / xmin >= 8.0;
                let s = Scale {
                    log,
                    d0: xmin,
                    d1: xmax,
                    r0: fr.left + pad,
                    r1: fr.right - pad,
                };
                let ticks = if xs.len() <= 16 {
                    xs.clone()
                } else {
                    nice_ticks(xmin, xmax, 6).0
                };
                (s, ticks)
            }
            XTicks::Nice => {
                let (t, lo, hi) = nice_ticks(xmin.min(0.0), xmax, 6);
                (
                    Scale {
                        log: false,
                        d0: lo,
                        d1: hi,
                        r0: fr.left,
                        r1: fr.right,
                    },
                    t,
                )
            }
        };
        let tick_px: Vec<(f64, String)> = xticks
            .iter()
            .filter(|t| **t >= x.d0 - 1e-9 && **t <= x.d1 + 1e-9)
            .map(|t| (x.map(*t), short(*t)))
            .collect();
        x_axis(&mut svg, &fr, &tick_px, &self.x_label);

        for s in &self.series {
            let mut p: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|(a, b)| a.is_finite() && b.is_finite())
                .collect();
            if p.is_empty() {
                continue;
            }
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut d = String::new();
            let mut prev: Option<(f64, f64)> = None;
            for (i, (a, b)) in p.iter().enumerate() {
                let (px, py) = (x.map(*a), y.map(*b));
                if i == 0 {
                    d.push_str(&format!("M{px:.1},{py:.1}"));
                } else {
                    if s.step {
                        if let Some((_, qy)) = prev {
                            d.push_str(&format!(" L{px:.1},{qy:.1}"));
                        }
                    }
                    d.push_str(&format!(" L{px:.1},{py:.1}"));
                }
                prev = Some((px, py));
            }
            let dash = s
                .dash
                .as_ref()
                .map(|d| format!(" stroke-dasharray=\"{d}\""))
                .unwrap_or_default();
            svg.raw(&format!(
                "<path d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2.2\" stroke-linejoin=\"round\"{dash}/>",
                s.color
            ));
            if s.markers {
                for (a, b) in &p {
                    svg.raw(&format!(
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.2\" fill=\"{}\"><title>{}</title></circle>",
                        x.map(*a),
                        y.map(*b),
                        s.color,
                        crate::text::escape(&format!(
                            "{}: {} → {}",
                            s.name,
                            short(*a),
                            super::axes::fmt_tick(*b, self.y_format)
                        ))
                    ));
                }
            }
        }
        for m in &self.marks {
            if !(m.x.is_finite() && m.y.is_finite()) {
                continue;
            }
            let (px, py) = (x.map(m.x), y.map(m.y));
            svg.raw(&format!(
                "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"7\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
                m.color
            ));
            // Label above the point, kept inside the plot.
            let w = super::text_width(&m.label, 11.0);
            let lx = px.clamp(fr.left + w / 2.0, fr.right - w / 2.0);
            let ly = if py - 12.0 < fr.top + 10.0 {
                py + 20.0
            } else {
                py - 12.0
            };
            svg.raw(&format!(
                "<text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"11\" font-weight=\"600\" text-anchor=\"middle\" fill=\"{}\" stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>",
                m.color,
                crate::text::escape(&m.label)
            ));
        }
        svg.finish()
    }
}
