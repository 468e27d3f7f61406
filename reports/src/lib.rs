//! Reports comparing P2P and standard runs: Markdown, CSV, a self-contained
//! HTML page with hand-written SVG charts, and the headline comparison that
//! checks the seed's claims.
//!
//! The entry points are [`render`] (any set of runs) and [`compare`] (one
//! baseline, one candidate). Both write into an output directory:
//!
//! | file | content |
//! |---|---|
//! | `index.html` | one self-contained page: verdict, headline, charts, tables, footer |
//! | `summary.md` | the same tables in Markdown |
//! | `summary.csv` | one row per system and level |
//! | `headline.json` | limits, ratios, evidence flags and claim verdicts (only with one standard + one P2P run); with more systems, `others`: each other system at its limit against P2P ([`versus`]) |
//! | `*.svg` | every chart on its own |
//!
//! How the performance limit is chosen lives in [`limit`]; how the seed's
//! claims are judged lives in [`headline`]; the sensitivity report
//! (`testbed sensitivity`: tornado charts and the claim map) in
//! [`sensitivity`].

use std::fmt;
use std::path::{Path, PathBuf};

pub mod chaos;
pub mod charts;
pub mod headline;
pub mod html;
pub mod limit;
pub mod sensitivity;
pub mod sensitivity_charts;
pub mod svg;
pub mod tables;
mod text;
pub mod versus;

pub use headline::{
    Claim, ClaimThresholds, Evidence, Flag, Headline, Ratio, RatioKind, Ratios, ScaleCheck,
    SystemAtLimit, SystemEvidence, Verdict,
};
pub use limit::LimitRule;
pub use versus::VersusP2p;

/// How to build a report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReportOptions {
    /// Which level counts as a system's performance limit.
    pub limit: LimitRule,
    /// Page title; a default naming the systems is used when `None`.
    pub title: Option<String>,
    /// When a seed claim counts as reproduced.
    pub claims: ClaimThresholds,
    /// What `--check-scale` found, if it ran; a disagreement makes every
    /// claim `undetermined`.
    pub scale_check: ScaleCheck,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    // The cause is part of the message (one line names file and reason), so
    // it is not also exposed as `source()`, which would print it twice.
    #[error("{}: {error}", path.display())]
    Load {
        path: PathBuf,
        error: results::SchemaError,
    },
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("no runs to report")]
    NoRuns,
    #[error("system {label:?}: no level qualifies as the performance limit under rule {rule}")]
    NoLimit { label: String, rule: String },
    #[error("could not encode {what}: {message}")]
    Encode { what: String, message: String },
}

/// Reads and validates one results file; errors name the file.
pub fn load(path: &Path) -> Result<results::RunResults, ReportError> {
    let bytes = std::fs::read(path).map_err(|error| ReportError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    results::parse(&bytes).map_err(|error| ReportError::Load {
        path: path.to_path_buf(),
        error,
    })
}

/// Which side of the comparison a run is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemKind {
    Standard,
    P2p,
    Other,
}

impl SystemKind {
    /// From `system.kind` when set, else from the label.
    pub fn of(run: &results::RunResults) -> Self {
        let from = |s: &str| {
            let s = s.to_ascii_lowercase();
            if s.contains("p2p") {
                SystemKind::P2p
            } else if s.contains("standard") || s == "std" || s.contains("monolith") {
                SystemKind::Standard
            } else {
                SystemKind::Other
            }
        };
        match run.system.kind.as_deref() {
            Some(k) if from(k) != SystemKind::Other => from(k),
            _ => from(&run.system.label),
        }
    }
}

impl fmt::Display for SystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SystemKind::Standard => "standard",
            SystemKind::P2p => "p2p",
            SystemKind::Other => "other",
        })
    }
}

/// One run prepared for reporting: levels sorted, limit chosen, a unique
/// label and a file-name-safe slug.
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    pub run: &'a results::RunResults,
    pub label: String,
    pub slug: String,
    pub kind: SystemKind,
    /// Levels sorted by concurrency.
    pub levels: Vec<&'a results::LevelResult>,
    /// Index into `levels` of the performance limit; `None` when no level
    /// qualifies (no levels, or none under an error-rate threshold).
    pub limit: Option<usize>,
}

impl<'a> Prepared<'a> {
    pub fn limit_level(&self) -> Option<&'a results::LevelResult> {
        self.limit.map(|i| self.levels[i])
    }

    pub fn is_limit(&self, index: usize) -> bool {
        self.limit == Some(index)
    }
}

/// Sorts levels, picks limits and makes labels unique. A run without a
/// limit (e.g. interrupted before its first level) is still reported.
pub fn prepare<'a>(
    runs: &'a [results::RunResults],
    rule: &LimitRule,
) -> Result<Vec<Prepared<'a>>, ReportError> {
    if runs.is_empty() {
        return Err(ReportError::NoRuns);
    }
    let mut out: Vec<Prepared<'a>> = Vec::with_capacity(runs.len());
    for run in runs {
        let base = if run.system.label.trim().is_empty() {
            SystemKind::of(run).to_string()
        } else {
            run.system.label.trim().to_string()
        };
        let mut label = base.clone();
        let mut n = 2;
        while out.iter().any(|p| p.label == label) {
            label = format!("{base} ({n})");
            n += 1;
        }
        let mut slug = text::slug(&label);
        let mut n = 2;
        while out.iter().any(|p| p.slug == slug) {
            slug = format!("{}-{n}", text::slug(&label));
            n += 1;
        }
        let mut levels: Vec<&results::LevelResult> = run.levels.iter().collect();
        levels.sort_by_key(|l| l.level);
        let limit = limit::select(&levels, rule);
        out.push(Prepared {
            run,
            label,
            slug,
            kind: SystemKind::of(run),
            levels,
            limit,
        });
    }
    Ok(out)
}

/// The standard and P2P runs when there is exactly one of each and both
/// have a limit.
fn pair<'p, 'a>(prepared: &'p [Prepared<'a>]) -> Option<(&'p Prepared<'a>, &'p Prepared<'a>)> {
    let std: Vec<_> = prepared
        .iter()
        .filter(|p| p.kind == SystemKind::Standard)
        .collect();
    let p2p: Vec<_> = prepared
        .iter()
        .filter(|p| p.kind == SystemKind::P2p)
        .collect();
    match (std.as_slice(), p2p.as_slice()) {
        ([s], [p]) if s.limit.is_some() && p.limit.is_some() => Some((s, p)),
        _ => None,
    }
}

/// Renders a report for any set of runs into `out_dir` (created if
/// missing). Returns the headline when the runs are exactly one standard
/// and one P2P system (by `system.kind`, else by label) and both have a
/// performance limit under `opts.limit`.
pub fn render(
    runs: &[results::RunResults],
    out_dir: &Path,
    opts: &ReportOptions,
) -> Result<Option<Headline>, ReportError> {
    let prepared = prepare(runs, &opts.limit)?;
    let headline = pair(&prepared).and_then(|(s, p)| Headline::compute(s, p, opts));
    write_all(&prepared, headline.as_ref(), out_dir, opts)?;
    Ok(headline)
}

/// Compares a baseline (the standard system) with a candidate (the P2P
/// system), whatever their labels say, and writes the report. Fails with
/// [`ReportError::NoLimit`] (writing nothing) when either has no level
/// that qualifies as its limit.
pub fn compare(
    baseline: &results::RunResults,
    candidate: &results::RunResults,
    out_dir: &Path,
    opts: &ReportOptions,
) -> Result<Headline, ReportError> {
    let runs = [baseline.clone(), candidate.clone()];
    let mut prepared = prepare(&runs, &opts.limit)?;
    prepared[0].kind = SystemKind::Standard;
    prepared[1].kind = SystemKind::P2p;
    for p in &prepared {
        if p.limit.is_none() {
            return Err(ReportError::NoLimit {
                label: p.label.clone(),
                rule: opts.limit.to_string(),
            });
        }
    }
    let headline = Headline::compute(&prepared[0], &prepared[1], opts).ok_or_else(|| {
        ReportError::NoLimit {
            label: prepared[0].label.clone(),
            rule: opts.limit.to_string(),
        }
    })?;
    write_all(&prepared, Some(&headline), out_dir, opts)?;
    Ok(headline)
}

fn write_file(dir: &Path, name: &str, content: &str) -> Result<(), ReportError> {
    let path = dir.join(name);
    std::fs::write(&path, content).map_err(|error| ReportError::Io { path, error })
}

fn write_all(
    prepared: &[Prepared<'_>],
    headline: Option<&Headline>,
    out_dir: &Path,
    opts: &ReportOptions,
) -> Result<(), ReportError> {
    std::fs::create_dir_all(out_dir).map_err(|error| ReportError::Io {
        path: out_dir.to_path_buf(),
        error,
    })?;
    let charts = charts::build(prepared);
    for chart in &charts {
        write_file(out_dir, &chart.file, &chart.svg)?;
    }
    // Beyond the seed's two systems: every system against P2P.
    let versus = if prepared.len() > 2 {
        versus::compute(prepared)
    } else {
        Vec::new()
    };
    let mut md = tables::markdown(prepared, headline, opts);
    insert_before(&mut md, "## Levels", &versus::markdown(&versus));
    write_file(out_dir, "summary.md", &md)?;
    write_file(out_dir, "summary.csv", &tables::csv(prepared))?;
    let headline_path = out_dir.join("headline.json");
    match headline {
        Some(h) => {
            let encode = |e: serde_json::Error| ReportError::Encode {
                what: "headline.json".into(),
                message: e.to_string(),
            };
            // The seed's schema, plus the systems other than standard and P2P.
            let others: Vec<&VersusP2p> = versus
                .iter()
                .filter(|v| v.kind != SystemKind::Standard.to_string())
                .collect();
            let json = if others.is_empty() {
                serde_json::to_string_pretty(h).map_err(encode)?
            } else {
                let mut value = serde_json::to_value(h).map_err(encode)?;
                if let Some(obj) = value.as_object_mut() {
                    let others = serde_json::to_value(others).map_err(encode)?;
                    obj.insert("others".into(), others);
                }
                serde_json::to_string_pretty(&value).map_err(encode)?
            };
            write_file(out_dir, "headline.json", &(json + "\n"))?;
        }
        None => {
            // A stale headline from an earlier report would mislead.
            if headline_path.exists() {
                std::fs::remove_file(&headline_path).map_err(|error| ReportError::Io {
                    path: headline_path.clone(),
                    error,
                })?;
            }
        }
    }
    let mut page = html::page(prepared, headline, &charts, opts);
    insert_before(&mut page, "<h2>Charts</h2>", &versus::html(&versus));
    write_file(out_dir, "index.html", &page)?;
    Ok(())
}

/// Inserts `text` before the first `marker` (at the end without one).
fn insert_before(doc: &mut String, marker: &str, text: &str) {
    match doc.find(marker) {
        Some(i) => doc.insert_str(i, text),
        None => doc.push_str(text),
    }
}

/// Default page title.
pub(crate) fn title(prepared: &[Prepared<'_>], opts: &ReportOptions) -> String {
    if let Some(t) = &opts.title {
        return t.clone();
    }
    let names: Vec<&str> = prepared.iter().map(|p| p.label.as_str()).collect();
    format!("p2pstack report: {}", names.join(" vs "))
}
