#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Write docs/man/idnode.conf.5 from deploy/idnode.conf.sample (the commented sample documents
every key of the schema: tests/unit/test_conf.c checks that). Each key becomes an entry with its
default and the comment above it; `# ---- title` lines become subsections.

    scripts/gen-conf-man.py           rewrite docs/man/idnode.conf.5
    scripts/gen-conf-man.py --check   exit 1 when the committed page is not what the sample gives
"""
import os
import re
import sys

TOP = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SAMPLE = os.path.join(TOP, "deploy", "idnode.conf.sample")
PAGE = os.path.join(TOP, "docs", "man", "idnode.conf.5")
KEY = re.compile(r"^(# )?([a-z][a-z0-9_]*) = (.*)$")

HEAD = r""".\" SPDX-License-Identifier: Apache-2.0
.\" Generated from deploy/idnode.conf.sample by scripts/gen-conf-man.py: edit those instead.
.TH IDNODE.CONF 5 "2025" "idnode 0.1.0" "File Formats"
.SH NAME
idnode.conf \- configuration file of idnoded
.SH SYNOPSIS
.I /etc/idnode/idnode.conf
.SH DESCRIPTION
.BR idnoded (8)
reads its configuration from the file given with
.BR \-c .
One
.I key
=
.I value
per line; a
.B #
starts a comment (outside double quotes); a value may be in double quotes; list keys (listen,
http, home, server_admin, upstream, forward, ...) are repeated once per element, and the first
one in the file replaces the default list. Sizes take k, m, g or t suffixes (powers of 1024).
An unknown key, a value out of its range or a line that does not parse is an error that names
the file, the line and the key:
.B idnoded \-t \-c
.I FILE
checks a file. Command\-line options of
.BR idnoded (8)
override the file.
.SH RELOAD
Keys marked [reload] apply to a running node on SIGHUP or
.BR "idnode reload" :
the whole file applies, or, when any part of it cannot be used (a value out of range, a query
log file that cannot be opened, a certificate that does not load), none of it, and the node
logs why and runs on with its configuration. The other keys keep their running values until a
restart; a reload names the ones that changed. The
.BR listen ,
.B http
and
.B tls_listen
addresses are re\-bound: new ones are bound (an address that cannot be, one another process
holds for instance, refuses the reload), removed ones stop taking connections while those
already open are served on, and the others are not touched;
.B metrics_listen
needs a restart. Addresses given on the command line override the file at every reload.
.SH KEYS
Each key is shown with its default value.
"""

TAIL = r""".SH FILES
.TP
.I /etc/idnode/idnode.conf
The configuration of the packaged service (control_socket set to /run/idnode/control.sock).
.TP
.I /usr/share/doc/idnode/examples/idnode.conf.sample
The commented sample this page is made from.
.SH SEE ALSO
.BR idnoded (8),
.BR idnode (1),
.BR systemd.exec (5)
"""


def esc(text):
    """Text for a man page line: backslashes and hyphens escaped, no leading control dot."""
    t = text.replace("\\", "\\e").replace("-", "\\-")
    if t.startswith(".") or t.startswith("'"):
        t = "\\&" + t
    return t


def render(sample_text):
    out = [HEAD]
    comment = []
    in_header = True
    for line in sample_text.splitlines():
        if in_header:  # the file's own header comment is in DESCRIPTION above
            in_header = bool(line.strip())
            continue
        if line.startswith("# ----"):
            # "# ---- title: more words ---": the title, and the rest opens the introduction
            text = line[6:].strip(" -")
            title, _, rest = text.partition(":")
            out.append(".SS %s\n" % esc(title[:1].upper() + title[1:]))
            comment = [rest.strip()] if rest.strip() else []
            continue
        m = KEY.match(line)
        if m:
            key, value = m.group(2), m.group(3)
            text = " ".join(comment)
            reload = text.startswith("[reload] ")
            if reload:
                text = text[len("[reload] "):]
            if len(value) > 60:
                # a long colon list (tls_ciphers) goes under the tag, breakable after each colon
                out.append(".TP\n.B %s = \\fR(below)\n" % esc(key))
                out.append("%s%s\n.br\n.ad l\n%s\n.ad\n" % ("[reload] " if reload else "", esc(text),
                                                esc(value).replace(":", ":\\:")))
            else:
                out.append(".TP\n.B %s = %s\n" % (esc(key), esc(value) if value else '""'))
                out.append("%s%s\n" % ("[reload] " if reload else "", esc(text)))
            if m.group(1):
                out.append("(The value shown is an example: not set by default.)\n")
            comment = []
        elif line.startswith("#"):
            comment.append(line[1:].strip())
        elif not line.strip() and comment:
            # a comment block above no key: a section's introduction
            out.append(".PP\n%s\n" % esc(" ".join(comment)))
            comment = []
    out.append(TAIL)
    return "".join(out)


def main():
    with open(SAMPLE) as f:
        page = render(f.read())
    if "--check" in sys.argv[1:]:
        with open(PAGE) as f:
            if f.read() != page:
                print("docs/man/idnode.conf.5 is not what deploy/idnode.conf.sample gives: run "
                      "scripts/gen-conf-man.py")
                return 1
        return 0
    with open(PAGE, "w") as f:
        f.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
