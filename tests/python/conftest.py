"""Official-SDK client tests: one mock upstream and one gateway per session, real processes on
loopback ports picked by the kernel, the real `openai` and `anthropic` SDKs pointed at them.

Run with `bash scripts/test-python.sh` (builds the binary, prepares .venv, runs pytest -q).
The cross-dialect tests (issue 3) are marked `cross` (select them with -m cross).
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("EZROUTER_BIN") or REPO / "target" / "debug" / "ezrouter")

# Client keys (what the SDKs send) and upstream keys (what the mock must see instead).
CLIENT_KEY = "sk-test-0123456789"
NARROW_KEY = "sk-narrow-0123456789"
UPSTREAM_KEYS = {"oai": "ok-oai-1", "ant": "ok-ant-2", "gem": "ok-gem-3", "ds": "ok-ds-4"}

# Public model id -> (provider, upstream model name).
MODELS = {
    "gpt": ("oai", "upstream-gpt"),
    "embed": ("oai", "upstream-embed"),
    "claude": ("ant", "upstream-claude"),
    "gemini": ("gem", "upstream-gemini"),
    "deepseek": ("ds", "upstream-deepseek"),
    "broken": ("bad", "upstream-broken"),
    "broken-claude": ("bad-ant", "upstream-broken-claude"),
}
NARROW_MODELS = ["gpt"]

# A tool the mock calls with arguments built from the schema: strings "mock", numbers 1.
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "days": {"type": "integer", "description": "How many days"},
    },
    "required": ["city", "days"],
}
WEATHER_ARGS = {"city": "mock", "days": 1}

STARTUP_TIMEOUT = 15.0
DEFAULT_TEST_TIMEOUT = 20  # seconds, for every test without its own @pytest.mark.timeout
SDK_TIMEOUT = 10.0  # per HTTP request made by an SDK client

# The SDKs read these; a developer's shell must not change what the tests send.
for _name in list(os.environ):
    if _name.startswith(("OPENAI_", "ANTHROPIC_")):
        del os.environ[_name]


# --------------------------------------------------------------------------- pytest hooks


def pytest_configure(config):
    config.addinivalue_line("markers", "cross: cross-dialect translation (issue 3)")
    config.addinivalue_line("markers", "timeout(seconds): pytest-timeout per-test limit")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT))


# --------------------------------------------------------------------------- processes

_live: list[subprocess.Popen] = []


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=3)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if proc in _live:
        _live.remove(proc)


@atexit.register
def _stop_all() -> None:  # last resort if a finalizer never ran
    for proc in list(_live):
        _stop(proc)


def _die_with_parent() -> None:
    """In the child: get SIGKILL when pytest dies, so no process outlives a killed run."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Process:
    """A child process whose first stdout line announces its address(es)."""

    def __init__(self, name: str, args: list[str], log_dir: Path):
        if not BIN.is_file():
            pytest.exit(f"{BIN} not found: run `cargo build --bins` (or scripts/test-python.sh)", returncode=2)
        self.name = name
        self.log_path = log_dir / f"{name}.stderr.log"
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, EZROUTER_LOG=os.environ.get("EZROUTER_LOG", "warn"))
        self.proc = subprocess.Popen(
            [str(BIN), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            preexec_fn=_die_with_parent,
        )
        _live.append(self.proc)
        try:
            self.line = self._first_line(STARTUP_TIMEOUT)
        except Exception:
            self.stop()
            raise
        # Keep draining stdout so the child can never block on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _first_line(self, timeout: float) -> str:
        fd = self.proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + timeout
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{self.name}: no address line within {timeout}s; {self.log_tail()}")
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    self.proc.wait(timeout=2)
                    raise RuntimeError(
                        f"{self.name} exited ({self.proc.returncode}) before announcing its address; "
                        f"stdout={buf!r}; {self.log_tail()}"
                    )
                buf += chunk
        finally:
            sel.close()
        return buf.split(b"\n", 1)[0].decode().strip()

    def _drain(self) -> None:
        try:
            while os.read(self.proc.stdout.fileno(), 65536):
                pass
        except OSError:
            pass

    def log_tail(self, n: int = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        return f"stderr tail: {text[-n:]!r}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        _stop(self.proc)
        self._log.close()


def _parse_addr(line: str, prefix: str) -> str:
    for word in line.split():
        if word.startswith(prefix):
            return word[len(prefix):]
    raise RuntimeError(f"no {prefix!r} in {line!r}")


def _wait_accepting(addr: str, proc: Process, timeout: float = STARTUP_TIMEOUT) -> None:
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.proc.returncode}); {proc.log_tail()}")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{proc.name} at {addr} never accepted a connection; {proc.log_tail()}")


# --------------------------------------------------------------------------- mock upstream


def _norm_headers(headers) -> dict[str, str]:
    """The mock's headers as {lowercase name: value} (it may send a map or a list of pairs)."""
    out: dict[str, str] = {}
    if isinstance(headers, dict):
        items = headers.items()
    else:
        items = [(h[0], h[1]) if isinstance(h, (list, tuple)) else (h.get("name"), h.get("value")) for h in headers or []]
    for k, v in items:
        k = str(k).lower()
        v = ", ".join(map(str, v)) if isinstance(v, list) else str(v)
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


class SeenRequest:
    """One request the mock upstream received."""

    def __init__(self, raw: dict):
        self.raw = raw
        self.method = raw.get("method")
        self.path = raw.get("path") or raw.get("uri") or ""
        self.headers = _norm_headers(raw.get("headers"))
        body = raw.get("body")
        self.text = body if isinstance(body, str) else json.dumps(body)
        try:
            self.json = json.loads(body) if isinstance(body, str) else body
        except ValueError:
            self.json = None

    def everything(self) -> str:
        """Path, headers and body as one string, to check a secret appears nowhere."""
        return f"{self.path}\n{json.dumps(self.headers)}\n{self.text}"

    def __repr__(self) -> str:
        return f"<{self.method} {self.path} headers={self.headers} body={self.text[:600]}>"


class Mock:
    def __init__(self, process: Process, addr: str):
        self.process = process
        self.addr = addr
        self.http = httpx.Client(base_url=f"http://{addr}", timeout=5.0)

    def requests(self) -> list[SeenRequest]:
        r = self.http.get("/_mock/requests")
        r.raise_for_status()
        data = r.json()
        if isinstance(data, dict):
            data = data.get("requests", [])
        return [SeenRequest(x) for x in data]

    def find(self, marker: str) -> SeenRequest:
        """The latest request whose body contains `marker` (each test sends its own)."""
        seen = self.requests()
        for req in reversed(seen):
            if marker in req.text:
                return req
        raise AssertionError(f"the mock upstream saw no request containing {marker!r}; it saw {seen[-5:]}")

    def find_all(self, marker: str) -> list[SeenRequest]:
        return [r for r in self.requests() if marker in r.text]

    def stats(self) -> dict:
        return self.http.get("/_mock/stats").json()


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ezrouter")


@pytest.fixture(scope="session")
def mock_upstream(run_dir):
    proc = Process("mock-upstream", ["mock-upstream", "--listen", "127.0.0.1:0"], run_dir)
    try:
        if not proc.line.startswith("mock-upstream listening on "):
            raise RuntimeError(f"unexpected first line from mock-upstream: {proc.line!r}")
        addr = proc.line.rsplit(" ", 1)[1]
        _wait_accepting(addr, proc)
        mock = Mock(proc, addr)
        yield mock
        mock.http.close()
    finally:
        proc.stop()


# --------------------------------------------------------------------------- gateway


def gateway_config(mock_addr: str) -> str:
    providers = f"""
[providers.oai]
kind = "openai"
base_url = "http://{mock_addr}/v1"
keys = ["{UPSTREAM_KEYS['oai']}"]

[providers.ant]
kind = "anthropic"
base_url = "http://{mock_addr}"
keys = ["{UPSTREAM_KEYS['ant']}"]

[providers.gem]
kind = "gemini"
base_url = "http://{mock_addr}"
keys = ["{UPSTREAM_KEYS['gem']}"]

[providers.ds]
kind = "openai"
base_url = "http://{mock_addr}/v1"
preset = "deepseek"
keys = ["{UPSTREAM_KEYS['ds']}"]

# Every request fails upstream with a 500: the SDKs must get their own error envelope.
[providers.bad]
kind = "openai"
base_url = "http://{mock_addr}/v1"
keys = ["fail-500"]

[providers.bad-ant]
kind = "anthropic"
base_url = "http://{mock_addr}"
keys = ["fail-500"]
"""
    models = "".join(
        f'\n[models."{name}"]\nroutes = [{{ provider = "{prov}", model = "{up}" }}]\n'
        for name, (prov, up) in MODELS.items()
    )
    return f"""
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
threads = 1
grace_period_seconds = 0
{providers}{models}
[[keys]]
id = "test"
secret = "{CLIENT_KEY}"
models = ["*"]

[[keys]]
id = "narrow"
secret = "{NARROW_KEY}"
models = {json.dumps(NARROW_MODELS)}
"""


class Gateway:
    def __init__(self, process: Process, proxy: str, admin: str, config_path: Path):
        self.process = process
        self.proxy = proxy
        self.admin = admin
        self.config_path = config_path
        self.url = f"http://{proxy}"


@pytest.fixture(scope="session")
def gateway(mock_upstream, run_dir):
    config_path = run_dir / "ezrouter.toml"
    config_path.write_text(gateway_config(mock_upstream.addr))
    proc = Process("gateway", ["serve", "-c", str(config_path)], run_dir)
    try:
        if not proc.line.startswith("ezrouter listening on "):
            raise RuntimeError(f"unexpected first line from ezrouter serve: {proc.line!r}; {proc.log_tail()}")
        proxy = _parse_addr(proc.line, "proxy=")
        admin = _parse_addr(proc.line, "admin=")
        _wait_accepting(proxy, proc)
        yield Gateway(proc, proxy, admin, config_path)
    finally:
        proc.stop()


@pytest.fixture(autouse=True)
def _gateway_still_up(request):
    """A crashed gateway fails the test that crashed it, with its log, not every later one."""
    yield
    if "gateway" in request.fixturenames:
        gw = request.getfixturevalue("gateway")
        assert gw.process.alive(), f"the gateway died during this test; {gw.process.log_tail()}"


# --------------------------------------------------------------------------- SDK clients


@pytest.fixture(scope="session")
def openai_factory(gateway):
    import openai

    made = []

    def make(api_key: str = CLIENT_KEY, **kw):
        c = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0, timeout=SDK_TIMEOUT, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture(scope="session")
def anthropic_factory(gateway):
    import anthropic

    made = []

    def make(api_key: str | None = CLIENT_KEY, base: str = "/anthropic", **kw):
        c = anthropic.Anthropic(
            base_url=f"{gateway.url}{base}", api_key=api_key, max_retries=0, timeout=SDK_TIMEOUT, **kw
        )
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture(scope="session")
def openai_client(openai_factory):
    return openai_factory()


@pytest.fixture(scope="session")
def anthropic_client(anthropic_factory):
    return anthropic_factory()


@pytest.fixture(scope="session")
def narrow_openai_client(openai_factory):
    return openai_factory(NARROW_KEY)


@pytest.fixture(scope="session")
def narrow_anthropic_client(anthropic_factory):
    return anthropic_factory(NARROW_KEY)


@pytest.fixture(scope="session")
def raw_http(gateway):
    """Plain httpx against the gateway, for what the SDKs cannot send or hide."""
    with httpx.Client(base_url=gateway.url, timeout=SDK_TIMEOUT) as c:
        yield c


@pytest.fixture
def mock_requests(mock_upstream):
    """`mock_requests()` -> every request the mock upstream kept; `.find(marker)` the latest
    whose body contains marker."""

    class Helper:
        def __call__(self):
            return mock_upstream.requests()

        find = staticmethod(mock_upstream.find)
        find_all = staticmethod(mock_upstream.find_all)

    return Helper()


@pytest.fixture
def marker() -> str:
    """A unique string to put in a prompt, to find this test's request at the mock."""
    return f"marker-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- shared checks


def has_non_ascii(text: str) -> bool:
    return any(ord(ch) > 127 for ch in text)


def assert_upstream_auth(seen: SeenRequest, provider: str) -> None:
    """The upstream request carries the provider's key in its dialect's header, and no client key."""
    key = UPSTREAM_KEYS[provider]
    h = seen.headers
    if provider in ("oai", "ds"):
        assert h.get("authorization") == f"Bearer {key}", seen
        assert "x-api-key" not in h, seen
    elif provider == "ant":
        assert h.get("x-api-key") == key, seen
        assert "authorization" not in h, seen
    elif provider == "gem":
        assert h.get("x-goog-api-key") == key or f"key={key}" in seen.path, seen
    for client_key in (CLIENT_KEY, NARROW_KEY):
        assert client_key not in seen.everything(), f"client key leaked upstream: {seen}"
