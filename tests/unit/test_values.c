/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Unit tests for proto/values.c: HS_SITE, HS_ADMIN, HS_VLIST and HS_PUBKEY codecs on
 *        hand-written bytes, round trips, every truncation, limits, the Handle.Net server hash
 *        vectors (handle-protocol.md §1.2), value type classification and filter matching.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "hdl/values.h"

static hdl_slice_t S(const char *s)
{
	hdl_slice_t r = {(const uint8_t *)s, (uint32_t)strlen(s)};
	return r;
}

static void assert_slice_str(hdl_slice_t s, const char *want)
{
	assert_int_equal(s.len, strlen(want));
	if (s.len)
		assert_memory_equal(s.p, want, s.len);
}

/* ---- HS_SITE ------------------------------------------------------------------------------ */

/* A two-server site: IPv4 server with TCP+UDP, IPv6 server (::1 would count as IPv4) with a 3-byte key and HTTP. */
static const uint8_t SITE[] = {
	0x00, 0x01,             /* DataFormatVersion 1 */
	0x02, 0x0a,             /* protocol 2.10 */
	0x00, 0x07,             /* serial 7 */
	0x80,                   /* primary mask: primary */
	0x02,                   /* hash option: by handle */
	0x00, 0x00, 0x00, 0x00, /* hash filter: empty STR */
	0x00, 0x00, 0x00, 0x01, /* 1 attribute */
	0x00, 0x00, 0x00, 0x04, 'd', 'e', 's', 'c',      /* name "desc" */
	0x00, 0x00, 0x00, 0x04, 't', 'e', 's', 't',      /* value "test" */
	0x00, 0x00, 0x00, 0x02, /* 2 servers */
	/* server 1 */
	0x00, 0x00, 0x00, 0x01, /* serverId 1 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 1, /* 127.0.0.1 as 12 zero bytes + 4 */
	0x00, 0x00, 0x00, 0x00, /* public key: empty BYTES */
	0x00, 0x00, 0x00, 0x02, /* 2 interfaces */
	0x03, 0x01, 0x00, 0x00, 0x0a, 0x51, /* admin+query, TCP, 2641 */
	0x02, 0x00, 0x00, 0x00, 0x0a, 0x51, /* query, UDP, 2641 */
	/* server 2 */
	0x00, 0x00, 0x00, 0x02, /* serverId 2 */
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, /* 2001:db8::1 */
	0x00, 0x00, 0x00, 0x03, 0xaa, 0xbb, 0xcc,        /* public key: 3 bytes */
	0x00, 0x00, 0x00, 0x01, /* 1 interface */
	0x03, 0x02, 0x00, 0x00, 0x1f, 0x40, /* admin+query, HTTP, 8000 */
};

static void test_site_decode(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_site_t s;
	hdl_arena_init(&a, NULL, 0, 0);
	assert_int_equal(hdl_site_decode(SITE, sizeof(SITE), &a, &s), HDL_EOK);
	assert_int_equal(s.data_version, 1);
	assert_int_equal(s.proto_major, 2);
	assert_int_equal(s.proto_minor, 10);
	assert_int_equal(s.serial, 7);
	assert_int_equal(s.primary_mask, HDL_SITE_PRIMARY);
	assert_int_equal(s.hash_option, HDL_HASH_BY_HANDLE);
	assert_int_equal(s.hash_filter.len, 0);
	assert_int_equal(s.n_attrs, 1);
	assert_slice_str(s.attrs[0].name, "desc");
	assert_slice_str(s.attrs[0].value, "test");
	assert_int_equal(s.n_servers, 2);
	assert_int_equal(s.servers[0].id, 1);
	assert_true(hdl_server_is_ipv4(&s.servers[0]));
	assert_int_equal(s.servers[0].addr[12], 127);
	assert_int_equal(s.servers[0].addr[15], 1);
	assert_int_equal(s.servers[0].pubkey.len, 0);
	assert_int_equal(s.servers[0].n_ifaces, 2);
	assert_int_equal(s.servers[0].ifaces[0].type, HDL_IF_ADMIN | HDL_IF_QUERY);
	assert_int_equal(s.servers[0].ifaces[0].proto, HDL_IF_TCP);
	assert_int_equal(s.servers[0].ifaces[0].port, 2641);
	assert_int_equal(s.servers[0].ifaces[1].type, HDL_IF_QUERY);
	assert_int_equal(s.servers[0].ifaces[1].proto, HDL_IF_UDP);
	assert_int_equal(s.servers[1].id, 2);
	assert_false(hdl_server_is_ipv4(&s.servers[1]));
	assert_int_equal(s.servers[1].pubkey.len, 3);
	assert_int_equal(s.servers[1].pubkey.p[0], 0xaa);
	assert_int_equal(s.servers[1].ifaces[0].proto, HDL_IF_HTTP);
	assert_int_equal(s.servers[1].ifaces[0].port, 8000);
	hdl_arena_free(&a);
}

/* decode -> encode gives the same bytes; decode again gives the same struct; small buffers fail. */
static void test_site_roundtrip(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_site_t s, s2;
	uint8_t out[sizeof(SITE)], out2[sizeof(SITE)];
	size_t len = 0, len2 = 0;
	hdl_arena_init(&a, NULL, 0, 0);
	assert_int_equal(hdl_site_decode(SITE, sizeof(SITE), &a, &s), HDL_EOK);
	assert_int_equal(hdl_site_encode(&s, out, sizeof(out), &len), HDL_EOK);
	assert_int_equal(len, sizeof(SITE));
	assert_memory_equal(out, SITE, sizeof(SITE));
	assert_int_equal(hdl_site_decode(out, len, &a, &s2), HDL_EOK);
	assert_int_equal(hdl_site_encode(&s2, out2, sizeof(out2), &len2), HDL_EOK);
	assert_memory_equal(out2, SITE, sizeof(SITE));
	assert_int_equal(hdl_site_encode(&s, out, sizeof(out) - 1, &len), HDL_ESPACE);
	hdl_arena_free(&a);
}

/* Every proper prefix of a valid record is HDL_ETRUNC; an extra byte is HDL_ETRAILING. */
static void test_site_truncations(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_site_t s;
	uint8_t buf[sizeof(SITE) + 1];
	hdl_arena_init(&a, NULL, 0, 0);
	for (size_t n = 0; n < sizeof(SITE); n++) {
		uint8_t *copy = malloc(n ? n : 1); /* exact-size copy so ASan sees overreads */
		assert_non_null(copy);
		memcpy(copy, SITE, n);
		assert_int_equal(hdl_site_decode(copy, n, &a, &s), HDL_ETRUNC);
		free(copy);
		hdl_arena_reset(&a);
	}
	memcpy(buf, SITE, sizeof(SITE));
	buf[sizeof(SITE)] = 0;
	assert_int_equal(hdl_site_decode(buf, sizeof(buf), &a, &s), HDL_ETRAILING);
	hdl_arena_free(&a);
}

/* Counts over HDL_MAX_* are HDL_ELIMIT; counts the remaining bytes can't hold are HDL_ETRUNC. */
static void test_site_limits(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_site_t s;
	uint8_t buf[sizeof(SITE)];
	hdl_arena_init(&a, NULL, 0, 0);

	/* attribute count 257 (offset 12) */
	memcpy(buf, SITE, sizeof(SITE));
	buf[12] = 0x00, buf[13] = 0x00, buf[14] = 0x01, buf[15] = 0x01;
	assert_int_equal(hdl_site_decode(buf, sizeof(buf), &a, &s), HDL_ELIMIT);
	/* attribute count 0xFFFFFFFF */
	buf[12] = buf[13] = buf[14] = buf[15] = 0xff;
	assert_int_equal(hdl_site_decode(buf, sizeof(buf), &a, &s), HDL_ELIMIT);
	/* attribute count 200: within the limit, but 200 x 8 bytes are not there */
	buf[12] = buf[13] = buf[14] = 0x00, buf[15] = 200;
	assert_int_equal(hdl_site_decode(buf, sizeof(buf), &a, &s), HDL_ETRUNC);

	/* server count 257 (offset 32) */
	memcpy(buf, SITE, sizeof(SITE));
	buf[34] = 0x01, buf[35] = 0x01;
	assert_int_equal(hdl_site_decode(buf, sizeof(buf), &a, &s), HDL_ELIMIT);
	/* server count 100: not enough bytes */
	buf[34] = 0x00, buf[35] = 100;
	assert_int_equal(hdl_site_decode(buf, sizeof(buf), &a, &s), HDL_ETRUNC);

	/* interface count of server 1 (offset 60) = 65 */
	memcpy(buf, SITE, sizeof(SITE));
	assert_int_equal(buf[63], 2);
	buf[63] = 65;
	assert_int_equal(hdl_site_decode(buf, sizeof(buf), &a, &s), HDL_ELIMIT);
	buf[63] = 60; /* under the limit but overruns */
	assert_int_equal(hdl_site_decode(buf, sizeof(buf), &a, &s), HDL_ETRUNC);

	/* public key length of server 1 (offset 56) over HDL_MAX_ARRAY_LEN, then overrunning */
	memcpy(buf, SITE, sizeof(SITE));
	buf[56] = 0x7f;
	assert_int_equal(hdl_site_decode(buf, sizeof(buf), &a, &s), HDL_ELIMIT);
	buf[56] = 0x00, buf[59] = 0xf0;
	assert_int_equal(hdl_site_decode(buf, sizeof(buf), &a, &s), HDL_ETRUNC);

	/* attribute name length overrunning its parent */
	memcpy(buf, SITE, sizeof(SITE));
	buf[19] = 0xff;
	assert_int_equal(hdl_site_decode(buf, sizeof(buf), &a, &s), HDL_ETRUNC);

	/* encoder refuses counts over the limits */
	assert_int_equal(hdl_site_decode(SITE, sizeof(SITE), &a, &s), HDL_EOK);
	size_t len;
	s.n_attrs = HDL_MAX_ATTRS + 1;
	assert_int_equal(hdl_site_encode(&s, buf, sizeof(buf), &len), HDL_ELIMIT);
	hdl_arena_free(&a);
}

/* An arena with a tiny heap limit makes allocation fail cleanly. */
static void test_site_nomem(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_site_t s;
	hdl_arena_init(&a, NULL, 0, 16);
	assert_int_equal(hdl_site_decode(SITE, sizeof(SITE), &a, &s), HDL_ENOMEM);
	hdl_arena_free(&a);
}

/* ---- server hashing (handle-protocol.md §1.2 vectors) --------------------------------------- */

static void test_site_hash_vectors(void **state)
{
	(void)state;
	static const struct {
		const char *handle;
		uint8_t option;
		uint32_t idx[3]; /* n = 2, 3, 4 */
	} vec[] = {
		{"20.500.12345/abc", HDL_HASH_BY_NA, {1, 2, 1}},
		{"20.500.12345/abc", HDL_HASH_BY_LOCAL, {0, 1, 2}},
		{"20.500.12345/abc", HDL_HASH_BY_HANDLE, {1, 2, 1}},
		{"10.1000/XYZ", HDL_HASH_BY_NA, {1, 1, 1}},
		{"0.NA/20.500.12345", HDL_HASH_BY_NA, {1, 2, 3}},
	};
	hdl_server_t servers[4];
	memset(servers, 0, sizeof(servers));
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		for (uint32_t n = 2; n <= 4; n++) {
			hdl_site_t s;
			memset(&s, 0, sizeof(s));
			s.hash_option = vec[i].option;
			s.n_servers = n;
			s.servers = servers;
			uint32_t got = hdl_site_server_for(&s, S(vec[i].handle));
			if (got != vec[i].idx[n - 2])
				fail_msg("%s option %u n=%u: got %u want %u", vec[i].handle, vec[i].option, n,
				         got, vec[i].idx[n - 2]);
		}
	}
}

/* Case folding, slash-less handles, 0/1 servers. */
static void test_site_hash_rules(void **state)
{
	(void)state;
	hdl_server_t servers[3];
	hdl_site_t s;
	memset(servers, 0, sizeof(servers));
	memset(&s, 0, sizeof(s));
	s.servers = servers;
	s.n_servers = 3;
	s.hash_option = HDL_HASH_BY_HANDLE;
	/* ASCII case does not matter */
	assert_int_equal(hdl_site_server_for(&s, S("20.500.12345/abc")),
	                 hdl_site_server_for(&s, S("20.500.12345/ABC")));
	/* BY_NA without slash hashes "0.NA": same as "0.NA/anything" */
	s.hash_option = HDL_HASH_BY_NA;
	assert_int_equal(hdl_site_server_for(&s, S("noslash")), 2);
	/* BY_LOCAL without slash hashes the whole handle: "abc" -> "ABC" vector (n=3 -> 1) */
	s.hash_option = HDL_HASH_BY_LOCAL;
	assert_int_equal(hdl_site_server_for(&s, S("abc")), 1);
	s.n_servers = 1;
	assert_int_equal(hdl_site_server_for(&s, S("abc")), 0);
	s.n_servers = 0;
	assert_int_equal(hdl_site_server_for(&s, S("abc")), 0);
}

/* ---- HS_ADMIN ------------------------------------------------------------------------------ */

static const uint8_t ADMIN[] = {
	0x0f, 0xff,             /* permissions: all 12 */
	0x00, 0x00, 0x00, 0x0b, /* STR length 11 */
	'0', '.', 'N', 'A', '/', '8', '8', '.', '1', '0', '0',
	0x00, 0x00, 0x01, 0x2c, /* index 300 */
};

static const uint8_t ADMIN_LEGACY[] = {
	0x07, 0xf3,             /* permissions 0x07f3 */
	0x00, 0x00, 0x00, 0x01, 'x', /* handle "x" */
	0x00, 0x00, 0x00, 0xc8, /* index 200 */
	0x00, 0x00,             /* legacy (<= 7.3) trailing zero bytes */
};

static void test_admin(void **state)
{
	(void)state;
	hdl_admin_t ad;
	uint8_t out[64];
	size_t len;
	assert_int_equal(hdl_admin_decode(ADMIN, sizeof(ADMIN), &ad), HDL_EOK);
	assert_int_equal(ad.perms, HDL_ADM_ALL);
	assert_slice_str(ad.handle, "0.NA/88.100");
	assert_int_equal(ad.index, 300);
	assert_false(ad.legacy);
	assert_int_equal(hdl_admin_encode(&ad, out, sizeof(out), &len), HDL_EOK);
	assert_int_equal(len, sizeof(ADMIN));
	assert_memory_equal(out, ADMIN, len);
	assert_int_equal(hdl_admin_encode(&ad, out, sizeof(ADMIN) - 1, &len), HDL_ESPACE);

	assert_int_equal(hdl_admin_decode(ADMIN_LEGACY, sizeof(ADMIN_LEGACY), &ad), HDL_EOK);
	assert_true(ad.legacy);
	assert_int_equal(ad.perms, 0x07f3);
	assert_int_equal(ad.index, 200);
	assert_int_equal(hdl_admin_encode(&ad, out, sizeof(out), &len), HDL_EOK);
	assert_int_equal(len, sizeof(ADMIN_LEGACY));
	assert_memory_equal(out, ADMIN_LEGACY, len);
}

static void test_admin_hostile(void **state)
{
	(void)state;
	hdl_admin_t ad;
	uint8_t buf[64];
	for (size_t n = 0; n < sizeof(ADMIN); n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, ADMIN, n);
		assert_int_equal(hdl_admin_decode(copy, n, &ad), HDL_ETRUNC);
		free(copy);
	}
	/* one trailing byte, two non-zero trailing bytes, three zero bytes: all rejected */
	memcpy(buf, ADMIN, sizeof(ADMIN));
	buf[sizeof(ADMIN)] = 0, buf[sizeof(ADMIN) + 1] = 1, buf[sizeof(ADMIN) + 2] = 0;
	assert_int_equal(hdl_admin_decode(buf, sizeof(ADMIN) + 1, &ad), HDL_ETRAILING);
	assert_int_equal(hdl_admin_decode(buf, sizeof(ADMIN) + 2, &ad), HDL_ETRAILING);
	buf[sizeof(ADMIN) + 1] = 0;
	assert_int_equal(hdl_admin_decode(buf, sizeof(ADMIN) + 3, &ad), HDL_ETRAILING);
	/* handle length over HDL_MAX_HANDLE_LEN */
	memcpy(buf, ADMIN, sizeof(ADMIN));
	buf[4] = 0x10;
	assert_int_equal(hdl_admin_decode(buf, sizeof(ADMIN), &ad), HDL_ELIMIT);
	/* handle length overrunning the data */
	buf[4] = 0x00, buf[5] = 0x20;
	assert_int_equal(hdl_admin_decode(buf, sizeof(ADMIN), &ad), HDL_ETRUNC);
}

/* ---- HS_VLIST ------------------------------------------------------------------------------ */

static const uint8_t VLIST[] = {
	0x00, 0x00, 0x00, 0x02,                   /* 2 references */
	0x00, 0x00, 0x00, 0x03, 'a', '/', 'b',    /* handle "a/b" */
	0x00, 0x00, 0x01, 0x2c,                   /* index 300 */
	0x00, 0x00, 0x00, 0x00,                   /* handle "" */
	0xff, 0xff, 0xff, 0xff,                   /* index 0xffffffff */
};

static void test_vlist(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_ref_t *r;
	uint32_t n;
	uint8_t out[64];
	size_t len;
	hdl_arena_init(&a, NULL, 0, 0);
	assert_int_equal(hdl_vlist_decode(VLIST, sizeof(VLIST), &a, &r, &n), HDL_EOK);
	assert_int_equal(n, 2);
	assert_slice_str(r[0].handle, "a/b");
	assert_int_equal(r[0].index, 300);
	assert_int_equal(r[1].handle.len, 0);
	assert_int_equal(r[1].index, 0xffffffffu);
	assert_int_equal(hdl_vlist_encode(r, n, out, sizeof(out), &len), HDL_EOK);
	assert_int_equal(len, sizeof(VLIST));
	assert_memory_equal(out, VLIST, len);
	assert_int_equal(hdl_vlist_encode(r, n, out, len - 1, &len), HDL_ESPACE);
	/* empty list */
	static const uint8_t empty[] = {0, 0, 0, 0};
	assert_int_equal(hdl_vlist_decode(empty, 4, &a, &r, &n), HDL_EOK);
	assert_int_equal(n, 0);
	assert_null(r);
	hdl_arena_free(&a);
}

static void test_vlist_hostile(void **state)
{
	(void)state;
	hdl_arena_t a;
	hdl_ref_t *r;
	uint32_t n;
	uint8_t buf[sizeof(VLIST) + 1];
	hdl_arena_init(&a, NULL, 0, 0);
	for (size_t k = 0; k < sizeof(VLIST); k++) {
		uint8_t *copy = malloc(k ? k : 1);
		memcpy(copy, VLIST, k);
		assert_int_equal(hdl_vlist_decode(copy, k, &a, &r, &n), HDL_ETRUNC);
		free(copy);
	}
	memcpy(buf, VLIST, sizeof(VLIST));
	buf[sizeof(VLIST)] = 0;
	assert_int_equal(hdl_vlist_decode(buf, sizeof(buf), &a, &r, &n), HDL_ETRAILING);
	buf[2] = 0x01, buf[3] = 0x01; /* 257 references */
	assert_int_equal(hdl_vlist_decode(buf, sizeof(VLIST), &a, &r, &n), HDL_ELIMIT);
	buf[2] = 0x00, buf[3] = 0x05; /* 5 references, bytes for 2 */
	assert_int_equal(hdl_vlist_decode(buf, sizeof(VLIST), &a, &r, &n), HDL_ETRUNC);
	hdl_ref_t many[HDL_MAX_REFS + 1];
	memset(many, 0, sizeof(many));
	size_t len;
	assert_int_equal(hdl_vlist_encode(many, HDL_MAX_REFS + 1, buf, sizeof(buf), &len),
	                 HDL_ELIMIT);
	hdl_arena_free(&a);
}

/* ---- HS_PUBKEY ----------------------------------------------------------------------------- */

static uint8_t *read_data(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/data/%s", HDL_SOURCE_DIR, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	uint8_t *buf = malloc(65536);
	assert_non_null(buf);
	*len = fread(buf, 1, 65536, f);
	fclose(f);
	return buf;
}

/* The real HS_PUBKEY of the captures: RSA, e = 65537, 2048-bit n with Java's leading 0x00,
 * then the 4 zero bytes Handle.Net writes; re-encoding gives the file back byte for byte. */
static void test_pubkey_rsa_capture(void **state)
{
	(void)state;
	size_t len;
	uint8_t *data = read_data("admpub.bin", &len);
	hdl_pubkey_t k;
	assert_int_equal(len, 289);
	assert_int_equal(hdl_pubkey_decode(data, len, &k), HDL_EOK);
	assert_int_equal(k.kind, HDL_KEY_RSA);
	assert_slice_str(k.key_type, "RSA_PUB_KEY");
	assert_int_equal(k.flags, 0);
	assert_int_equal(k.e.len, 3);
	assert_memory_equal(k.e.p, "\x01\x00\x01", 3);
	assert_int_equal(k.n.len, 257);
	assert_int_equal(k.n.p[0], 0x00);
	assert_true(k.n.p[1] & 0x80);
	uint8_t out[400];
	size_t olen;
	assert_int_equal(hdl_pubkey_encode(&k, out, sizeof(out), &olen), HDL_EOK);
	assert_int_equal(olen, len);
	assert_memory_equal(out, data, len);
	/* every truncation that cuts into e or n is HDL_ETRUNC (the trailing 4 bytes are optional) */
	for (size_t n = 0; n < 285; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, data, n);
		int rc = hdl_pubkey_decode(copy, n, &k);
		if (rc != HDL_ETRUNC)
			fail_msg("truncation %zu: %s", n, hdl_errname(rc));
		free(copy);
	}
	assert_int_equal(hdl_pubkey_decode(data, 285, &k), HDL_EOK);
	/* modulus length over the limit */
	data[0x18] = 0x7f;
	assert_int_equal(hdl_pubkey_decode(data, len, &k), HDL_ELIMIT);
	free(data);
}

static const uint8_t DSA_KEY[] = {
	0x00, 0x00, 0x00, 0x0b, 'D', 'S', 'A', '_', 'P', 'U', 'B', '_', 'K', 'E', 'Y',
	0x00, 0x00,                   /* flags */
	0x00, 0x00, 0x00, 0x01, 0x11, /* q */
	0x00, 0x00, 0x00, 0x02, 0x00, 0x92, /* p (Java sign byte) */
	0x00, 0x00, 0x00, 0x01, 0x33, /* g */
	0x00, 0x00, 0x00, 0x01, 0x44, /* y */
};

static const uint8_t DH_KEY[] = {
	0x00, 0x00, 0x00, 0x0a, 'D', 'H', '_', 'P', 'U', 'B', '_', 'K', 'E', 'Y',
	0x00, 0x00,                   /* flags */
	0x00, 0x00, 0x00, 0x01, 0x05, /* y */
	0x00, 0x00, 0x00, 0x01, 0x17, /* p */
	0x00, 0x00, 0x00, 0x01, 0x02, /* g */
};

static const uint8_t SM2_KEY[] = {
	0x00, 0x00, 0x00, 0x0b, 'S', 'M', '2', '_', 'P', 'U', 'B', '_', 'K', 'E', 'Y',
	0x00, 0x00,                        /* flags */
	0x00, 0x00, 0x00, 0x03, 0x30, 0x59, 0x30, /* BYTES DER (first bytes of a SPKI) */
};

static const uint8_t UNK_KEY[] = {
	0x00, 0x00, 0x00, 0x03, 'X', 'Y', 'Z', /* key type "XYZ" */
	0x00, 0x07,                            /* flags */
	0xde, 0xad,                            /* opaque rest */
};

static void roundtrip_key(const uint8_t *p, size_t len, hdl_pubkey_t *k)
{
	uint8_t out[256];
	size_t olen;
	assert_int_equal(hdl_pubkey_decode(p, len, k), HDL_EOK);
	assert_int_equal(hdl_pubkey_encode(k, out, sizeof(out), &olen), HDL_EOK);
	assert_int_equal(olen, len);
	assert_memory_equal(out, p, len);
	assert_int_equal(hdl_pubkey_encode(k, out, len - 1, &olen), HDL_ESPACE);
}

static void test_pubkey_kinds(void **state)
{
	(void)state;
	hdl_pubkey_t k;
	roundtrip_key(DSA_KEY, sizeof(DSA_KEY), &k);
	assert_int_equal(k.kind, HDL_KEY_DSA);
	assert_int_equal(k.q.p[0], 0x11);
	assert_int_equal(k.p.len, 2);
	assert_int_equal(k.g.p[0], 0x33);
	assert_int_equal(k.y.p[0], 0x44);
	roundtrip_key(DH_KEY, sizeof(DH_KEY), &k);
	assert_int_equal(k.kind, HDL_KEY_DH);
	assert_int_equal(k.y.p[0], 0x05);
	assert_int_equal(k.p.p[0], 0x17);
	assert_int_equal(k.g.p[0], 0x02);
	roundtrip_key(SM2_KEY, sizeof(SM2_KEY), &k);
	assert_int_equal(k.kind, HDL_KEY_SM2);
	assert_int_equal(k.pem.len, 3);
	roundtrip_key(UNK_KEY, sizeof(UNK_KEY), &k);
	assert_int_equal(k.kind, HDL_KEY_UNKNOWN);
	assert_slice_str(k.key_type, "XYZ");
	assert_int_equal(k.flags, 7);
	assert_int_equal(k.pem.len, 2);

	/* IDIS: PEM text stored directly */
	const char *pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";
	roundtrip_key((const uint8_t *)pem, strlen(pem), &k);
	assert_int_equal(k.kind, HDL_KEY_PEM);
	assert_int_equal(k.pem.len, strlen(pem));
	assert_int_equal(k.key_type.len, 0);

	/* truncations of each fixed encoding */
	const struct {
		const uint8_t *p;
		size_t len;
	} keys[] = {{DSA_KEY, sizeof(DSA_KEY)}, {DH_KEY, sizeof(DH_KEY)}, {SM2_KEY, sizeof(SM2_KEY)}};
	for (size_t i = 0; i < 3; i++) {
		for (size_t n = 0; n < keys[i].len; n++) {
			uint8_t *copy = malloc(n ? n : 1);
			memcpy(copy, keys[i].p, n);
			assert_int_equal(hdl_pubkey_decode(copy, n, &k), HDL_ETRUNC);
			free(copy);
		}
	}
	/* key type length over HDL_MAX_TYPE_LEN */
	uint8_t bad[sizeof(DSA_KEY)];
	memcpy(bad, DSA_KEY, sizeof(bad));
	bad[2] = 0x10;
	assert_int_equal(hdl_pubkey_decode(bad, sizeof(bad), &k), HDL_ELIMIT);
}

/* ---- handle data, types -------------------------------------------------------------------- */

static void test_handle_data(void **state)
{
	(void)state;
	assert_int_equal(hdl_handle_data_check((const uint8_t *)"0.NA/88.100", 11), HDL_EOK);
	assert_int_equal(hdl_handle_data_check((const uint8_t *)"88.100/\xe6\xa0\x87", 10), HDL_EOK);
	assert_int_equal(hdl_handle_data_check((const uint8_t *)"", 0), HDL_ENAME);
	assert_int_equal(hdl_handle_data_check((const uint8_t *)"a\nb", 3), HDL_ENAME);
	assert_int_equal(hdl_handle_data_check((const uint8_t *)"a/\xc0\xaf", 4), HDL_EUTF8);
	assert_int_equal(hdl_handle_data_check((const uint8_t *)"a/\xff", 3), HDL_EUTF8);
}

static void test_vtype(void **state)
{
	(void)state;
	assert_int_equal(hdl_vtype_of(S("HS_SITE")), HDL_VT_SITE);
	assert_int_equal(hdl_vtype_of(S("hs_site.6")), HDL_VT_SITE);
	assert_int_equal(hdl_vtype_of(S("HS_SITE.PREFIX")), HDL_VT_SITE);
	assert_int_equal(hdl_vtype_of(S("HS_NA_DELEGATE")), HDL_VT_SITE);
	assert_int_equal(hdl_vtype_of(S("HS_ADMIN")), HDL_VT_ADMIN);
	assert_int_equal(hdl_vtype_of(S("Hs_Vlist")), HDL_VT_VLIST);
	assert_int_equal(hdl_vtype_of(S("HS_PUBKEY")), HDL_VT_PUBKEY);
	assert_int_equal(hdl_vtype_of(S("HS_SECKEY")), HDL_VT_SECKEY);
	assert_int_equal(hdl_vtype_of(S("HS_SERV")), HDL_VT_SERV);
	assert_int_equal(hdl_vtype_of(S("HS_SERV.PREFIX")), HDL_VT_SERV);
	assert_int_equal(hdl_vtype_of(S("HS_ALIAS")), HDL_VT_ALIAS);
	assert_int_equal(hdl_vtype_of(S("URL")), HDL_VT_OTHER);
	assert_int_equal(hdl_vtype_of(S("HS_SITEX")), HDL_VT_OTHER);
	assert_int_equal(hdl_vtype_of(S("HS_ADMI")), HDL_VT_OTHER);
	assert_int_equal(hdl_vtype_of(S("")), HDL_VT_OTHER);
}

static void test_type_matches(void **state)
{
	(void)state;
	assert_true(hdl_type_matches(S("URL"), S("URL")));
	assert_true(hdl_type_matches(S("url"), S("URL")));
	assert_false(hdl_type_matches(S("URL.meta"), S("URL")));
	assert_true(hdl_type_matches(S("URL"), S("URL.")));
	assert_true(hdl_type_matches(S("url.Meta"), S("URL.")));
	assert_true(hdl_type_matches(S("URL.a.b"), S("url.")));
	assert_false(hdl_type_matches(S("URLX"), S("URL.")));
	assert_false(hdl_type_matches(S("UR"), S("URL.")));
	assert_false(hdl_type_matches(S("EMAIL"), S("URL")));
	assert_false(hdl_type_matches(S("URL"), S("")));
	assert_true(hdl_type_matches(S(""), S("")));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_site_decode),
		cmocka_unit_test(test_site_roundtrip),
		cmocka_unit_test(test_site_truncations),
		cmocka_unit_test(test_site_limits),
		cmocka_unit_test(test_site_nomem),
		cmocka_unit_test(test_site_hash_vectors),
		cmocka_unit_test(test_site_hash_rules),
		cmocka_unit_test(test_admin),
		cmocka_unit_test(test_admin_hostile),
		cmocka_unit_test(test_vlist),
		cmocka_unit_test(test_vlist_hostile),
		cmocka_unit_test(test_pubkey_rsa_capture),
		cmocka_unit_test(test_pubkey_kinds),
		cmocka_unit_test(test_handle_data),
		cmocka_unit_test(test_vtype),
		cmocka_unit_test(test_type_matches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
