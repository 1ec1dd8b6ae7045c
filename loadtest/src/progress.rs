//! Progress bars on stderr, fed by a ticker that reads the live counters a few
//! times a second, so the hot path never touches the terminal.

use std::{future::Future, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps, or a hidden one when `quiet` (indicatif also hides
/// itself when stderr is not a terminal).
pub fn bar(quiet: bool, len: u64, prefix: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(5));
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// Updates `bar` every 200 ms with `update` until dropped, then clears it.
pub struct Ticker {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    pub fn start<F>(bar: ProgressBar, update: F) -> Self
    where
        F: Fn(&ProgressBar) + Send + 'static,
    {
        let b = bar.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                update(&b);
            }
        });
        Self { bar, task }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

/// Polls `done` every 20 ms until it holds.
pub async fn wait_until(done: impl Fn() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `fut` with a bar that shows seconds elapsed out of `total`.
pub async fn timed<T>(
    quiet: bool,
    prefix: &str,
    total: Duration,
    msg: impl Fn() -> String + Send + 'static,
    fut: impl Future<Output = T>,
) -> T {
    let bar = bar(quiet, total.as_secs().max(1), prefix);
    let start = std::time::Instant::now();
    let _ticker = Ticker::start(bar, move |b| {
        b.set_position(start.elapsed().as_secs());
        b.set_message(msg());
    });
    fut.await
}
