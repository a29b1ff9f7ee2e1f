//! A minimal logger for the `log` facade (Pingora logs through it too), writing to stderr from a
//! dedicated thread: a Pingora worker only formats the line and pushes it on a channel, so a slow
//! or blocked stderr never stalls request handling.
//! Level from `EZROUTER_LOG` (`error`, `warn`, `info`, `debug`, `trace`; default `info`).

use std::io::Write;
use std::sync::mpsc::{channel, Sender};

use log::{LevelFilter, Log, Metadata, Record};

struct Background {
    lines: Sender<String>,
}

impl Log for Background {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let line = format!(
                "{:<5} {}: {}\n",
                record.level(),
                record.target(),
                record.args()
            );
            // Sending on an unbounded channel never blocks.
            let _ = self.lines.send(line);
        }
    }

    fn flush(&self) {}
}

pub fn init() {
    let level = std::env::var("EZROUTER_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(LevelFilter::Info);
    let (tx, rx) = channel::<String>();
    let logger: &'static Background = Box::leak(Box::new(Background { lines: tx }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                // One write per burst of lines, not per line.
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
                while let Ok(line) = rx.recv() {
                    let _ = out.write_all(line.as_bytes());
                    while let Ok(more) = rx.try_recv() {
                        let _ = out.write_all(more.as_bytes());
                    }
                    let _ = out.flush();
                }
            })
            .expect("spawn the log writer");
    }
}
