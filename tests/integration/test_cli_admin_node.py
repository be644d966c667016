#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tests/integration/test_cli_admin.sh against the real idnoded instead of its mock server.

Sets up a node on free loopback ports whose 0.NA/88.100 holds the identities the script uses:
HS_SECKEY "secret" at 300, the public half of a fresh `idnode keygen` RSA key at 301 (the PEM
private key goes to the script as HDL_ADMIN_PRIVKEY), and tests/data/admpub.bin (the key of
admpriv.bin and admpriv-aes.bin) at 302. All three are server admins in the node's config, so
they may home and unhome prefixes and change every handle; which admin may do what is
test_admin.py's and the unit tests' business. Then runs the script with HDL_ADMIN_SERVER set and
passes on its verdict, after checking that the node is still alive and that the changes the
script made are in its audit trail. The node is stopped by PID in a finally block.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403
from admintest import *  # noqa: E402,F401,F403


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-cli-admin-node-")
    nodes = []
    try:
        priv = os.path.join(tmp, "adm.pem")
        kg = subprocess.run([IDNODE, "keygen", "--index", "301", "--out-priv", priv,
                             "--out-pub", os.path.join(tmp, "adm.bin")],
                            capture_output=True, timeout=60)
        check(kg.returncode == 0, "keygen: %s" % kg.stderr.decode(errors="replace"))
        with open(os.path.join(SRC, "tests", "data", "admpub.bin"), "rb") as f:
            admpub = f.read().hex()
        records = [{"handle": "0.NA/88.100", "values": [
            admin_value(ID_HANDLE, ID_INDEX), seckey_value("secret"),
            json.loads(kg.stdout.decode()),
            {"index": 302, "type": "HS_PUBKEY", "data": {"format": "hex", "value": admpub}}]}]
        db = os.path.join(tmp, "db")
        import_records(tmp, db, records)
        conf = os.path.join(tmp, "node.conf")
        with open(conf, "w") as f:
            f.write("server_admin = 300:0.NA/88.100\nserver_admin = 301:0.NA/88.100\n"
                    "server_admin = 302:0.NA/88.100\n")
        node = Node(tmp, db, conf=conf)
        nodes.append(node)
        env = dict(os.environ, HDL_ADMIN_SERVER="127.0.0.1:%d" % node.port,
                   HDL_ADMIN_PRIVKEY=priv, HDL_ADMIN_PUB_ID="301:0.NA/88.100",
                   HDL_ADMIN_CNRI_ID="302:0.NA/88.100", HDL_SOURCE_DIR=SRC, HDL_BUILD_DIR=BUILD)
        p = subprocess.run(["bash", os.path.join(SRC, "tests", "integration",
                                                 "test_cli_admin.sh")],
                           capture_output=True, timeout=400, env=env)
        sys.stdout.write(p.stdout.decode(errors="replace"))
        sys.stdout.write(p.stderr.decode(errors="replace"))
        check(p.returncode == 0, "test_cli_admin.sh against idnoded: exit %d" % p.returncode)
        check(node.alive(), "node alive after the script")
        au = subprocess.run([IDNODE, "audit", "--db", db, "--json"], capture_output=True,
                            timeout=60)
        rows = [json.loads(ln) for ln in au.stdout.decode().splitlines() if ln.strip()]
        ops = set(r.get("op") for r in rows)
        check(au.returncode == 0 and {"CREATE_HANDLE", "DELETE_HANDLE", "ADD_VALUE",
                                      "MODIFY_VALUE", "REMOVE_VALUE", "HOME_NA",
                                      "UNHOME_NA"} <= ops,
              "the audit trail holds every kind of change the script made: %s" % sorted(ops))
        check(node.stop() == 0, "clean exit")
    finally:
        ret = finish(nodes, tmp, "test_cli_admin_node")
    return ret


if __name__ == "__main__":
    sys.exit(main())
