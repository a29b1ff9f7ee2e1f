//! Black-box test support: the real `ezrouter` binary on port 0, the mock upstream on port 0,
//! and a small HTTP/1.1 client that exposes what matters here (raw bytes, chunk timing, reuse
//! of one connection).
#![allow(dead_code)]

pub mod client;
pub mod metrics;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

#[allow(unused_imports)]
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
    ///
    /// The gateway binds its ports before it reports them, so the reported ports are its own:
    /// checked here once, through `/health` (which answers with the process id) on each.
    pub fn start(config: &str) -> Gateway {
        Self::start_with_env(config, &[])
    }

    /// [`Gateway::start`] with extra environment variables for the process.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = tempdir::TempDir::new();
        let path = dir.path().join("ezrouter.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ezrouter"))
            .args(["serve", "-c"])
            .arg(&path)
            .env("EZROUTER_LOG", "warn")
            .envs(env.iter().copied())
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
        let pid = child.id();
        // Its workers may take a moment to start accepting (the sockets already queue connects).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for port in std::iter::once(addr).chain(admin) {
            let answered = loop {
                match health_pid(port) {
                    Some(answered) => break answered,
                    None if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    None => panic!("{port} never answered /health ({line:?})"),
                }
            };
            assert_eq!(answered, pid, "{port} is not this gateway's ({line:?})");
        }
        Gateway {
            child,
            addr,
            admin,
            _dir: dir,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file the gateway was started on (rewrite it, then [`Gateway::sighup`]).
    pub fn config_path(&self) -> std::path::PathBuf {
        self._dir.path().join("ezrouter.toml")
    }

    /// Rewrites the config file with `config` and sends SIGHUP (a live reload). Returns at once;
    /// watch `ezrouter_config_reloads_total` to know when the reload happened.
    pub fn rewrite_and_sighup(&self, config: &str) {
        std::fs::write(self.config_path(), config).unwrap();
        self.sighup();
    }

    /// Sends SIGHUP to the gateway process.
    pub fn sighup(&self) {
        self.signal("HUP");
    }

    /// Sends a signal (`HUP`, `TERM`, ...) to the gateway process.
    pub fn signal(&self, name: &str) {
        let flag = format!("-{name}");
        let status = Command::new("kill")
            .args([flag.as_str(), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {flag} {} failed", self.pid());
    }

    /// Scrapes the admin port's `/metrics`.
    pub async fn metrics(&self) -> metrics::Metrics {
        let admin = self.admin.expect("the admin port is on");
        let r = Client::new(admin).get("/metrics", &[]).await;
        assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
        metrics::Metrics::parse(&r.text())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid in `GET /health` at `addr`, if something answers there.
fn health_pid(addr: SocketAddr) -> Option<u32> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .ok()?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let at = answer.find("\"pid\":")? + 6;
    answer[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
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
