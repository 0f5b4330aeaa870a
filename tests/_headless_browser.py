"""Drive headless Chromium over the DevTools protocol (on a pipe; no extra packages).

Used by tests/test_report_browser.py. Debian: ``apt-get install -y chromium``.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # WebGL (plotly's 3-D scenes) in software; Chromium asks for the opt-in explicitly now.
    "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
    "--remote-debugging-pipe", "--window-size=1400,1000", "--hide-scrollbars",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _Pipe:
    """CDP over fds 3 (to the browser) and 4 (from it), NUL-delimited JSON."""

    def __init__(self, binary, url_dir):
        self.profile = tempfile.mkdtemp(prefix="rnnlab-chromium-", dir=url_dir)
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        # The browser reads commands on fd 3 and writes replies on fd 4; a shell moves the pipe
        # ends there (bash, since dash takes one-digit fds only; no preexec_fn, so no fork).
        redirect = f'exec "$0" "$@" 3<&{to_r} 4>&{from_w}'
        self.proc = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", redirect, binary, *FLAGS,
             f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(to_r, from_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_r)
        os.close(from_w)
        self.w, self.r = to_w, from_r
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method, params=None, session=None, timeout=60.0):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method, timeout):
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if m.get("method") == method:
                return m
            self.events.append(m)

    def pump(self, seconds):
        """Collect events for ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.events.append(self._read(deadline))
            except TimeoutError:
                return

    def _read(self, deadline):
        import select

        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from the browser in time")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError("the browser closed the DevTools pipe")
                self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.w, self.r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


def render(path, *, settle: float = 4.0, scripts=(), binary=None, width=1400, height=1000,
           screenshot_selector=None):
    """Open ``path`` (a local HTML file) and report what happened.

    Returns a dict: ``console_errors`` (console.error calls, error log entries, uncaught
    exceptions, CSP violations, as text), ``requests`` (every URL the page requested),
    ``screenshot`` (PNG bytes of the viewport, scrolled to ``screenshot_selector``'s element
    when given), ``results`` (the value of each JavaScript expression in ``scripts``, evaluated
    after loading).
    """
    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium is not installed")
    pipe = _Pipe(binary, None)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                  session=session)
        url = "file://" + os.path.abspath(path)
        pipe.send("Page.navigate", {"url": url}, session=session)
        pipe.wait_event("Page.loadEventFired", timeout=120)
        pipe.pump(settle)
        results = []
        for expr in scripts:
            r = pipe.send("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                               "awaitPromise": True}, session=session)
            results.append(r.get("result", {}).get("value"))
        pipe.pump(0.5)
        if screenshot_selector is not None:
            pipe.send("Runtime.evaluate", {
                "expression": f"document.querySelector({json.dumps(screenshot_selector)})"
                              ".scrollIntoView()"}, session=session)
            pipe.pump(2.0)
        shot = base64.b64decode(pipe.send("Page.captureScreenshot", {"format": "png"},
                                          session=session)["data"])
        errors, requests = [], []
        for e in pipe.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                       for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                errors.append(d.get("exception", {}).get("description") or d.get("text", ""))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                errors.append(p["entry"].get("text", ""))
            elif m == "Network.requestWillBeSent":
                requests.append(p.get("request", {}).get("url", ""))
        return {"console_errors": errors, "requests": requests, "screenshot": shot,
                "results": results}
    finally:
        pipe.close()
