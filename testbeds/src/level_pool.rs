//! Runs one system's levels on several threads at once, with the results a
//! sequential run would give.
//!
//! On virtual time every level runs on its own testbed, runtime and clock,
//! so a level's result is a function of the level alone. The plan (a fixed
//! list, or the limit search) is still walked in its sequential order: the
//! next level is whatever [`LimitSearch::next`] says given the levels
//! *consumed* so far. What changes is that up to `workers` levels run at
//! once: the one the plan needs next, and the levels it would need after
//! it, guessed by feeding the search hypothetical outcomes (the in-flight
//! level "all ACTIVE" or "all failed"). A guess that turns out wrong is
//! cancelled and its result never read, so speculation changes the wall
//! time, never the results.

use std::collections::HashMap;
use std::sync::mpsc;

use anyhow::{anyhow, Result};
use loadgen::CancellationToken;
use results::LevelResult;

use crate::levels::{LimitSearch, Step};

/// Which levels one system runs.
pub enum Plan {
    Fixed(Vec<u32>),
    Search(LimitSearch),
}

/// What the plan does next, given the levels consumed so far (in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Run(u32),
    /// The plan is over (`None` for a fixed list).
    End(Option<Step>),
}

impl Plan {
    pub fn next(&self, done: &[LevelResult]) -> Next {
        match self {
            Plan::Fixed(levels) => match levels.get(done.len()) {
                Some(&l) => Next::Run(l),
                None => Next::End(None),
            },
            Plan::Search(search) => match search.next(done) {
                Step::Run(l) => Next::Run(l),
                other => Next::End(Some(other)),
            },
        }
    }

    /// Up to `n` distinct levels worth running now, in priority order: the
    /// first level the plan needs whose result is not `known` yet, then the
    /// levels it needs after it under each hypothetical outcome (breadth
    /// first). A level already `known` is followed by its real outcome.
    ///
    /// The outcome "all failed" comes first: it leads to a smaller level
    /// (the refinement), cheaper on virtual time, where a level's cost grows
    /// faster than its size; so while the search climbs, the level it will
    /// refine to if the current one is past the limit runs beside it, not
    /// the next doubling (about four times as dear).
    pub fn wanted(
        &self,
        done: &[LevelResult],
        known: &dyn Fn(u32) -> Option<LevelResult>,
        n: usize,
    ) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        let mut frontier: Vec<Vec<LevelResult>> = vec![done.to_vec()];
        while out.len() < n && !frontier.is_empty() {
            let mut deeper = Vec::new();
            for mut history in frontier {
                // Follow the levels whose outcome is known already.
                let l = loop {
                    match self.next(&history) {
                        Next::End(_) => break None,
                        Next::Run(l) => match known(l) {
                            Some(r) => history.push(r),
                            None => break Some(l),
                        },
                    }
                };
                let Some(l) = l else { continue };
                if !out.contains(&l) {
                    out.push(l);
                    if out.len() == n {
                        break;
                    }
                }
                for outcome in [all_failed(l), all_active(l)] {
                    let mut h = history.clone();
                    h.push(outcome);
                    deeper.push(h);
                }
            }
            // Bounded: each depth doubles the histories, and n is small.
            deeper.truncate(4 * n.max(1));
            frontier = deeper;
        }
        out
    }
}

/// A hypothetical level where every boot succeeded at once: the best level
/// so far under every rule.
fn all_active(level: u32) -> LevelResult {
    LevelResult::burst_summary(level, level, 0, 1e-3)
}

/// A hypothetical level where every boot failed: worse than any level with
/// a success under every rule.
fn all_failed(level: u32) -> LevelResult {
    LevelResult::burst_summary(level, 0, level, 1e9)
}

/// One level's run, as the job returns it.
pub trait LevelRun: Send {
    /// The level's result (what the plan reads).
    fn level(&self) -> Option<&LevelResult>;
    /// False when the run stopped early (Ctrl-C): the plan ends there.
    fn complete(&self) -> bool;
}

/// The levels run, in the plan's order, and how the plan ended.
pub struct PlanRun<R> {
    pub runs: Vec<R>,
    pub end: Option<Step>,
    /// Thread CPU seconds of every job, those cancelled included.
    pub cpu_seconds: f64,
    /// Jobs started whose level the plan never read.
    pub wasted: Vec<u32>,
}

/// A finished job: its level, id, result (`None` when cancelled) and CPU.
type Report<R> = (u32, u64, Result<Option<R>>, f64);

/// Walks `plan` with up to `workers` levels running at once, each through
/// `job(level, cancel)` on its own thread. `job` must be a function of the
/// level alone (and return `Ok(None)` once `cancel` fires).
pub fn run_plan<R, F>(plan: &Plan, workers: usize, job: F) -> Result<PlanRun<R>>
where
    R: LevelRun,
    F: Fn(u32, &CancellationToken) -> Result<Option<R>> + Sync,
{
    let workers = workers.max(1);
    let job = &job;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<Report<R>>();
        // Running jobs by level: (job id, its cancel token).
        let mut running: HashMap<u32, (u64, CancellationToken)> = HashMap::new();
        let mut finished: HashMap<u32, Result<R>> = HashMap::new();
        let mut cancelled_ids: Vec<u64> = Vec::new();
        let mut done: Vec<LevelResult> = Vec::new();
        let mut runs: Vec<R> = Vec::new();
        let mut started: Vec<u32> = Vec::new();
        let mut cpu = 0.0;
        let mut next_id = 0u64;
        let cancel_all = |running: &mut HashMap<u32, (u64, CancellationToken)>| {
            for (_, (_, c)) in running.drain() {
                c.cancel();
            }
        };
        let outcome = loop {
            // Consume what the plan needs, in its order, as far as it is there.
            let need = loop {
                match plan.next(&done) {
                    Next::End(end) => break Err(end),
                    Next::Run(l) => match finished.remove(&l) {
                        None => break Ok(l),
                        Some(Err(e)) => {
                            cancel_all(&mut running);
                            return Err(e);
                        }
                        Some(Ok(r)) => {
                            let Some(res) = r.level() else {
                                cancel_all(&mut running);
                                return Err(anyhow!("level {l} returned no result"));
                            };
                            done.push(res.clone());
                            let complete = r.complete();
                            runs.push(r);
                            if !complete {
                                break Err(None);
                            }
                        }
                    },
                }
            };
            if let Err(end) = need {
                break end;
            }
            let known = |l: u32| match finished.get(&l) {
                Some(Ok(r)) => r.level().cloned(),
                _ => None,
            };
            let wanted = plan.wanted(&done, &known, workers);
            // Guesses that no longer come first: cancel them.
            running.retain(|l, (id, c)| {
                let keep = wanted.contains(l);
                if !keep {
                    c.cancel();
                    cancelled_ids.push(*id);
                }
                keep
            });
            for &l in &wanted {
                if running.len() >= workers {
                    break;
                }
                if running.contains_key(&l) || finished.contains_key(&l) {
                    continue;
                }
                let cancel = CancellationToken::new();
                let id = next_id;
                next_id += 1;
                running.insert(l, (id, cancel.clone()));
                started.push(l);
                let tx = tx.clone();
                scope.spawn(move || {
                    let cpu0 = crate::hostmon::thread_cpu_seconds();
                    let out = job(l, &cancel);
                    let cpu1 = crate::hostmon::thread_cpu_seconds();
                    let spent = match (cpu0, cpu1) {
                        (Some(a), Some(b)) => (b - a).max(0.0),
                        _ => 0.0,
                    };
                    // The receiver is gone only once the plan is over.
                    let _ = tx.send((l, id, out, spent));
                });
            }
            let Ok((l, id, out, spent)) = rx.recv() else {
                break None;
            };
            cpu += spent;
            if cancelled_ids.contains(&id) {
                continue;
            }
            running.remove(&l);
            let out = match out {
                Ok(Some(r)) => Ok(r),
                Ok(None) => Err(anyhow!("level {l} was cancelled")),
                Err(e) => Err(e),
            };
            finished.insert(l, out);
        };
        cancel_all(&mut running);
        drop(tx);
        // Every job thread ends (cancelled ones at once); count their CPU.
        for (_, _, _, spent) in rx.iter() {
            cpu += spent;
        }
        let read: Vec<u32> = done.iter().map(|l| l.level).collect();
        let wasted = started.into_iter().filter(|l| !read.contains(l)).collect();
        Ok(PlanRun {
            runs,
            end: outcome,
            cpu_seconds: cpu,
            wasted,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::levels::DEFAULT_CAP;
    use reports::LimitRule;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    struct Run(LevelResult);

    impl LevelRun for Run {
        fn level(&self) -> Option<&LevelResult> {
            Some(&self.0)
        }
        fn complete(&self) -> bool {
            true
        }
    }

    /// A system whose successes peak at `peak` concurrent boots.
    fn system(peak: u32) -> impl Fn(u32) -> LevelResult {
        move |l| {
            let ok = if l <= peak {
                l
            } else {
                (2 * peak).saturating_sub(l)
            };
            LevelResult::burst_summary(l, ok, l - ok, 100.0)
        }
    }

    fn sequential(plan: &Plan, sys: &dyn Fn(u32) -> LevelResult) -> (Vec<u32>, Option<Step>) {
        let mut done = Vec::new();
        loop {
            match plan.next(&done) {
                Next::Run(l) => done.push(sys(l)),
                Next::End(end) => return (done.iter().map(|l| l.level).collect(), end),
            }
        }
    }

    #[test]
    fn any_number_of_workers_reads_the_levels_a_sequential_search_reads() {
        for peak in [100, 3_000, 10_000, 50_000] {
            let plan = Plan::Search(LimitSearch::new(64, DEFAULT_CAP, LimitRule::MostSuccessful));
            let sys = system(peak);
            let (order, end) = sequential(&plan, &sys);
            for workers in [1, 2, 3] {
                let ran = Mutex::new(Vec::new());
                let out = run_plan(&plan, workers, |l, _c: &CancellationToken| {
                    ran.lock().unwrap().push(l);
                    Ok(Some(Run(sys(l))))
                })
                .unwrap();
                let got: Vec<u32> = out.runs.iter().map(|r| r.0.level).collect();
                assert_eq!(got, order, "peak {peak}, {workers} workers");
                assert_eq!(out.end, end);
                let ran = ran.into_inner().unwrap();
                // Every level read ran; one worker runs nothing else.
                for l in &order {
                    assert!(ran.contains(l), "{l}");
                }
                assert!(ran.len() >= order.len() + out.wasted.len());
                if workers == 1 {
                    assert_eq!(ran, order);
                    assert!(out.wasted.is_empty());
                }
            }
        }
    }

    #[test]
    fn the_next_level_comes_first_then_the_refinement_it_may_need() {
        let plan = Plan::Search(LimitSearch::new(64, 1024, LimitRule::MostSuccessful));
        let unknown = |_: u32| None;
        // 64 is the floor: 128 next under either outcome.
        assert_eq!(plan.wanted(&[], &unknown, 2), vec![64, 128]);
        let ok = |l: u32| LevelResult::burst_summary(l, l, 0, 10.0);
        let done = [ok(64), ok(128)];
        // 256 runs; beside it, 192 (if 256 is worse), then 512.
        assert_eq!(plan.wanted(&done, &unknown, 3), vec![256, 192, 512]);
        // 192 known already (fine): the next guess under each outcome of 256.
        let known = |l: u32| (l == 192).then(|| ok(192));
        assert_eq!(plan.wanted(&done, &known, 2), vec![256, 224]);
        let fixed = Plan::Fixed(vec![8, 32, 64]);
        assert_eq!(fixed.wanted(&[], &unknown, 2), vec![8, 32]);
        assert_eq!(fixed.wanted(&[], &unknown, 5), vec![8, 32, 64]);
    }

    #[test]
    fn a_wrong_guess_is_cancelled_and_a_failed_level_read_is_an_error() {
        // Peak at 100: 128 is the best level and 256 worse, so the guess
        // 512 (run while 256 runs) is never read.
        let plan = Plan::Search(LimitSearch::new(64, DEFAULT_CAP, LimitRule::MostSuccessful));
        let sys = system(100);
        let cancelled = AtomicU32::new(0);
        let started = std::time::Instant::now();
        let out = run_plan(&plan, 3, |l, c: &CancellationToken| {
            if l >= 512 {
                // A slow level: runs until cancelled (at most 10 s).
                for _ in 0..10_000 {
                    if c.is_cancelled() {
                        cancelled.fetch_add(1, Ordering::SeqCst);
                        return Ok(None);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            Ok(Some(Run(sys(l))))
        })
        .unwrap();
        assert_eq!(
            out.end,
            Some(Step::PastLimit {
                limit: 128,
                above: 144
            })
        );
        // The guess is stopped, whether it had started (then it saw the
        // cancellation) or not (a loaded host may cancel it first): the
        // search never waits out its 10 s.
        assert!(cancelled.load(Ordering::SeqCst) <= 1);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(9),
            "the wrong guess was not cancelled"
        );
        assert!(out.wasted.contains(&512), "{:?}", out.wasted);
        let err = run_plan(&plan, 2, |l, _c: &CancellationToken| {
            if l == 128 {
                Err(anyhow!("testbed failed"))
            } else {
                Ok(Some(Run(sys(l))))
            }
        });
        assert!(err.is_err());
    }
}
