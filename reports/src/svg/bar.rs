//! Stacked bar charts over categories (error causes per level, VMs per
//! cloudlet).

use super::axes::{nice_ticks, x_axis, y_axis, Frame, Scale, TickFormat};
use super::{legend, LegendItem, Svg, HEIGHT, WIDTH};

#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub color: String,
    /// One value per category.
    pub values: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub categories: Vec<String>,
    pub stacks: Vec<Stack>,
    pub y_format: TickFormat,
    pub show_legend: bool,
    pub note: Option<String>,
    /// Fix the top of the y axis.
    pub y_max: Option<f64>,
    /// Write each bar's total above it.
    pub total_labels: bool,
}

impl BarChart {
    pub fn render(&self) -> String {
        let mut svg = Svg::new(&self.title);
        let items: Vec<LegendItem> = if self.show_legend {
            self.stacks
                .iter()
                .map(|s| LegendItem {
                    label: s.name.clone(),
                    color: s.color.clone(),
                    dash: None,
                    square: true,
                })
                .collect()
        } else {
            vec![]
        };
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
        if self.categories.is_empty() {
            svg.no_data("no data");
            return svg.finish();
        }
        let totals: Vec<f64> = (0..self.categories.len())
            .map(|i| {
                self.stacks
                    .iter()
                    .map(|s| s.values.get(i).copied().unwrap_or(0.0).max(0.0))
                    .sum()
            })
            .collect();
        let ymax = self
            .y_max
            .unwrap_or_else(|| totals.iter().copied().fold(0.0, f64::max));
        let (yt, ylo, yhi) = nice_ticks(0.0, ymax, 5);
        let y = Scale {
            log: false,
            d0: ylo,
            d1: yhi,
            r0: fr.bottom,
            r1: fr.top,
        };
        y_axis(&mut svg, &fr, &y, &yt, self.y_format, &self.y_label);
        let n = self.categories.len() as f64;
        let slot = (fr.right - fr.left) / n;
        let bw = (slot * 0.7).min(56.0);
        let ticks: Vec<(f64, String)> = self
            .categories
            .iter()
            .enumerate()
            .map(|(i, c)| (fr.left + slot * (i as f64 + 0.5), c.clone()))
            .collect();
        for (i, (cx, cat)) in ticks.iter().enumerate() {
            let mut base = 0.0;
            for s in &self.stacks {
                let v = s.values.get(i).copied().unwrap_or(0.0).max(0.0);
                if v <= 0.0 {
                    continue;
                }
                let (y0, y1) = (y.map(base), y.map(base + v));
                svg.rect(
                    cx - bw / 2.0,
                    y1,
                    bw,
                    (y0 - y1).max(0.5),
                    &s.color,
                    Some(&format!(
                        "{cat}: {} {}",
                        s.name,
                        super::axes::fmt_tick(v, self.y_format)
                    )),
                );
                base += v;
            }
            if self.total_labels {
                let label = super::axes::fmt_tick(totals[i], self.y_format);
                if bw >= super::text_width(&label, 10.0) - 6.0 {
                    svg.text(
                        *cx,
                        y.map(totals[i]) - 4.0,
                        10.0,
                        "middle",
                        super::INK,
                        &label,
                    );
                }
            }
        }
        x_axis(&mut svg, &fr, &ticks, &self.x_label);
        svg.finish()
    }
}
