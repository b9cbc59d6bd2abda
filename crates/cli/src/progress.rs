//! Live progress on stderr: bars for steps and their targets on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use slipway_engine::{Observer, Progress};

pub struct Printer {
    enabled: bool,
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    steps: Mutex<HashMap<String, ProgressBar>>,
}

impl Printer {
    /// `enabled` prints at all; bars are used only when stderr is a terminal and `bars` allows.
    pub fn new(enabled: bool, bars: bool) -> Printer {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let bars = (enabled && bars && tty).then(|| Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            steps: Mutex::new(HashMap::new()),
        });
        Printer { enabled, bars }
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some(b) => {
                let _ = b.multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn bar(&self, step: &str, total: usize) {
        if let Some(b) = &self.bars
            && let Ok(mut steps) = b.steps.lock()
        {
            let bar = b.multi.add(ProgressBar::new(total as u64));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} targets {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(step.to_string());
            steps.insert(step.to_string(), bar);
        }
    }

    fn with_bar(&self, step: &str, f: impl FnOnce(&ProgressBar)) {
        if let Some(b) = &self.bars
            && let Ok(steps) = b.steps.lock()
            && let Some(bar) = steps.get(step)
        {
            f(bar);
        }
    }
}

impl Observer for Printer {
    fn notify(&self, event: &Progress) {
        if !self.enabled {
            return;
        }
        match event {
            Progress::Stage {
                deployment,
                message,
            } => self.line(format!("#{deployment} {message}")),
            Progress::StepStarted {
                step,
                targets,
                batches,
            } => {
                self.bar(step, *targets);
                self.line(format!(
                    "[{step}] {targets} target(s) in {batches} batch(es)"
                ));
            }
            Progress::BatchStarted {
                step,
                batch,
                batches,
                targets,
            } => {
                let shown = if targets.len() > 6 {
                    format!("{} … ({} targets)", targets[..6].join(", "), targets.len())
                } else {
                    targets.join(", ")
                };
                self.with_bar(step, |b| b.set_message(format!("batch {batch}/{batches}")));
                if self.bars.is_none() {
                    self.line(format!("[{step}] batch {batch}/{batches}: {shown}"));
                }
            }
            Progress::UnitFinished {
                step,
                target,
                ok,
                message,
            } => {
                self.with_bar(step, |b| b.inc(1));
                if !ok || self.bars.is_none() {
                    let mark = if *ok { "ok" } else { "FAILED" };
                    self.line(format!("[{step}] {target}: {mark} — {message}"));
                }
            }
            Progress::CheckFinished {
                step,
                target,
                ok,
                message,
            } => {
                if !ok || self.bars.is_none() {
                    let mark = if *ok { "healthy" } else { "UNHEALTHY" };
                    self.line(format!("[{step}] {target}: {mark} — {message}"));
                }
            }
            Progress::Waiting { step, message } => {
                self.line(format!("[{step}] waiting: {message}"))
            }
            Progress::StepFinished { step, ok } => self.with_bar(step, |b| {
                if *ok {
                    b.finish_with_message("done");
                } else {
                    b.abandon_with_message("failed");
                }
            }),
            Progress::Finished {
                deployment,
                state,
                message,
            } => self.line(format!("#{deployment} {state}: {message}")),
        }
    }
}
