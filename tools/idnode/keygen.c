/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `idnode keygen`: an RSA or DSA key pair for HS_PUBKEY authentication. Writes the private
 *        key (PEM PKCS#8, or the CNRI key file format; encrypted when a passphrase is given), the
 *        HS_PUBKEY value data (Handle binary form), and prints the REST JSON value.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/dsa.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>

#include "hdl/auth.h"
#include "hdl/client.h"
#include "hdl/error.h"
#include "hdl/msg.h"
#include "proto/json.h"
#include "tools/idnode/cmds.h"

#define KEYGEN_PASS_ENV "IDNODE_PASSPHRASE"
#define KEYGEN_PASS_MAX 1024u

static void keygen_usage(FILE *f, bool full)
{
	fputs("usage: idnode keygen [--rsa BITS | --dsa] [--out-priv FILE] [--out-pub FILE]\n"
	      "                     [--cnri] [--passphrase-file FILE] [--index N] [--force]\n",
	      f);
	if (!full) {
		fputs("Run `idnode keygen --help` for the whole description.\n", f);
		return;
	}
	fputs(
	    "\nNAME\n  idnode keygen - make a key pair for HS_PUBKEY authentication\n"
	    "\nDESCRIPTION\n"
	    "Generates an RSA (default, 2048 bits) or DSA (2048-bit p, 256-bit q) key pair. The\n"
	    "private key goes to --out-priv (default admpriv.pem), created with mode 0600; an\n"
	    "existing file is left alone unless --force. The HS_PUBKEY value data in the Handle\n"
	    "binary form (RSA_PUB_KEY / DSA_PUB_KEY, what hdllib stores) goes to --out-pub "
	    "(default\n"
	    "admpub.bin), and the same value in Handle.Net REST JSON form (index --index, default\n"
	    "300) is printed on stdout, ready for `idnode create ... '<json>'`. Use the private "
	    "key\n"
	    "with `idnode create|delete|... --privkey FILE`.\n"
	    "\nOPTIONS\n"
	    "  --rsa BITS               RSA modulus size, 2048 to 16384 (default 2048)\n"
	    "  --dsa                    DSA instead of RSA (parameter generation takes a while)\n"
	    "  --out-priv FILE          private key file (default admpriv.pem)\n"
	    "  --out-pub FILE           HS_PUBKEY value data file (default admpub.bin)\n"
	    "  --cnri                   write the private key in the CNRI key file format that\n"
	    "                           hdllib reads (admpriv.bin) instead of PEM\n"
	    "  --passphrase-file FILE   encrypt the private key with the first line of FILE as "
	    "the\n"
	    "                           passphrase (PEM: PKCS#8 with AES-256-CBC; CNRI: "
	    "PBKDF2-HMAC-\n"
	    "                           SHA1 and AES-128-CBC as hdllib). Without it the "
	    "environment\n"
	    "                           variable " KEYGEN_PASS_ENV " is used; without either the\n"
	    "                           key is written unencrypted.\n"
	    "  --index N                index in the printed JSON value (default 300)\n"
	    "  --force                  overwrite existing output files\n"
	    "  -h, --help               this text\n"
	    "\nEXIT STATUS\n"
	    "  0 success, 2 usage, 3 a file could not be written or read\n"
	    "\nEXAMPLES\n"
	    "  idnode keygen --out-priv admin.pem --out-pub admin-pub.bin > admin-pub.json\n"
	    "  idnode keygen --dsa --cnri --passphrase-file pass.txt --out-priv admpriv.bin\n",
	    f);
}

/** \brief Write \p n bytes to a new file \p path (0600). \retval 0 ok, -1 (message printed) */
static int write_new(const char *path, const void *p, size_t n, bool force)
{
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL);
	int fd = open(path, flags, 0600);
	const uint8_t *b = p;

	if (fd < 0) {
		fprintf(stderr, "idnode keygen: %s: %s%s\n", path, strerror(errno),
		        errno == EEXIST ? " (--force to overwrite)" : "");
		return -1;
	}
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "idnode keygen: %s: %s\n", path, strerror(errno));
			close(fd);
			return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	if (close(fd) != 0) {
		fprintf(stderr, "idnode keygen: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/** \brief The passphrase: first line of \p file, or $IDNODE_PASSPHRASE, or none. */
static int get_pass(const char *file, char *out, size_t cap)
{
	const char *env = getenv(KEYGEN_PASS_ENV);

	out[0] = '\0';
	if (file) {
		FILE *f = fopen(file, "r");
		if (!f || !fgets(out, (int)cap, f)) {
			fprintf(stderr, "idnode keygen: %s: %s\n", file,
			        f ? "empty" : strerror(errno));
			if (f)
				fclose(f);
			return -1;
		}
		fclose(f);
		out[strcspn(out, "\r\n")] = '\0';
	} else if (env) {
		snprintf(out, cap, "%s", env);
	}
	return 0;
}

/** \brief PEM PKCS#8 of \p k, AES-256-CBC encrypted when \p pass is not empty. */
static int pem_private(EVP_PKEY *k, const char *pass, unsigned char **out, size_t *outlen)
{
	OSSL_ENCODER_CTX *ec =
	    OSSL_ENCODER_CTX_new_for_pkey(k, EVP_PKEY_KEYPAIR, "PEM", "PrivateKeyInfo", NULL);
	int ok = ec != NULL;

	*out = NULL;
	if (ok && pass[0])
		ok = OSSL_ENCODER_CTX_set_cipher(ec, "AES-256-CBC", NULL) == 1 &&
		     OSSL_ENCODER_CTX_set_passphrase(ec, (const unsigned char *)pass,
		                                     strlen(pass)) == 1;
	ok = ok && OSSL_ENCODER_to_data(ec, out, outlen) == 1;
	OSSL_ENCODER_CTX_free(ec);
	return ok ? 0 : -1;
}

int cmd_keygen(int argc, char **argv)
{
	enum { O_RSA = 256, O_DSA, O_PRIV, O_PUB, O_CNRI, O_PASSFILE, O_INDEX, O_FORCE };
	static const struct option longopts[] = {
	    {"rsa", required_argument, NULL, O_RSA},
	    {"dsa", no_argument, NULL, O_DSA},
	    {"out-priv", required_argument, NULL, O_PRIV},
	    {"out-pub", required_argument, NULL, O_PUB},
	    {"cnri", no_argument, NULL, O_CNRI},
	    {"passphrase-file", required_argument, NULL, O_PASSFILE},
	    {"index", required_argument, NULL, O_INDEX},
	    {"force", no_argument, NULL, O_FORCE},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *priv_path = "admpriv.pem", *pub_path = "admpub.bin", *pass_file = NULL;
	uint64_t bits = 2048, index = 300;
	bool dsa = false, rsa_set = false, cnri = false, force = false;
	char pass[KEYGEN_PASS_MAX];
	unsigned char *priv = NULL;
	size_t priv_len = 0, pub_len = 0;
	uint8_t pub[4096];
	EVP_PKEY *k = NULL;
	json_t *j = NULL;
	hdl_value_t v;
	int opt, ret = IDNODE_EXIT_USAGE;

	pass[0] = '\0';
	optind = 1;
	opterr = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case O_RSA:
			if (!idnode_parse_u64(optarg, false, &bits) || bits < 2048 ||
			    bits > HDL_KEY_MAX_BITS) {
				fprintf(stderr, "idnode keygen: --rsa takes 2048 to %u\n",
				        HDL_KEY_MAX_BITS);
				goto out;
			}
			rsa_set = true;
			break;
		case O_DSA: dsa = true; break;
		case O_PRIV: priv_path = optarg; break;
		case O_PUB: pub_path = optarg; break;
		case O_CNRI: cnri = true; break;
		case O_PASSFILE: pass_file = optarg; break;
		case O_INDEX:
			if (!idnode_parse_u64(optarg, false, &index) || index == 0 ||
			    index > UINT32_MAX) {
				fprintf(stderr, "idnode keygen: bad --index '%s'\n", optarg);
				goto out;
			}
			break;
		case O_FORCE: force = true; break;
		case 'h':
			keygen_usage(stdout, true);
			ret = IDNODE_EXIT_OK;
			goto out;
		default: keygen_usage(stderr, false); goto out;
		}
	}
	if (optind != argc || (dsa && rsa_set)) {
		keygen_usage(stderr, false);
		goto out;
	}
	ret = IDNODE_EXIT_IO;
	if (get_pass(pass_file, pass, sizeof(pass)) != 0)
		goto out;
	if (dsa) {
		EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "DSA", NULL);
		EVP_PKEY *params = NULL;
		if (pc && EVP_PKEY_paramgen_init(pc) == 1 &&
		    EVP_PKEY_CTX_set_dsa_paramgen_bits(pc, 2048) == 1 &&
		    EVP_PKEY_CTX_set_dsa_paramgen_q_bits(pc, 256) == 1 &&
		    EVP_PKEY_paramgen(pc, &params) == 1) {
			EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL);
			if (!kc || EVP_PKEY_keygen_init(kc) != 1 || EVP_PKEY_keygen(kc, &k) != 1)
				k = NULL;
			EVP_PKEY_CTX_free(kc);
		}
		EVP_PKEY_free(params);
		EVP_PKEY_CTX_free(pc);
	} else {
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	}
	if (!k) {
		fprintf(stderr, "idnode keygen: key generation failed\n");
		goto out;
	}
	if (cnri) {
		hdl_slice_t pw = hdl_slice_str(pass);
		if (hdl_privkey_encode_cnri(k, pw, NULL, 0, &priv_len) != HDL_EOK ||
		    !(priv = OPENSSL_malloc(priv_len)) ||
		    hdl_privkey_encode_cnri(k, pw, priv, priv_len, &priv_len) != HDL_EOK) {
			fprintf(stderr, "idnode keygen: cannot encode the private key\n");
			goto out;
		}
	} else if (pem_private(k, pass, &priv, &priv_len) != 0) {
		fprintf(stderr, "idnode keygen: cannot encode the private key\n");
		goto out;
	}
	if (hdl_pubkey_value_from_pkey(k, pub, sizeof(pub), &pub_len) != HDL_EOK) {
		fprintf(stderr, "idnode keygen: cannot encode the public key\n");
		goto out;
	}
	if (write_new(priv_path, priv, priv_len, force) != 0 ||
	    write_new(pub_path, pub, pub_len, force) != 0)
		goto out;
	memset(&v, 0, sizeof(v));
	v.index = (uint32_t)index;
	v.ttl = 86400;
	v.perms = HDL_PERM_DEFAULT;
	v.type = hdl_slice_str("HS_PUBKEY");
	v.data.p = pub;
	v.data.len = (uint32_t)pub_len;
	j = hdl_json_from_value(&v);
	if (!j || json_dumpf(j, stdout, JSON_COMPACT) != 0 || fputc('\n', stdout) == EOF ||
	    fflush(stdout) != 0) {
		fprintf(stderr, "idnode keygen: cannot print the JSON value\n");
		goto out;
	}
	ret = IDNODE_EXIT_OK;
out:
	json_decref(j);
	if (priv)
		OPENSSL_clear_free(priv, priv_len);
	OPENSSL_cleanse(pass, sizeof(pass));
	EVP_PKEY_free(k);
	return ret;
}
