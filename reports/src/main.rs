//! `report`: turns loadgen results files into a report directory.
//!
//! ```text
//! report render RESULTS.json… --out DIR [--limit RULE] [--title T]
//! report compare --baseline standard.json --candidate p2p.json --out DIR [--limit RULE]
//! (both: [--scale-check not-run|agree|disagree])
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use reports::{LimitRule, ReportOptions, ScaleCheck};

#[derive(Parser)]
#[command(
    name = "report",
    version,
    about = "Reports comparing P2P and standard OpenStack runs"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Common {
    /// Output directory (created if missing).
    #[arg(long, default_value = "reports/out")]
    out: PathBuf,
    /// Performance limit: most-successful (tie-break: lower error rate),
    /// max-throughput, or error-below:FRACTION.
    #[arg(long, default_value = "most-successful")]
    limit: LimitRule,
    /// Page title.
    #[arg(long)]
    title: Option<String>,
    /// What `testbed compare --check-scale` found for these runs; a
    /// disagreement makes every claim undetermined.
    #[arg(long, value_enum, default_value_t = ScaleCheckArg::NotRun)]
    scale_check: ScaleCheckArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ScaleCheckArg {
    NotRun,
    Agree,
    Disagree,
}

#[derive(Subcommand)]
enum Cmd {
    /// Report on any set of runs (headline when one standard and one P2P run).
    Render {
        /// Results files written by loadgen.
        #[arg(required = true)]
        results: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Compare a baseline (standard) with a candidate (P2P).
    Compare {
        #[arg(long)]
        baseline: PathBuf,
        #[arg(long)]
        candidate: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

fn options(c: &Common) -> ReportOptions {
    ReportOptions {
        limit: c.limit.clone(),
        title: c.title.clone(),
        scale_check: match c.scale_check {
            ScaleCheckArg::NotRun => ScaleCheck::NotRun,
            ScaleCheckArg::Agree => ScaleCheck::Agree,
            ScaleCheckArg::Disagree => ScaleCheck::Disagree,
        },
        ..ReportOptions::default()
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Render { results, common } => {
            let runs = results
                .iter()
                .map(|p| reports::load(p))
                .collect::<Result<Vec<_>, _>>()?;
            let headline = reports::render(&runs, &common.out, &options(&common))?;
            if let Some(h) = headline {
                print!("{}", h.table());
            } else {
                println!("no headline (needs exactly one standard and one p2p run)");
            }
            println!("report: {}", common.out.join("index.html").display());
        }
        Cmd::Compare {
            baseline,
            candidate,
            common,
        } => {
            let b = reports::load(&baseline)?;
            let c = reports::load(&candidate)?;
            let h = reports::compare(&b, &c, &common.out, &options(&common))?;
            print!("{}", h.table());
            println!("report: {}", common.out.join("index.html").display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("report: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
