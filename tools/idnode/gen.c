/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `idnode gen`: deterministic synthetic industrial product identifiers as JSON Lines.
 *
 * Record k (k = --start + i, i = 0 .. --count-1) has the handle
 *
 *     <prefix>/<FAMILY>-<YEAR>-<SEQ>
 *       FAMILY = families[k % 12]      (PUMP, VALVE, MOTOR, BEARING, GEARBOX, COMPRESSOR, SENSOR,
 *                                       INVERTER, FAN, CYLINDER, REDUCER, CONTROLLER)
 *       YEAR   = 2019 + (k / 12) % 7   (2019 .. 2025)
 *       SEQ    = k / 84, printed with at least 6 digits ("%06u")
 *
 * so the key of record k is a pure function of k and the prefix (not of the seed): load tests can
 * compute the keys a data set holds from --start and --count alone (or ask `--keys-only`). The
 * mapping k -> (family, year, seq) is a bijection, so keys never repeat. The values (manufacturer,
 * model, batch, date, e-mail) are a pure function of (seed, k).
 *
 * Values per record (REST JSON form; 200-400 bytes of type + data):
 *   1 URL               https://id.<manufacturer domain>/p/<suffix>
 *   2 PRODUCT_NAME      Chinese + English product name
 *   3 MODEL             family-specific model number
 *   4 BATCH             B<yyyymmdd>-<nn>
 *   5 PRODUCTION_DATE   yyyy-mm-dd (in YEAR)
 *   6 MANUFACTURER      Chinese + English company name (fictional Guangzhou-area companies)
 *   7 EMAIL             service@<domain> (every other record)
 *   100 HS_ADMIN        0.NA/<prefix> index 300, all permissions
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/idnode/cmds.h"

#define GEN_NFAM 12u
#define GEN_NYEARS 7u
#define GEN_BUF (1u << 20)

typedef struct family {
	const char *code;    /**< suffix family code */
	const char *name_zh; /**< product name */
	const char *name_en;
	const char *m_pre;   /**< model number: m_pre A m_mid B m_post */
	int a_width;         /**< zero-padded digits of A */
	const char *m_mid;
	const char *m_post;
	unsigned a_lo, a_hi; /**< range of the first model number */
	unsigned b_lo, b_hi; /**< range of the second */
	unsigned makers[2];  /**< indexes into makers[] that build this family */
} family_t;

static const family_t families[GEN_NFAM] = {
	{"PUMP", "管道离心泵", "inline centrifugal pump", "ISG", 1, "-", "", 25, 200, 100, 315, {0, 3}},
	{"VALVE", "法兰球阀", "flanged ball valve", "Q41F-", 1, "C-DN", "", 16, 64, 15, 300, {3, 0}},
	{"MOTOR", "三相异步电动机", "three-phase induction motor", "YE3-", 1, "M-", "", 80, 355, 2, 8, {5, 1}},
	{"BEARING", "深沟球轴承", "deep groove ball bearing", "62", 2, "-", "RS", 0, 40, 1, 2, {2, 6}},
	{"GEARBOX", "硬齿面齿轮箱", "hardened gear unit", "ZLY", 1, "-", "", 112, 630, 8, 50, {6, 2}},
	{"COMPRESSOR", "螺杆空气压缩机", "screw air compressor", "LG-", 1, "/", "", 3, 40, 7, 13, {0, 4}},
	{"SENSOR", "压力变送器", "pressure transmitter", "PT", 1, "-", "MPa", 100, 900, 1, 60, {7, 4}},
	{"INVERTER", "通用变频器", "general-purpose inverter", "GD", 1, "-", "G-4", 10, 350, 1, 90, {1, 4}},
	{"FAN", "离心通风机", "centrifugal fan", "4-72-", 1, ".", "A", 2, 16, 0, 9, {5, 1}},
	{"CYLINDER", "标准气缸", "standard pneumatic cylinder", "SC", 1, "x", "", 32, 200, 25, 500, {4, 3}},
	{"REDUCER", "蜗轮蜗杆减速机", "worm gear reducer", "RV", 1, "-", "", 25, 150, 5, 100, {6, 2}},
	{"CONTROLLER", "可编程控制器", "programmable logic controller", "CPU", 1, "-", "DP", 312, 319, 1, 3, {7, 1}},
};

typedef struct maker {
	const char *zh;
	const char *en;
	const char *domain;
} maker_t;

/* Fictional companies; the names follow the usual Guangzhou-area pattern. */
static const maker_t makers[] = {
	{"广州珠江流体设备有限公司", "Guangzhou Zhujiang Fluid Equipment Co., Ltd.", "zjfluid.cn"},
	{"广州白云机电制造有限公司", "Guangzhou Baiyun Electromechanical Mfg. Co., Ltd.", "bymec.cn"},
	{"广州番禺精密轴承有限公司", "Guangzhou Panyu Precision Bearing Co., Ltd.", "pybearing.cn"},
	{"广州黄埔重工阀门有限公司", "Guangzhou Huangpu Heavy Industry Valve Co., Ltd.", "hpvalve.cn"},
	{"广州南沙智能装备股份有限公司", "Guangzhou Nansha Intelligent Equipment Co., Ltd.", "nsie.com.cn"},
	{"广州花都电机有限公司", "Guangzhou Huadu Motor Co., Ltd.", "hdmotor.cn"},
	{"佛山顺德传动科技有限公司", "Foshan Shunde Transmission Technology Co., Ltd.", "sdtrans.cn"},
	{"广州天河自动化仪表有限公司", "Guangzhou Tianhe Automation Instruments Co., Ltd.", "thai.com.cn"},
};
#define GEN_NMAKERS (sizeof(makers) / sizeof(makers[0]))

/** splitmix64 step: a good 64-bit mix for per-record streams. */
static uint64_t mix(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static unsigned pick(uint64_t *st, unsigned lo, unsigned hi)
{
	return lo + (unsigned)(mix(st) % (uint64_t)(hi - lo + 1));
}

typedef struct out {
	char *buf;
	size_t len;
	FILE *f;
	int err;
} out_t;

static void out_flush(out_t *o)
{
	if (o->len && fwrite(o->buf, 1, o->len, o->f) != o->len)
		o->err = 1;
	o->len = 0;
}

static inline void put(out_t *o, const char *s, size_t n)
{
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static inline void puts_(out_t *o, const char *s)
{
	put(o, s, strlen(s));
}

/** Decimal with at least \p width digits (zero-padded). */
static inline void putu(out_t *o, uint64_t v, int width)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n < width)
		tmp[n++] = '0';
	while (n)
		o->buf[o->len++] = tmp[--n];
}

/** The suffix of record k ("PUMP-2024-000123"). */
static void put_suffix(out_t *o, uint64_t k)
{
	puts_(o, families[k % GEN_NFAM].code);
	put(o, "-", 1);
	putu(o, 2019 + (k / GEN_NFAM) % GEN_NYEARS, 4);
	put(o, "-", 1);
	putu(o, k / (GEN_NFAM * GEN_NYEARS), 6);
}

static void put_str_value(out_t *o, unsigned index, const char *type)
{
	put(o, "{\"index\":", 9);
	putu(o, index, 1);
	put(o, ",\"type\":\"", 9);
	puts_(o, type);
	puts_(o, "\",\"data\":{\"format\":\"string\",\"value\":\"");
}

static void end_str_value(out_t *o)
{
	puts_(o, "\"},\"ttl\":86400},");
}

static void gen_record(out_t *o, const char *prefix, uint64_t seed, uint64_t k)
{
	const family_t *fam = &families[k % GEN_NFAM];
	unsigned year = 2019 + (unsigned)((k / GEN_NFAM) % GEN_NYEARS);
	uint64_t st = seed * 0xD1B54A32D192ED03ull ^ k * 0x9E3779B97F4A7C15ull;
	const maker_t *mk = &makers[fam->makers[mix(&st) & 1] % GEN_NMAKERS];
	unsigned month = pick(&st, 1, 12);
	unsigned day = pick(&st, 1, 28);
	unsigned lot = pick(&st, 1, 24);
	unsigned ma = pick(&st, fam->a_lo, fam->a_hi);
	unsigned mb = pick(&st, fam->b_lo, fam->b_hi);
	bool email = mix(&st) & 1;

	put(o, "{\"handle\":\"", 11);
	puts_(o, prefix);
	put(o, "/", 1);
	put_suffix(o, k);
	put(o, "\",\"values\":[", 12);

	put_str_value(o, 1, "URL");
	put(o, "https://id.", 11);
	puts_(o, mk->domain);
	put(o, "/p/", 3);
	put_suffix(o, k);
	end_str_value(o);

	put_str_value(o, 2, "PRODUCT_NAME");
	puts_(o, fam->name_zh);
	put(o, " / ", 3);
	puts_(o, fam->name_en);
	end_str_value(o);

	put_str_value(o, 3, "MODEL");
	puts_(o, fam->m_pre);
	putu(o, ma, fam->a_width);
	puts_(o, fam->m_mid);
	putu(o, mb, 1);
	puts_(o, fam->m_post);
	end_str_value(o);

	put_str_value(o, 4, "BATCH");
	put(o, "B", 1);
	putu(o, year, 4);
	putu(o, month, 2);
	putu(o, day, 2);
	put(o, "-", 1);
	putu(o, lot, 2);
	end_str_value(o);

	put_str_value(o, 5, "PRODUCTION_DATE");
	putu(o, year, 4);
	put(o, "-", 1);
	putu(o, month, 2);
	put(o, "-", 1);
	putu(o, day, 2);
	end_str_value(o);

	put_str_value(o, 6, "MANUFACTURER");
	puts_(o, mk->zh);
	put(o, " ", 1);
	puts_(o, mk->en);
	end_str_value(o);

	if (email) {
		put_str_value(o, 7, "EMAIL");
		put(o, "service@", 8);
		puts_(o, mk->domain);
		end_str_value(o);
	}

	puts_(o, "{\"index\":100,\"type\":\"HS_ADMIN\",\"data\":{\"format\":\"admin\",\"value\":"
	         "{\"handle\":\"0.NA/");
	puts_(o, prefix);
	puts_(o, "\",\"index\":300,\"permissions\":\"111111111111\"}},\"ttl\":86400}]}\n");
}

static void gen_usage(FILE *f)
{
	fprintf(f,
	        "usage: idnode gen [--prefix P] [--count N] [--seed S] [--start K] [--keys-only]\n"
	        "  Writes N JSON Lines {\"handle\":...,\"values\":[...]} of synthetic product\n"
	        "  identifiers to stdout (default prefix 88.100.1, count 10, seed 1, start 0).\n"
	        "  Record k (k = K .. K+N-1) is P/<FAMILY>-<YEAR>-<SEQ> with FAMILY = one of 12\n"
	        "  families by k %% 12, YEAR = 2019 + (k / 12) %% 7, SEQ = k / 84 (6+ digits);\n"
	        "  keys do not depend on the seed, values do.\n"
	        "  --keys-only   print only the handles, one per line\n");
}


/** Prefix check: printable ASCII without '/', '"' or '\\' (it is written into JSON unescaped). */
static bool prefix_ok(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || n > 200)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= 0x20 || c >= 0x7f || c == '/' || c == '"' || c == '\\')
			return false;
	}
	return true;
}

int cmd_gen(int argc, char **argv)
{
	static const struct option opts[] = {
		{"prefix", required_argument, NULL, 'p'}, {"count", required_argument, NULL, 'n'},
		{"seed", required_argument, NULL, 's'},   {"start", required_argument, NULL, 'k'},
		{"keys-only", no_argument, NULL, 'K'},    {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *prefix = "88.100.1";
	uint64_t count = 10, seed = 1, start = 0;
	bool keys_only = false;
	int c;
	optind = 1;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "p:n:s:k:Kh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			prefix = optarg;
			break;
		case 'n':
			if (!idnode_parse_u64(optarg, false, &count))
				goto usage;
			break;
		case 's':
			if (!idnode_parse_u64(optarg, false, &seed))
				goto usage;
			break;
		case 'k':
			if (!idnode_parse_u64(optarg, false, &start))
				goto usage;
			break;
		case 'K':
			keys_only = true;
			break;
		case 'h':
			gen_usage(stdout);
			return IDNODE_EXIT_OK;
		default:
			goto usage;
		}
	}
	if (optind != argc || !prefix_ok(prefix) || start > UINT64_MAX - count)
		goto usage;

	out_t o = {malloc(GEN_BUF), 0, stdout, 0};
	if (o.buf == NULL) {
		fprintf(stderr, "idnode gen: out of memory\n");
		return IDNODE_EXIT_IO;
	}
	for (uint64_t i = 0; i < count && !o.err; i++) {
		uint64_t k = start + i;
		if (keys_only) {
			puts_(&o, prefix);
			put(&o, "/", 1);
			put_suffix(&o, k);
			put(&o, "\n", 1);
		} else {
			gen_record(&o, prefix, seed, k);
		}
		if (o.len > GEN_BUF - 4096)
			out_flush(&o);
	}
	out_flush(&o);
	if (fflush(stdout) != 0)
		o.err = 1;
	free(o.buf);
	if (o.err) {
		fprintf(stderr, "idnode gen: write error\n");
		return IDNODE_EXIT_IO;
	}
	return IDNODE_EXIT_OK;
usage:
	gen_usage(stderr);
	return IDNODE_EXIT_USAGE;
}
