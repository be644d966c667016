#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Attack: slowloris. One source (127.0.0.2) opens many HTTP connections (short: 400; --long:
9,000) and drips their request headers one byte every 300 ms, never finishing them; meanwhile a
second source (127.0.0.1) queries REST (and TCP). Figures: the second source's share answered
(>= 99 %), and how long the node let a dripper live after its first byte: every one must be
closed within tcp_frame_timeout_ms (2 s here) plus 2.5 s of scheduling slack, although it
keeps sending (the idle timeout, 20 s, never fires).
"""
import os
import select
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

LONG = "--long" in sys.argv
DRIPPERS = 9000 if LONG else 400
LEGIT = 1000 if LONG else 150
FRAME_MS = 2000
SLACK_MS = 2500
HEAD = b"GET /api/site HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


class Drippers:
    def __init__(self, port):
        self.port = port
        self.open = {}     # fd -> (socket, time of the first byte)
        self.lived = []    # seconds each closed dripper lived after its first byte
        self.failed = 0    # connects that did not even complete
        self.stop = threading.Event()

    def start(self, n):
        for _ in range(n):
            s = attacker_socket(self.port, HEAD)
            if s is None:
                self.failed += 1
                continue
            self.open[s.fileno()] = (s, time.time())

    def closed(self, fd):
        s, t0 = self.open.pop(fd)
        self.lived.append(time.time() - t0)
        s.close()

    def run(self, until):
        p = select.poll()
        for fd in self.open:
            p.register(fd, select.POLLIN | select.POLLRDHUP)
        next_drip = time.time()
        while self.open and not self.stop.is_set() and time.time() < until:
            for fd, _ in p.poll(50):
                if fd in self.open:
                    p.unregister(fd)
                    self.closed(fd)
            if time.time() >= next_drip:
                next_drip += 0.3
                for fd, (s, _) in list(self.open.items()):
                    try:
                        s.send(b"a")
                    except OSError:
                        p.unregister(fd)
                        self.closed(fd)


def main():
    tmp = attack_begin(DRIPPERS + 4096, "atk-slow")
    if tmp is None:
        return 77
    node = d = t = None
    try:
        node = attack_node(tmp, "tcp_frame_timeout_ms = %d\ntcp_idle_timeout_ms = 20000\n"
                           % FRAME_MS)
        d = Drippers(node.http)
        d.start(DRIPPERS)
        started = len(d.open)
        t = threading.Thread(target=d.run, args=(time.time() + (FRAME_MS + SLACK_MS) / 1000.0 + 30,))
        t.start()
        legit = Legit(node)
        t0 = time.time()
        legit.round(LEGIT, pause=0.005)
        # the drippers must all be gone by now or soon
        t.join(FRAME_MS / 1000.0 + 30)
        d.stop.set()
        t.join(10)
        worst = max(d.lived) if d.lived else 0.0
        check(not d.open, "every dripper was closed (%d still open)" % len(d.open))
        check(worst * 1000 <= FRAME_MS + SLACK_MS,
              "drippers closed within the frame timeout (worst %.2f s)" % worst)
        check(legit.pct("tcp") >= 99.0 and legit.pct("rest") >= 99.0, "second source >= 99 %")
        check(node.alive(), "node alive")
        print("FIGURE slowloris: %d drippers from 127.0.0.2 (%d connected, %d failed to), all "
              "closed, longest lived %.2f s after its first byte (tcp_frame_timeout_ms %d); "
              "during %.1f s: %s" % (DRIPPERS, started, d.failed, worst, FRAME_MS,
                                     time.time() - t0, legit.text()))
    finally:
        if d:
            d.stop.set()
            if t:
                t.join(10)
            for s, _ in d.open.values():
                s.close()
    return attack_done(node, tmp, "atk_slowloris")


if __name__ == "__main__":
    sys.exit(main())
