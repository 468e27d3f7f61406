//! The results file (written atomically) and the human summary table.

use std::io::Write;
use std::path::Path;

use results::{Outcome, RunResults};

use crate::LoadgenError;

/// Writes `r` as pretty JSON to `path` through a temporary file in the same
/// directory and a rename, so a reader never sees half a file.
pub fn write_results_atomic(path: &Path, r: &RunResults) -> Result<(), LoadgenError> {
    let err = |detail: String| LoadgenError::Output {
        path: path.display().to_string(),
        detail,
    };
    let text = serde_json::to_vec_pretty(r).map_err(|e| err(e.to_string()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "results.json".into());
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e.to_string())
    })
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Active => "active",
        Outcome::ErrorState => "error_state",
        Outcome::ApiError => "api_error",
        Outcome::Timeout => "timeout",
        Outcome::TransportError => "transport_error",
        Outcome::Dropped => "dropped",
    }
}

/// The human summary: one row per level, then the errors grouped by message.
/// Durations in model seconds.
pub fn summary_table(r: &RunResults) -> String {
    let mut out = String::new();
    let label = if r.system.label.is_empty() {
        String::new()
    } else {
        format!(" [{}]", r.system.label)
    };
    out.push_str(&format!(
        "{}{label}: {} entr{} ({}), time scale {} ({}), seed {}{}\n",
        r.experiment,
        r.target.entries.len(),
        if r.target.entries.len() == 1 {
            "y"
        } else {
            "ies"
        },
        r.target.entry_policy,
        r.time_scale,
        r.time_scale_source,
        r.seed,
        if r.complete { "" } else { "  ** INCOMPLETE **" },
    ));
    out.push_str("durations in model seconds\n");
    let header =
        format!(
        "{:>7} {:>7} {:>7} {:>7} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6}  {}\n",
        "level", "sent", "active", "failed", "err%", "makespan", "boots/s", "boot p50", "boot p95",
        "boot max", "post p50", "del p50", "late", "drop", "audit"
    );
    out.push_str(&header);
    for l in &r.levels {
        let audit = if l.audit.clean && l.audit.delete_failures.is_empty() {
            "clean".to_string()
        } else {
            format!(
                "{} leftover(s), {} delete failure(s)",
                l.audit.leftovers.len(),
                l.audit.delete_failures.len()
            )
        };
        out.push_str(&format!(
            "{:>7} {:>7} {:>7} {:>7} {:>5.1}% {:>9.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.3} {:>8.2} {:>6} {:>6}  {}\n",
            l.level,
            l.requested - l.dropped_starts,
            l.succeeded,
            l.failed,
            l.error_rate * 100.0,
            l.makespan_s,
            l.throughput_per_s,
            l.boot_time.p50_s,
            l.boot_time.p95_s,
            l.boot_time.max_s,
            l.post_latency.p50_s,
            l.delete_time.p50_s,
            l.late_starts,
            l.dropped_starts,
            audit
        ));
    }
    let any_errors = r.levels.iter().any(|l| !l.errors.is_empty());
    if any_errors {
        out.push_str("failures by cause:\n");
        for l in &r.levels {
            for e in l.errors.iter().take(8) {
                out.push_str(&format!(
                    "  level {:>5}: {:>6} x {:<15} {}\n",
                    l.level,
                    e.count,
                    outcome_name(e.outcome),
                    e.message
                ));
            }
            if l.errors.len() > 8 {
                out.push_str(&format!(
                    "  level {:>5}: … {} more causes in the results file\n",
                    l.level,
                    l.errors.len() - 8
                ));
            }
        }
    }
    for l in &r.levels {
        for id in l.audit.leftovers.iter().take(5) {
            out.push_str(&format!("  level {:>5}: LEFTOVER server {id}\n", l.level));
        }
        for f in l.audit.delete_failures.iter().take(5) {
            out.push_str(&format!("  level {:>5}: {f}\n", l.level));
        }
        if let Some(remote) = l.placed_remotely {
            out.push_str(&format!(
                "  level {:>5}: {remote} of {} boots placed on another cloudlet than the entry's\n",
                l.level, l.succeeded
            ));
        }
    }
    if let Some(cpu) = r.host.loadgen_cpu_seconds {
        let workflows: u32 = r.levels.iter().map(|l| l.requested).sum();
        out.push_str(&format!(
            "loadgen: {cpu:.2} CPU s ({:.3} ms per workflow), peak RSS {:.1} MiB, timer lag p99 {:.1} ms\n",
            if workflows > 0 { cpu * 1000.0 / f64::from(workflows) } else { 0.0 },
            r.host.peak_rss_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0),
            r.host.scheduler_lag_p99_ms.unwrap_or(0.0),
        ));
    }
    if let Some(reason) = &r.incomplete_reason {
        out.push_str(&format!("incomplete: {reason}\n"));
    }
    out
}
