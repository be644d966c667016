/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `idnode` CLI: dispatch over the subcommands declared in cmds.h.
 */
#include <stdio.h>
#include <string.h>

#include "tools/idnode/cmds.h"

#ifndef IDNODE_VERSION
#define IDNODE_VERSION "0.1.0"
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
	{"cache", cmd_cache, "resolver cache of a running node: stats, dump, flush (control socket)"},
	{"status", cmd_status, "state of a running node (control socket)"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: idnode [--help] [--version] <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
		fprintf(f, "  %-8s  %s\n", subcmds[i].name, subcmds[i].summary);
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
		printf("idnode " IDNODE_VERSION "\n");
		return IDNODE_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
		if (strcmp(argv[1], subcmds[i].name) == 0)
			return subcmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "idnode: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return IDNODE_EXIT_USAGE;
}
