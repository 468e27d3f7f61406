//! SVG for the sensitivity report: one tornado chart per claim ratio and
//! the claim map (hand-written, like every chart of the reports).

use crate::headline::ClaimThresholds;
use crate::sensitivity::{self, ClaimRatio, Sensitivity};
use crate::svg::axes::{nice_ticks, Scale};
use crate::svg::{text_width, FONT, GRID, INK, MUTED};
use crate::text::{escape, short};

const WIDTH: f64 = 680.0;
const LOW: &str = "#4e79a7";
const HIGH: &str = "#f28e2b";
const BAR: &str = "#c9d6e3";
const THRESHOLD: &str = "#b42318";

/// A document of the given height (the width of every chart).
struct Doc {
    buf: String,
}

impl Doc {
    fn new(title: &str, height: f64) -> Self {
        let mut buf = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" font-family=\"{FONT}\">\n<title>{}</title>\n<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\" fill=\"#ffffff\"/>\n",
            escape(title)
        );
        buf.push_str(&format!(
            "<text x=\"16\" y=\"22\" font-size=\"15\" font-weight=\"600\" fill=\"{INK}\">{}</text>\n",
            escape(title)
        ));
        Doc { buf }
    }

    fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, fill: &str, s: &str) {
        self.buf.push_str(&format!(
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" text-anchor=\"{anchor}\" fill=\"{fill}\">{}</text>\n",
            escape(s)
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, width: f64, dash: &str) {
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{dash}\"")
        };
        self.buf.push_str(&format!(
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{stroke}\" stroke-width=\"{width}\"{dash}/>\n"
        ));
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, tip: &str) {
        self.buf.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{fill}\" rx=\"2\"><title>{}</title></rect>\n",
            w.max(1.5),
            escape(tip)
        ));
    }

    fn dot(&mut self, x: f64, y: f64, fill: &str, tip: &str) {
        self.buf.push_str(&format!(
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"{fill}\" stroke=\"#ffffff\" stroke-width=\"1\"><title>{}</title></circle>\n",
            escape(tip)
        ));
    }

    fn finish(mut self) -> String {
        self.buf.push_str("</svg>\n");
        self.buf
    }
}

/// The tornado chart of one claim ratio (`tornado-<slug>.svg`).
pub fn tornado(s: &Sensitivity, which: ClaimRatio) -> String {
    let th = ClaimThresholds::default();
    let (threshold, crit) = which.threshold(&th);
    let bars = sensitivity::tornado(s, which);
    let base = s.baseline.as_ref().and_then(|h| {
        which
            .ratio(h)
            .value
            .filter(|_| which.ratio(h).kind == crate::RatioKind::Finite)
    });
    let row_h = 26.0;
    let top = 64.0;
    let height = (top + row_h * bars.len().max(1) as f64 + 48.0).max(200.0);
    let mut d = Doc::new(&format!("Tornado: {}", which.title()), height);
    d.text(
        16.0,
        40.0,
        11.5,
        "start",
        MUTED,
        &format!(
            "claim “{}”: ratio {crit} · baseline {} · bars: span over each parameter's values",
            which.seed_claim(),
            base.map(short).unwrap_or_else(|| "not a number".into())
        ),
    );
    // Legend.
    d.dot(20.0, 52.0, LOW, "lower value");
    d.text(28.0, 56.0, 11.0, "start", INK, "lower value");
    d.dot(110.0, 52.0, HIGH, "higher value");
    d.text(118.0, 56.0, 11.0, "start", INK, "higher value");
    d.line(208.0, 52.0, 226.0, 52.0, INK, 2.0, "");
    d.text(230.0, 56.0, 11.0, "start", INK, "baseline");
    d.line(290.0, 52.0, 308.0, 52.0, THRESHOLD, 2.0, "3 3");
    d.text(312.0, 56.0, 11.0, "start", INK, "claim threshold");
    let label_w = bars
        .iter()
        .map(|b| text_width(&b.parameter, 11.5))
        .fold(60.0, f64::max)
        .min(200.0);
    let left = 16.0 + label_w + 10.0;
    let right = WIDTH - 120.0;
    let bottom = top + row_h * bars.len().max(1) as f64;
    if bars.is_empty() {
        d.text(
            WIDTH / 2.0,
            top + 20.0,
            13.0,
            "middle",
            MUTED,
            "no parameter",
        );
        return d.finish();
    }
    let mut lo = threshold;
    let mut hi = threshold;
    for v in base.into_iter().chain(
        bars.iter()
            .flat_map(|b| b.span.map(|(a, z)| [a, z]).into_iter().flatten()),
    ) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let (ticks, d0, d1) = nice_ticks(lo.min(0.0), hi, 6);
    let x = Scale {
        log: false,
        d0,
        d1,
        r0: left,
        r1: right,
    };
    for &t in &ticks {
        let px = x.map(t);
        d.line(px, top - 4.0, px, bottom, GRID, 1.0, "");
        d.text(px, bottom + 16.0, 11.0, "middle", MUTED, &short(t));
    }
    d.line(left, bottom, right, bottom, INK, 1.0, "");
    d.text(
        (left + right) / 2.0,
        bottom + 34.0,
        12.0,
        "middle",
        INK,
        which.title(),
    );
    for (i, b) in bars.iter().enumerate() {
        let cy = top + row_h * (i as f64 + 0.5);
        d.text(left - 8.0, cy + 4.0, 11.5, "end", INK, &b.parameter);
        let tip: Vec<String> = b
            .points
            .iter()
            .map(|p| format!("{} = {}: {}", b.parameter, p.value, p.shown))
            .collect();
        if let Some((a, z)) = b.span {
            d.rect(
                x.map(a),
                cy - 8.0,
                x.map(z) - x.map(a),
                16.0,
                BAR,
                &format!("swing {} · {}", short(b.swing), tip.join(" · ")),
            );
        }
        let n = b.points.len();
        let mut notes = Vec::new();
        for (j, p) in b.points.iter().enumerate() {
            // Lower values blue, higher orange (the default sits between).
            let color = if j < n / 2 || (n == 1 && p.label == "low") {
                LOW
            } else {
                HIGH
            };
            match p.x {
                Some(v) => d.dot(
                    x.map(v),
                    cy,
                    color,
                    &format!("{} = {}: {}", b.parameter, p.value, p.shown),
                ),
                None => notes.push(format!("{}: {}", p.value, p.shown)),
            }
        }
        if b.off_scale || !notes.is_empty() {
            d.text(
                right + 6.0,
                cy + 4.0,
                10.5,
                "start",
                THRESHOLD,
                &notes.join("; "),
            );
        }
    }
    if let Some(b) = base {
        let px = x.map(b);
        d.line(px, top - 6.0, px, bottom, INK, 2.0, "");
    }
    let px = x.map(threshold);
    d.line(px, top - 6.0, px, bottom, THRESHOLD, 1.5, "3 3");
    d.finish()
}

/// The claim map as a heat map: one row per setting, one column per claim
/// (`claim-map.svg`).
pub fn claim_map(s: &Sensitivity) -> String {
    let row_h = 18.0;
    let top = 70.0;
    let n = s.settings.len().max(1) as f64;
    let height = top + row_h * n + 20.0;
    let mut d = Doc::new("Claim map: does each claim hold at each value?", height);
    let items = [
        ("holds", "#0f7b5f"),
        ("does not hold", "#b42318"),
        ("undetermined", "#d69e00"),
        ("failed", "#9aa5b1"),
    ];
    let mut lx = 16.0;
    for (label, color) in items {
        d.rect(lx, 34.0, 12.0, 12.0, color, label);
        d.text(lx + 16.0, 44.0, 11.0, "start", INK, label);
        lx += 30.0 + text_width(label, 11.0);
    }
    let label_x = 16.0;
    let col0 = 300.0;
    let col_w = (WIDTH - col0 - 16.0) / 3.0;
    for (k, c) in ClaimRatio::ALL.iter().enumerate() {
        d.text(
            col0 + col_w * (k as f64 + 0.5),
            top - 6.0,
            11.5,
            "middle",
            INK,
            c.seed_claim(),
        );
    }
    let mut last_param = "";
    for (i, set) in s.settings.iter().enumerate() {
        let y = top + row_h * i as f64;
        if set.parameter != last_param {
            d.line(label_x, y, WIDTH - 16.0, y, GRID, 1.0, "");
            last_param = &set.parameter;
        }
        d.text(
            label_x,
            y + 13.0,
            11.0,
            "start",
            INK,
            &format!(
                "{} = {}{}",
                set.parameter,
                set.value,
                if set.baseline { " (default)" } else { "" }
            ),
        );
        for (k, c) in ClaimRatio::ALL.iter().enumerate() {
            let (text, class) = sensitivity::cell(set, *c);
            let color = match class {
                "yes" => "#0f7b5f",
                "no" => "#b42318",
                "und" => "#d69e00",
                _ => "#9aa5b1",
            };
            let ratio = set
                .headline
                .as_ref()
                .map(|h| c.ratio(h).display())
                .unwrap_or_default();
            let x0 = col0 + col_w * k as f64 + 2.0;
            d.rect(
                x0,
                y + 2.0,
                col_w - 4.0,
                row_h - 4.0,
                color,
                &format!(
                    "{} = {}: {} — {text}, ratio {ratio}",
                    set.parameter,
                    set.value,
                    c.seed_claim()
                ),
            );
            d.text(
                x0 + (col_w - 4.0) / 2.0,
                y + 13.0,
                10.5,
                "middle",
                "#ffffff",
                &ratio,
            );
        }
    }
    d.finish()
}
