//! Progress lines while the suite runs, and the summary at the end.
//!
//! A category (start-up, business flows, cache, ...) is a list of named
//! steps. Each step prints one line when it ends: `ok`, `FAIL` with the
//! error chain, or `GAP` for a check that this machine cannot run and that
//! does not fail the suite. The summary names the first failed step of each
//! category, and is also written to `summary.txt` in the run's artifacts.

use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Upper bound on one step; every wait inside a step has its own, shorter
/// bound, so this only catches a step that hangs.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
enum Outcome {
    Pass,
    Fail(String),
    Gap(String),
}

#[derive(Debug)]
struct StepRecord {
    name: String,
    outcome: Outcome,
    elapsed: Duration,
}

#[derive(Debug)]
struct CategoryRecord {
    name: String,
    steps: Vec<StepRecord>,
    /// Set when the category stopped before its last step, with the reason.
    aborted: Option<String>,
    elapsed: Duration,
}

/// Records every category and step of one run.
pub struct Report {
    run_id: String,
    started: Instant,
    categories: Vec<CategoryRecord>,
    summary_path: PathBuf,
}

/// The category currently running; create it with [`Report::category`] and
/// hand it back with [`Report::finish`].
pub struct Category {
    record: CategoryRecord,
    started: Instant,
}

impl Report {
    pub fn new(run_id: String, summary_path: PathBuf) -> Self {
        Self {
            run_id,
            started: Instant::now(),
            categories: Vec::new(),
            summary_path,
        }
    }

    /// Prints the category heading and starts timing it.
    pub fn category(&self, name: &str) -> Category {
        println!("\n[{:>6.1}s] {name}", self.started.elapsed().as_secs_f64());
        Category {
            record: CategoryRecord {
                name: name.to_owned(),
                steps: Vec::new(),
                aborted: None,
                elapsed: Duration::ZERO,
            },
            started: Instant::now(),
        }
    }

    /// Stores a finished category; `result` is the error that stopped it early.
    pub fn finish(&mut self, mut category: Category, result: anyhow::Result<()>) {
        category.record.elapsed = category.started.elapsed();
        if let Err(error) = result {
            let reason = format!("{error:#}");
            println!("  stop  {} stopped early: {reason}", category.record.name);
            category.record.aborted = Some(reason);
        }
        self.categories.push(category.record);
    }

    /// Records a category that did not run at all, for example because the
    /// platform failed to start.
    pub fn skipped(&mut self, name: &str, reason: &str) {
        self.categories.push(CategoryRecord {
            name: name.to_owned(),
            steps: Vec::new(),
            aborted: Some(format!("not run: {reason}")),
            elapsed: Duration::ZERO,
        });
    }

    /// True when no step failed and no category stopped early.
    pub fn passed(&self) -> bool {
        self.categories.iter().all(|category| {
            category.aborted.is_none()
                && category
                    .steps
                    .iter()
                    .all(|step| !matches!(step.outcome, Outcome::Fail(_)))
        })
    }

    /// Prints the summary table and writes it, with every step, to
    /// `summary.txt`.
    pub fn print_summary(&self) {
        let total = self.started.elapsed();
        let mut summary = String::new();
        let _ = writeln!(
            summary,
            "\nSummary of run {} ({:.1} s)",
            self.run_id,
            total.as_secs_f64()
        );
        for category in &self.categories {
            let _ = writeln!(summary, "{}", category_line(category));
        }
        let verdict = if self.passed() { "PASSED" } else { "FAILED" };
        let _ = writeln!(summary, "End-to-end suite {verdict}.");
        print!("{summary}");

        let mut details = summary.clone();
        let _ = writeln!(details, "\nEvery step:");
        for category in &self.categories {
            let _ = writeln!(details, "{}", category.name);
            for step in &category.steps {
                let _ = writeln!(details, "  {}", step_line(step));
            }
            if let Some(reason) = &category.aborted {
                let _ = writeln!(details, "  stop  {reason}");
            }
        }
        if let Err(error) = std::fs::write(&self.summary_path, details) {
            eprintln!(
                "failed to write the summary to {}: {error}",
                self.summary_path.display()
            );
        }
    }
}

impl Category {
    /// Runs one step, prints its line and returns its result. The caller
    /// decides whether a failure stops the category (`?`) or not (`.ok()`).
    pub async fn step<T>(
        &mut self,
        name: &str,
        future: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let result = match tokio::time::timeout(STEP_TIMEOUT, future).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!(
                "timed out after {} s",
                STEP_TIMEOUT.as_secs()
            )),
        };
        let outcome = match &result {
            Ok(_) => Outcome::Pass,
            Err(error) => Outcome::Fail(format!("{error:#}")),
        };
        self.record(name, outcome, started.elapsed());
        result.map_err(|error| error.context(format!("step \"{name}\" failed")))
    }

    /// Records a step that ran outside the driver, such as in the browser
    /// script.
    pub fn external(&mut self, name: &str, result: Result<(), String>, elapsed: Duration) {
        let outcome = match result {
            Ok(()) => Outcome::Pass,
            Err(reason) => Outcome::Fail(reason),
        };
        self.record(name, outcome, elapsed);
    }

    /// Records a check that cannot run on this machine, with the reason.
    /// A gap does not fail the suite.
    pub fn gap(&mut self, name: &str, reason: &str) {
        self.record(name, Outcome::Gap(reason.to_owned()), Duration::ZERO);
    }

    fn record(&mut self, name: &str, outcome: Outcome, elapsed: Duration) {
        let step = StepRecord {
            name: name.to_owned(),
            outcome,
            elapsed,
        };
        println!("  {}", step_line(&step));
        self.record.steps.push(step);
    }
}

fn step_line(step: &StepRecord) -> String {
    let elapsed = format!("({:.2} s)", step.elapsed.as_secs_f64());
    match &step.outcome {
        Outcome::Pass => format!("ok    {} {elapsed}", step.name),
        Outcome::Fail(reason) => format!("FAIL  {} {elapsed}\n        {reason}", step.name),
        Outcome::Gap(reason) => format!("GAP   {}\n        {reason}", step.name),
    }
}

fn category_line(category: &CategoryRecord) -> String {
    let passed = category
        .steps
        .iter()
        .filter(|step| matches!(step.outcome, Outcome::Pass))
        .count();
    let gaps = category
        .steps
        .iter()
        .filter(|step| matches!(step.outcome, Outcome::Gap(_)))
        .count();
    let first_failure = category
        .steps
        .iter()
        .find(|step| matches!(step.outcome, Outcome::Fail(_)));
    let verdict = if first_failure.is_some() || category.aborted.is_some() {
        "FAIL"
    } else {
        "ok"
    };
    let mut line = format!(
        "  {:<14} {verdict:<4}  {passed}/{} steps passed, {:.1} s",
        category.name,
        category.steps.len(),
        category.elapsed.as_secs_f64()
    );
    if gaps > 0 {
        let _ = write!(line, ", {gaps} gap(s)");
    }
    if let Some(step) = first_failure {
        let _ = write!(line, "\n      first failed step: {}", step.name);
    } else if let Some(reason) = &category.aborted {
        let _ = write!(line, "\n      {reason}");
    }
    line
}
