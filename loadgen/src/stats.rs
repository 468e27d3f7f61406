//! Turns the records of one level into a [`results::LevelResult`].

use std::collections::{BTreeMap, HashMap};

use results::{
    new_histogram, to_histogram_value, Audit, ErrorCount, LatencySummary, LevelResult, LoadModel,
    Outcome, RequestRecord,
};

/// One finished workflow with the times the summary needs.
#[derive(Debug, Clone)]
pub struct Finished {
    pub record: RequestRecord,
    /// Model seconds since level start when the first request was sent (None: never sent).
    pub sent_s: Option<f64>,
    /// Model seconds since level start when the workflow became final.
    pub final_s: f64,
    /// The server this workflow created, if any (for cleanup).
    pub created: Option<String>,
    /// The entry index the workflow used.
    pub entry_index: usize,
    /// The agent's cloudlet (X-P2P-Agent), if reported.
    pub agent: Option<String>,
    /// Started later than intended (open model).
    pub late: bool,
}

/// Replaces UUIDs (and long hex ids) in a message by `<id>` so that errors
/// about different servers group together.
pub fn normalize_message(m: &str) -> String {
    let mut out = String::with_capacity(m.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let hexish = word.len() >= 32
            && word.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
            && word.chars().filter(|c| c.is_ascii_hexdigit()).count() >= 32;
        if hexish {
            out.push_str("<id>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in m.chars() {
        if c.is_ascii_hexdigit() || c == '-' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Builds the level summary. `in_flight` is the sampled series.
pub fn summarize(
    level: u32,
    load_model: LoadModel,
    finished: &[Finished],
    in_flight: Vec<(f64, u32)>,
    audit: Audit,
    keep_requests: bool,
) -> LevelResult {
    let mut post = new_histogram();
    let mut boot = new_histogram();
    let mut del = new_histogram();
    let mut outcomes: BTreeMap<Outcome, u32> = BTreeMap::new();
    let mut errors: HashMap<(Outcome, String), u32> = HashMap::new();
    let mut placement: BTreeMap<String, u32> = BTreeMap::new();
    let mut remote = 0u32;
    let mut hints = false;
    let mut first_sent = f64::INFINITY;
    let mut last_final: f64 = 0.0;
    let mut late = 0u32;
    for f in finished {
        let r = &f.record;
        *outcomes.entry(r.outcome).or_default() += 1;
        if f.late {
            late += 1;
        }
        if let Some(s) = f.sent_s {
            first_sent = first_sent.min(s);
        }
        if r.outcome != Outcome::Dropped {
            last_final = last_final.max(f.final_s);
        }
        if let Some(v) = r.post_latency_s {
            let _ = post.record(to_histogram_value(v));
        }
        if let Some(v) = r.delete_time_s {
            let _ = del.record(to_histogram_value(v));
        }
        if r.outcome.is_success() {
            if let Some(v) = r.boot_time_s {
                let _ = boot.record(to_histogram_value(v));
            }
            if let Some(where_) = r.cloudlet.as_ref().or(r.host.as_ref()) {
                *placement.entry(where_.clone()).or_default() += 1;
            }
            if let (Some(c), Some(a)) = (&r.cloudlet, &f.agent) {
                hints = true;
                if c != a {
                    remote += 1;
                }
            }
        } else {
            let msg = normalize_message(r.message.as_deref().unwrap_or(""));
            *errors.entry((r.outcome, msg)).or_default() += 1;
        }
    }
    let requested = finished.len() as u32;
    let succeeded = outcomes.get(&Outcome::Active).copied().unwrap_or(0);
    let failed = requested - succeeded;
    let makespan_s = if first_sent.is_finite() {
        (last_final - first_sent).max(0.0)
    } else {
        0.0
    };
    let mut errors: Vec<ErrorCount> = errors
        .into_iter()
        .map(|((outcome, message), count)| ErrorCount {
            outcome,
            message,
            count,
        })
        .collect();
    errors.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.outcome.cmp(&b.outcome))
            .then(a.message.cmp(&b.message))
    });
    let dropped = outcomes.get(&Outcome::Dropped).copied().unwrap_or(0);
    let mut requests: Vec<RequestRecord> = if keep_requests {
        finished.iter().map(|f| f.record.clone()).collect()
    } else {
        Vec::new()
    };
    requests.sort_by_key(|r| r.index);
    LevelResult {
        level,
        load_model,
        requested,
        succeeded,
        failed,
        error_rate: if requested == 0 {
            0.0
        } else {
            f64::from(failed) / f64::from(requested)
        },
        makespan_s,
        throughput_per_s: if makespan_s > 0.0 {
            f64::from(succeeded) / makespan_s
        } else {
            0.0
        },
        outcomes,
        errors,
        post_latency: LatencySummary::from_histogram(&post),
        boot_time: LatencySummary::from_histogram(&boot),
        delete_time: LatencySummary::from_histogram(&del),
        placement,
        placed_remotely: hints.then_some(remote),
        late_starts: late,
        dropped_starts: dropped,
        in_flight: decimate(in_flight, 2000),
        audit,
        durability: None,
        requests,
    }
}

/// Keeps at most `max` points, always the first and the last.
fn decimate(series: Vec<(f64, u32)>, max: usize) -> Vec<(f64, u32)> {
    if series.len() <= max || max < 2 {
        return series;
    }
    let step = series.len().div_ceil(max - 1);
    let last = series[series.len() - 1];
    let mut out: Vec<(f64, u32)> = series.into_iter().step_by(step).collect();
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_normalized() {
        assert_eq!(
            normalize_message("Instance 0b6f2c4e-3a1d-4c47-9a47-6f4ba6b8a1de could not be found."),
            "Instance <id> could not be found."
        );
        assert_eq!(
            normalize_message("No valid host was found. "),
            "No valid host was found. "
        );
    }

    #[test]
    fn decimate_keeps_ends() {
        let s: Vec<(f64, u32)> = (0..10_000).map(|i| (i as f64, i)).collect();
        let d = decimate(s, 100);
        assert!(d.len() <= 101);
        assert_eq!(d[0], (0.0, 0));
        assert_eq!(*d.last().unwrap(), (9999.0, 9999));
    }
}
