/* SPDX-License-Identifier: Apache-2.0 */
/* idnoded: the Handle protocol node. Options map onto configuration keys (node/conf). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/server/server.h"

#ifndef HDL_VERSION
#define HDL_VERSION "0.1.0" /* CMake passes the project version */
#endif

/** Default of configuration key \p key as text (from the schema, so help and code agree). */
static const char *dflt(const char *key)
{
	const conf_key_t *k = conf_key_find(key);
	return k && k->dflt ? k->dflt : "none";
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: idnoded [-c FILE] [-t] [-v] [options]\n"
	        "  -c, --config FILE     configuration file (see deploy/idnode.conf.sample); without\n"
	        "                        one, the defaults below\n"
	        "  -t, --check           check the configuration and exit (0 valid, 1 invalid)\n"
	        "      --listen ADDR:PORT  UDP+TCP address, repeatable; [::1]:2641 for IPv6\n"
	        "                        (default %s)\n"
	        "      --http ADDR:PORT  HTTP address, repeatable (default %s)\n"
	        "      --db DIR          LMDB directory; it must exist (default %s)\n"
	        "      --workers N       worker threads (default %s = number of CPUs)\n"
	        "      --home PREFIX     home PREFIX (source config), repeatable (default none)\n"
	        "      --pidfile FILE    write the process id to FILE (default none)\n"
	        "      --cache-size BYTES  response cache, all workers together (default %s;\n"
	        "                        0 = off)\n"
	        "      --tls-cert FILE --tls-key FILE  certificate chain and key (PEM): HTTPS on\n"
	        "                        the http ports and the TLS stream (default none)\n"
	        "      --tls-listen ADDR:PORT  TLS stream address (Handle framing over TLS, e.g.\n"
	        "                        2642), repeatable (default none)\n"
	        "  -v, --verbose         log at debug level (default level %s)\n"
	        "  -V, --version         print the version and exit\n"
	        "  -h, --help            this text\n"
	        "Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads the configuration file as a\n"
	        "whole (or, when any part of it cannot be used, not at all), as `idnode reload`\n"
	        "does. Under systemd (Type=notify): READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1.\n",
	        dflt("listen"), dflt("http"), dflt("db"), dflt("workers"), dflt("cache_size"),
	        dflt("log_level"));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, 't'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"listen", required_argument, NULL, 'L'},
		{"http", required_argument, NULL, 'H'},
		{"db", required_argument, NULL, 'D'},
		{"workers", required_argument, NULL, 'W'},
		{"home", required_argument, NULL, 'P'},
		{"pidfile", required_argument, NULL, 'p'},
		{"cache-size", required_argument, NULL, 'C'},
		{"tls-cert", required_argument, NULL, 'T'},
		{"tls-key", required_argument, NULL, 'K'},
		{"tls-listen", required_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	server_opts_t o = {0};
	conf_override_t *ov = calloc((size_t)argc + 1, sizeof(*ov));
	size_t n_ov = 0;
	bool check = false;
	int opt, rc = 2;

	if (!ov) {
		fprintf(stderr, "idnoded: out of memory\n");
		return 1;
	}
	while ((opt = getopt_long(argc, argv, "c:tvhV", longopts, NULL)) != -1) {
		const char *key = NULL;
		switch (opt) {
		case 'c': o.conf_path = optarg; break;
		case 't': check = true; break;
		case 'v': ov[n_ov++] = (conf_override_t){"log_level", "debug"}; break;
		case 'h': usage(stdout); rc = 0; goto out;
		case 'V': printf("idnoded " HDL_VERSION "\n"); rc = 0; goto out;
		case 'L': key = "listen"; break;
		case 'H': key = "http"; break;
		case 'D': key = "db"; break;
		case 'W': key = "workers"; break;
		case 'P': key = "home"; break;
		case 'p': key = "pidfile"; break;
		case 'C': key = "cache_size"; break;
		case 'T': key = "tls_cert"; break;
		case 'K': key = "tls_key"; break;
		case 'S': key = "tls_listen"; break;
		default: usage(stderr); goto out;
		}
		if (key)
			ov[n_ov++] = (conf_override_t){key, optarg};
	}
	if (optind < argc) {
		fprintf(stderr, "idnoded: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		goto out;
	}
	o.ov = ov;
	o.n_ov = n_ov;
	if (check) {
		char err[512];
		rc = server_check(&o, err, sizeof(err));
		if (rc == 0)
			printf("idnoded: configuration OK\n");
		else
			fprintf(stderr, "idnoded: %s\n", err);
		goto out;
	}
	rc = server_run(&o);
out:
	free(ov);
	return rc;
}
