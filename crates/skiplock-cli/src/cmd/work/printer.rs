//! The one writer of `work --exec`'s stdout: a thread of its own, fed whole
//! lines through a bounded queue, so that no runtime thread ever blocks on
//! stdout (a full pipe, a stuck log shipper, a suspended `| less`): the
//! heartbeats, deadlines and claims go on whatever stdout does.
//!
//! When stdout does not keep up, the queue fills and [`Printer::line`] waits:
//! the job's reader stops reading the command's stdout, whose pipe then
//! fills, and the command waits in its own `write`, as it would writing to
//! the slow stdout directly. That is backpressure on that job's output, not
//! loss: every line is printed, in order, whole, and never interleaved with
//! another job's. Why not drop lines instead: a job's stdout is often its
//! only log, and the CLI never loses input or output without an error; a
//! command held up too long meets its timeout (`--timeout`), which is
//! recorded as its attempt's error. A closed stdout (`| head` ended) is not
//! a job's failure: lines are then discarded as they come.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// Lines waiting to be printed. Each is at most the longest line read
/// (`LINE_MAX`, 64 KiB) plus its prefix, so the queue holds at most 4 MiB.
const QUEUE: usize = 64;

enum Print {
    Line(Vec<u8>),
    /// Answered once everything queued before it was written.
    Flushed(oneshot::Sender<()>),
}

/// A handle to the stdout thread; clones share it.
#[derive(Clone)]
pub struct Printer {
    queue: mpsc::Sender<Print>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    queued: AtomicU64,
    written: AtomicU64,
}

impl Printer {
    /// Starts the stdout thread.
    pub fn start() -> std::io::Result<Printer> {
        let (queue, lines) = mpsc::channel(QUEUE);
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        std::thread::Builder::new().name("stdout".into()).spawn(move || write(lines, &c))?;
        Ok(Printer { queue, counts })
    }

    /// Prints `line` (which ends with a newline) once the lines before it
    /// are out; waits while the queue is full.
    pub async fn line(&self, line: Vec<u8>) {
        self.counts.queued.fetch_add(1, Ordering::Relaxed);
        if self.queue.send(Print::Line(line)).await.is_err() {
            self.counts.written.fetch_add(1, Ordering::Relaxed); // the thread is gone: nothing to wait for
        }
    }

    /// Waits up to `within` for every line queued so far to be written.
    /// Returns how many were not (0 when stdout kept up).
    pub async fn flush(&self, within: Duration) -> u64 {
        let (done, written) = oneshot::channel();
        let flushed = async {
            self.queue.send(Print::Flushed(done)).await.ok()?;
            written.await.ok()
        };
        let _ = tokio::time::timeout(within, flushed).await;
        let queued = self.counts.queued.load(Ordering::Relaxed);
        queued.saturating_sub(self.counts.written.load(Ordering::Relaxed))
    }
}

/// The stdout thread: blocking writes are fine here, and only here.
fn write(mut lines: mpsc::Receiver<Print>, counts: &Counts) {
    let stdout = std::io::stdout();
    while let Some(print) = lines.blocking_recv() {
        match print {
            Print::Line(line) => {
                // One write per line: whole, and only this thread writes.
                let _ = stdout.lock().write_all(&line);
                counts.written.fetch_add(1, Ordering::Relaxed);
            }
            Print::Flushed(done) => {
                let _ = stdout.lock().flush();
                let _ = done.send(());
            }
        }
    }
}
