//! A minimal logger for the `log` facade (Pingora logs through it too), writing to stderr from a
//! dedicated thread: a Pingora worker only appends the line to a shared buffer, so a slow or
//! blocked stderr never stalls request handling.
//!
//! The writer wakes on a timer (`FLUSH_EVERY`), not per line: one usage line per request used to
//! wake it once per request, and on a 2-core box that wake-up cost the request path more than the
//! line itself (c=1 stream latency p99 -25 %, `bench/RESULTS.md`). Warnings and errors still wake
//! it at once. `flush` writes whatever is left, for the end of the process.
//! Level from `EZROUTER_LOG` (`error`, `warn`, `info`, `debug`, `trace`; default `info`).

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// How long an info line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

struct Background {
    /// Formatted lines not yet written.
    pending: Mutex<Vec<u8>>,
    writer: OnceLock<Thread>,
}

static LOGGER: Background = Background {
    pending: Mutex::new(Vec::new()),
    writer: OnceLock::new(),
};

impl Background {
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
            let append = |line: &mut Vec<u8>| {
                line.clear();
                let _ = writeln!(
                    line,
                    "{:<5} {}: {}",
                    record.level(),
                    record.target(),
                    record.args()
                );
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(line);
            };
            LINE.with(|cell| match cell.try_borrow_mut() {
                Ok(mut line) => append(&mut line),
                Err(_) => append(&mut Vec::new()),
            });
            if record.level() <= Level::Warn {
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

pub fn init() {
    let level = std::env::var("EZROUTER_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(LevelFilter::Info);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
        let writer = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(|| {
                let mut spare = Vec::new();
                loop {
                    std::thread::park_timeout(FLUSH_EVERY);
                    LOGGER.write_pending(&mut spare);
                }
            })
            .expect("spawn the log writer");
        let _ = LOGGER.writer.set(writer.thread().clone());
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
