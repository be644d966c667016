/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The control socket (control.h): an evconnlistener on a Unix socket, one bufferevent
 *        and one deadline timer per connection, a small table of commands.
 */
#define _GNU_SOURCE
#include "node/server/control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/resolver/rnode.h"
#include "node/server/node.h"
#include "node/server/obs.h"
#include "node/store/store.h"

#define CONTROL_CMDS_MAX 32u

#ifndef IDNODE_VERSION
#define IDNODE_VERSION "0.1.0"
#endif

typedef struct ccmd {
	char name[32];
	char usage[96];
	control_fn fn;
	void *arg;
} ccmd_t;

typedef struct cclient {
	control_t *c;
	struct bufferevent *bev;
	struct event *deadline;
	bool answered;
	struct cclient *prev, *next;
} cclient_t;

struct control_out {
	struct evbuffer *buf;
	char reason[160];
};

struct control {
	struct event_base *base;
	struct evconnlistener *lis;
	char *path;
	dev_t dev;
	ino_t ino;
	control_opts_t o;
	cclient_t *clients;
	ccmd_t cmds[CONTROL_CMDS_MAX];
	unsigned n_cmds;
	control_stats_t st;
};

/* ---- output -----------------------------------------------------------------------------------
 */

void control_printf(control_out_t *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(out->buf, fmt, ap);
	va_end(ap);
}

int control_fail(control_out_t *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
	/* one line: a reason never breaks the framing */
	for (char *p = out->reason; *p; p++) {
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	}
	return -1;
}

/* ---- connections ------------------------------------------------------------------------------
 */

static void client_free(cclient_t *cl)
{
	control_t *c = cl->c;
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		c->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	if (cl->bev)
		bufferevent_free(cl->bev);
	if (cl->deadline)
		event_free(cl->deadline);
	c->st.clients--;
	free(cl);
}

static void on_drained(struct bufferevent *bev, void *arg)
{
	client_free(arg);
}

/* Send the status line and \p body (may be NULL), then close once it is written. */
static void client_answer(cclient_t *cl, const char *reason, struct evbuffer *body)
{
	struct evbuffer *out = bufferevent_get_output(cl->bev);
	cl->answered = true;
	if (reason)
		evbuffer_add_printf(out, "ERR %s\n", reason);
	else
		evbuffer_add(out, "OK\n", 3);
	if (body)
		evbuffer_add_buffer(out, body);
	bufferevent_disable(cl->bev, EV_READ);
	bufferevent_setcb(cl->bev, NULL, on_drained, NULL, cl);
	bufferevent_enable(cl->bev, EV_WRITE);
}

static int cmd_help(void *arg, const char *args, control_out_t *out)
{
	control_t *c = arg;
	for (unsigned i = 0; i < c->n_cmds; i++)
		control_printf(out, "%s\n", c->cmds[i].usage);
	return 0;
}

/* Run one request line (NUL-terminated, no line end). */
static void client_run(cclient_t *cl, char *line)
{
	control_t *c = cl->c;
	for (char *p = line; *p; p++) {
		if ((unsigned char)*p < 0x20 && *p != '\t') {
			c->st.errors++;
			log_peer(LOG_LVL_NOTICE,
			         "control: request with control characters refused");
			client_answer(cl, "control characters in the request", NULL);
			return;
		}
	}
	while (*line == ' ' || *line == '\t')
		line++;
	size_t n = strlen(line);
	while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		line[--n] = '\0';
	size_t wl = strcspn(line, " \t");
	char *args = line + wl;
	while (*args == ' ' || *args == '\t')
		args++;
	const ccmd_t *cmd = NULL;
	for (unsigned i = 0; i < c->n_cmds; i++) {
		if (strlen(c->cmds[i].name) == wl && memcmp(c->cmds[i].name, line, wl) == 0)
			cmd = &c->cmds[i];
	}
	if (!cmd) {
		c->st.errors++;
		log_peer(LOG_LVL_INFO, "control: unknown command '%.*s'", (int)(wl > 32 ? 32 : wl),
		         line);
		client_answer(cl, wl ? "unknown command (try: help)" : "empty request (try: help)",
		              NULL);
		return;
	}
	control_out_t out = {.buf = evbuffer_new()};
	if (!out.buf) {
		client_answer(cl, "out of memory", NULL);
		return;
	}
	int ret = cmd->fn(cmd->arg, args, &out);
	if (ret == 0)
		c->st.commands++;
	else
		c->st.errors++;
	client_answer(cl, ret == 0 ? NULL : (out.reason[0] ? out.reason : "failed"),
	              ret == 0 ? out.buf : NULL);
	evbuffer_free(out.buf);
}

/* Take a whole line out of \p in into a fresh string; NULL when there is none yet. */
static char *take_line(struct evbuffer *in, size_t *len_out, bool at_eof)
{
	size_t eol_len = 0;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	size_t len;
	if (p.pos >= 0)
		len = (size_t)p.pos;
	else if (at_eof && evbuffer_get_length(in) > 0)
		len = evbuffer_get_length(in);
	else
		return NULL;
	*len_out = len;
	char *line = malloc(len + 1);
	if (!line)
		return NULL;
	evbuffer_remove(in, line, len);
	evbuffer_drain(in, eol_len);
	line[len] = '\0';
	return line;
}

static void client_read(cclient_t *cl, bool at_eof)
{
	control_t *c = cl->c;
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	size_t len = 0;
	if (cl->answered)
		return;
	/* the limit is checked before a line is looked for: the buffer never outgrows it much */
	char *line = NULL;
	if (evbuffer_get_length(in) <= (size_t)c->o.max_line + 2)
		line = take_line(in, &len, at_eof);
	if ((line && len > c->o.max_line) ||
	    (!line && evbuffer_get_length(in) > (size_t)c->o.max_line + 2)) {
		free(line);
		c->st.too_long++;
		log_peer(LOG_LVL_NOTICE, "control: request line over %u bytes refused",
		         c->o.max_line);
		client_answer(cl, "line too long", NULL);
		return;
	}
	if (line) {
		client_run(cl, line);
		free(line);
	} else if (at_eof) {
		client_free(cl); /* closed without a request */
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	client_read(arg, false);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	cclient_t *cl = arg;
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		/* a client that half-closes after its request still gets the answer */
		if (!cl->answered)
			client_read(cl, true); /* answers, or frees */
		return;
	}
	client_free(cl);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	cclient_t *cl = arg;
	cl->c->st.timed_out++;
	log_peer(LOG_LVL_NOTICE, "control: connection closed at its deadline (%s)",
	         cl->answered ? "answer not read" : "no request");
	client_free(cl);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
	control_t *c = arg;
	if (c->st.clients >= c->o.max_clients) {
		static const char busy[] = "ERR busy\n";
		c->st.busy++;
		log_peer(LOG_LVL_NOTICE, "control: %u connections open, one more refused",
		         c->st.clients);
		(void)send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
		return;
	}
	cclient_t *cl = calloc(1, sizeof(*cl));
	if (!cl) {
		close(fd);
		return;
	}
	cl->c = c;
	cl->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	cl->deadline = evtimer_new(c->base, on_deadline, cl);
	cl->next = c->clients;
	if (c->clients)
		c->clients->prev = cl;
	c->clients = cl;
	c->st.clients++;
	struct timeval tv = {c->o.timeout_ms / 1000, (c->o.timeout_ms % 1000) * 1000};
	if (!cl->bev || !cl->deadline || evtimer_add(cl->deadline, &tv) != 0) {
		if (!cl->bev)
			close(fd);
		client_free(cl);
		return;
	}
	c->st.accepted++;
	bufferevent_setcb(cl->bev, on_read, NULL, on_event, cl);
	/* reading stops just past the longest line allowed: the input never grows beyond it */
	bufferevent_setwatermark(cl->bev, EV_READ, 0, (size_t)c->o.max_line + 3);
	bufferevent_enable(cl->bev, EV_READ);
}

/* ---- the socket -------------------------------------------------------------------------------
 */

/*
 * Clear the way for a socket at \p path: nothing there, or a socket nobody listens on (left by
 * a crash: removed). \retval HDL_EOK, HDL_EEXIST, HDL_EIO
 */
static int clear_path(const struct sockaddr_un *sun, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(sun->sun_path, &st) != 0) {
		if (errno == ENOENT)
			return HDL_EOK;
		snprintf(err, errlen, "control_socket %s: %s", sun->sun_path, strerror(errno));
		return HDL_EIO;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen,
		         "control_socket %s: a file that is not a socket is in the way",
		         sun->sun_path);
		return HDL_EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "control_socket: socket: %s", strerror(errno));
		return HDL_EIO;
	}
	int r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	int e = errno;
	close(fd);
	if (r == 0) {
		snprintf(err, errlen, "control_socket %s: another process is listening on it",
		         sun->sun_path);
		return HDL_EEXIST;
	}
	if (e != ECONNREFUSED) {
		snprintf(err, errlen, "control_socket %s: %s", sun->sun_path, strerror(e));
		return HDL_EIO;
	}
	if (unlink(sun->sun_path) != 0 && errno != ENOENT) {
		snprintf(err, errlen, "control_socket %s: cannot remove the stale socket: %s",
		         sun->sun_path, strerror(errno));
		return HDL_EIO;
	}
	log_notice("control socket %s: replaced a stale socket file", sun->sun_path);
	return HDL_EOK;
}

static int listen_unix(const control_opts_t *o, struct stat *st, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, o->path, strlen(o->path) + 1);
	int ret = clear_path(&sun, err, errlen);
	if (ret != HDL_EOK)
		return ret;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "control_socket: socket: %s", strerror(errno));
		return -1;
	}
	/* no moment with looser permissions than asked: bind under a strict umask, then chmod */
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	int e = errno;
	umask(old);
	if (r != 0) {
		snprintf(err, errlen, "control_socket %s: bind: %s", o->path, strerror(e));
		close(fd);
		return -1;
	}
	if (chmod(o->path, (mode_t)o->mode) != 0 || listen(fd, 16) != 0 || stat(o->path, st) != 0) {
		snprintf(err, errlen, "control_socket %s: %s", o->path, strerror(errno));
		unlink(o->path);
		close(fd);
		return -1;
	}
	return fd;
}

int control_open(struct event_base *base, const control_opts_t *o, control_t **out, char *err,
                 size_t errlen)
{
	*out = NULL;
	if (!o->path || !o->path[0] || strlen(o->path) >= CONF_UNIX_PATH_MAX ||
	    o->max_clients == 0 || o->max_line == 0 || o->timeout_ms == 0 || o->mode < 0 ||
	    o->mode > 0777) {
		snprintf(err, errlen, "control_socket: bad path or limits");
		return HDL_EINVAL;
	}
	control_t *c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(o->path))) {
		free(c);
		snprintf(err, errlen, "control_socket: out of memory");
		return HDL_ENOMEM;
	}
	c->base = base;
	c->o = *o;
	c->o.path = c->path;
	struct stat st;
	int fd = listen_unix(&c->o, &st, err, errlen);
	if (fd < 0) {
		free(c->path);
		free(c);
		return fd == HDL_EEXIST ? HDL_EEXIST : HDL_EIO;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->lis = evconnlistener_new(base, on_accept, c,
	                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (!c->lis) {
		close(fd);
		control_close(c);
		snprintf(err, errlen, "control_socket: out of memory");
		return HDL_ENOMEM;
	}
	if (control_register(c, "help", "help", cmd_help, c) != HDL_EOK) {
		control_close(c);
		snprintf(err, errlen, "control_socket: out of memory");
		return HDL_ENOMEM;
	}
	*out = c;
	return HDL_EOK;
}

void control_close(control_t *c)
{
	if (!c)
		return;
	while (c->clients)
		client_free(c->clients);
	if (c->lis)
		evconnlistener_free(c->lis);
	struct stat st;
	if (lstat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
		unlink(c->path);
	free(c->path);
	free(c);
}

int control_register(control_t *c, const char *name, const char *usage, control_fn fn, void *arg)
{
	if (strlen(name) >= sizeof(c->cmds[0].name) || strlen(usage) >= sizeof(c->cmds[0].usage) ||
	    strpbrk(name, " \t"))
		return HDL_EINVAL;
	for (unsigned i = 0; i < c->n_cmds; i++) {
		if (strcmp(c->cmds[i].name, name) == 0)
			return HDL_EEXIST;
	}
	if (c->n_cmds >= CONTROL_CMDS_MAX)
		return HDL_ENOMEM;
	ccmd_t *cmd = &c->cmds[c->n_cmds++];
	strcpy(cmd->name, name);
	strcpy(cmd->usage, usage);
	cmd->fn = fn;
	cmd->arg = arg;
	return HDL_EOK;
}

void control_get_stats(const control_t *c, control_stats_t *st)
{
	*st = c->st;
}

/* ---- idnoded ----------------------------------------------------------------------------------
 */

typedef struct node_status {
	node_shared_t *n;
	unsigned workers;
	time_t started;
} node_status_t;

static node_status_t status_src;

static int cmd_status(void *arg, const char *args, control_out_t *out)
{
	node_status_t *s = arg;
	if (args[0])
		return control_fail(out, "status takes no arguments");
	control_printf(out, "version %s\n", IDNODE_VERSION);
	control_printf(out, "pid %ld\n", (long)getpid());
	control_printf(out, "uptime_s %lld\n", (long long)(time(NULL) - s->started));
	control_printf(out, "workers %u\n", s->workers);
	control_printf(out, "handles %llu\n", (unsigned long long)store_count(s->n->store));
	control_printf(out, "txlog_serial %llu\n",
	               (unsigned long long)store_txlog_last(s->n->store));
	/* resolutions answered (local and delegated, every transport), queries sent upstream */
	obs_sum_t *sum = s->n->obs ? malloc(sizeof(*sum)) : NULL;
	if (sum) {
		obs_sum(s->n->obs, sum);
		uint64_t res = 0;
		unsigned op = obs_op_slot(HDL_OC_RESOLUTION);
		for (unsigned t = 0; t < OBS_T_N; t++) {
			for (unsigned rc = 0; rc < OBS_RC_N; rc++)
				res += sum->req[t][op][rc];
		}
		control_printf(out, "resolutions %llu\nupstream_queries %llu\n",
		               (unsigned long long)res, (unsigned long long)sum->upstream_queries);
		free(sum);
	}
	return 0;
}

int control_node_start(struct event_base *base, const conf_t *c, node_shared_t *n,
                       unsigned n_workers, control_t **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!c->control_socket || !c->control_socket[0])
		return HDL_EOK;
	control_opts_t o = {
	    .path = c->control_socket,
	    .mode = conf_socket_mode(c->control_socket_mode),
	    .max_clients = c->control_max_clients,
	    .max_line = c->control_max_line,
	    .timeout_ms = c->control_timeout_ms,
	};
	control_t *ctl;
	int ret = control_open(base, &o, &ctl, err, errlen);
	if (ret != HDL_EOK)
		return ret;
	status_src = (node_status_t){n, n_workers, time(NULL)};
	if ((ret = control_register(ctl, "status", "status", cmd_status, &status_src)) != HDL_EOK ||
	    (ret = rnode_register_commands(ctl, n, c)) != HDL_EOK) {
		snprintf(err, errlen, "control_socket: cannot register commands: %s",
		         hdl_strerror(ret));
		control_close(ctl);
		return ret;
	}
	log_notice("control socket %s (mode %04o)", c->control_socket, (unsigned)o.mode);
	*out = ctl;
	return HDL_EOK;
}
