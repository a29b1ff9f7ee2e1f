//! A minimal logger for the `log` facade (Pingora logs through it too), writing to stderr from a
//! dedicated thread: a Pingora worker only appends the line to a shared buffer, so a slow or
//! blocked stderr never stalls request handling.
//!
//! The writer wakes for a batch, not per line: one usage line per request used to wake it once per
//! request, and on a 2-core box that wake-up cost the request path more than the line itself (c=1
//! stream latency p99 -25 %, `bench/RESULTS.md`). The first line into an empty buffer wakes it, and
//! it writes what has gathered `FLUSH_EVERY` later; with nothing to write it sleeps, so an idle
//! gateway never wakes it. Warnings and errors are written at once. `flush` writes whatever is
//! left, for the end of the process.
//! Level from `EZROUTER_LOG` (`error`, `warn`, `info`, `debug`, `trace`; default `info`).

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// How long an info line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

struct Background {
    /// Formatted lines not yet written.
    pending: Mutex<Vec<u8>>,
    /// A warning or error is pending: write without waiting for more lines.
    urgent: AtomicBool,
    writer: OnceLock<Thread>,
}

static LOGGER: Background = Background {
    pending: Mutex::new(Vec::new()),
    urgent: AtomicBool::new(false),
    writer: OnceLock::new(),
};

impl Background {
    /// Adds a formatted line; returns whether the writer must be woken: for the first line since
    /// it last wrote (it sleeps until then) and for each warning or error.
    fn append(&self, line: &[u8], urgent: bool) -> bool {
        let first = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let first = pending.is_empty();
            pending.extend_from_slice(line);
            first
        };
        if urgent {
            self.urgent.store(true, Ordering::Relaxed);
        }
        first || urgent
    }

    /// The writer thread: sleeps while nothing is pending; once a line is, lets more gather for
    /// `FLUSH_EVERY` (a warning cuts that short), then writes them all.
    fn write_forever(&self) -> ! {
        let mut spare = Vec::new();
        loop {
            std::thread::park();
            if !self.urgent.load(Ordering::Relaxed) {
                std::thread::park_timeout(FLUSH_EVERY);
            }
            self.urgent.store(false, Ordering::Relaxed);
            self.write_pending(&mut spare);
        }
    }

    /// Writes what is pending; the lock is held only to swap the buffer out.
    fn write_pending(&self, spare: &mut Vec<u8>) {
        spare.clear();
        std::mem::swap(
            &mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()),
            spare,
        );
        if !spare.is_empty() {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(spare);
            let _ = err.flush();
        }
    }
}

impl Log for Background {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            // Formatted before taking the lock (an argument whose `Display` logs would otherwise
            // deadlock on it), into a per-thread buffer that is reused: no allocation per line.
            // A line logged while formatting another takes a fresh buffer instead.
            thread_local!(static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) });
            let urgent = record.level() <= Level::Warn;
            let append = |line: &mut Vec<u8>| {
                line.clear();
                // `LEVEL target: message`: only the message goes through `fmt` (the level padded
                // by `{:<5}` and the target were a quarter of a usage line's cost).
                line.extend_from_slice(level_tag(record.level()));
                line.extend_from_slice(record.target().as_bytes());
                line.extend_from_slice(b": ");
                match record.args().as_str() {
                    Some(message) => line.extend_from_slice(message.as_bytes()),
                    None => {
                        let _ = line.write_fmt(*record.args());
                    }
                }
                line.push(b'\n');
                self.append(line, urgent)
            };
            let wake = LINE.with(|cell| match cell.try_borrow_mut() {
                Ok(mut line) => append(&mut line),
                Err(_) => append(&mut Vec::new()),
            });
            if wake {
                if let Some(writer) = self.writer.get() {
                    writer.unpark();
                }
            }
        }
    }

    fn flush(&self) {
        self.write_pending(&mut Vec::new());
    }
}

/// A level as the line starts with it, padded to five characters and a space.
fn level_tag(level: Level) -> &'static [u8] {
    match level {
        Level::Error => b"ERROR ",
        Level::Warn => b"WARN  ",
        Level::Info => b"INFO  ",
        Level::Debug => b"DEBUG ",
        Level::Trace => b"TRACE ",
    }
}

pub fn init() {
    let level = std::env::var("EZROUTER_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(LevelFilter::Info);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
        let writer = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(|| LOGGER.write_forever())
            .expect("spawn the log writer");
        let _ = LOGGER.writer.set(writer.thread().clone());
        // A line logged before the writer was known woke no one, and later lines only wake it
        // for an empty buffer: wake it now, or they would wait for the next warning.
        if !LOGGER
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            writer.thread().unpark();
        }
    }
}

/// Writes the lines still buffered: call before the process exits.
pub fn flush() {
    log::logger().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A logger of its own (not the global one), at `info`.
    fn test_logger() -> Background {
        log::set_max_level(LevelFilter::Info);
        Background {
            pending: Mutex::new(Vec::new()),
            urgent: AtomicBool::new(false),
            writer: OnceLock::new(),
        }
    }

    #[test]
    fn lines_wait_in_the_buffer_until_written() {
        let logger = test_logger();
        logger.log(
            &Record::builder()
                .level(Level::Info)
                .target("ezrouter::usage")
                .args(format_args!("key={}", "bench"))
                .build(),
        );
        logger.log(
            &Record::builder()
                .level(Level::Debug)
                .args(format_args!("hidden"))
                .build(),
        );
        assert_eq!(
            String::from_utf8(logger.pending.lock().unwrap().clone()).unwrap(),
            "INFO  ezrouter::usage: key=bench\n"
        );
        let mut spare = Vec::new();
        logger.write_pending(&mut spare);
        assert!(logger.pending.lock().unwrap().is_empty());
        assert_eq!(spare, b"INFO  ezrouter::usage: key=bench\n");
    }

    /// The writer is woken for the first line after it last wrote and for each warning, not for
    /// every line (a busy gateway: ~10 wake-ups a second) and not at all while nothing is logged.
    #[test]
    fn the_writer_is_woken_by_the_first_line_of_a_batch_and_by_warnings() {
        let logger = test_logger();
        assert!(
            logger.append(b"one\n", false),
            "the first line wakes the writer"
        );
        assert!(
            !logger.append(b"two\n", false),
            "later lines join its batch"
        );
        assert!(!logger.urgent.load(Ordering::Relaxed));
        assert!(
            logger.append(b"warning\n", true),
            "a warning is written at once"
        );
        assert!(logger.urgent.load(Ordering::Relaxed));
        let mut spare = Vec::new();
        logger.write_pending(&mut spare);
        assert_eq!(spare, b"one\ntwo\nwarning\n");
        assert!(
            logger.append(b"three\n", false),
            "a new batch after the write"
        );
    }

    /// A value whose `Display` logs (Pingora's errors can) neither deadlocks nor loses a line.
    #[test]
    fn a_line_logged_while_formatting_another_is_kept() {
        struct Logs<'a>(&'a Background);
        impl std::fmt::Display for Logs<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.log(
                    &Record::builder()
                        .level(Level::Info)
                        .args(format_args!("inner"))
                        .build(),
                );
                f.write_str("outer")
            }
        }
        let logger = test_logger();
        logger.log(
            &Record::builder()
                .level(Level::Info)
                .args(format_args!("{}", Logs(&logger)))
                .build(),
        );
        assert_eq!(
            String::from_utf8(logger.pending.lock().unwrap().clone()).unwrap(),
            "INFO  : inner\nINFO  : outer\n"
        );
    }
}
