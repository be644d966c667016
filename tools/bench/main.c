/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief idnode-bench: load generator for Handle resolution over UDP, TCP, the HTTP native
 *        tunnel and REST (plus DNS, for peer comparison). dnsperf-style counters, latency from
 *        the intended send time, server CPU per reply from /proc.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "hdl/msg.h"
#include "tools/bench/bench.h"

#ifdef HDL_VERSION
#define BENCH_VERSION HDL_VERSION /* the project version (CMake) */
#else
#define BENCH_VERSION "0.1.0"
#endif
#define EXIT_NOREPLY 1
#define EXIT_USAGE 2
#define EXIT_SETUP 3
#define MAX_TYPES 32

typedef struct opts {
	const char *server;
	const char *file;
	const char *pattern;
	const char *range;
	const char *host_hdr;
	const char *types[MAX_TYPES];
	size_t ntypes;
	bool json, ramp, closed, allow_remote;
	bool tls;           /**< --proto https, --tls */
	const char *cacert; /**< --cacert: verify the server against it */
	bool conns_set, inflight_set, depth_set;
	double max_loss;
	double ramp_step;
	bk_conf_t c;
	bk_write_args_t wa; /**< write modes (write.c) */
} opts_t;

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: idnode-bench -s HOST:PORT [--proto udp|tcp|http|rest|https|dns|dns-tcp]\n"
	        "                    -d SECONDS\n"
	        "                    (-f FILE | --pattern '88.100.1/%%s' --range A-B) [options]\n"
	        "load:\n"
	        "  --rate R          open loop at R requests/s (latency from the intended send time)\n"
	        "  --closed          closed loop (the default without --rate)\n"
	        "  --ramp            step the rate up to the highest one under --max-loss PCT (default 1)\n"
	        "  --ramp-step S     seconds per ramp step (default 1)\n"
	        "  -c INFLIGHT       requests outstanding at most (all threads)\n"
	        "  -T THREADS        worker threads (default 1)\n"
	        "  --conns N         sockets / connections (all threads)\n"
	        "  --depth D         requests pipelined per stream connection\n"
	        "  --new-conn        connect per request: connect, one request, answer, close (HTTP:\n"
	        "                    Connection: close)\n"
	        "  -d SECONDS        measured duration (default 10); --warmup S before it (default 0)\n"
	        "  -n COUNT          measured requests at most\n"
	        "  --timeout MS      a reply later than this counts as lost (default 1000)\n"
	        "keys:\n"
	        "  -f FILE           one handle per line, or JSON Lines with \"handle\" (idnode gen)\n"
	        "  --pattern P --range A-B   keys P with %%s (or %%06d) replaced by A..B\n"
	        "  --zipf S          Zipf(S) popularity over the keys (default uniform)\n"
	        "  --miss PCT        share of keys that do not exist\n"
	        "  --type T          type filter in each request (repeatable)\n"
	        "report:\n"
	        "  -P PID            server process: CPU seconds and replies per CPU-second\n"
	        "  --json            one JSON object on stdout\n"
	        "other:\n"
	        "  --echo-ok         count echoed requests as replies (UDP echo ceiling)\n"
	        "  --verify          decode every Handle reply fully (counts malformed ones)\n"
	        "  --seed N, --host NAME (HTTP Host), --allow-remote (targets off loopback)\n"
	        "TLS: --proto https is REST over TLS; --tls runs tcp (the TLS stream) or http over\n"
	        "  TLS; --cacert FILE verifies the server (default: not verified); a reconnection\n"
	        "  resumes its session\n"
	        "writes (TCP, or REST with Basic credentials; see bench/README.md):\n"
	        "  --op create|modify|delete   admin requests instead of resolutions; create and\n"
	        "                    delete take each key once, in order; modify picks keys as reads do\n"
	        "  --auth INDEX:HANDLE  identity; with --seckey-file F or --privkey F\n"
	        "                    [--passphrase-file P] (else $IDNODE_PASSPHRASE): log in once per\n"
	        "                    connection (IDIS OC 2001), or with --auth-per-request answer the\n"
	        "                    challenge of every request on its connection\n"
	        "  --seckey-alg A    HS_SECKEY answer: pbkdf2 (default, as hdllib), hmac-sha256,\n"
	        "                    hmac-sha1, sha256, sha1, md5\n"
	        "  --value-size N    bytes of the URL value of create / modify (default: the URL)\n"
	        "  --overwrite       create with OVRW (re-creating a handle succeeds)\n");
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
	char *e;
	double v = strtod(s, &e);
	if (e == s || *e || !isfinite(v) || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static bool parse_uns(const char *s, unsigned long long lo, unsigned long long hi,
                      unsigned long long *out)
{
	char *e;
	if (*s == '-')
		return false;
	unsigned long long v = strtoull(s, &e, 10);
	if (e == s || *e || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

enum {
	O_PROTO = 256, O_JSON, O_CONNS, O_DEPTH, O_NEWCONN, O_CLOSED, O_RAMP, O_MAXLOSS, O_ZIPF,
	O_MISS, O_TIMEOUT, O_ALLOW, O_TYPE, O_PATTERN, O_RANGE, O_RATE, O_WARMUP, O_ECHO, O_VERIFY,
	O_SEED, O_HOST, O_RAMPSTEP, O_VERSION, O_OP, O_AUTH, O_SECKEY, O_PRIVKEY, O_PASSFILE,
	O_PERREQ, O_SECALG, O_VSIZE, O_OVERWRITE, O_TLS, O_CACERT,
};

static int parse_args(int argc, char **argv, opts_t *o)
{
	static const struct option lo[] = {
		{"proto", required_argument, NULL, O_PROTO},
		{"json", no_argument, NULL, O_JSON},
		{"conns", required_argument, NULL, O_CONNS},
		{"depth", required_argument, NULL, O_DEPTH},
		{"new-conn", no_argument, NULL, O_NEWCONN},
		{"closed", no_argument, NULL, O_CLOSED},
		{"ramp", no_argument, NULL, O_RAMP},
		{"ramp-step", required_argument, NULL, O_RAMPSTEP},
		{"max-loss", required_argument, NULL, O_MAXLOSS},
		{"zipf", required_argument, NULL, O_ZIPF},
		{"miss", required_argument, NULL, O_MISS},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"allow-remote", no_argument, NULL, O_ALLOW},
		{"type", required_argument, NULL, O_TYPE},
		{"pattern", required_argument, NULL, O_PATTERN},
		{"range", required_argument, NULL, O_RANGE},
		{"rate", required_argument, NULL, O_RATE},
		{"warmup", required_argument, NULL, O_WARMUP},
		{"echo-ok", no_argument, NULL, O_ECHO},
		{"verify", no_argument, NULL, O_VERIFY},
		{"seed", required_argument, NULL, O_SEED},
		{"host", required_argument, NULL, O_HOST},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, O_VERSION},
		{"op", required_argument, NULL, O_OP},
		{"auth", required_argument, NULL, O_AUTH},
		{"seckey-file", required_argument, NULL, O_SECKEY},
		{"privkey", required_argument, NULL, O_PRIVKEY},
		{"passphrase-file", required_argument, NULL, O_PASSFILE},
		{"auth-per-request", no_argument, NULL, O_PERREQ},
		{"seckey-alg", required_argument, NULL, O_SECALG},
		{"value-size", required_argument, NULL, O_VSIZE},
		{"overwrite", no_argument, NULL, O_OVERWRITE},
		{"tls", no_argument, NULL, O_TLS},
		{"cacert", required_argument, NULL, O_CACERT},
		{NULL, 0, NULL, 0},
	};
	bk_conf_t *c = &o->c;
	unsigned long long u;
	int ch;
	c->proto = BK_UDP;
	c->duration = 10.0;
	c->threads = 1;
	c->timeout_ms = 1000.0;
	c->seed = 1;
	o->max_loss = 1.0;
	o->ramp_step = 1.0;
	while ((ch = getopt_long(argc, argv, "s:d:f:c:P:T:n:h", lo, NULL)) != -1) {
		switch (ch) {
		case 's': o->server = optarg; break;
		case 'd':
			if (!parse_double(optarg, 0.001, 86400.0, &c->duration))
				goto bad;
			break;
		case 'f': o->file = optarg; break;
		case 'c':
			if (!parse_uns(optarg, 1, 1000000, &u))
				goto bad;
			c->inflight = (unsigned)u;
			o->inflight_set = true;
			break;
		case 'P':
			if (!parse_uns(optarg, 1, 4194304, &u))
				goto bad;
			c->server_pid = (int)u;
			break;
		case 'T':
			if (!parse_uns(optarg, 1, 256, &u))
				goto bad;
			c->threads = (unsigned)u;
			break;
		case 'n':
			if (!parse_uns(optarg, 1, UINT64_MAX, &u))
				goto bad;
			c->max_count = u;
			break;
		case 'h': usage(stdout); exit(0);
		case O_VERSION: printf("idnode-bench %s\n", BENCH_VERSION); exit(0);
		case O_PROTO:
			if (strcmp(optarg, "https") == 0) {
				c->proto = BK_REST;
				o->tls = true;
			} else if (bk_proto_parse(optarg, &c->proto)) {
				goto bad;
			}
			break;
		case O_TLS: o->tls = true; break;
		case O_CACERT: o->cacert = optarg; break;
		case O_JSON: o->json = true; break;
		case O_CONNS:
			if (!parse_uns(optarg, 1, 65536, &u))
				goto bad;
			c->conns = (unsigned)u;
			o->conns_set = true;
			break;
		case O_DEPTH:
			if (!parse_uns(optarg, 1, 4096, &u))
				goto bad;
			c->depth = (unsigned)u;
			o->depth_set = true;
			break;
		case O_NEWCONN: c->new_conn = true; break;
		case O_CLOSED: o->closed = true; break;
		case O_RAMP: o->ramp = true; break;
		case O_RAMPSTEP:
			if (!parse_double(optarg, 0.05, 3600.0, &o->ramp_step))
				goto bad;
			break;
		case O_MAXLOSS:
			if (!parse_double(optarg, 0.0, 100.0, &o->max_loss))
				goto bad;
			break;
		case O_ZIPF:
			if (!parse_double(optarg, 0.0, 100.0, &c->zipf_s))
				goto bad;
			break;
		case O_MISS:
			if (!parse_double(optarg, 0.0, 100.0, &c->miss_pct))
				goto bad;
			break;
		case O_TIMEOUT:
			if (!parse_double(optarg, 0.01, 600000.0, &c->timeout_ms))
				goto bad;
			break;
		case O_ALLOW: o->allow_remote = true; break;
		case O_TYPE:
			if (o->ntypes == MAX_TYPES || strlen(optarg) > 256)
				goto bad;
			o->types[o->ntypes++] = optarg;
			break;
		case O_PATTERN: o->pattern = optarg; break;
		case O_RANGE: o->range = optarg; break;
		case O_RATE:
			if (!parse_double(optarg, 0.001, 1e9, &c->rate))
				goto bad;
			break;
		case O_WARMUP:
			if (!parse_double(optarg, 0.0, 3600.0, &c->warmup))
				goto bad;
			break;
		case O_ECHO: c->echo_ok = true; break;
		case O_VERIFY: c->verify = true; break;
		case O_SEED:
			if (!parse_uns(optarg, 0, UINT64_MAX, &u))
				goto bad;
			c->seed = u;
			break;
		case O_HOST: o->host_hdr = optarg; break;
		case O_OP: o->wa.op = optarg; break;
		case O_AUTH: o->wa.auth = optarg; break;
		case O_SECKEY: o->wa.seckey_file = optarg; break;
		case O_PRIVKEY: o->wa.privkey_file = optarg; break;
		case O_PASSFILE: o->wa.pass_file = optarg; break;
		case O_PERREQ: o->wa.per_request = true; break;
		case O_SECALG: o->wa.seckey_alg = optarg; break;
		case O_VSIZE:
			if (!parse_uns(optarg, 0, 65536, &o->wa.value_size))
				goto bad;
			break;
		case O_OVERWRITE: o->wa.overwrite = true; break;
		default: goto usage;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "idnode-bench: unexpected argument '%s'\n", argv[optind]);
		goto usage;
	}
	if (!o->server) {
		fprintf(stderr, "idnode-bench: -s HOST:PORT is required\n");
		goto usage;
	}
	if (!o->file == !o->pattern) {
		fprintf(stderr, "idnode-bench: give either -f FILE or --pattern P --range A-B\n");
		goto usage;
	}
	if (o->pattern && !o->range) {
		fprintf(stderr, "idnode-bench: --pattern needs --range A-B\n");
		goto usage;
	}
	if (o->closed && o->ramp) {
		fprintf(stderr, "idnode-bench: --closed and --ramp exclude each other\n");
		goto usage;
	}
	if (o->closed)
		c->rate = 0.0;
	if ((o->tls || o->cacert) && (!bk_proto_stream(c->proto) || c->proto == BK_DNSTCP)) {
		fprintf(stderr, "idnode-bench: TLS runs over tcp, http or rest\n");
		goto usage;
	}
	if (o->cacert)
		o->tls = true;
	if (c->new_conn && !bk_proto_stream(c->proto)) {
		fprintf(stderr, "idnode-bench: --new-conn needs a stream protocol\n");
		goto usage;
	}
	if (bk_proto_stream(c->proto) && !c->new_conn) {
		if (!o->conns_set)
			c->conns = c->proto == BK_HTTP || c->proto == BK_REST ? 64 : 16;
		if (!o->depth_set)
			c->depth = c->proto == BK_HTTP || c->proto == BK_REST ? 1 : 16;
		if (!o->inflight_set)
			c->inflight = c->conns * c->depth;
	} else {
		if (!o->conns_set)
			c->conns = c->threads;
		if (!o->inflight_set)
			c->inflight = c->new_conn ? 16 : (c->rate > 0.0 || o->ramp ? 4096 : 64);
	}
	if (c->conns < c->threads)
		c->conns = c->threads;
	if (!c->depth)
		c->depth = 1;
	return 0;
bad:
	fprintf(stderr, "idnode-bench: bad value for option: '%s'\n", optarg ? optarg : "");
usage:
	usage(stderr);
	return -1;
}

/* ---- report ---- */

static void fmt_rate(char *b, size_t n, double v)
{
	if (v >= 1e6)
		snprintf(b, n, "%.2fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(b, n, "%.1fk", v / 1e3);
	else
		snprintf(b, n, "%.0f", v);
}

static double pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0.0;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static const double pcts[] = {50.0, 90.0, 99.0, 99.9, 99.99};
static const char *const pct_names[] = {"p50", "p90", "p99", "p99.9", "p99.99"};

typedef struct ramp_step {
	double rate, achieved, loss;
	bool ok;
} ramp_step_t;

static double loss_pct(const bk_result_t *r)
{
	uint64_t want = r->sent + r->unsent;
	return pct(r->lost + r->unsent, want);
}

static void print_text(const opts_t *o, const bk_result_t *r, const ramp_step_t *steps,
                       size_t nsteps, double max_rate)
{
	const bk_conf_t *c = &o->c;
	char b1[32], b2[32], nb[32];
	const char *mode = c->rate > 0.0 ? "open-loop" : "closed-loop";
	printf("idnode-bench %s  proto=%s%s  target=%s  load=%s", BENCH_VERSION,
	       bk_proto_name(c->proto), c->tls ? "+tls" : "", o->server, mode);
	if (c->rate > 0.0)
		printf(" %.0f/s", c->rate);
	printf("  warmup=%gs  duration=%gs\n", c->warmup, c->duration);
	printf("keys: %" PRIu64 " (%s", c->keys->n, c->zipf_s > 0.0 ? "zipf" : "uniform");
	if (c->zipf_s > 0.0)
		printf(" s=%.2f", c->zipf_s);
	printf(", miss %.1f%%) from %s   threads=%u conns=%u", c->miss_pct,
	       o->file ? o->file : o->pattern, c->threads, c->conns);
	if (bk_proto_stream(c->proto))
		printf(c->new_conn ? " new-conn" : " depth=%u", c->depth);
	printf(" inflight=%u timeout=%gms\n", c->inflight, c->timeout_ms);
	printf("Requests   sent %" PRIu64 "  completed %" PRIu64 " (%.3f%%)  lost %" PRIu64
	       " (%.3f%%)  late %" PRIu64 "  unsent %" PRIu64 "  malformed %" PRIu64
	       "  conn_errors %" PRIu64 "\n",
	       r->sent, r->completed, pct(r->completed, r->sent), r->lost, pct(r->lost, r->sent),
	       r->late, r->unsent, r->malformed, r->conn_errors);
	if (c->tls)
		printf("TLS        handshakes %" PRIu64 " (%" PRIu64 " resumed)\n", r->tls_handshakes,
		       r->tls_resumed);
	printf("Responses ");
	bool any = false;
	for (unsigned k = 0; k < BK_MAX_CODES; k++) {
		if (!r->codes[k])
			continue;
		bool echo = c->echo_ok && k == 0;
		printf(" %s %" PRIu64 " (%.2f%%)", bk_code_name(c->proto, k, echo, nb, sizeof(nb)),
		       r->codes[k], pct(r->codes[k], r->completed));
		any = true;
	}
	if (r->codes_other) {
		printf(" other %" PRIu64, r->codes_other);
		any = true;
	}
	printf("%s\n", any ? "" : " none");
	fmt_rate(b1, sizeof(b1), c->rate);
	fmt_rate(b2, sizeof(b2), (double)r->completed / r->elapsed);
	printf("Throughput offered %s/s  achieved %s/s  (%.3f s measured)\n",
	       c->rate > 0.0 ? b1 : "closed-loop", b2, r->elapsed);
	printf("Latency (us, log-bucket histogram, %s)\n",
	       c->rate > 0.0 ? "from intended send time" : "closed loop: from send time");
	const bh_hist_t *h = r->hist;
	printf("   min %.1f", h->count ? (double)h->min / 1e3 : 0.0);
	for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
		printf("   %s %.1f", pct_names[i], (double)bh_percentile(h, pcts[i]) / 1e3);
	printf("   max %.1f   mean %.1f   stddev %.1f\n", (double)h->max / 1e3 * (h->count > 0),
	       bh_mean(h) / 1e3, bh_stddev(h) / 1e3);
	if (c->server_pid > 0) {
		if (r->srv_utime >= 0.0) {
			double cpu = r->srv_utime + r->srv_stime;
			double per = cpu > 0.0 ? (double)r->completed / cpu : 0.0;
			fmt_rate(b1, sizeof(b1), per);
			printf("Server CPU  pid %d  user %.2fs sys %.2fs = %.2f cpu-s / %.2f s  ->  %s "
			       "replies per CPU-second (%.2f us/reply)",
			       c->server_pid, r->srv_utime, r->srv_stime, cpu, r->elapsed, b1,
			       r->completed ? cpu * 1e6 / (double)r->completed : 0.0);
			if (r->srv_rss_anon_kb >= 0)
				printf("  rss anon %ld kB file %ld kB", r->srv_rss_anon_kb, r->srv_rss_file_kb);
			printf("\n");
		} else {
			printf("Server CPU  pid %d: /proc unreadable\n", c->server_pid);
		}
	}
	printf("Client CPU  %.2f cpu-s\n", r->cli_cpu);
	if (c->write)
		bk_write_print_text(stdout, c->write, r);
	if (nsteps) {
		printf("Ramp (max loss %.2f%%):", o->max_loss);
		for (size_t i = 0; i < nsteps; i++)
			printf(" %.0f/s->%.0f/s loss %.2f%%%s;", steps[i].rate, steps[i].achieved,
			       steps[i].loss, steps[i].ok ? "" : " FAIL");
		bool capped = false;
		for (size_t i = 0; i < nsteps; i++)
			capped = capped || !steps[i].ok;
		printf("\nMaximum rate under the loss cap: %.0f/s%s\n", max_rate,
		       capped ? "" : " (the cap was never reached: give a longer -d or a higher --rate)");
	}
}

static void print_json(const opts_t *o, const bk_result_t *r, const ramp_step_t *steps,
                       size_t nsteps, double max_rate)
{
	const bk_conf_t *c = &o->c;
	FILE *f = stdout;
	char nb[32];
	fprintf(f, "{\"tool\":\"idnode-bench\",\"version\":\"%s\",\"proto\":\"%s\",\"target\":",
	        BENCH_VERSION, bk_proto_name(c->proto));
	json_str(f, o->server);
	fprintf(f, ",\"mode\":\"%s\",\"rate\":%.3f,\"duration_s\":%.3f,\"warmup_s\":%.3f,"
	        "\"threads\":%u,\"conns\":%u,\"depth\":%u,\"new_conn\":%s,\"inflight\":%u,"
	        "\"timeout_ms\":%.3f,",
	        o->ramp ? "ramp" : (c->rate > 0.0 ? "open" : "closed"), c->rate, c->duration,
	        c->warmup, c->threads, c->conns, c->depth, c->new_conn ? "true" : "false",
	        c->inflight, c->timeout_ms);
	fprintf(f, "\"keys\":{\"count\":%" PRIu64 ",\"source\":", c->keys->n);
	json_str(f, o->file ? o->file : o->pattern);
	fprintf(f, ",\"distribution\":\"%s\",\"zipf_s\":%.3f,\"miss_pct\":%.3f},",
	        c->zipf_s > 0.0 ? "zipf" : "uniform", c->zipf_s, c->miss_pct);
	fprintf(f, "\"sent\":%" PRIu64 ",\"completed\":%" PRIu64 ",\"lost\":%" PRIu64
	        ",\"late\":%" PRIu64 ",\"unsent\":%" PRIu64 ",\"malformed\":%" PRIu64
	        ",\"conn_errors\":%" PRIu64 ",\"reconnects\":%" PRIu64 ",",
	        r->sent, r->completed, r->lost, r->late, r->unsent, r->malformed, r->conn_errors,
	        r->reconnects);
	fprintf(f, "\"tls\":%s,\"tls_handshakes\":%" PRIu64 ",\"tls_resumed\":%" PRIu64 ",",
	        c->tls ? "true" : "false", r->tls_handshakes, r->tls_resumed);
	fprintf(f, "\"rcodes\":{");
	bool first = true;
	for (unsigned k = 0; k < BK_MAX_CODES; k++) {
		if (!r->codes[k])
			continue;
		bool echo = c->echo_ok && k == 0;
		fprintf(f, "%s", first ? "" : ",");
		json_str(f, bk_code_name(c->proto, k, echo, nb, sizeof(nb)));
		fprintf(f, ":%" PRIu64, r->codes[k]);
		first = false;
	}
	if (r->codes_other)
		fprintf(f, "%s\"other\":%" PRIu64, first ? "" : ",", r->codes_other);
	fprintf(f, "},\"elapsed_s\":%.6f,\"offered_rate\":%.3f,\"achieved_rate\":%.3f,", r->elapsed,
	        c->rate, (double)r->completed / r->elapsed);
	const bh_hist_t *h = r->hist;
	fprintf(f, "\"latency_us\":{\"count\":%" PRIu64 ",\"min\":%.3f", h->count,
	        h->count ? (double)h->min / 1e3 : 0.0);
	for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
		fprintf(f, ",\"%s\":%.3f", pct_names[i], (double)bh_percentile(h, pcts[i]) / 1e3);
	fprintf(f, ",\"max\":%.3f,\"mean\":%.3f,\"stddev\":%.3f},", (double)h->max / 1e3,
	        bh_mean(h) / 1e3, bh_stddev(h) / 1e3);
	fprintf(f, "\"histogram_ns\":[");
	first = true;
	for (uint32_t i = 0; i < BH_NBUCKETS; i++) {
		if (!h->b[i])
			continue;
		fprintf(f, "%s[%" PRIu64 ",%" PRIu64 "]", first ? "" : ",", bh_lowest(i), h->b[i]);
		first = false;
	}
	fprintf(f, "],");
	if (c->server_pid > 0 && r->srv_utime >= 0.0) {
		double cpu = r->srv_utime + r->srv_stime;
		fprintf(f, "\"server\":{\"pid\":%d,\"utime_s\":%.3f,\"stime_s\":%.3f,\"cpu_s\":%.3f,"
		        "\"replies_per_cpu_s\":%.1f,\"us_per_reply\":%.4f,\"rss_anon_kb\":%ld,"
		        "\"rss_file_kb\":%ld},",
		        c->server_pid, r->srv_utime, r->srv_stime, cpu,
		        cpu > 0.0 ? (double)r->completed / cpu : 0.0,
		        r->completed ? cpu * 1e6 / (double)r->completed : 0.0, r->srv_rss_anon_kb,
		        r->srv_rss_file_kb);
	} else {
		fprintf(f, "\"server\":null,");
	}
	fprintf(f, "\"client_cpu_s\":%.3f,\"request_bytes\":%" PRIu64 ",\"reply_bytes\":%" PRIu64,
	        r->cli_cpu, r->req_bytes, r->rep_bytes);
	if (c->write)
		bk_write_print_json(f, c->write, r);
	if (o->ramp) {
		bool capped = false;
		for (size_t i = 0; i < nsteps; i++)
			capped = capped || !steps[i].ok;
		fprintf(f, ",\"max_loss_pct\":%.3f,\"max_rate\":%.1f,\"loss_cap_reached\":%s,\"ramp\":[",
		        o->max_loss, max_rate, capped ? "true" : "false");
		for (size_t i = 0; i < nsteps; i++)
			fprintf(f, "%s{\"rate\":%.1f,\"achieved\":%.1f,\"loss_pct\":%.4f,\"ok\":%s}",
			        i ? "," : "", steps[i].rate, steps[i].achieved, steps[i].loss,
			        steps[i].ok ? "true" : "false");
		fprintf(f, "]");
	}
	struct utsname un;
	if (uname(&un) == 0) {
		fprintf(f, ",\"env\":{\"kernel\":");
		json_str(f, un.release);
		fprintf(f, ",\"cpus\":%ld}", sysconf(_SC_NPROCESSORS_ONLN));
	}
	fprintf(f, "}\n");
}

/* ---- ramp ---- */

static int run_ramp(opts_t *o, bk_result_t *best, bh_hist_t *scratch_hist, ramp_step_t *steps,
                    size_t *nsteps, size_t max_steps, double *max_rate)
{
	bk_conf_t c = o->c;
	char err[256];
	double budget = o->c.duration + o->c.warmup;
	double spent = 0.0;
	double rate = o->c.rate > 0.0 ? o->c.rate : 10000.0;
	double good = 0.0, bad = 0.0;
	bk_result_t cur;
	c.duration = o->ramp_step;
	c.warmup = o->ramp_step * 0.2;
	*nsteps = 0;
	*max_rate = 0.0;
	while (*nsteps < max_steps && spent + c.duration + c.warmup <= budget + 1e-9) {
		c.rate = rate;
		cur.hist = scratch_hist;
		uint64_t t0 = bk_now_ns();
		if (bk_run(&c, &cur, err, sizeof(err)) != 0) {
			fprintf(stderr, "idnode-bench: %s\n", err);
			return -1;
		}
		spent += (double)(bk_now_ns() - t0) / 1e9;
		double loss = loss_pct(&cur);
		double ach = (double)cur.completed / cur.elapsed;
		bool ok = cur.sent > 0 && loss <= o->max_loss && ach >= 0.9 * rate;
		steps[*nsteps] = (ramp_step_t){rate, ach, loss, ok};
		(*nsteps)++;
		if (ok) {
			good = rate;
			*max_rate = rate;
			bh_hist_t *keep = best->hist;
			memcpy(keep, scratch_hist, sizeof(*keep));
			*best = cur;
			best->hist = keep;
		} else {
			bad = rate;
		}
		if (bad == 0.0)
			rate *= 2.0;
		else if (good == 0.0)
			rate /= 2.0;
		else if (bad / good < 1.05)
			break;
		else
			rate = (good + bad) / 2.0;
		if (rate < 1.0)
			break;
	}
	o->c.rate = *max_rate;
	return 0;
}

int main(int argc, char **argv)
{
	opts_t o;
	memset(&o, 0, sizeof(o));
	char err[512];
	bk_keys_t keys;
	bk_tmpl_t tmpl;
	bk_write_ctx_t *wctx = NULL;
	int ret = EXIT_SETUP;
	if (parse_args(argc, argv, &o) != 0)
		return EXIT_USAGE;
	if (!o.allow_remote) {
		int g = bk_addr_check(o.server, err, sizeof(err));
		if (g != 0) {
			fprintf(stderr, "idnode-bench: %s\n", err);
			return EXIT_USAGE;
		}
	}
	if (bk_addr_parse(o.server, 2641, &o.c.addr, &o.c.addrlen, err, sizeof(err)) != 0) {
		fprintf(stderr, "idnode-bench: %s\n", err);
		return EXIT_USAGE;
	}
	int kr = o.file ? bk_keys_load(&keys, o.file, err, sizeof(err))
	                : bk_keys_pattern(&keys, o.pattern, o.range, err, sizeof(err));
	if (kr != 0) {
		fprintf(stderr, "idnode-bench: keys: %s\n", err);
		return EXIT_USAGE;
	}
	char host[300];
	snprintf(host, sizeof(host), "%s", o.host_hdr ? o.host_hdr : o.server);
	if (bk_tmpl_init(&tmpl, o.c.proto, o.types, o.ntypes, host) != 0) {
		fprintf(stderr, "idnode-bench: cannot encode the request template\n");
		goto out;
	}
	tmpl.close = o.c.new_conn;
	if (o.c.proto == BK_TCP && !o.c.new_conn)
		bk_tmpl_keep(&tmpl); /* a persistent pipelining client asks to keep its connection */
	o.c.keys = &keys;
	o.c.tmpl = &tmpl;
	if (o.tls) {
		/* a client context: TLS 1.2+, partial writes (the engine keeps what was not taken),
		 * sessions kept per connection for resumption */
		o.c.tls = SSL_CTX_new(TLS_client_method());
		if (!o.c.tls) {
			fprintf(stderr, "idnode-bench: cannot make a TLS context\n");
			goto out;
		}
		SSL_CTX_set_min_proto_version(o.c.tls, TLS1_2_VERSION);
		SSL_CTX_set_mode(o.c.tls, SSL_MODE_ENABLE_PARTIAL_WRITE |
		                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		SSL_CTX_set_session_cache_mode(o.c.tls, SSL_SESS_CACHE_CLIENT);
		if (o.cacert) {
			if (SSL_CTX_load_verify_locations(o.c.tls, o.cacert, NULL) != 1) {
				fprintf(stderr, "idnode-bench: cannot load --cacert %s\n", o.cacert);
				goto out;
			}
			SSL_CTX_set_verify(o.c.tls, SSL_VERIFY_PEER, NULL);
		}
	}
	{
		int wr = bk_write_setup(&o.wa, &o.c, &wctx, err, sizeof(err));
		if (wr != 0) {
			fprintf(stderr, "idnode-bench: %s\n", err);
			ret = wr == -1 ? EXIT_USAGE : EXIT_SETUP;
			goto out;
		}
	}
	{
		char k0[BK_KEY_MAX];
		uint8_t probe[3 * BK_KEY_MAX + 2600];
		size_t kl = bk_key_get(&keys, 0, k0, sizeof(k0));
		if (!kl || !bk_build(&tmpl, k0, kl, 1, probe,
		                     bk_proto_stream(o.c.proto) ? sizeof(probe) : HDL_UDP_MAX_DGRAM)) {
			fprintf(stderr, "idnode-bench: the first key cannot be sent as a %s request: '%.*s'\n",
			        bk_proto_name(o.c.proto), (int)kl, k0);
			ret = EXIT_USAGE;
			goto out;
		}
	}
	if (o.c.zipf_s > 0.0) {
		bk_zipf_t z;
		if (bk_zipf_init(&z, keys.n, o.c.zipf_s) != 0) {
			fprintf(stderr, "idnode-bench: bad --zipf\n");
			ret = EXIT_USAGE;
			goto out;
		}
	}
	bh_hist_t *hist = malloc(sizeof(*hist));
	bh_hist_t *scratch = malloc(sizeof(*scratch));
	if (!hist || !scratch) {
		free(hist);
		free(scratch);
		fprintf(stderr, "idnode-bench: out of memory\n");
		goto out;
	}
	bk_result_t res;
	memset(&res, 0, sizeof(res));
	res.hist = hist;
	bh_init(hist);
	ramp_step_t steps[64];
	size_t nsteps = 0;
	double max_rate = 0.0;
	int rr;
	if (o.ramp)
		rr = run_ramp(&o, &res, scratch, steps, &nsteps, 64, &max_rate);
	else
		rr = bk_run(&o.c, &res, err, sizeof(err));
	if (rr != 0) {
		if (!o.ramp)
			fprintf(stderr, "idnode-bench: %s\n", err);
		free(hist);
		free(scratch);
		goto out;
	}
	if (o.ramp && res.elapsed <= 0.0)
		res.elapsed = 1e-9;
	if (o.json)
		print_json(&o, &res, steps, nsteps, max_rate);
	else
		print_text(&o, &res, steps, nsteps, max_rate);
	fflush(stdout);
	ret = res.completed > 0 ? 0 : EXIT_NOREPLY;
	free(hist);
	free(scratch);
out:
	SSL_CTX_free(o.c.tls);
	bk_write_free(wctx);
	bk_keys_free(&keys);
	return ret;
}
