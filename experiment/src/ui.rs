//! Progress on stderr: indicatif bars when stderr is a terminal, plain lines otherwise (a log file,
//! CI), so that a long run always shows where it is.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// The progress display of one run.
pub struct Ui {
    multi: MultiProgress,
    terminal: bool,
    quiet: bool,
}

impl Ui {
    /// Bars on stderr when it is a terminal.
    pub fn stderr() -> Ui {
        let terminal = std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Ui {
            multi,
            terminal,
            quiet: false,
        }
    }

    /// Shows nothing (tests).
    pub fn hidden() -> Ui {
        Ui {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            terminal: false,
            quiet: true,
        }
    }

    /// A new bar of `len` steps below the others, drawn with `template` (indicatif's syntax).
    pub fn bar(&self, len: u64, template: &str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(len));
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    }

    /// Removes a finished bar.
    pub fn finish(&self, bar: ProgressBar) {
        bar.finish_and_clear();
        self.multi.remove(&bar);
    }

    /// A line above the bars (or on stderr when there are none).
    pub fn say(&self, text: &str) {
        if self.quiet {
            return;
        }
        if self.terminal {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}
