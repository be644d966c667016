#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Attack: clients that pipeline requests and never read their answers (short: 60; --long:
1,000), from 127.0.0.2, each re-connecting as soon as the node closes it; meanwhile 127.0.0.1
queries over TCP and REST. The node (2 workers) runs with conn_buffer_budget = 16m (long: 64m),
tcp_buffer_max = 1m, max_connections_per_source = 4000 (so the budget, not the source limit,
is what holds) and cache_size = 1m.

Figures: the node's RssAnon (/proc/PID/status, sampled every 50 ms) must stay under
conn_buffer_budget + the baseline (RssAnon after start-up and a warm-up, measured first) + 16 MiB
of fixed slack (each of the 2 workers may pass the budget by one read and one processing pass,
at most tcp_buffer_max + 64 KiB + its 256 KiB output scratch, plus allocator rounding); the
second source's queries are >= 99 % answered; once the attackers are gone RssAnon comes back to
within 4 MiB of the baseline (buffers are freed, not kept).
"""
import multiprocessing
import os
import select
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

LONG = "--long" in sys.argv
CLIENTS = 1000 if LONG else 60
BUDGET_MB = 64 if LONG else 16
ATTACK_S = 20.0 if LONG else 4.0
EXTRA_S = 30.0  # the attack goes on this long at most while the node has closed nobody
SLACK_MB = 16
BACK_MB = 4
PER_CLIENT = 20000  # requests each sends: ~1.7 MB, ~12 MB of answers (more than the kernel buffers)


class Pipeliners:
    def __init__(self, port, handle):
        self.port = port
        self.blob = b"".join(resolve_request(handle, 1 + i, version=(2, 10))
                             for i in range(PER_CLIENT))
        self.conns = {}  # fd -> [socket, bytes sent]
        self.opened = 0
        self.closed_by_node = 0
        self.stop = threading.Event()

    def open_one(self):
        s = attacker_socket(self.port, rcvbuf=4096)
        if s is None:
            return
        self.conns[s.fileno()] = [s, 0]
        self.opened += 1

    def pump(self):
        """Send more of each client's requests; drop (and count) what the node closed."""
        p = select.poll()
        for fd in self.conns:
            p.register(fd, select.POLLRDHUP)
        gone = set(fd for fd, ev in p.poll(0))
        for fd, c in list(self.conns.items()):
            if fd not in gone and c[1] < len(self.blob):
                try:
                    c[1] += c[0].send(self.blob[c[1]:])
                except BlockingIOError:
                    pass
                except OSError:
                    gone.add(fd)
            if fd in gone:
                c[0].close()
                del self.conns[fd]
                self.closed_by_node += 1

    def run(self, until, hard_until):
        """Until \p until, and on to \p hard_until while the node has closed none (a loaded
        box may need longer before the attack fills the budget)."""
        while not self.stop.is_set() and (time.time() < until or
                                          (self.closed_by_node == 0 and
                                           time.time() < hard_until)):
            while len(self.conns) < CLIENTS and not self.stop.is_set():
                self.open_one()
            self.pump()
            self.stop.wait(0.05)

    def close(self):
        for s, _ in self.conns.values():
            s.close()
        self.conns = {}


def attack(pl, until, hard_until, res):
    """Child process: run the pipeliners (Pipeliners.run()), report (opened, closed by the
    node)."""
    pl.run(until, hard_until)
    pl.close()
    res.put((pl.opened, pl.closed_by_node))


def main():
    tmp = attack_begin(CLIENTS + 4096, "atk-pipe")
    if tmp is None:
        return 77
    node = pl = t = None
    try:
        node = attack_node(tmp, "conn_buffer_budget = %dm\ntcp_buffer_max = 1m\n"
                           "max_connections_per_source = 4000\ncache_size = 1m\n" % BUDGET_MB)
        pid = node.proc.pid
        legit = Legit(node)
        legit.round(20)
        check(legit.tcp[0] == 20 and legit.rest[0] == 20, "warm-up answered")
        base = max(rss_anon_kb(pid) for _ in range(5) if time.sleep(0.05) is None)
        legit = Legit(node)
        pl = Pipeliners(node.port, node.first)
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_anon_kb(pid))
                stop.wait(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        # the attackers run in a child process, so they do not slow the legitimate client down
        # through this interpreter's lock
        res = multiprocessing.Queue()
        t0 = time.time()
        t = multiprocessing.Process(target=attack,
                                    args=(pl, t0 + ATTACK_S, t0 + ATTACK_S + EXTRA_S, res))
        t.start()
        while t.is_alive() and time.time() - t0 < ATTACK_S + EXTRA_S + 5:
            legit.round(5, pause=0.01)
        pl.opened, pl.closed_by_node = res.get(timeout=60)
        t.join(30)
        back = None
        deadline = time.time() + 10
        while time.time() < deadline:
            back = rss_anon_kb(pid)
            if back <= base + BACK_MB * 1024:
                break
            time.sleep(0.1)
        stop.set()
        sampler.join(5)
        limit = base + (BUDGET_MB + SLACK_MB) * 1024
        closed_log = node.logtext().count("does not read its answers")
        check(peak[0] <= limit, "RssAnon peak %d kB <= budget + baseline + slack (%d kB)"
              % (peak[0], limit))
        check(back is not None and back <= base + BACK_MB * 1024,
              "memory came back: %s kB vs baseline %d kB" % (back, base))
        check(legit.pct("tcp") >= 99.0 and legit.pct("rest") >= 99.0, "second source >= 99 %")
        check(pl.closed_by_node > 0, "non-reading clients were closed")
        check(node.alive(), "node alive")
        print("FIGURE pipeliner: %d non-reading clients at a time (%d connections opened, %d "
              "closed by the node, %d logged for the budget) for %.0f s; RssAnon baseline %.1f MB, "
              "peak %.1f MB (budget %d MB + baseline + %d MB slack = %.1f MB), after %.1f MB; %s"
              % (CLIENTS, pl.opened, pl.closed_by_node, closed_log, ATTACK_S, base / 1024.0,
                 peak[0] / 1024.0, BUDGET_MB, SLACK_MB, limit / 1024.0, (back or 0) / 1024.0,
                 legit.text()))
    finally:
        if t and t.is_alive():
            t.terminate()
            t.join(10)
    return attack_done(node, tmp, "atk_pipeliner")


if __name__ == "__main__":
    sys.exit(main())
