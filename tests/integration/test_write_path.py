#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The write path of the real idnoded under idnode-bench's create load (counts, not timings).

The node batches hard (write_batch_wait_us = 20 ms, so a group commit holds the ~64 creates in
flight: 8 connections x 8 pipelined, each logged in once with the IDIS OC 2001). Checks:
  * idnode-bench's write mode keeps its connections (KC) and every create is acknowledged;
  * the answers of a group commit go out in one write per connection, not one per answer: the
    node's write system calls (/proc/PID/io syscw: answers and LMDB's page writes together) stay
    under 0.6 per create (one per answer alone would be >= 1);
  * the writer does not map fresh memory for every job (LMDB's nested transaction per job
    allocates 3 MiB): under 0.5 minor page faults per create (/proc/PID/stat). Not checked in an
    ASan build, whose allocator maps large blocks itself;
  * the writer's shutdown line counts every job and the batches it made.
Every run is bounded (-d, a count); the node is stopped by PID.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403
from admintest import admin_value, seckey_value  # noqa: E402

BENCH = os.path.join(BUILD, "idnode-bench")
N = 3000


def proc_counts(pid):
    with open("/proc/%d/io" % pid) as f:
        io = dict(ln.split(": ") for ln in f.read().splitlines())
    with open("/proc/%d/stat" % pid) as f:
        minflt = int(f.read().rsplit(")", 1)[1].split()[7])
    return int(io["syscw"]), minflt


def bench(node, secret, pattern, count):
    p = subprocess.run([BENCH, "-s", "127.0.0.1:%d" % node.port, "--proto", "tcp", "--op",
                        "create", "--auth", "300:0.NA/88.100.1", "--seckey-file", secret,
                        "--pattern", pattern, "--range", "1-%d" % count, "-d", "120",
                        "--conns", "8", "--depth", "8", "--timeout", "30000", "--json"],
                       capture_output=True, timeout=300)
    check(p.returncode == 0, "idnode-bench exit %d: %s" % (p.returncode, p.stderr[-300:]))
    return json.loads(p.stdout) if p.returncode == 0 else {}


def main():
    if not need_binaries() or not os.access(BENCH, os.X_OK):
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-write-path-")
    nodes = []
    try:
        db = os.path.join(tmp, "db")
        import_records(tmp, db, [{"handle": "0.NA/88.100.1", "values": [
            admin_value("0.NA/88.100.1", 300), seckey_value("secret")]}])
        secret = os.path.join(tmp, "secret")
        with open(secret, "w") as f:
            f.write("secret\n")
        conf = os.path.join(tmp, "node.conf")
        with open(conf, "w") as f:
            f.write("write_batch_wait_us = 20000\n")
        node = Node(tmp, db, conf=conf, workers=1)
        nodes.append(node)
        bench(node, secret, "88.100.1/warm-%s", 200)  # first batches, heaps at their size
        w0, f0 = proc_counts(node.proc.pid)
        d = bench(node, secret, "88.100.1/w-%s", N)
        w1, f1 = proc_counts(node.proc.pid)
        wr = d.get("write", {})
        check(d.get("rcodes") == {"SUCCESS": N} and d.get("conn_errors") == 0 and
              wr.get("logins") == 8 and wr.get("acks") == N,
              "every create acknowledged on 8 kept connections: %s %s conn_errors %s" % (
                  d.get("rcodes"), wr, d.get("conn_errors")))
        syscw, minflt = (w1 - w0) / N, (f1 - f0) / N
        print("per create: %.2f write system calls, %.2f minor page faults" % (syscw, minflt))
        check(syscw < 0.6, "answers coalesced per connection: %.2f writes per create" % syscw)
        if sanitized(node.proc.pid):
            print("ASan build: page faults not checked")
        else:
            check(minflt < 0.5, "no fresh memory per job: %.2f page faults per create" % minflt)
        check(node.stop() == 0, "clean exit")
        m = re.search(r"writer \(shutdown\): (\d+) job\(s\) in (\d+) batch\(es\), ([\d.]+) per "
                      r"batch on average, at most (\d+); (\d+) applied", node.logtext())
        check(m is not None, "the writer's shutdown line")
        if m:
            jobs, batches, applied = int(m.group(1)), int(m.group(2)), int(m.group(5))
            check(jobs == applied == N + 200 and jobs / batches >= 8,
                  "writer counted %d jobs (%d applied) in %d batches" % (jobs, applied, batches))
    finally:
        ret = finish(nodes, tmp, "test_write_path")
    return ret


if __name__ == "__main__":
    sys.exit(main())
