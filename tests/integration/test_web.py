#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The status page (GET / on the HTTP listener) in headless Chromium, driven over the DevTools
protocol with a WebSocket client written here on the stdlib: the identifier is typed into the
lookup box and Enter pressed, the record's table is checked cell by cell against the REST API
(types, indexes, TTLs, timestamps, a link for the URL value, no non-public value, markup shown as
text), a missing identifier shows its error, a URL fragment (#h=...) looks an identifier up on load,
and the status view refreshes itself from /status.json: requests sent meanwhile show up in its
counters. No script error and no Content-Security-Policy violation may be logged.

Exits 77 (ctest SKIP_RETURN_CODE) only when no Chromium is installed (Debian package chromium).
Every wait is bounded; idnoded and the browser are stopped by PID (the browser's process group)
in a finally block.
"""
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

PUMP = "88.100.1/PUMP-2024-000123"
VALVE = "88.100.1/VALVE-2024-000045"
MARKUP = "88.100.1/MARKUP"
WAIT = 30  # seconds any page state may take to appear (a loaded 2-core box)


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


class WebSocket:
    """A minimal RFC 6455 client: text frames out (masked), text frames in, pings answered."""

    def __init__(self, url, timeout=WAIT):
        u = urllib.parse.urlparse(url)
        self.s = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n" % (u.path, u.hostname, u.port, key))
                       .encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = self.s.recv(4096)
            if not d:
                raise RuntimeError("websocket handshake: connection closed")
            buf += d
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        want = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if not head.startswith(b"HTTP/1.1 101") or want not in head:
            raise RuntimeError("websocket handshake refused: %r" % head[:200])

    def _read(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise RuntimeError("websocket closed")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, text):
        self._send(0x1, text.encode())

    def recv(self):
        """The next text message (fragments joined)."""
        msg = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            op = b0 & 0x0F
            if op == 0x9:
                self._send(0xA, data)
                continue
            if op == 0x8:
                raise RuntimeError("websocket closed by the browser")
            if op in (0x1, 0x0, 0x2):
                msg += data
                if b0 & 0x80:
                    return msg.decode()

    def close(self):
        try:
            self._send(0x8, b"")
        except OSError:
            pass
        self.s.close()


class Page:
    """One page target over the DevTools protocol."""

    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events = []

    def call(self, method, params=None, timeout=WAIT):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.ws.s.settimeout(max(0.1, deadline - time.time()))
            m = json.loads(self.ws.recv())
            if m.get("id") == mid:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            self.events.append(m)
        raise RuntimeError("%s: no answer in %d s" % (method, timeout))

    def js(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                            "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError("script %r: %s" % (expr[:80], r["exceptionDetails"]))
        return r["result"].get("value")

    def wait(self, expr, what, timeout=WAIT):
        """Poll a JavaScript expression until it is truthy; its value (None on timeout)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = self.js(expr)
            if v:
                return v
            time.sleep(0.1)
        check(False, "page: %s (no %s in %d s)" % (what, expr[:100], timeout))
        return None

    def type_and_enter(self, text):
        self.js("(() => { const e = document.getElementById('handle'); e.value = ''; "
                "e.focus(); return true; })()")
        self.call("Input.insertText", {"text": text})
        for t in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", {"type": t, "key": "Enter", "code": "Enter",
                                                 "windowsVirtualKeyCode": 13,
                                                 "nativeVirtualKeyCode": 13,
                                                 "text": "\r" if t == "keyDown" else ""})


ROWS = ("JSON.stringify([...document.querySelectorAll('#values tbody tr')].map("
        "tr => [...tr.cells].map(td => td.textContent)))")


def rest_values(node, handle):
    st, _, body = node.get("/api/handles/" + urllib.parse.quote(handle, safe=""))
    check(st == 200, "REST %s: %d" % (handle, st))
    return json.loads(body)["values"]


def test_lookup(node, page):
    want = rest_values(node, PUMP)
    page.type_and_enter(PUMP)
    rows = page.wait("(() => { const r = " + ROWS + "; return JSON.parse(r).length ? r : ''; })()",
                     "the record's table")
    rows = json.loads(rows or "[]")
    check(len(rows) == len(want), "table rows %d, REST values %d" % (len(rows), len(want)))
    by_index = {int(r[0]): r for r in rows}
    for v in want:
        r = by_index.get(v["index"])
        if not check(r is not None, "row of index %d" % v["index"]):
            continue
        check(r[1] == v["type"], "type of %d: %r" % (v["index"], r[1]))
        if v["data"].get("format") == "string":
            check(r[2] == v["data"]["value"], "data of %d: %r" % (v["index"], r[2]))
        check(r[3] == "%d s" % v["ttl"], "TTL of %d: %r" % (v["index"], r[3]))
        check(r[4] == v.get("timestamp", ""), "timestamp of %d: %r" % (v["index"], r[4]))
    check(20 not in by_index, "the non-public INTERNAL_NOTE (index 20) is not shown")
    check(by_index.get(100, [""] * 3)[2].startswith("0.NA/88.100.1:300"), "HS_ADMIN rendered")
    href = page.js("(() => { const a = document.querySelector('#values tr[data-index=\"1\"] a');"
                   " return a ? a.getAttribute('href') : null; })()")
    check(href == "https://id.zjfluid.cn/p/PUMP-2024-000123", "URL value is a link: %r" % href)
    check(page.js("document.querySelectorAll('#values a').length") == 2, "two URL links")
    check(page.js("document.getElementById('result-handle').textContent") == PUMP, "handle shown")
    check(page.js("location.hash") == "#h=" + urllib.parse.quote(PUMP, safe=""),
          "the fragment names the identifier")

    # a missing identifier: its error, no table
    page.type_and_enter("88.100.1/NO-SUCH-THING")
    err = page.wait("(() => { const e = document.getElementById('lookup-error'); "
                    "return e.hidden ? '' : e.textContent; })()", "the not-found error")
    check(err is not None and "handle not found" in err and "NO-SUCH-THING" in err,
          "not-found text: %r" % err)
    check(page.js("document.getElementById('lookup-result').hidden") is True, "table hidden")

    # markup in a value is text, never HTML
    page.type_and_enter(MARKUP)
    page.wait("document.querySelectorAll('#values tbody tr').length === 1", "the markup record")
    cell = page.js("document.querySelector('#values tbody td.data').textContent")
    check(cell == "<b>bold</b><img src=x onerror=alert(1)>", "markup as text: %r" % cell)
    check(page.js("document.querySelectorAll('#values b, #values img').length") == 0,
          "no element made from data")


def test_fragment(node, page, base):
    page.call("Page.navigate", {"url": base + "#h=" + urllib.parse.quote(VALVE, safe="")})
    rows = page.wait("(() => { const r = " + ROWS + "; const j = JSON.parse(r); return "
                     "j.length && document.getElementById('result-handle').textContent === '"
                     + VALVE + "' ? r : ''; })()", "the record named by the fragment")
    rows = json.loads(rows or "[]")
    model = [r for r in rows if r[1] == "MODEL"]
    check(model and model[0][2] == "Q41F-16C-DN100", "MODEL row: %r" % model)
    check(page.js("document.querySelectorAll('#values code').length") == 1, "hex data as code")


def test_status(node, page):
    page.wait("Number(document.getElementById('status-updated').dataset.updates || 0) >= 1",
              "a first status refresh")
    before = page.js("Number(document.getElementById('st-requests').textContent)")
    updates = page.js("Number(document.getElementById('status-updated').dataset.updates)")
    check(isinstance(before, (int, float)), "request counter shown: %r" % before)
    for i in range(25):
        check(parse_reply(node.udp(resolve_request(PUMP, 900 + i, types=["URL"]))[0])["rc"] == 1,
              "udp answer")
    now = page.wait("(() => { const n = Number(document.getElementById('st-requests')"
                    ".textContent); return n >= %d ? n : 0; })()" % ((before or 0) + 25),
                    "the counter to take the new requests")
    check(now is not None and now >= (before or 0) + 25, "requests %r -> %r" % (before, now))
    check(page.js("Number(document.getElementById('status-updated').dataset.updates)") > updates,
          "the status view refreshed itself")
    check("udp" in (page.js("document.getElementById('st-by-transport').textContent") or ""),
          "by transport shown")
    check(page.js("[...document.querySelectorAll('#prefixes li')].map(e => e.textContent)")
          == ["88.100.1"], "homed prefixes listed")
    store = page.js("document.getElementById('st-store').textContent") or ""
    check(store.startswith("233 handles, 1 homed prefixes"), "store line: %r" % store)
    check("127.0.0.1:%d" % node.port in (page.js(
        "document.getElementById('node-listen').textContent") or ""), "listen address shown")


def main():
    chromium = find_chromium()
    if not chromium:
        print("skip: no chromium installed (Debian package chromium)")
        return 77
    if binaries_missing():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-web-")
    nodes = []
    browser = None
    page = None
    blog = None
    try:
        db = os.path.join(tmp, "db")
        os.mkdir(db)
        extra = os.path.join(tmp, "extra.jsonl")
        with open(extra, "w") as f:
            f.write(json.dumps({"handle": MARKUP, "values": [{"index": 1, "type": "DESC", "data": {
                "format": "string", "value": "<b>bold</b><img src=x onerror=alert(1)>"}}]}) + "\n")
        for src in (os.path.join(SRC, "seeds", "demo.jsonl"), extra):
            imp = subprocess.run([IDNODE, "import", "--db", db, "--home", "88.100.1", src],
                                 capture_output=True, timeout=120)
            check(imp.returncode == 0, "import: %s" % imp.stderr.decode(errors="replace"))
        node = Node(tmp, db)
        nodes.append(node)
        st, hdr, body = node.get("/")
        check(st == 200 and b"<script src=\"/app.js\">" in body, "page served")
        check("default-src 'none'" in hdr.get("content-security-policy", ""), "CSP header")
        st, hdr, body = node.get("/app.js")
        check(st == 200 and hdr.get("content-type", "").startswith("text/javascript"), "app.js")

        profile = os.path.join(tmp, "profile")
        blog = open(os.path.join(tmp, "chromium.log"), "w")
        browser = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--no-proxy-server", "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", "--user-data-dir=" + profile,
             "about:blank"], stdout=blog, stderr=subprocess.STDOUT, start_new_session=True)
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + 60
        dport = None
        while time.time() < deadline and browser.poll() is None:
            try:
                with open(port_file) as f:
                    dport = int(f.readline().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.1)
        if not dport:
            raise RuntimeError("chromium did not start (no DevToolsActivePort in 60 s)")
        targets = []
        while time.time() < deadline and not targets:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % dport,
                                            timeout=10) as r:
                    targets = [t for t in json.load(r) if t.get("type") == "page"]
            except OSError:
                time.sleep(0.2)
        if not targets:
            raise RuntimeError("chromium has no page target")
        page = Page(targets[0]["webSocketDebuggerUrl"])
        page.call("Page.enable")
        page.call("Runtime.enable")
        page.call("Log.enable")
        base = "http://127.0.0.1:%d/" % node.http
        page.call("Page.navigate", {"url": base})
        page.wait("document.readyState === 'complete' && !!document.getElementById('handle')",
                  "the page loaded")
        test_status(node, page)
        test_lookup(node, page)
        test_fragment(node, page, base)
        page.js("1")  # collect the events that came meanwhile
        def expected(e):
            # the browser logs the 404 of the missing identifier's lookup: that one is wanted
            en = e["params"]["entry"]
            return en.get("source") == "network" and "NO-SUCH-THING" in en.get("url", "")
        bad = [e for e in page.events if e.get("method") == "Runtime.exceptionThrown" or
               (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
                and not expected(e))
               or (e.get("method") == "Runtime.consoleAPICalled" and
                   e["params"]["type"] == "error")]
        check(not bad, "no script errors or CSP violations: %s" % json.dumps(bad)[:1500])
        check(node.alive(), "node alive")
    finally:
        if page:
            try:
                page.call("Browser.close", timeout=5)
            except Exception:  # noqa: BLE001 (the browser may be gone already)
                pass
            page.ws.close()
        if browser:
            try:
                browser.wait(10)
            except subprocess.TimeoutExpired:
                pass
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(browser.pid, sig)  # its own process group (start_new_session)
                except ProcessLookupError:
                    break
                try:
                    browser.wait(5)
                    break
                except subprocess.TimeoutExpired:
                    pass
        if blog:
            blog.close()
            if FAILS:
                with open(blog.name) as f:
                    print("---- chromium log (tail) ----\n" + f.read()[-2000:])
        return finish(nodes, tmp, "test_web")


if __name__ == "__main__":
    sys.exit(main())
