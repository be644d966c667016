/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Start-up checks of idnoded (see startup.h): the database directory, the database lock
 *        and the addresses already served by another process.
 */
#define _GNU_SOURCE
#include "node/server/startup.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/store/homing.h"

#define STARTUP_PROC_LINE     512     /**< longest /proc/net line read */
#define STARTUP_MAX_PIDS      100000u /**< processes looked at when naming a holder */
#define STARTUP_LIST_PREFIXES 16u     /**< homed prefixes named in the start-up log line */

int startup_db_check(const char *db, bool *fresh, char *err, size_t errlen)
{
	struct stat st;
	char p[4096];
	*fresh = false;
	if (stat(db, &st) != 0) {
		if (errno == ENOENT) {
			snprintf(err, errlen,
			         "db %s: no such directory (a mistyped --db or db = would start an "
			         "empty node); create the store with `idnode import --db %s FILE`, "
			         "or an empty one with `mkdir -p %s` (systemd: StateDirectory=)",
			         db, db, db);
			return HDL_ENOENT;
		}
		snprintf(err, errlen, "db %s: %s", db, strerror(errno));
		return HDL_EIO;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "db %s: not a directory", db);
		return HDL_EINVAL;
	}
	snprintf(p, sizeof(p), "%s/data.mdb", db);
	if (stat(p, &st) != 0) {
		if (errno != ENOENT) {
			snprintf(err, errlen, "db %s: %s: %s", db, p, strerror(errno));
			return HDL_EIO;
		}
		*fresh = true;
	}
	return HDL_EOK;
}

int startup_db_lock(const char *db, int *fd, char *err, size_t errlen)
{
	char p[4096], held[64];
	*fd = -1;
	snprintf(p, sizeof(p), "%s/" STARTUP_LOCK_NAME, db);
	int f = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (f < 0) {
		snprintf(err, errlen, "db %s: cannot open the lock file %s: %s", db, p,
		         strerror(errno));
		return HDL_EIO;
	}
	if (flock(f, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		ssize_t n = e == EWOULDBLOCK ? pread(f, held, sizeof(held) - 1, 0) : -1;
		long pid = 0;
		if (n > 0) {
			held[n] = '\0';
			pid = strtol(held, NULL, 10);
		}
		close(f);
		if (e != EWOULDBLOCK) {
			snprintf(err, errlen, "db %s: cannot lock %s: %s", db, p, strerror(e));
			return HDL_EIO;
		}
		if (pid > 0)
			snprintf(
			    err, errlen,
			    "db %s is in use by another idnoded (pid %ld, lock %s): one node per "
			    "database; stop that one first or give this one another --db",
			    db, pid, p);
		else
			snprintf(err, errlen, "db %s is in use by another process (lock %s)", db,
			         p);
		return HDL_EEXIST;
	}
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(f, 0) != 0 || pwrite(f, buf, (size_t)n, 0) != n) {
		snprintf(err, errlen, "db %s: cannot write the lock file %s: %s", db, p,
		         strerror(errno));
		close(f);
		return HDL_EIO;
	}
	*fd = f;
	return HDL_EOK;
}

/* ---- who holds a socket ----------------------------------------------------------------- */

/** Bytes of an address as /proc/net prints it: 8 or 32 hex digits of native-order 32-bit words. */
static bool proc_addr(const char *hex, size_t n, uint8_t out[16])
{
	if (n != 8 && n != 32)
		return false;
	for (size_t w = 0; w < n / 8; w++) {
		char word[9];
		memcpy(word, hex + w * 8, 8);
		word[8] = '\0';
		uint32_t v = (uint32_t)strtoul(word, NULL, 16);
		memcpy(out + w * 4, &v, 4);
	}
	return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i])
			return false;
	}
	return true;
}

/** Does a /proc/net entry at \p a (\p alen bytes) overlap our address \p want (\p wlen bytes)? */
static bool addr_overlaps(const uint8_t *a, size_t alen, const uint8_t *want, size_t wlen)
{
	if (all_zero(a, alen) || all_zero(want, wlen))
		return true; /* a wildcard on either side */
	if (alen == wlen)
		return memcmp(a, want, alen) == 0;
	if (alen == 16 && wlen == 4) { /* an IPv4-mapped IPv6 entry */
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		return memcmp(a, mapped, 12) == 0 && memcmp(a + 12, want, 4) == 0;
	}
	return false;
}

/** Inode of a socket in /proc/net/\p table that holds \p want:\p port (0 when none). */
static unsigned long proc_inode(const char *table, bool tcp, const uint8_t *want, size_t wlen,
                                unsigned port)
{
	char path[64], line[STARTUP_PROC_LINE];
	unsigned long found = 0;
	snprintf(path, sizeof(path), "/proc/net/%s", table);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return 0;
	while (found == 0 && fgets(line, sizeof(line), f) != NULL) {
		char local[40];
		unsigned lport = 0, state = 0;
		unsigned long inode = 0;
		uint8_t a[16];
		if (sscanf(line, " %*d: %32[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*u %*u %lu", local,
		           &lport, &state, &inode) != 4)
			continue; /* the header */
		if (lport != port || inode == 0 || (tcp && state != 0x0A /* LISTEN */))
			continue;
		size_t alen = strlen(local) / 2;
		if (proc_addr(local, strlen(local), a) && addr_overlaps(a, alen, want, wlen))
			found = inode;
	}
	fclose(f);
	return found;
}

/** The process (other than us) with socket \p inode open: pid, name into \p name. 0 if none. */
static long inode_pid(unsigned long inode, char *name, size_t cap)
{
	char want[64], path[64], link[64];
	long self = (long)getpid(), pid = 0;
	unsigned seen = 0;
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	DIR *proc = opendir("/proc");
	if (proc == NULL)
		return 0;
	struct dirent *de;
	while (pid == 0 && seen++ < STARTUP_MAX_PIDS && (de = readdir(proc)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		long p = strtol(de->d_name, NULL, 10);
		if (p == self)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/fd", p);
		DIR *fds = opendir(path);
		if (fds == NULL)
			continue; /* another user's process */
		struct dirent *fe;
		while (pid == 0 && (fe = readdir(fds)) != NULL) {
			ssize_t n = readlinkat(dirfd(fds), fe->d_name, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (strcmp(link, want) == 0)
				pid = p;
		}
		closedir(fds);
	}
	closedir(proc);
	if (pid == 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	FILE *f = fopen(path, "re");
	name[0] = '\0';
	if (f != NULL) {
		if (fgets(name, (int)cap, f) != NULL)
			name[strcspn(name, "\n")] = '\0';
		fclose(f);
	}
	if (name[0] == '\0')
		snprintf(name, cap, "?");
	return pid;
}

long startup_socket_owner(const struct sockaddr_storage *ss, int type, char *out, size_t cap)
{
	const uint8_t *addr;
	size_t alen;
	unsigned port;
	bool tcp = type == SOCK_STREAM;
	unsigned long inode = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		addr = (const uint8_t *)&a->sin_addr;
		alen = 4;
		port = ntohs(a->sin_port);
		inode = proc_inode(tcp ? "tcp" : "udp", tcp, addr, alen, port);
	} else {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		addr = (const uint8_t *)&a->sin6_addr;
		alen = 16;
		port = ntohs(a->sin6_port);
	}
	if (inode == 0) /* IPv6, or IPv4 held by a dual-stack IPv6 socket */
		inode = proc_inode(tcp ? "tcp6" : "udp6", tcp, addr, alen, port);
	if (inode == 0) {
		snprintf(out, cap,
		         "another process (not listed in /proc/net: another network "
		         "namespace?)");
		return 0;
	}
	char name[64];
	long pid = inode_pid(inode, name, sizeof(name));
	if (pid == 0) {
		snprintf(out, cap,
		         "another process (socket inode %lu; its process is not readable "
		         "here: another user's?)",
		         inode);
		return 0;
	}
	snprintf(out, cap, "%s (pid %ld)", name, pid);
	return pid;
}

/* ---- addresses in use ------------------------------------------------------------------- */

int startup_addr_probe(const char *addr, int type, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1;
	const char *proto = type == SOCK_DGRAM ? "udp" : "tcp";
	if (conf_parse_addr(addr, &ss, &sl) != HDL_EOK) {
		snprintf(err, errlen, "%s: not ADDR:PORT", addr);
		return HDL_EINVAL;
	}
	int fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s/%s: socket: %s", addr, proto, strerror(errno));
		return HDL_EIO;
	}
	/* as our own sockets, minus SO_REUSEPORT; SO_REUSEADDR only passes over TIME_WAIT */
	if ((type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))) ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)) {
		snprintf(err, errlen, "%s/%s: setsockopt: %s", addr, proto, strerror(errno));
		close(fd);
		return HDL_EIO;
	}
	int rc = bind(fd, (struct sockaddr *)&ss, sl);
	int e = errno;
	close(fd);
	if (rc == 0)
		return HDL_EOK;
	if (e != EADDRINUSE) {
		snprintf(err, errlen, "%s/%s: bind: %s", addr, proto, strerror(e));
		return HDL_EIO;
	}
	char who[160];
	startup_socket_owner(&ss, type, who, sizeof(who));
	snprintf(err, errlen,
	         "%s/%s: bind: address already in use by %s; refusing to share it (with "
	         "SO_REUSEPORT a second server would silently take part of the traffic): stop it "
	         "or give this node other addresses",
	         addr, proto, who);
	return HDL_EEXIST;
}

int startup_ports_check(const conf_t *c, char *err, size_t errlen)
{
	int ret = HDL_EOK;
	for (unsigned i = 0; ret == HDL_EOK && i < c->n_listen; i++) {
		ret = startup_addr_probe(c->listen[i], SOCK_DGRAM, err, errlen);
		if (ret == HDL_EOK)
			ret = startup_addr_probe(c->listen[i], SOCK_STREAM, err, errlen);
	}
	for (unsigned i = 0; ret == HDL_EOK && i < c->n_http; i++)
		ret = startup_addr_probe(c->http[i], SOCK_STREAM, err, errlen);
	for (unsigned i = 0; ret == HDL_EOK && i < c->n_tls_listen; i++)
		ret = startup_addr_probe(c->tls_listen[i], SOCK_STREAM, err, errlen);
	return ret;
}

/* ---- homing ----------------------------------------------------------------------------- */

/** One change of the configuration's homing, logged once it is committed. */
typedef struct home_change {
	char prefix[256];
	bool added;
	uint32_t sources;
} home_change_t;

typedef struct home_changes {
	home_change_t *v;
	size_t n, cap;
	bool lost; /**< out of memory: some changes are not logged */
} home_changes_t;

static void home_changed(void *ctx, hdl_slice_t prefix, bool added, uint32_t sources)
{
	home_changes_t *c = ctx;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		home_change_t *v = realloc(c->v, cap * sizeof(*v));
		if (v == NULL) {
			c->lost = true;
			return;
		}
		c->v = v;
		c->cap = cap;
	}
	home_change_t *h = &c->v[c->n++];
	snprintf(h->prefix, sizeof(h->prefix), "%.*s", prefix.len > 255 ? 255 : (int)prefix.len,
	         (const char *)prefix.p);
	h->added = added;
	h->sources = sources;
}

static void home_log(const char *why, const home_change_t *h)
{
	char src[64];
	store_home_sources_str(h->sources, src, sizeof(src));
	if (h->added && h->sources == STORE_HOME_CONFIG)
		log_notice("%s: homed %s (listed in the configuration)", why, h->prefix);
	else if (h->added)
		log_info("%s: %s is listed in the configuration (homed by: %s)", why, h->prefix,
		         src);
	else if (h->sources == 0)
		log_notice("%s: unhomed %s: no longer listed in the configuration", why, h->prefix);
	else
		log_notice(
		    "%s: %s is no longer listed in the configuration; it stays homed (by: %s; "
		    "`idnode unhome --db DIR %s` unhomes it)",
		    why, h->prefix, src, h->prefix);
}

int startup_home_sync(store_t *st, const conf_t *c, const char *why, char *err, size_t errlen)
{
	store_batch_t *b = NULL;
	home_changes_t ch = {NULL, 0, 0, false};
	int ret = store_batch_begin(st, &b);
	if (ret == HDL_EOK)
		ret = store_batch_home_sync(b, STORE_HOME_CONFIG, (const char *const *)c->home,
		                            c->n_home, home_changed, &ch);
	if (ret == HDL_EOK) {
		ret = store_batch_commit(b);
	} else if (b) {
		store_batch_abort(b);
	}
	if (ret != HDL_EOK) {
		snprintf(err, errlen, "cannot record the homed prefixes of the configuration: %s",
		         ret == HDL_ENAME ? "a home prefix the store cannot take"
		                          : store_strerror(st, ret));
	} else {
		for (size_t i = 0; i < ch.n; i++)
			home_log(why, &ch.v[i]); /* committed: now it is true */
		if (ch.lost)
			log_warn(
			    "%s: out of memory: not every change of the homed prefixes is logged",
			    why);
	}
	free(ch.v);
	return ret;
}

typedef struct home_list {
	char text[1024];
	size_t used;
	unsigned long n;
} home_list_t;

static int list_prefix(void *ctx, hdl_slice_t prefix, const store_home_rec_t *rec)
{
	home_list_t *l = ctx;
	char src[64];
	if (l->n++ < STARTUP_LIST_PREFIXES && l->used < sizeof(l->text)) {
		int w = snprintf(l->text + l->used, sizeof(l->text) - l->used, "%s%.*s (%s)",
		                 l->used ? ", " : "", prefix.len > 64 ? 64 : (int)prefix.len,
		                 (const char *)prefix.p,
		                 store_home_sources_str(rec->sources, src, sizeof(src)));
		l->used += w > 0 ? (size_t)w : 0;
	}
	return 0;
}

unsigned long startup_report_store(store_t *st, const char *db)
{
	store_reader_t *r = NULL;
	home_list_t l;
	hdl_slice_t v;
	memset(&l, 0, sizeof(l));
	if (store_reader_new(st, &r) != HDL_EOK || store_reader_begin(r) != HDL_EOK) {
		store_reader_free(r);
		return store_homed_count(st);
	}
	(void)store_prefixes_foreach(r, list_prefix, &l);
	if (store_meta_get(r, STORE_META_IMPORT, &v) == HDL_EOK) {
		store_import_mark_t m;
		char what[STORE_IMPORT_SOURCE_MAX + 160];
		if (store_import_mark_decode(v.p, v.len, &m) == HDL_EOK)
			log_warn(
			    "db %s holds an unfinished import: %s; its data may be incomplete: run "
			    "that import again (idnode import)",
			    db, store_import_mark_str(&m, what, sizeof(what)));
		else
			log_warn("db %s holds an unreadable marker of an unfinished import", db);
	}
	store_reader_end(r);
	store_reader_free(r);
	if (l.n == 0)
		log_warn(
		    "db %s: no prefix is homed: every resolution gets RC 301 (server not "
		    "responsible); home one with `home = PREFIX` in the configuration, --home, or "
		    "`idnode home --db %s PREFIX`",
		    db, db);
	else
		log_notice("homed prefixes (%lu): %s%s", l.n, l.text,
		           l.n > STARTUP_LIST_PREFIXES ? ", ..." : "");
	return l.n;
}
