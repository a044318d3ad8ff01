/*
 * A DTLS 1.2 PSK client on mbedTLS that sends one CoAP request and prints
 * the answer, as the LwM2M clients of constrained devices (Zephyr, nRF
 * Connect, Anjay) do: mbedTLS's default cipher suite list, server_name set
 * to the server's IP literal, and the library's other default extensions.
 *
 * Usage:
 *   client -version
 *   client [-cid] [-local PORT] [-noclose] [-debug N] [-timeout MS]
 *          HOST PORT IDENTITY KEY PATH [QUERY...]
 *
 * PATH "rd" sends a Register (POST /rd?QUERY... with a link-format body),
 * "bs" a Bootstrap-Request (POST /bs?QUERY..., no body). -cid asks for a
 * Connection ID (RFC 9146 draft as mbedTLS 2.28 implements it) when the
 * library has it compiled in. -timeout is the longest wait between the
 * handshake's retransmissions (from 1 s, doubling), and bounds the wait for
 * the CoAP answer. -local binds that local UDP port, as a device with a
 * fixed port does; -noclose exits without close_notify, as a device that
 * reboots or drops its session does.
 *
 * Prints "code=C.DD" and one "location=SEG" line per Location-Path option,
 * and exits 0 when an answer came; exits non-zero with a message on stderr
 * when the handshake or the exchange failed.
 *
 * -version prints "mbedtls VERSION cid=0|1" (1 when the library is built
 * with MBEDTLS_SSL_DTLS_CONNECTION_ID) and the extension type it uses.
 */
#define _POSIX_C_SOURCE 200112L
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/config.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/debug.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/timing.h>
#include <mbedtls/version.h>

static void fail(const char *what, int ret)
{
	char buf[200];
	mbedtls_strerror(ret, buf, sizeof buf);
	fprintf(stderr, "%s: -0x%04x %s\n", what, (unsigned)-ret, buf);
	exit(1);
}

static void debug(void *ctx, int level, const char *file, int line, const char *msg)
{
	(void)ctx;
	(void)level;
	fprintf(stderr, "%s:%04d: %s", file, line, msg);
}

/* option appends one CoAP option after the option number *last. */
static size_t option(unsigned char *p, unsigned *last, unsigned num, const void *val, size_t len)
{
	size_t n = 0;
	unsigned delta = num - *last;
	unsigned char *hdr = p + n++;
	unsigned dn, ln;

	*last = num;
	if (delta < 13) {
		dn = delta;
	} else if (delta < 269) {
		dn = 13;
		p[n++] = (unsigned char)(delta - 13);
	} else {
		dn = 14;
		p[n++] = (unsigned char)((delta - 269) >> 8);
		p[n++] = (unsigned char)(delta - 269);
	}
	if (len < 13) {
		ln = (unsigned)len;
	} else if (len < 269) {
		ln = 13;
		p[n++] = (unsigned char)(len - 13);
	} else {
		ln = 14;
		p[n++] = (unsigned char)((len - 269) >> 8);
		p[n++] = (unsigned char)(len - 269);
	}
	*hdr = (unsigned char)(dn << 4 | ln);
	memcpy(p + n, val, len);
	return n + len;
}

/* bound_connect is mbedtls_net_connect from a given local port. */
static void bound_connect(mbedtls_net_context *net, const char *host, const char *port, int local)
{
	struct addrinfo hints, *ai;
	struct sockaddr_storage la;
	int fd, one = 1;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_protocol = IPPROTO_UDP;
	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		fprintf(stderr, "getaddrinfo %s failed\n", host);
		exit(1);
	}
	fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
	if (fd < 0) {
		perror("socket");
		exit(1);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&la, 0, sizeof la);
	if (ai->ai_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&la;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((unsigned short)local);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&la;
		a->sin_family = AF_INET;
		a->sin_port = htons((unsigned short)local);
	}
	if (bind(fd, (struct sockaddr *)&la, ai->ai_addrlen) != 0) {
		perror("bind");
		exit(1);
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		perror("connect");
		exit(1);
	}
	freeaddrinfo(ai);
	net->fd = fd;
}

int main(int argc, char **argv)
{
	int cid = 0, level = 0, local = 0, noclose = 0, ret, i;
	unsigned max_timeout = 4000;
	const char *host, *port, *identity, *key, *path;
	static const char links[] = "</>;rt=\"oma.lwm2m\";ct=11542,</1/0>,</3/0>,</3303/0>";
	static const char pers[] = "lwm2m-agent interop";
	unsigned char req[1024], res[1500];
	size_t n = 0;
	unsigned last = 0;

	mbedtls_net_context net;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_context ssl;
	mbedtls_ssl_config conf;
	mbedtls_timing_delay_context timer;

	if (argc == 2 && strcmp(argv[1], "-version") == 0) {
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
		printf("mbedtls %s cid=1 ext=%d\n", MBEDTLS_VERSION_STRING, MBEDTLS_TLS_EXT_CID);
#else
		printf("mbedtls %s cid=0\n", MBEDTLS_VERSION_STRING);
#endif
		return 0;
	}
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-cid") == 0) {
			cid = 1;
		} else if (strcmp(argv[i], "-local") == 0 && i + 1 < argc) {
			local = atoi(argv[++i]);
		} else if (strcmp(argv[i], "-noclose") == 0) {
			noclose = 1;
		} else if (strcmp(argv[i], "-debug") == 0 && i + 1 < argc) {
			level = atoi(argv[++i]);
		} else if (strcmp(argv[i], "-timeout") == 0 && i + 1 < argc) {
			max_timeout = (unsigned)atoi(argv[++i]);
		} else {
			fprintf(stderr, "unknown flag %s\n", argv[i]);
			return 2;
		}
	}
	if (argc - i < 5) {
		fprintf(stderr, "usage: %s [-cid] [-local PORT] [-noclose] [-debug N] [-timeout MS] HOST PORT IDENTITY KEY PATH [QUERY...]\n",
			argv[0]);
		return 2;
	}
	host = argv[i];
	port = argv[i + 1];
	identity = argv[i + 2];
	key = argv[i + 3];
	path = argv[i + 4];
	i += 5;
#if !defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
	if (cid) {
		fprintf(stderr, "connection id not compiled into this mbedtls\n");
		return 3;
	}
#endif

	mbedtls_net_init(&net);
	mbedtls_ssl_init(&ssl);
	mbedtls_ssl_config_init(&conf);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_entropy_init(&entropy);
	mbedtls_debug_set_threshold(level);

	ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, (const unsigned char *)pers, sizeof pers - 1);
	if (ret != 0)
		fail("ctr_drbg_seed", ret);
	if (local != 0) {
		bound_connect(&net, host, port, local);
	} else {
		ret = mbedtls_net_connect(&net, host, port, MBEDTLS_NET_PROTO_UDP);
		if (ret != 0)
			fail("net_connect", ret);
	}
	ret = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_DATAGRAM,
					  MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret != 0)
		fail("ssl_config_defaults", ret);
	mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
	mbedtls_ssl_conf_dbg(&conf, debug, NULL);
	/* The cipher suite list is left at the library default: the many
	 * suites a device's ClientHello carries. */
	ret = mbedtls_ssl_conf_psk(&conf, (const unsigned char *)key, strlen(key), (const unsigned char *)identity,
				   strlen(identity));
	if (ret != 0)
		fail("ssl_conf_psk", ret);
	mbedtls_ssl_conf_handshake_timeout(&conf, 1000, max_timeout);
	mbedtls_ssl_conf_read_timeout(&conf, max_timeout);
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
	ret = mbedtls_ssl_conf_cid(&conf, 4, MBEDTLS_SSL_UNEXPECTED_CID_IGNORE);
	if (ret != 0)
		fail("ssl_conf_cid", ret);
#endif
	ret = mbedtls_ssl_setup(&ssl, &conf);
	if (ret != 0)
		fail("ssl_setup", ret);
	/* As LwM2M clients do with the host of the server URI, an IP literal
	 * here: it goes out as server_name. */
	ret = mbedtls_ssl_set_hostname(&ssl, host);
	if (ret != 0)
		fail("ssl_set_hostname", ret);
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
	if (cid) {
		static const unsigned char own[4] = {0xc1, 0xd0, 0x00, 0x01};
		ret = mbedtls_ssl_set_cid(&ssl, MBEDTLS_SSL_CID_ENABLED, own, sizeof own);
		if (ret != 0)
			fail("ssl_set_cid", ret);
	}
#endif
	mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, mbedtls_net_recv, mbedtls_net_recv_timeout);
	mbedtls_ssl_set_timer_cb(&ssl, &timer, mbedtls_timing_set_delay, mbedtls_timing_get_delay);

	do
		ret = mbedtls_ssl_handshake(&ssl);
	while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
	if (ret != 0)
		fail("ssl_handshake", ret);
	fprintf(stderr, "handshake done: %s\n", mbedtls_ssl_get_ciphersuite(&ssl));
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
	{
		int enabled = 0;
		unsigned char peer[MBEDTLS_SSL_CID_OUT_LEN_MAX];
		size_t peer_len = 0;
		if (mbedtls_ssl_get_peer_cid(&ssl, &enabled, peer, &peer_len) == 0)
			printf("cid=%s len=%zu\n", enabled ? "on" : "off", peer_len);
	}
#endif

	/* CoAP: version 1, CON, POST, message ID 0x1234, token 4 bytes. */
	req[n++] = 0x44;
	req[n++] = 0x02;
	req[n++] = 0x12;
	req[n++] = 0x34;
	memcpy(req + n, "\x0a\x0b\x0c\x0d", 4);
	n += 4;
	n += option(req + n, &last, 11, path, strlen(path)); /* Uri-Path */
	if (strcmp(path, "rd") == 0) {
		static const unsigned char linkformat = 40;
		n += option(req + n, &last, 12, &linkformat, 1); /* Content-Format */
	}
	for (; i < argc; i++) {
		if (n + strlen(argv[i]) + 8 > sizeof req - sizeof links) {
			fprintf(stderr, "request too long\n");
			return 2;
		}
		n += option(req + n, &last, 15, argv[i], strlen(argv[i])); /* Uri-Query */
	}
	if (strcmp(path, "rd") == 0) {
		req[n++] = 0xff;
		memcpy(req + n, links, sizeof links - 1);
		n += sizeof links - 1;
	}
	do
		ret = mbedtls_ssl_write(&ssl, req, n);
	while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
	if (ret < 0)
		fail("ssl_write", ret);

	for (;;) {
		size_t off, got;
		unsigned num = 0, tkl, code;

		do
			ret = mbedtls_ssl_read(&ssl, res, sizeof res);
		while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
		if (ret <= 0)
			fail("ssl_read", ret == 0 ? MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY : ret);
		got = (size_t)ret;
		if (got < 4 || res[0] >> 6 != 1) {
			fprintf(stderr, "not a coap message (%zu bytes)\n", got);
			return 1;
		}
		tkl = res[0] & 0x0f;
		code = res[1];
		if ((res[0] >> 4 & 3) == 2 && code == 0)
			continue; /* empty ACK: a separate response follows */
		if ((res[0] >> 4 & 3) == 0) {
			/* a separate response as CON: acknowledge it */
			unsigned char ack[4] = {0x60, 0x00, res[2], res[3]};
			mbedtls_ssl_write(&ssl, ack, sizeof ack);
		}
		printf("code=%u.%02u\n", code >> 5, code & 0x1f);
		for (off = 4 + tkl; off < got && res[off] != 0xff;) {
			unsigned delta = res[off] >> 4, len = res[off] & 0x0f;
			off++;
			if (delta == 13)
				delta = 13 + res[off++];
			else if (delta == 14)
				delta = 269 + (res[off] << 8 | res[off + 1]), off += 2;
			if (len == 13)
				len = 13 + res[off++];
			else if (len == 14)
				len = 269 + (res[off] << 8 | res[off + 1]), off += 2;
			if (off + len > got)
				break;
			num += delta;
			if (num == 8) /* Location-Path */
				printf("location=%.*s\n", (int)len, (const char *)res + off);
			off += len;
		}
		break;
	}
	if (!noclose)
		mbedtls_ssl_close_notify(&ssl);
	mbedtls_net_free(&net);
	mbedtls_ssl_free(&ssl);
	mbedtls_ssl_config_free(&conf);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	return 0;
}
