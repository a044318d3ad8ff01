/*
 * An LwM2M 1.1 client on libcoap, for interop tests: an independent CoAP
 * and DTLS stack (libcoap with OpenSSL) against the agent's go-coap and
 * pion. It has three objects: Server /1/0, Device /3/0 and Firmware
 * Update /5/0 (LwM2M Core 1.1 E.6), and updates its firmware by push
 * (Block1 writes of Package /5/0/0) or by pull (Package URI /5/0/1 over
 * coap:// or coaps://, Block2 handled by libcoap).
 *
 * Usage:
 *   client -server URI -ep NAME [-id IDENTITY -key HEX] [flags]
 *
 *   -server URI       coap://HOST:PORT or coaps://HOST:PORT
 *   -ep NAME          endpoint name
 *   -id ID -key HEX   PSK identity and key (coaps server, coaps downloads)
 *   -lt SECONDS       lifetime (default 60); an Update every half of it
 *   -update-every S   seconds between Updates instead
 *   -fw VERSION       firmware version /3/0/3 at start (default 1.0.0)
 *   -new-version V    version after an update (default: from the package)
 *   -delivery M       /5/0/9: pull, push or both (default both)
 *   -protocols LIST   /5/0/8: comma list of coap,coaps,http,https
 *                     (default coap,coaps)
 *   -http-refusal H   a Package URI this client cannot fetch: "result"
 *                     accepts the write and sets Update Result 9, "bad"
 *                     answers 4.00 (default result)
 *   -max-package N    largest package in bytes (default 1048576)
 *   -block-szx N      largest block size exponent taken in pushes and
 *                     asked for in pulls, 0..6 (default 6: 1024 bytes)
 *   -fail KIND        fail each update this way: storage (Update Result
 *                     2), ram (3), connection (4), integrity (5), type (6),
 *                     uri (7), update (8), protocol (9)
 *   -update-delay MS  time between executing Update and the new firmware's
 *                     Register (default 300)
 *   -download-timeout S  a pull that does not finish is lost (default 60)
 *   -debug N          libcoap log level (default 3, errors)
 *
 * Every step is a line on stdout, "event=NAME key=value ...", values
 * without spaces, so that tests can assert what the device saw:
 *   event=registered location=rd/ID
 *   event=register-failed code=4.03
 *   event=updated code=2.04
 *   event=deregistered code=2.02
 *   event=read path=/3/0/0 format=0
 *   event=observe path=/5/0/3
 *   event=notify path=/5/0/3 format=11542   (a notification sent)
 *   event=cancel-observe path=/5/0/3 format=11542
 *   event=write path=/1/0/1 value=300
 *   event=execute path=/5/0/2
 *   event=state state=1 result=0
 *   event=push-block num=N szx=S more=M offset=O
 *   event=download-start method=push|coap|coaps uri=URI
 *   event=download-done method=M bytes=N sha256=HEX
 *   event=download-failed method=M result=N reason=WORDS
 *   event=reset reason=empty-uri|null-package
 *   event=update-done version=V name=N
 *   event=update-failed result=8
 * It exits 0 after a Deregister on SIGTERM or SIGINT.
 */
#define _POSIX_C_SOURCE 200112L
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <coap3/coap.h>

#define MAX_STR 512
#define MAX_LOC 64
#define MAX_URI 512
#define FMT_TEXT 0
#define FMT_LINK 40
#define FMT_OPAQUE 42
#define FMT_TLV 11542
#define NONE_FMT (-1)

/* ---------------------------------------------------------------- sha256 */

struct sha256 {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
	size_t n;
};

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(struct sha256 *s, const uint8_t *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (; i < 64; i++)
		w[i] = w[i - 16] + (ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3)) + w[i - 7] +
		       (ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10));
	a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
	for (i = 0; i < 64; i++) {
		t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
		t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
	}
	s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
	s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_hex(const uint8_t *data, size_t len, char out[65])
{
	static const uint32_t init[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
					 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	struct sha256 s;
	uint8_t pad[128];
	size_t i, padlen;

	memcpy(s.h, init, sizeof init);
	for (i = 0; i + 64 <= len; i += 64)
		sha256_block(&s, data + i);
	s.n = len - i;
	memset(pad, 0, sizeof pad);
	memcpy(pad, data + i, s.n);
	pad[s.n] = 0x80;
	padlen = s.n + 1 + 8 <= 64 ? 64 : 128;
	s.len = (uint64_t)len * 8;
	for (i = 0; i < 8; i++)
		pad[padlen - 1 - i] = (uint8_t)(s.len >> (8 * i));
	sha256_block(&s, pad);
	if (padlen == 128)
		sha256_block(&s, pad + 64);
	for (i = 0; i < 8; i++)
		snprintf(out + 8 * i, 9, "%08x", (unsigned)s.h[i]);
}

/* ------------------------------------------------------------ the objects */

enum kind { K_STR, K_INT, K_BOOL, K_OPAQUE, K_MULTI, K_EXEC };

#define OP_R 1
#define OP_W 2
#define OP_E 4

struct res {
	uint16_t obj, id;
	enum kind kind;
	unsigned ops;
	char str[MAX_STR];
	long long ival;
	long long multi[6];
	int nmulti;
	coap_resource_t *cr;
};

/* One instance of each object, instance 0. */
struct inst {
	uint16_t obj;
	coap_resource_t *cr;
};

enum {
	SRV_ID, SRV_LT, SRV_STORE, SRV_BIND, SRV_TRIGGER,
	DEV_MANU, DEV_MODEL, DEV_SERIAL, DEV_FWV,
	FW_PKG, FW_URI, FW_UPDATE, FW_STATE, FW_RESULT, FW_NAME, FW_VERSION, FW_PROTO, FW_DELIVERY,
	NRES
};

static struct res res[NRES] = {
	[SRV_ID] = {1, 0, K_INT, OP_R, "", 1, {0}, 0, NULL},
	[SRV_LT] = {1, 1, K_INT, OP_R | OP_W, "", 60, {0}, 0, NULL},
	[SRV_STORE] = {1, 6, K_BOOL, OP_R | OP_W, "", 0, {0}, 0, NULL},
	[SRV_BIND] = {1, 7, K_STR, OP_R | OP_W, "U", 0, {0}, 0, NULL},
	[SRV_TRIGGER] = {1, 8, K_EXEC, OP_E, "", 0, {0}, 0, NULL},
	[DEV_MANU] = {3, 0, K_STR, OP_R, "libcoap interop", 0, {0}, 0, NULL},
	[DEV_MODEL] = {3, 1, K_STR, OP_R, "coapclient", 0, {0}, 0, NULL},
	[DEV_SERIAL] = {3, 2, K_STR, OP_R, "LC-0001", 0, {0}, 0, NULL},
	[DEV_FWV] = {3, 3, K_STR, OP_R, "1.0.0", 0, {0}, 0, NULL},
	[FW_PKG] = {5, 0, K_OPAQUE, OP_W, "", 0, {0}, 0, NULL},
	[FW_URI] = {5, 1, K_STR, OP_R | OP_W, "", 0, {0}, 0, NULL},
	[FW_UPDATE] = {5, 2, K_EXEC, OP_E, "", 0, {0}, 0, NULL},
	[FW_STATE] = {5, 3, K_INT, OP_R, "", 0, {0}, 0, NULL},
	[FW_RESULT] = {5, 5, K_INT, OP_R, "", 0, {0}, 0, NULL},
	[FW_NAME] = {5, 6, K_STR, OP_R, "", 0, {0}, 0, NULL},
	[FW_VERSION] = {5, 7, K_STR, OP_R, "", 0, {0}, 0, NULL},
	[FW_PROTO] = {5, 8, K_MULTI, OP_R, "", 0, {0, 1}, 2, NULL},
	[FW_DELIVERY] = {5, 9, K_INT, OP_R, "", 2, {0}, 0, NULL},
};

static struct inst insts[3] = {{1, NULL}, {3, NULL}, {5, NULL}};

/* Firmware states and update results (Core 1.1 E.6). */
enum { ST_IDLE, ST_DOWNLOADING, ST_DOWNLOADED, ST_UPDATING };
enum {
	UR_INITIAL, UR_SUCCESS, UR_STORAGE, UR_RAM, UR_CONNECTION, UR_INTEGRITY,
	UR_TYPE, UR_URI, UR_FAILED, UR_PROTOCOL
};

/* ------------------------------------------------------------ the client */

static struct {
	const char *server, *ep, *id, *new_version, *fail;
	uint8_t key[64];
	size_t keylen;
	int update_every, http_bad, szx, update_delay_ms, dl_timeout;
	size_t max_package;

	coap_context_t *ctx, *dctx;
	coap_session_t *sess, *dsess;
	coap_address_t addr;
	int secure;
	char location[MAX_LOC];
	int registered;
	uint8_t reg_token[8], upd_token[8], dereg_token[8];
	size_t reg_toklen, upd_toklen, dereg_toklen;
	int dereg_done;
	time_t next_update;

	/* the package, from a push or a pull */
	uint8_t *pkg;
	size_t pkg_len;
	char pkg_uri[MAX_URI];
	const char *method;
	int dl_start;      /* a pull to start from the main loop */
	time_t dl_deadline; /* a pull under way ends by then */
	int update_at_set;
	struct timespec update_at;
	int reregister;
} c = {
	.update_every = 0, .szx = 6, .update_delay_ms = 300, .dl_timeout = 60, .max_package = 1048576,
};

static volatile sig_atomic_t quit;

static void on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

static void event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void event(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("event=", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
	va_end(ap);
}

/* clean copies s into out, bounded, with spaces and controls as '_' so
 * that event lines stay one token per value. */
static const char *clean(const char *s, size_t len, char *out, size_t size)
{
	size_t i;
	for (i = 0; i < len && i + 1 < size; i++)
		out[i] = (s[i] > ' ' && s[i] < 127) ? s[i] : '_';
	out[i] = 0;
	return out;
}

static void die(const char *msg)
{
	fprintf(stderr, "coapclient: %s\n", msg);
	exit(2);
}

static void path_of(const struct res *r, char *out, size_t size)
{
	snprintf(out, size, "/%u/0/%u", r->obj, r->id);
}

static void changed(struct res *r)
{
	if (r->cr)
		coap_resource_notify_observers(r->cr, NULL);
	for (size_t i = 0; i < sizeof insts / sizeof insts[0]; i++)
		if (insts[i].obj == r->obj && insts[i].cr)
			coap_resource_notify_observers(insts[i].cr, NULL);
}

static void set_int(int idx, long long v)
{
	if (res[idx].ival == v)
		return;
	res[idx].ival = v;
	changed(&res[idx]);
}

static void set_str(int idx, const char *v)
{
	if (strcmp(res[idx].str, v) == 0)
		return;
	snprintf(res[idx].str, sizeof res[idx].str, "%s", v);
	changed(&res[idx]);
}

static void set_state(int state, int result)
{
	set_int(FW_STATE, state);
	set_int(FW_RESULT, result);
	event("state state=%d result=%d", state, result);
}

static int failing(const char *kind)
{
	return c.fail && strcmp(c.fail, kind) == 0;
}

/* ------------------------------------------------------------------ TLV */

/* tlv_put writes one TLV of type bits tb (0xC0 resource with value, 0x80
 * multiple resource, 0x40 resource instance) and returns its length, or 0
 * when out is too small. */
static size_t tlv_put(uint8_t *out, size_t size, uint8_t tb, uint16_t id, const uint8_t *v, size_t len)
{
	size_t n = 1;
	uint8_t t = tb;

	if (size < 6 + len)
		return 0;
	if (id > 255) {
		t |= 0x20;
		out[n++] = (uint8_t)(id >> 8);
	}
	out[n++] = (uint8_t)id;
	if (len < 8) {
		t |= (uint8_t)len;
	} else if (len < 256) {
		t |= 0x08;
		out[n++] = (uint8_t)len;
	} else if (len < 65536) {
		t |= 0x10;
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	} else {
		t |= 0x18;
		out[n++] = (uint8_t)(len >> 16);
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	}
	out[0] = t;
	memcpy(out + n, v, len);
	return n + len;
}

static size_t int_bytes(long long v, uint8_t *b)
{
	size_t n = v >= -128 && v <= 127 ? 1 : v >= -32768 && v <= 32767 ? 2 : v >= INT32_MIN && v <= INT32_MAX ? 4 : 8;
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((unsigned long long)v >> (8 * (n - 1 - i)));
	return n;
}

static size_t tlv_res(const struct res *r, uint8_t *out, size_t size)
{
	uint8_t v[8], inner[64];
	size_t n, m = 0;

	switch (r->kind) {
	case K_STR:
		return tlv_put(out, size, 0xC0, r->id, (const uint8_t *)r->str, strlen(r->str));
	case K_INT:
	case K_BOOL:
		n = int_bytes(r->ival, v);
		return tlv_put(out, size, 0xC0, r->id, v, n);
	case K_MULTI:
		for (int i = 0; i < r->nmulti; i++) {
			n = int_bytes(r->multi[i], v);
			m += tlv_put(inner + m, sizeof inner - m, 0x40, (uint16_t)i, v, n);
		}
		return tlv_put(out, size, 0x80, r->id, inner, m);
	default:
		return 0;
	}
}

/* tlv_get reads the one resource TLV of payload: its ID and value. */
static int tlv_get(const uint8_t *p, size_t len, uint16_t *id, const uint8_t **v, size_t *vlen)
{
	size_t n = 1, l;
	if (len < 2 || (p[0] & 0xC0) != 0xC0)
		return -1;
	if (p[0] & 0x20) {
		if (len < 3)
			return -1;
		*id = (uint16_t)(p[1] << 8 | p[2]);
		n = 3;
	} else {
		*id = p[1];
		n = 2;
	}
	switch (p[0] & 0x18) {
	case 0x00:
		l = p[0] & 0x07;
		break;
	case 0x08:
		if (len < n + 1)
			return -1;
		l = p[n];
		n += 1;
		break;
	case 0x10:
		if (len < n + 2)
			return -1;
		l = (size_t)p[n] << 8 | p[n + 1];
		n += 2;
		break;
	default:
		if (len < n + 3)
			return -1;
		l = (size_t)p[n] << 16 | (size_t)p[n + 1] << 8 | p[n + 2];
		n += 3;
	}
	if (n + l != len)
		return -1;
	*v = p + n;
	*vlen = l;
	return 0;
}

/* ------------------------------------------------------------- requests */

static int opt_uint(const coap_pdu_t *pdu, coap_option_num_t num, int dflt)
{
	coap_opt_iterator_t it;
	coap_opt_t *o = coap_check_option(pdu, num, &it);
	if (!o)
		return dflt;
	return (int)coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o));
}

static void add_uint_opt(coap_pdu_t *pdu, coap_option_num_t num, unsigned v)
{
	uint8_t buf[4];
	coap_add_option(pdu, num, coap_encode_var_safe(buf, sizeof buf, v), buf);
}

static void reply(coap_pdu_t *response, int code, int fmt, const void *data, size_t len)
{
	coap_pdu_set_code(response, (coap_pdu_code_t)code);
	if (fmt != NONE_FMT)
		add_uint_opt(response, COAP_OPTION_CONTENT_FORMAT, (unsigned)fmt);
	if (len)
		coap_add_data(response, len, data);
}

/* A notification runs the GET handler again with the observer's request,
 * so the observations made are remembered (a few: older ones are
 * forgotten first) to tell a notification from a new Observe. */
static struct observation {
	coap_resource_t *cr;
	coap_session_t *s;
	uint8_t tok[8];
	size_t len;
} observations[32];
static unsigned next_observation;

static void log_get(coap_resource_t *cr, coap_session_t *s, const coap_pdu_t *req, const char *path, int accept)
{
	coap_bin_const_t tok = coap_pdu_get_token(req);
	struct observation *o;
	int obs = opt_uint(req, COAP_OPTION_OBSERVE, -1);

	if (obs != 0) {
		event("%s path=%s format=%d", obs == 1 ? "cancel-observe" : "read", path, accept);
		return;
	}
	for (size_t i = 0; i < sizeof observations / sizeof observations[0]; i++) {
		o = &observations[i];
		if (o->cr == cr && o->s == s && o->len == tok.length && memcmp(o->tok, tok.s, tok.length) == 0) {
			event("notify path=%s format=%d", path, accept);
			return;
		}
	}
	o = &observations[next_observation++ % (sizeof observations / sizeof observations[0])];
	o->cr = cr, o->s = s, o->len = tok.length < sizeof o->tok ? tok.length : sizeof o->tok;
	memcpy(o->tok, tok.s, o->len);
	event("observe path=%s format=%d", path, accept);
}

static void forget_observations(void)
{
	memset(observations, 0, sizeof observations);
}

static void hnd_get_res(coap_resource_t *cr, coap_session_t *s, const coap_pdu_t *req, const coap_string_t *q,
			coap_pdu_t *response)
{
	struct res *r = coap_resource_get_userdata(cr);
	int accept = opt_uint(req, COAP_OPTION_ACCEPT, NONE_FMT);
	char path[32], text[MAX_STR + 32];
	uint8_t tlv[MAX_STR + 64];
	size_t n;

	(void)q;
	path_of(r, path, sizeof path);
	if (!(r->ops & OP_R)) {
		reply(response, COAP_RESPONSE_CODE(405), NONE_FMT, NULL, 0);
		return;
	}
	log_get(cr, s, req, path, accept);
	if (accept == FMT_TLV || (accept == NONE_FMT && r->kind == K_MULTI)) {
		n = tlv_res(r, tlv, sizeof tlv);
		reply(response, COAP_RESPONSE_CODE(205), FMT_TLV, tlv, n);
		return;
	}
	if ((accept != NONE_FMT && accept != FMT_TEXT) || r->kind == K_MULTI) {
		reply(response, COAP_RESPONSE_CODE(406), NONE_FMT, NULL, 0);
		return;
	}
	if (r->kind == K_STR)
		n = (size_t)snprintf(text, sizeof text, "%s", r->str);
	else
		n = (size_t)snprintf(text, sizeof text, "%lld", r->ival);
	reply(response, COAP_RESPONSE_CODE(205), FMT_TEXT, text, n);
}

static void hnd_get_inst(coap_resource_t *cr, coap_session_t *s, const coap_pdu_t *req, const coap_string_t *q,
			 coap_pdu_t *response)
{
	struct inst *in = coap_resource_get_userdata(cr);
	int accept = opt_uint(req, COAP_OPTION_ACCEPT, NONE_FMT);
	uint8_t tlv[2048];
	char path[16];
	size_t n = 0;

	(void)q;
	snprintf(path, sizeof path, "/%u/0", in->obj);
	log_get(cr, s, req, path, accept);
	if (accept != NONE_FMT && accept != FMT_TLV) {
		reply(response, COAP_RESPONSE_CODE(406), NONE_FMT, NULL, 0);
		return;
	}
	for (int i = 0; i < NRES; i++)
		if (res[i].obj == in->obj && (res[i].ops & OP_R))
			n += tlv_res(&res[i], tlv + n, sizeof tlv - n);
	reply(response, COAP_RESPONSE_CODE(205), FMT_TLV, tlv, n);
}

/* ------------------------------------------------------- firmware: pull */

/* drop_transfer forgets the package and ends a pull under way. */
static void drop_transfer(void)
{
	free(c.pkg);
	c.pkg = NULL;
	c.pkg_len = 0;
	c.dl_start = 0;
	c.dl_deadline = 0;
	if (c.dsess) {
		coap_session_release(c.dsess);
		c.dsess = NULL;
	}
}

static void fw_reset(const char *reason)
{
	drop_transfer();
	set_str(FW_URI, "");
	event("reset reason=%s", reason);
	set_state(ST_IDLE, UR_INITIAL);
}

static void download_failed(int result, const char *reason)
{
	event("download-failed method=%s result=%d reason=%s", c.method ? c.method : "none", result, reason);
	drop_transfer();
	set_state(ST_IDLE, result);
}

/* download_done checks a whole package and makes it Downloaded. */
static void download_done(void)
{
	char sum[65];
	sha256_hex(c.pkg ? c.pkg : (const uint8_t *)"", c.pkg_len, sum);
	c.dl_deadline = 0;
	if (c.dsess) {
		coap_session_release(c.dsess);
		c.dsess = NULL;
	}
	if (c.pkg_len == 0 || failing("integrity")) {
		download_failed(UR_INTEGRITY, "integrity_check_failure");
		return;
	}
	if (failing("type")) {
		download_failed(UR_TYPE, "unsupported_package_type");
		return;
	}
	event("download-done method=%s bytes=%zu sha256=%s", c.method, c.pkg_len, sum);
	set_state(ST_DOWNLOADED, UR_INITIAL);
}

/* pkg_put stores len bytes at off of the package being received; it
 * answers the Update Result that stops the transfer, or 0. */
static int pkg_put(size_t off, const uint8_t *data, size_t len)
{
	uint8_t *p;
	if (off > c.pkg_len)
		return UR_CONNECTION;
	if (off + len > c.max_package || failing("storage"))
		return UR_STORAGE;
	if (failing("ram") || (failing("connection") && off > 0))
		return failing("ram") ? UR_RAM : UR_CONNECTION;
	if (off + len > c.pkg_len || !c.pkg) {
		p = realloc(c.pkg, off + len ? off + len : 1);
		if (!p)
			return UR_RAM;
		c.pkg = p;
	}
	memcpy(c.pkg + off, data, len);
	c.pkg_len = off + len;
	return 0;
}

static int resolve(const coap_str_const_t *host, uint16_t port, coap_address_t *out)
{
	char name[256];
	struct addrinfo hints, *ai;
	if (host->length >= sizeof name)
		return -1;
	memcpy(name, host->s, host->length);
	name[host->length] = 0;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_DGRAM;
	if (getaddrinfo(name, NULL, &hints, &ai) != 0)
		return -1;
	coap_address_init(out);
	out->size = ai->ai_addrlen;
	memcpy(&out->addr.sa, ai->ai_addr, ai->ai_addrlen);
	coap_address_set_port(out, port);
	freeaddrinfo(ai);
	return 0;
}

static coap_session_t *open_session(coap_context_t *ctx, const coap_address_t *dst, int secure)
{
	coap_dtls_cpsk_t psk;
	if (!secure)
		return coap_new_client_session(ctx, NULL, dst, COAP_PROTO_UDP);
	if (!c.id)
		return NULL;
	memset(&psk, 0, sizeof psk);
	psk.version = COAP_DTLS_CPSK_SETUP_VERSION;
	psk.psk_info.identity.s = (const uint8_t *)c.id;
	psk.psk_info.identity.length = strlen(c.id);
	psk.psk_info.key.s = c.key;
	psk.psk_info.key.length = c.keylen;
	return coap_new_client_session_psk2(ctx, NULL, dst, COAP_PROTO_DTLS, &psk);
}

/* add_path adds the Uri-Path options of path ("a/b/c"). */
static void add_path(coap_pdu_t *pdu, const uint8_t *path, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || path[i] == '/') {
			if (i > start)
				coap_add_option(pdu, COAP_OPTION_URI_PATH, i - start, path + start);
			start = i + 1;
		}
	}
}

static void add_query(coap_pdu_t *pdu, const uint8_t *q, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || q[i] == '&') {
			if (i > start)
				coap_add_option(pdu, COAP_OPTION_URI_QUERY, i - start, q + start);
			start = i + 1;
		}
	}
}

static void start_download(void)
{
	coap_uri_t u;
	coap_address_t dst;
	coap_pdu_t *pdu;
	uint8_t tok[8];
	size_t toklen;

	c.dl_start = 0;
	if (coap_split_uri((const uint8_t *)c.pkg_uri, strlen(c.pkg_uri), &u) < 0 || resolve(&u.host, u.port, &dst) < 0) {
		download_failed(UR_URI, "invalid_uri");
		return;
	}
	c.dsess = open_session(c.dctx, &dst, coap_uri_scheme_is_secure(&u));
	if (!c.dsess) {
		download_failed(UR_PROTOCOL, "no_session");
		return;
	}
	pdu = coap_new_pdu(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, c.dsess);
	if (!pdu) {
		download_failed(UR_RAM, "no_pdu");
		return;
	}
	coap_session_new_token(c.dsess, &toklen, tok);
	coap_add_token(pdu, toklen, tok);
	add_path(pdu, u.path.s, u.path.length);
	add_query(pdu, u.query.s, u.query.length);
	add_uint_opt(pdu, COAP_OPTION_BLOCK2, (unsigned)c.szx);
	c.dl_deadline = time(NULL) + c.dl_timeout;
	if (coap_send(c.dsess, pdu) == COAP_INVALID_MID)
		download_failed(UR_CONNECTION, "send_failed");
}

static coap_response_t on_download(coap_session_t *s, const coap_pdu_t *sent, const coap_pdu_t *rcv, const coap_mid_t mid)
{
	size_t len = 0, off = 0, total = 0;
	const uint8_t *data = NULL;
	coap_block_t b;
	coap_pdu_code_t code = coap_pdu_get_code(rcv);
	int more, ur;

	(void)sent, (void)mid;
	if (s != c.dsess || c.dl_deadline == 0)
		return COAP_RESPONSE_OK;
	if (COAP_RESPONSE_CLASS(code) != 2) {
		char why[32];
		snprintf(why, sizeof why, "server_answered_%d.%02d", COAP_RESPONSE_CLASS(code), code & 0x1f);
		download_failed(COAP_RESPONSE_CLASS(code) == 4 ? UR_URI : UR_CONNECTION, why);
		return COAP_RESPONSE_OK;
	}
	coap_get_data_large(rcv, &len, &data, &off, &total);
	if (total > c.max_package) {
		download_failed(UR_STORAGE, "package_too_large");
		return COAP_RESPONSE_OK;
	}
	more = coap_get_block(rcv, COAP_OPTION_BLOCK2, &b) && b.m;
	if ((ur = pkg_put(off, data, len)) != 0) {
		download_failed(ur, "transfer_stopped");
		return COAP_RESPONSE_OK;
	}
	if (!more)
		download_done();
	return COAP_RESPONSE_OK;
}

/* write_uri takes a Package URI: empty resets, coap and coaps start a
 * pull, anything else is refused as E.6 says. */
static int write_uri(const char *v, size_t len)
{
	char shown[MAX_URI];
	int st = (int)res[FW_STATE].ival;

	if (len == 0) {
		fw_reset("empty-uri");
		return COAP_RESPONSE_CODE(204);
	}
	if (len >= MAX_URI)
		return COAP_RESPONSE_CODE(413);
	if (st == ST_DOWNLOADING || st == ST_UPDATING)
		return COAP_RESPONSE_CODE(400);
	memcpy(c.pkg_uri, v, len);
	c.pkg_uri[len] = 0;
	set_str(FW_URI, c.pkg_uri);
	clean(c.pkg_uri, len, shown, sizeof shown);
	int http = strncmp(c.pkg_uri, "http://", 7) == 0 || strncmp(c.pkg_uri, "https://", 8) == 0;
	int coaps = strncmp(c.pkg_uri, "coaps://", 8) == 0;
	int coap = strncmp(c.pkg_uri, "coap://", 7) == 0;
	if (http && c.http_bad) {
		set_str(FW_URI, "");
		return COAP_RESPONSE_CODE(400);
	}
	free(c.pkg);
	c.pkg = NULL;
	c.pkg_len = 0;
	c.method = coaps ? "coaps" : coap ? "coap" : http ? "http" : "unknown";
	event("download-start method=%s uri=%s", c.method, shown);
	if (http || failing("protocol") || (coaps && !c.id)) {
		download_failed(UR_PROTOCOL, "unsupported_protocol");
		return COAP_RESPONSE_CODE(204);
	}
	if ((!coap && !coaps) || failing("uri")) {
		download_failed(UR_URI, "invalid_uri");
		return COAP_RESPONSE_CODE(204);
	}
	set_state(ST_DOWNLOADING, UR_INITIAL);
	c.dl_start = 1;
	return COAP_RESPONSE_CODE(204);
}

/* ------------------------------------------------------- firmware: push */

static void hnd_put_package(const coap_pdu_t *req, coap_pdu_t *response)
{
	size_t len = 0;
	const uint8_t *data = NULL;
	coap_block_t b;
	int has_block, ur, szx;
	size_t off;
	int fmt = opt_uint(req, COAP_OPTION_CONTENT_FORMAT, NONE_FMT);
	int size1 = opt_uint(req, COAP_OPTION_SIZE1, -1);

	coap_get_data(req, &len, &data);
	if (fmt != NONE_FMT && fmt != FMT_OPAQUE) {
		reply(response, COAP_RESPONSE_CODE(415), NONE_FMT, NULL, 0);
		return;
	}
	has_block = coap_get_block(req, COAP_OPTION_BLOCK1, &b);
	if (!has_block || (b.num == 0 && !b.m)) {
		if (len == 0 || (len == 1 && data[0] == 0)) {
			fw_reset("null-package");
			reply(response, COAP_RESPONSE_CODE(204), NONE_FMT, NULL, 0);
			return;
		}
	}
	if (!has_block) {
		b.num = 0, b.m = 0, b.szx = 6;
	}
	off = (size_t)b.num << (b.szx + 4);
	event("push-block num=%u szx=%u more=%u offset=%zu bytes=%zu", b.num, b.szx, b.m, off, len);
	if (off == 0) {
		/* a new transfer, or the same one restarted */
		free(c.pkg);
		c.pkg = NULL;
		c.pkg_len = 0;
		c.method = "push";
		event("download-start method=push uri=-");
		set_str(FW_URI, "");
		set_state(ST_DOWNLOADING, UR_INITIAL);
	} else if (res[FW_STATE].ival != ST_DOWNLOADING || off > c.pkg_len) {
		/* a block past what we hold: the start was lost */
		reply(response, COAP_RESPONSE_CODE(408), NONE_FMT, NULL, 0);
		return;
	}
	if (size1 > 0 && (size_t)size1 > c.max_package) {
		download_failed(UR_STORAGE, "package_too_large");
		add_uint_opt(response, COAP_OPTION_SIZE1, (unsigned)c.max_package);
		reply(response, COAP_RESPONSE_CODE(413), NONE_FMT, NULL, 0);
		return;
	}
	if (b.m && len != (size_t)1 << (b.szx + 4)) {
		reply(response, COAP_RESPONSE_CODE(400), NONE_FMT, NULL, 0);
		return;
	}
	/* A block before the end is a resumed or repeated transfer: keep what
	 * precedes it. */
	if (off < c.pkg_len)
		c.pkg_len = off;
	if ((ur = pkg_put(off, data, len)) != 0) {
		download_failed(ur, ur == UR_STORAGE ? "package_too_large" : "transfer_stopped");
		if (ur == UR_STORAGE)
			add_uint_opt(response, COAP_OPTION_SIZE1, (unsigned)c.max_package);
		reply(response, ur == UR_STORAGE ? COAP_RESPONSE_CODE(413) : COAP_RESPONSE_CODE(500), NONE_FMT, NULL, 0);
		return;
	}
	szx = (int)b.szx < c.szx ? (int)b.szx : c.szx;
	if (has_block)
		add_uint_opt(response, COAP_OPTION_BLOCK1, b.num << 4 | (unsigned)b.m << 3 | (unsigned)szx);
	if (b.m) {
		reply(response, COAP_RESPONSE_CODE(231), NONE_FMT, NULL, 0);
		return;
	}
	reply(response, COAP_RESPONSE_CODE(204), NONE_FMT, NULL, 0);
	download_done();
}

/* ------------------------------------------------------- writes, execute */

static int parse_int(const char *s, long long *out)
{
	char *end;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return (errno || end == s || *end) ? -1 : 0;
}

static void hnd_put_res(coap_resource_t *cr, coap_session_t *s, const coap_pdu_t *req, const coap_string_t *q,
			coap_pdu_t *response)
{
	struct res *r = coap_resource_get_userdata(cr);
	int fmt = opt_uint(req, COAP_OPTION_CONTENT_FORMAT, NONE_FMT);
	size_t len = 0, vlen;
	const uint8_t *data = NULL, *v;
	char path[32], text[MAX_URI], shown[MAX_URI];
	uint16_t id;
	long long iv = 0;
	int idx = (int)(r - res);

	(void)s;
	path_of(r, path, sizeof path);
	coap_get_data(req, &len, &data);
	if (q && q->length && len == 0) {
		event("write-attributes path=%s query=%s", path,
		      clean((const char *)q->s, q->length, shown, sizeof shown));
		reply(response, COAP_RESPONSE_CODE(204), NONE_FMT, NULL, 0);
		return;
	}
	if (!(r->ops & OP_W)) {
		reply(response, COAP_RESPONSE_CODE(405), NONE_FMT, NULL, 0);
		return;
	}
	if (idx == FW_PKG) {
		hnd_put_package(req, response);
		return;
	}
	if (fmt == FMT_TLV) {
		if (tlv_get(data, len, &id, &v, &vlen) < 0 || id != r->id) {
			reply(response, COAP_RESPONSE_CODE(400), NONE_FMT, NULL, 0);
			return;
		}
		if (r->kind == K_INT || r->kind == K_BOOL) {
			if (vlen != 1 && vlen != 2 && vlen != 4 && vlen != 8) {
				reply(response, COAP_RESPONSE_CODE(400), NONE_FMT, NULL, 0);
				return;
			}
			iv = (int8_t)v[0];
			for (size_t i = 1; i < vlen; i++)
				iv = (long long)((unsigned long long)iv << 8 | v[i]);
			snprintf(text, sizeof text, "%lld", iv);
		} else {
			if (vlen >= sizeof text) {
				reply(response, COAP_RESPONSE_CODE(413), NONE_FMT, NULL, 0);
				return;
			}
			memcpy(text, v, vlen);
			text[vlen] = 0;
		}
	} else if (fmt == FMT_TEXT || fmt == NONE_FMT) {
		if (len >= sizeof text) {
			reply(response, COAP_RESPONSE_CODE(413), NONE_FMT, NULL, 0);
			return;
		}
		memcpy(text, data, len);
		text[len] = 0;
		vlen = len;
	} else {
		reply(response, COAP_RESPONSE_CODE(415), NONE_FMT, NULL, 0);
		return;
	}
	event("write path=%s value=%s", path, clean(text, strlen(text), shown, sizeof shown));
	if (idx == FW_URI) {
		reply(response, write_uri(text, strlen(text)), NONE_FMT, NULL, 0);
		return;
	}
	if (r->kind == K_INT || r->kind == K_BOOL) {
		if (parse_int(text, &iv) < 0 || (r->kind == K_BOOL && iv != 0 && iv != 1) || (idx == SRV_LT && iv <= 0)) {
			reply(response, COAP_RESPONSE_CODE(400), NONE_FMT, NULL, 0);
			return;
		}
		set_int(idx, iv);
	} else {
		if (strlen(text) >= MAX_STR) {
			reply(response, COAP_RESPONSE_CODE(413), NONE_FMT, NULL, 0);
			return;
		}
		set_str(idx, text);
	}
	if (idx == SRV_LT)
		c.next_update = time(NULL); /* tell the server the new lifetime */
	reply(response, COAP_RESPONSE_CODE(204), NONE_FMT, NULL, 0);
}

static void hnd_post_res(coap_resource_t *cr, coap_session_t *s, const coap_pdu_t *req, const coap_string_t *q,
			 coap_pdu_t *response)
{
	struct res *r = coap_resource_get_userdata(cr);
	char path[32];
	int idx = (int)(r - res);

	(void)s, (void)req, (void)q;
	if (!(r->ops & OP_E)) {
		reply(response, COAP_RESPONSE_CODE(405), NONE_FMT, NULL, 0);
		return;
	}
	path_of(r, path, sizeof path);
	event("execute path=%s", path);
	if (idx == SRV_TRIGGER) {
		c.next_update = time(NULL);
	} else if (idx == FW_UPDATE) {
		if (res[FW_STATE].ival != ST_DOWNLOADED) {
			reply(response, COAP_RESPONSE_CODE(405), NONE_FMT, NULL, 0);
			return;
		}
		set_state(ST_UPDATING, UR_INITIAL);
		clock_gettime(CLOCK_MONOTONIC, &c.update_at);
		c.update_at.tv_sec += c.update_delay_ms / 1000;
		c.update_at.tv_nsec += (long)(c.update_delay_ms % 1000) * 1000000L;
		if (c.update_at.tv_nsec >= 1000000000L) {
			c.update_at.tv_sec++;
			c.update_at.tv_nsec -= 1000000000L;
		}
		c.update_at_set = 1;
	}
	reply(response, COAP_RESPONSE_CODE(204), NONE_FMT, NULL, 0);
}

/* next_version raises the last number of cur ("1.0.9" -> "1.0.10"). */
static void next_version(const char *cur, char *out, size_t size)
{
	const char *dot = strrchr(cur, '.');
	const char *last = dot ? dot + 1 : cur;
	long long n;
	if (parse_int(last, &n) == 0)
		snprintf(out, size, "%.*s%lld", (int)(last - cur), cur, n + 1);
	else
		snprintf(out, size, "%.500s.1", cur);
}

/* package_names finds the new firmware's name and version: -new-version,
 * else a first line "name=N version=V" in the package, else the pulled
 * file's name "NAME_VERSION.ext", else the current version raised. */
static void package_names(char *name, char *version, size_t size)
{
	char line[MAX_STR];
	const char *base, *us, *dot;
	size_t n = 0;

	snprintf(name, size, "firmware");
	version[0] = 0;
	while (c.pkg && n < c.pkg_len && n + 1 < sizeof line && c.pkg[n] != '\n') {
		line[n] = (char)c.pkg[n];
		n++;
	}
	line[n] = 0;
	if (sscanf(line, "name=%63s version=%63s", name, version) == 2) {
		/* from the package */
	} else if (strcmp(c.method, "push") != 0 && (base = strrchr(c.pkg_uri, '/')) != NULL && base[1]) {
		base++;
		us = strrchr(base, '_');
		dot = strrchr(base, '.');
		if (us) {
			snprintf(name, size, "%.*s", (int)(us - base), base);
			snprintf(version, size, "%.*s", (int)((dot && dot > us + 1 && dot[1] > '9' ? dot : base + strlen(base)) - us - 1), us + 1);
		}
	}
	if (c.new_version)
		snprintf(version, size, "%s", c.new_version);
	if (!version[0])
		next_version(res[DEV_FWV].str, version, size);
}

/* ----------------------------------------------------- registration */

static void send_register(void);

static int send_to_server(coap_pdu_code_t code, const char *loc, int with_query, int with_links, uint8_t *tok,
			  size_t *toklen)
{
	char q[MAX_STR + 16];
	coap_pdu_t *pdu;
	char links[] = "</>;rt=\"oma.lwm2m\";ct=11542,</1/0>,</3/0>,</5/0>";

	if (!c.sess)
		return -1;
	pdu = coap_new_pdu(COAP_MESSAGE_CON, code, c.sess);
	if (!pdu)
		return -1;
	coap_session_new_token(c.sess, toklen, tok);
	coap_add_token(pdu, *toklen, tok);
	add_path(pdu, (const uint8_t *)loc, strlen(loc));
	if (with_links)
		add_uint_opt(pdu, COAP_OPTION_CONTENT_FORMAT, FMT_LINK);
	if (with_query) {
		snprintf(q, sizeof q, "ep=%s", c.ep);
		coap_add_option(pdu, COAP_OPTION_URI_QUERY, strlen(q), (const uint8_t *)q);
	}
	if (with_query || code == COAP_REQUEST_CODE_POST) {
		snprintf(q, sizeof q, "lt=%lld", res[SRV_LT].ival);
		coap_add_option(pdu, COAP_OPTION_URI_QUERY, strlen(q), (const uint8_t *)q);
	}
	if (with_query) {
		coap_add_option(pdu, COAP_OPTION_URI_QUERY, 9, (const uint8_t *)"lwm2m=1.1");
		snprintf(q, sizeof q, "b=%s", res[SRV_BIND].str);
		coap_add_option(pdu, COAP_OPTION_URI_QUERY, strlen(q), (const uint8_t *)q);
	}
	if (with_links)
		coap_add_data(pdu, strlen(links), (const uint8_t *)links);
	return coap_send(c.sess, pdu) == COAP_INVALID_MID ? -1 : 0;
}

static void send_register(void)
{
	c.registered = 0;
	if (send_to_server(COAP_REQUEST_CODE_POST, "rd", 1, 1, c.reg_token, &c.reg_toklen) < 0)
		die("cannot send Register");
}

static void schedule_update(void)
{
	int every = c.update_every > 0 ? c.update_every : (int)(res[SRV_LT].ival / 2);
	c.next_update = time(NULL) + (every > 0 ? every : 1);
}

static int token_is(const coap_pdu_t *pdu, const uint8_t *tok, size_t len)
{
	coap_bin_const_t t = coap_pdu_get_token(pdu);
	return len && t.length == len && memcmp(t.s, tok, len) == 0;
}

static coap_response_t on_response(coap_session_t *s, const coap_pdu_t *sent, const coap_pdu_t *rcv, const coap_mid_t mid)
{
	coap_pdu_code_t code = coap_pdu_get_code(rcv);
	int cls = COAP_RESPONSE_CLASS(code), detail = code & 0x1f;
	coap_opt_iterator_t it;
	coap_opt_t *o;
	size_t n = 0;

	(void)sent, (void)mid;
	if (s != c.sess)
		return COAP_RESPONSE_OK;
	if (token_is(rcv, c.reg_token, c.reg_toklen)) {
		c.reg_toklen = 0;
		if (cls != 2) {
			event("register-failed code=%d.%02d", cls, detail);
			quit = 2;
			return COAP_RESPONSE_OK;
		}
		coap_option_iterator_init(rcv, &it, COAP_OPT_ALL);
		while ((o = coap_option_next(&it)) != NULL) {
			if (it.number != COAP_OPTION_LOCATION_PATH || n + coap_opt_length(o) + 2 > sizeof c.location)
				continue;
			if (n)
				c.location[n++] = '/';
			memcpy(c.location + n, coap_opt_value(o), coap_opt_length(o));
			n += coap_opt_length(o);
		}
		c.location[n] = 0;
		c.registered = 1;
		schedule_update();
		event("registered location=%s code=%d.%02d", c.location, cls, detail);
	} else if (token_is(rcv, c.upd_token, c.upd_toklen)) {
		c.upd_toklen = 0;
		event("updated code=%d.%02d", cls, detail);
		if (cls != 2) /* the server forgot us: register anew */
			send_register();
	} else if (token_is(rcv, c.dereg_token, c.dereg_toklen)) {
		c.dereg_toklen = 0;
		c.dereg_done = 1;
		event("deregistered code=%d.%02d", cls, detail);
	}
	return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *s, const coap_pdu_t *sent, const coap_nack_reason_t reason, const coap_mid_t mid)
{
	(void)sent, (void)mid;
	if (s == c.dsess && c.dl_deadline) {
		download_failed(UR_CONNECTION, "connection_lost");
		return;
	}
	if (s == c.sess)
		event("nack reason=%d", (int)reason);
}

static int on_event(coap_session_t *s, const coap_event_t ev)
{
	if (ev == COAP_EVENT_DTLS_ERROR || ev == COAP_EVENT_DTLS_CLOSED) {
		if (s == c.dsess && c.dl_deadline)
			download_failed(UR_CONNECTION, "dtls_error");
		else if (s == c.sess)
			event("dtls-error code=%d", (int)ev);
	}
	return 0;
}

/* reboot runs the new firmware: a new session and a new Register, as a
 * device that restarted. */
static void reboot(void)
{
	char name[MAX_STR], version[MAX_STR];

	c.update_at_set = 0;
	if (failing("update")) {
		event("update-failed result=%d", UR_FAILED);
		set_state(ST_DOWNLOADED, UR_FAILED);
		return;
	}
	package_names(name, version, sizeof name);
	snprintf(res[DEV_FWV].str, MAX_STR, "%s", version);
	snprintf(res[FW_NAME].str, MAX_STR, "%s", name);
	snprintf(res[FW_VERSION].str, MAX_STR, "%s", version);
	free(c.pkg);
	c.pkg = NULL;
	c.pkg_len = 0;
	res[FW_STATE].ival = ST_IDLE;
	res[FW_RESULT].ival = UR_SUCCESS;
	res[FW_URI].str[0] = 0;
	coap_session_release(c.sess); /* drops the observations, as a reboot does */
	forget_observations();
	c.sess = open_session(c.ctx, &c.addr, c.secure);
	if (!c.sess)
		die("cannot open a session after the update");
	event("update-done name=%s version=%s", name, version);
	event("state state=%d result=%d", ST_IDLE, UR_SUCCESS);
	send_register();
}

/* ------------------------------------------------------------- set-up */

static void add_resources(void)
{
	char uri[32];
	coap_resource_t *cr;

	for (int i = 0; i < NRES; i++) {
		snprintf(uri, sizeof uri, "%u/0/%u", res[i].obj, res[i].id);
		cr = coap_resource_init(coap_new_str_const((const uint8_t *)uri, strlen(uri)), COAP_RESOURCE_FLAGS_RELEASE_URI);
		if (!cr)
			die("no memory for resources");
		coap_resource_set_userdata(cr, &res[i]);
		coap_register_handler(cr, COAP_REQUEST_GET, hnd_get_res);
		coap_register_handler(cr, COAP_REQUEST_PUT, hnd_put_res);
		coap_register_handler(cr, COAP_REQUEST_POST, hnd_post_res);
		if (res[i].ops & OP_R)
			coap_resource_set_get_observable(cr, 1);
		coap_add_resource(c.ctx, cr);
		res[i].cr = cr;
	}
	for (size_t i = 0; i < sizeof insts / sizeof insts[0]; i++) {
		snprintf(uri, sizeof uri, "%u/0", insts[i].obj);
		cr = coap_resource_init(coap_new_str_const((const uint8_t *)uri, strlen(uri)), COAP_RESOURCE_FLAGS_RELEASE_URI);
		if (!cr)
			die("no memory for resources");
		coap_resource_set_userdata(cr, &insts[i]);
		coap_register_handler(cr, COAP_REQUEST_GET, hnd_get_inst);
		coap_resource_set_get_observable(cr, 1);
		coap_add_resource(c.ctx, cr);
		insts[i].cr = cr;
	}
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static void parse_key(const char *hex)
{
	size_t n = strlen(hex);
	if (n % 2 || n / 2 > sizeof c.key)
		die("-key: an even number of hex digits, at most 128");
	for (size_t i = 0; i < n; i += 2) {
		int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
		if (hi < 0 || lo < 0)
			die("-key: not hex");
		c.key[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	c.keylen = n / 2;
}

static void parse_protocols(const char *list)
{
	static const char *names[] = {"coap", "coaps", "http", "https"};
	char buf[64];
	char *tok, *save = NULL;

	snprintf(buf, sizeof buf, "%s", list);
	res[FW_PROTO].nmulti = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int found = 0;
		for (int i = 0; i < 4; i++)
			if (strcmp(tok, names[i]) == 0 && res[FW_PROTO].nmulti < 6) {
				res[FW_PROTO].multi[res[FW_PROTO].nmulti++] = i;
				found = 1;
			}
		if (!found)
			die("-protocols: coap, coaps, http or https");
	}
}

static long arg_num(const char *v, long lo, long hi, const char *flag)
{
	long long n;
	if (parse_int(v, &n) < 0 || n < lo || n > hi) {
		fprintf(stderr, "coapclient: %s: a number from %ld to %ld\n", flag, lo, hi);
		exit(2);
	}
	return (long)n;
}

static void parse_args(int argc, char **argv)
{
	int level = LOG_ERR;
	for (int i = 1; i < argc; i++) {
		const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			die("every flag takes a value");
		i++;
		if (!strcmp(f, "-server"))
			c.server = v;
		else if (!strcmp(f, "-ep"))
			c.ep = v;
		else if (!strcmp(f, "-id"))
			c.id = v;
		else if (!strcmp(f, "-key"))
			parse_key(v);
		else if (!strcmp(f, "-lt"))
			res[SRV_LT].ival = arg_num(v, 1, 86400 * 365, f);
		else if (!strcmp(f, "-update-every"))
			c.update_every = (int)arg_num(v, 1, 86400, f);
		else if (!strcmp(f, "-fw"))
			snprintf(res[DEV_FWV].str, MAX_STR, "%s", v);
		else if (!strcmp(f, "-new-version"))
			c.new_version = v;
		else if (!strcmp(f, "-delivery"))
			res[FW_DELIVERY].ival = !strcmp(v, "pull") ? 0 : !strcmp(v, "push") ? 1 : !strcmp(v, "both") ? 2 : -1;
		else if (!strcmp(f, "-protocols"))
			parse_protocols(v);
		else if (!strcmp(f, "-http-refusal"))
			c.http_bad = !strcmp(v, "bad") ? 1 : !strcmp(v, "result") ? 0 : (die("-http-refusal: result or bad"), 0);
		else if (!strcmp(f, "-max-package"))
			c.max_package = (size_t)arg_num(v, 1, 64L << 20, f);
		else if (!strcmp(f, "-block-szx"))
			c.szx = (int)arg_num(v, 0, 6, f);
		else if (!strcmp(f, "-fail"))
			c.fail = v;
		else if (!strcmp(f, "-update-delay"))
			c.update_delay_ms = (int)arg_num(v, 0, 60000, f);
		else if (!strcmp(f, "-download-timeout"))
			c.dl_timeout = (int)arg_num(v, 1, 3600, f);
		else if (!strcmp(f, "-debug"))
			level = (int)arg_num(v, 0, 8, f);
		else {
			fprintf(stderr, "coapclient: unknown flag %s\n", f);
			exit(2);
		}
	}
	if (!c.server || !c.ep)
		die("-server and -ep are required");
	if (res[FW_DELIVERY].ival < 0)
		die("-delivery: pull, push or both");
	if (c.fail) {
		static const char *kinds[] = {"storage", "ram", "connection", "integrity", "type", "uri", "update", "protocol"};
		int ok = 0;
		for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
			ok |= !strcmp(c.fail, kinds[k]);
		if (!ok)
			die("-fail: storage, ram, connection, integrity, type, uri, update or protocol");
	}
	coap_set_log_level((coap_log_t)level);
}

static int due(const struct timespec *at)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > at->tv_sec || (now.tv_sec == at->tv_sec && now.tv_nsec >= at->tv_nsec);
}

int main(int argc, char **argv)
{
	coap_uri_t u;
	struct sigaction sa;
	time_t deadline;

	setvbuf(stdout, NULL, _IOLBF, 0);
	coap_startup();
	parse_args(argc, argv);
	if (coap_split_uri((const uint8_t *)c.server, strlen(c.server), &u) < 0 ||
	    (u.scheme != COAP_URI_SCHEME_COAP && u.scheme != COAP_URI_SCHEME_COAPS))
		die("-server: coap://HOST:PORT or coaps://HOST:PORT");
	c.secure = u.scheme == COAP_URI_SCHEME_COAPS;
	if (c.secure && (!c.id || !c.keylen))
		die("coaps needs -id and -key");
	if (resolve(&u.host, u.port, &c.addr) < 0)
		die("-server: cannot resolve the host");

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	c.ctx = coap_new_context(NULL);
	c.dctx = coap_new_context(NULL);
	if (!c.ctx || !c.dctx)
		die("cannot create a CoAP context");
	/* Pushes are taken block by block here, to bound and resume them;
	 * pulls let libcoap ask for each Block2. */
	coap_context_set_block_mode(c.dctx, COAP_BLOCK_USE_LIBCOAP);
	coap_register_response_handler(c.ctx, on_response);
	coap_register_response_handler(c.dctx, on_download);
	coap_register_nack_handler(c.ctx, on_nack);
	coap_register_nack_handler(c.dctx, on_nack);
	coap_register_event_handler(c.ctx, on_event);
	coap_register_event_handler(c.dctx, on_event);
	add_resources();

	c.sess = open_session(c.ctx, &c.addr, c.secure);
	if (!c.sess)
		die("cannot open a session to the server");
	event("start ep=%s server=%s firmware=%s", c.ep, c.server, res[DEV_FWV].str);
	send_register();

	while (!quit) {
		int busy = c.dsess != NULL || c.dl_start;
		coap_io_process(c.ctx, busy ? 10 : 100);
		if (busy)
			coap_io_process(c.dctx, 10);
		if (c.dl_start)
			start_download();
		if (c.dl_deadline && time(NULL) > c.dl_deadline)
			download_failed(UR_CONNECTION, "download_timeout");
		if (c.update_at_set && due(&c.update_at))
			reboot();
		if (c.registered && !c.upd_toklen && time(NULL) >= c.next_update) {
			schedule_update();
			if (send_to_server(COAP_REQUEST_CODE_POST, c.location, 0, 0, c.upd_token, &c.upd_toklen) < 0)
				c.upd_toklen = 0;
		}
	}
	if (quit == 1 && c.registered) {
		if (send_to_server(COAP_REQUEST_CODE_DELETE, c.location, 0, 0, c.dereg_token, &c.dereg_toklen) == 0) {
			deadline = time(NULL) + 5;
			while (!c.dereg_done && time(NULL) < deadline)
				coap_io_process(c.ctx, 100);
		}
	}
	if (c.dsess)
		coap_session_release(c.dsess);
	if (c.sess)
		coap_session_release(c.sess);
	coap_free_context(c.dctx);
	coap_free_context(c.ctx);
	coap_cleanup();
	free(c.pkg);
	return quit == 1 && (!c.registered || c.dereg_done) ? 0 : 1;
}
