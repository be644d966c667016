#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Attack: one source (127.0.0.2) holds many TCP connections (short: 2,000; --long: 10,000), each
with half a request sent so the node has to keep it, and re-opens every one the node closes;
meanwhile a second source (127.0.0.1) resolves over TCP (a connection per request, as hdllib)
and REST. Figure: the share of the second source's queries answered; it must be >= 99 %.
The node (2 workers) runs with max_connections_per_source = 256.
"""
import os
import select
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

LONG = "--long" in sys.argv
HOLD = 10000 if LONG else 2000
LEGIT = 2000 if LONG else 200
PER_SOURCE = 256
HALF = resolve_request("88.100.1/test", 1)[:10]


class Holder:
    """The attacker: keeps up to HOLD connections open from 127.0.0.2."""

    def __init__(self, port):
        self.port = port
        self.socks = []
        self.opened = 0
        self.stop = threading.Event()

    def open_one(self):
        s = attacker_socket(self.port, HALF)
        if s is None:
            return
        self.socks.append(s)
        self.opened += 1

    def prune(self):
        """Drop the connections the node closed; return how many are still open."""
        p = select.poll()
        for s in self.socks:
            p.register(s, select.POLLIN | select.POLLRDHUP)
        dead = set()
        for fd, ev in p.poll(0):
            dead.add(fd)
        keep = []
        for s in self.socks:
            if s.fileno() in dead:
                s.close()
            else:
                keep.append(s)
        self.socks = keep
        return len(keep)

    def run(self, deadline):
        """Re-open what the node closed, at most HOLD per round, until stopped."""
        while not self.stop.is_set() and time.time() < deadline:
            self.prune()
            for _ in range(HOLD - len(self.socks)):
                if self.stop.is_set():
                    break
                self.open_one()
            self.stop.wait(0.5)

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []


def main():
    tmp = attack_begin(HOLD + 4096, "atk-hold")
    if tmp is None:
        return 77
    node = holder = None
    t = None
    try:
        node = attack_node(tmp, "max_connections_per_source = %d\n" % PER_SOURCE)
        holder = Holder(node.port)
        t0 = time.time()
        for _ in range(HOLD):
            holder.open_one()
        time.sleep(0.5)
        kept = holder.prune()
        print("attacker opened %d connections in %.1f s; the node keeps %d" %
              (holder.opened, time.time() - t0, kept))
        t = threading.Thread(target=holder.run, args=(time.time() + (300 if LONG else 60),))
        t.start()
        legit = Legit(node)
        legit.round(LEGIT, pause=0.01)
        holder.stop.set()
        t.join(30)
        # connections still in the listen backlog look open to the attacker until the node
        # accepts (and closes) them: a loaded node may be a moment behind
        deadline = time.time() + 10
        kept = holder.prune()
        while kept > PER_SOURCE and time.time() < deadline:
            time.sleep(0.2)
            kept = holder.prune()
        check(kept <= PER_SOURCE, "the attacker holds at most max_connections_per_source (%d)" % kept)
        check(legit.pct("tcp") >= 99.0 and legit.pct("rest") >= 99.0, "second source >= 99 %")
        check(node.alive(), "node alive")
        print("FIGURE conn_hold: attacker 127.0.0.2 opened %d connections (trying to hold %d at a time), "
              "the node kept %d; %s" % (holder.opened, HOLD, kept, legit.text()))
    finally:
        if holder:
            holder.stop.set()
            if t:
                t.join(30)
            holder.close()
    return attack_done(node, tmp, "atk_conn_hold")


if __name__ == "__main__":
    sys.exit(main())
