//! The command line: `check` reports every problem with its path and exits non-zero; `--version`.

use std::process::Command;

fn ezrouter(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ezrouter"))
        .args(args)
        .output()
        .expect("run ezrouter");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("ezrouter-cli-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_accepts_the_shipped_config() {
    let (ok, stdout, stderr) = ezrouter(&[
        "check",
        "-c",
        concat!(env!("CARGO_MANIFEST_DIR"), "/conf/ezrouter.toml"),
    ]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains(": ok"));
}

#[test]
fn check_lists_every_problem_with_its_path() {
    let path = write(
        "bad",
        r#"
[server]
listen = "0.0.0.0:8080"
[providers.a]
kind = "openai"
keys = ["${EZROUTER_TEST_SURELY_UNSET}"]
timeouts = { connect_ms = 0 }
[models.m]
routes = [{ provider = "nope" }]
[[keys]]
id = "dev"
secret = "ezr-local-dev"
"#,
    );
    let (ok, _, stderr) = ezrouter(&["check", "-c", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert!(!ok);
    for expected in [
        "providers.a.keys[0]",
        "providers.a.timeouts",
        "models.m.routes[0].provider",
        "keys[0].secret",
        "4 problem(s)",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn check_reports_unknown_fields() {
    let path = write("typo", "[server]\nlisten = \"127.0.0.1:1\"\nthreds = 4\n");
    let (ok, _, stderr) = ezrouter(&["check", "-c", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert!(!ok);
    assert!(stderr.contains("unknown field `threds`"), "{stderr}");
}

#[test]
fn version() {
    let (ok, stdout, _) = ezrouter(&["--version"]);
    assert!(ok);
    assert_eq!(
        stdout.trim(),
        concat!("ezrouter ", env!("CARGO_PKG_VERSION"))
    );
}

/// `serve` reports its ports once they are bound: with port 0 the reported ports are already
/// listening (a connect succeeds at once) and no other process can take them in between.
#[test]
fn serve_reports_ports_it_has_already_bound() {
    use std::io::BufRead;
    let path = write(
        "ports",
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nthreads = 1\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_ezrouter"))
        .args(["serve", "-c"])
        .arg(&path)
        .env("EZROUTER_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ezrouter");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = |key: &str| -> std::net::SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
    };
    let connects = [port("proxy="), port("admin=")].map(std::net::TcpStream::connect);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(path);
    for (r, name) in connects.iter().zip(["proxy", "admin"]) {
        assert!(
            r.is_ok(),
            "{name} port not listening when reported: {r:?} ({line:?})"
        );
    }
}
