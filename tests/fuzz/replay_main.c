/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Corpus replayer: turns a libFuzzer target into a plain program (and a ctest) under gcc.
 *
 * Usage: fuzz_<name> DIR... — every regular file in each directory is fed once to
 * LLVMFuzzerTestOneInput. A missing directory is skipped (repro/<target>/ usually is empty).
 * Exits 0 once all inputs ran; a bug shows up as a crash, an abort() or a sanitizer report.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/** Read a whole file into a fresh heap buffer (at least 1 byte allocated). */
static int read_file(const char *path, uint8_t **out, size_t *outlen)
{
	int ret = -1;
	uint8_t *buf = NULL;
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		goto fail;
	if (fseek(f, 0, SEEK_END) != 0)
		goto fail;
	long n = ftell(f);
	if (n < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto fail;
	buf = malloc((size_t)n + 1);
	if (buf == NULL)
		goto fail;
	if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)
		goto fail;
	*out = buf;
	*outlen = (size_t)n;
	buf = NULL;
	ret = 0;
fail:
	free(buf);
	if (f)
		fclose(f);
	return ret;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/** Replay one directory in name order. \return inputs replayed, or -1 on an I/O error. */
static long replay_dir(const char *dir)
{
	long count = 0;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **nn = realloc(names, ncap * sizeof(*nn));
			if (nn == NULL)
				goto fail;
			names = nn;
			cap = ncap;
		}
		names[n] = strdup(e->d_name);
		if (names[n] == NULL)
			goto fail;
		n++;
	}
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		size_t plen = strlen(dir) + strlen(names[i]) + 2;
		char *path = malloc(plen);
		if (path == NULL)
			goto fail;
		snprintf(path, plen, "%s/%s", dir, names[i]);
		struct stat st;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
			free(path);
			continue;
		}
		uint8_t *data;
		size_t len;
		if (read_file(path, &data, &len) != 0) {
			fprintf(stderr, "cannot read %s\n", path);
			free(path);
			goto fail;
		}
		LLVMFuzzerTestOneInput(data, len);
		free(data);
		free(path);
		count++;
	}
	goto out;
fail:
	count = -1;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return count;
}

int main(int argc, char **argv)
{
	const char *target = strrchr(argv[0], '/');
	target = target ? target + 1 : argv[0];
	long total = 0;
	for (int i = 1; i < argc; i++) {
		long n = replay_dir(argv[i]);
		if (n < 0) {
			fprintf(stderr, "%s: cannot replay %s\n", target, argv[i]);
			return 1;
		}
		total += n;
	}
	printf("%s: %ld inputs replayed\n", target, total);
	return 0;
}
