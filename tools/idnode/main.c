/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `idnode` CLI: dispatch over the subcommands declared in cmds.h.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tools/idnode/cmds.h"

#ifndef HDL_VERSION
#define HDL_VERSION "0.1.0" /* CMake passes the project version */
#endif

/*
 * Weak fallbacks: import/export live in db.c and gen in gen.c; the strong definitions there win
 * at link time. These only keep the CLI linkable in a tree built without them.
 */
__attribute__((weak)) int cmd_import(int argc, char **argv)
{
	fprintf(stderr, "idnode import: not built\n");
	return IDNODE_EXIT_USAGE;
}

__attribute__((weak)) int cmd_export(int argc, char **argv)
{
	fprintf(stderr, "idnode export: not built\n");
	return IDNODE_EXIT_USAGE;
}

__attribute__((weak)) int cmd_gen(int argc, char **argv)
{
	fprintf(stderr, "idnode gen: not built\n");
	return IDNODE_EXIT_USAGE;
}

/** \brief True when the arguments hold --db (then home/unhome take their offline form). */
static bool has_db(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--db") == 0 || strncmp(argv[i], "--db=", 5) == 0)
			return true;
	return false;
}

static int cmd_home(int argc, char **argv)
{
	return has_db(argc, argv) ? cmd_home_db(argc, argv) : cmd_home_net(argc, argv);
}

static int cmd_unhome(int argc, char **argv)
{
	return has_db(argc, argv) ? cmd_unhome_db(argc, argv) : cmd_unhome_net(argc, argv);
}

typedef struct subcmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} subcmd_t;

static const subcmd_t subcmds[] = {
	{"resolve", cmd_resolve, "resolve a handle over UDP, TCP or the HTTP native tunnel"},
	{"decode", cmd_decode, "pretty-print a Handle message from an xxd hex dump or raw bytes"},
	{"import", cmd_import, "load handle records (JSON) into a node database"},
	{"export", cmd_export, "dump the handle records of a node database as JSON"},
	{"gen", cmd_gen, "generate test data sets"},
	{"prefixes", cmd_prefixes, "list the homed prefixes of a node database and who homed them"},
	{"audit", cmd_audit, "print the audit trail of a node database"},
	{"stats", cmd_stats, "usage statistics of a node database, per prefix and day"},
	{"create", cmd_create, "create a handle (authenticated, over TCP)"},
	{"delete", cmd_delete, "delete a handle (authenticated)"},
	{"add", cmd_add, "add values to a handle (authenticated)"},
	{"modify", cmd_modify, "replace values of a handle by index (authenticated)"},
	{"remove", cmd_remove, "remove values of a handle by index (authenticated)"},
	{"list", cmd_list, "list the handles under a prefix (authenticated)"},
	{"home", cmd_home, "home a prefix: on a server (OC 300), or with --db in a database"},
	{"unhome", cmd_unhome, "unhome a prefix: on a server (OC 301), or with --db in a database"},
	{"keygen", cmd_keygen, "make a key pair for HS_PUBKEY authentication"},
	{"cache", cmd_cache, "resolver cache of a running node: stats, dump, flush (control socket)"},
	{"status", cmd_status, "state of a running node (control socket)"},
	{"template", cmd_template, "metadata templates of a node database: load, list, show, delete"},
	{"passwd", cmd_passwd, "make the password hash of an snms_user configuration line"},
	{"reload", cmd_reload, "make a running node re-read its configuration (control socket)"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: idnode [--help] [--version] <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
		fprintf(f, "  %-9s %s\n", subcmds[i].name, subcmds[i].summary);
	fprintf(f, "\nRun `idnode <command> --help` for the options of a command.\n"
	           "Exit status: 0 ok, 1 not found / error answer, 2 usage, 3 network or I/O,\n"
	           "4 malformed data.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return IDNODE_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return IDNODE_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("idnode " HDL_VERSION "\n");
		return IDNODE_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
		if (strcmp(argv[1], subcmds[i].name) == 0)
			return subcmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "idnode: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return IDNODE_EXIT_USAGE;
}
