//! Hand-written SVG charts: no plotting crate, no script, no external font.
//!
//! - [`axes`]: scales, "nice" ticks, the plot frame with grid and labels
//! - [`line`]: line charts (several series, markers, dashes)
//! - [`bar`]: stacked bar charts over categories
//! - [`cdf`]: cumulative distributions from HDR histograms or percentiles

pub mod axes;
pub mod bar;
pub mod cdf;
pub mod line;

use crate::text::escape;

pub const WIDTH: f64 = 680.0;
pub const HEIGHT: f64 = 360.0;
pub const FONT: &str = "system-ui, -apple-system, &#39;Segoe UI&#39;, Roboto, &#39;DejaVu Sans&#39;, Arial, sans-serif";
pub const INK: &str = "#1f2933";
pub const MUTED: &str = "#52606d";
pub const GRID: &str = "#e4e7eb";

/// Colour of the n-th system: standard orange, P2P teal, then a
/// colour-blind-safe palette.
pub fn system_color(kind: crate::SystemKind, n: usize) -> &'static str {
    const OTHERS: [&str; 6] = [
        "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
    ];
    match kind {
        crate::SystemKind::Standard => "#d95f02",
        crate::SystemKind::P2p => "#1b9e77",
        crate::SystemKind::Other => OTHERS[n % OTHERS.len()],
    }
}

/// Colours for categories (error causes, cloudlets).
pub const CATEGORY: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// A growing SVG document.
pub struct Svg {
    buf: String,
}

impl Svg {
    pub fn new(title: &str) -> Self {
        let mut buf = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" font-family=\"{FONT}\">\n<title>{}</title>\n<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#ffffff\"/>\n",
            escape(title)
        );
        buf.push_str(&format!(
            "<text x=\"16\" y=\"22\" font-size=\"15\" font-weight=\"600\" fill=\"{INK}\">{}</text>\n",
            escape(title)
        ));
        Svg { buf }
    }

    pub fn raw(&mut self, s: &str) {
        self.buf.push_str(s);
        self.buf.push('\n');
    }

    /// Text; `anchor` is start, middle or end.
    #[allow(clippy::too_many_arguments)]
    pub fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, fill: &str, s: &str) {
        self.buf.push_str(&format!(
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" text-anchor=\"{anchor}\" fill=\"{fill}\">{}</text>\n",
            escape(s)
        ));
    }

    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, width: f64) {
        self.buf.push_str(&format!(
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{stroke}\" stroke-width=\"{width}\"/>\n"
        ));
    }

    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, tooltip: Option<&str>) {
        match tooltip {
            Some(t) => self.buf.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{fill}\"><title>{}</title></rect>\n",
                escape(t)
            )),
            None => self.buf.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{fill}\"/>\n"
            )),
        }
    }

    /// A "no data" note in the plot area.
    pub fn no_data(&mut self, why: &str) {
        self.text(WIDTH / 2.0, HEIGHT / 2.0, 13.0, "middle", MUTED, why);
    }

    pub fn finish(mut self) -> String {
        self.buf.push_str("</svg>\n");
        self.buf
    }
}

/// A legend entry: a line sample (with optional dash) or a filled square.
pub struct LegendItem {
    pub label: String,
    pub color: String,
    pub dash: Option<String>,
    pub square: bool,
}

/// Rough text width at a font size (no font metrics available).
pub fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.58
}

/// Lays the legend out in rows under the title; returns the y just below it.
pub fn legend(svg: &mut Svg, items: &[LegendItem], top: f64) -> f64 {
    if items.is_empty() {
        return top;
    }
    let (size, row_h, left, right) = (12.0, 18.0, 16.0, WIDTH - 16.0);
    let mut x = left;
    let mut y = top + 12.0;
    for it in items {
        let w = 24.0 + text_width(&it.label, size) + 16.0;
        if x + w > right && x > left {
            x = left;
            y += row_h;
        }
        if it.square {
            svg.rect(x, y - 9.0, 12.0, 12.0, &it.color, None);
        } else {
            let dash = it
                .dash
                .as_ref()
                .map(|d| format!(" stroke-dasharray=\"{d}\""))
                .unwrap_or_default();
            svg.raw(&format!(
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"2.5\"{dash}/>",
                x,
                y - 4.0,
                x + 18.0,
                y - 4.0,
                it.color
            ));
        }
        svg.text(x + 24.0, y, size, "start", INK, &it.label);
        x += w;
    }
    y + 10.0
}
