//! Black-box test support: the real `ezrouter` binary on port 0, the mock upstream on port 0,
//! and a small HTTP/1.1 client that exposes what matters here (raw bytes, chunk timing, reuse
//! of one connection).
#![allow(dead_code)]

pub mod client;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

pub use client::{Client, Response};

/// A running gateway process; killed on drop.
pub struct Gateway {
    child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    _dir: tempdir::TempDir,
}

mod tempdir {
    use std::path::{Path, PathBuf};

    /// A unique directory under the target dir, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> TempDir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "ezrouter-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Gateway {
    /// Starts `ezrouter serve` on `config` (TOML text; `listen`/`admin_listen` default to port 0).
    pub fn start(config: &str) -> Gateway {
        let dir = tempdir::TempDir::new();
        let path = dir.path().join("ezrouter.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ezrouter"))
            .args(["serve", "-c"])
            .arg(&path)
            .env("EZROUTER_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ezrouter");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let parse = |key: &str| -> Option<SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|a| a.parse().ok())
        };
        let addr = parse("proxy=").unwrap_or_else(|| panic!("gateway did not start: {line:?}"));
        let admin = parse("admin=");
        // Pingora binds right after the line is printed; wait until it accepts.
        for _ in 0..200 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Gateway {
                    child,
                    addr,
                    admin,
                    _dir: dir,
                };
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("gateway at {addr} never accepted connections");
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server section every test config starts with: random loopback ports.
pub const SERVER: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
threads = 1
grace_period_seconds = 0
"#;

/// Starts the mock upstream on a port-0 listener in this test's runtime.
pub async fn mock() -> ezrouter_mock::MockServer {
    ezrouter_mock::start("127.0.0.1:0", ezrouter_mock::MockConfig::default())
        .await
        .expect("mock upstream")
}
