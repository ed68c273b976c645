// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sm-soak: the load generator and checker of scripts/soak.sh (issue 12
 * item 5). Every byte it sends is a function of (seed, offset), so the
 * other end checks every byte it receives without a copy or a hash.
 *
 *   sm-soak server ADDR:PORT...
 *   sm-soak client [--bytes SIZE] [--duration S] [--workers N]
 *                  [--max-size SIZE | --size SIZE] [--resets PCT]
 *                  [--churn RATE] [--seed N] ADDR:PORT...
 *
 * Per connection the client sends a header (sizes, seed, flags), then its
 * up bytes while it reads the down bytes, each side half-closing its write
 * side when done (in whichever order the sizes make), then reads the
 * server's trailer, which says whether the up bytes arrived intact. With
 * --resets PCT, that share of connections is aborted (RST) by the client
 * or the server in the middle; those must end in an error or a short read
 * on the other side, never in wrong bytes. --churn RATE adds that many
 * small connections a second, opened and closed. The client prints one
 * summary line and exits 1 on any corruption or failure.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"

#define MAGIC 0x534d534bu /* "SMSK" */
#define TRAILER_OK 0x4f4b4f4bu
#define TRAILER_BAD 0x42414421u
#define F_RESET_CLIENT 1u
#define F_RESET_SERVER 2u
#define IO_TIMEOUT_S 60
#define MAX_TARGETS 8

struct hdr {
	uint32_t magic, flags, seed, pad;
	uint64_t up, down;
};

struct trailer {
	uint32_t magic, status;
	uint64_t got;
};

static struct sockaddr_storage targets[MAX_TARGETS];
static socklen_t target_len[MAX_TARGETS];
static int n_targets;

static atomic_uint_fast64_t st_bytes, st_conns, st_corrupt, st_fail, st_resets, st_churn;
static atomic_bool stop;
static uint64_t want_bytes, max_size = 64ull << 20, fixed_size;
static double duration_s;
static unsigned int resets_pct, churn_rate, base_seed = 1;

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The byte at offset off of stream seed: cheap, and a shifted, dropped or
 * repeated byte shows.
 */
static inline uint8_t pat(uint32_t seed, uint64_t off)
{
	uint64_t x = (off >> 3) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed << 32 | seed);

	x ^= x >> 29;
	return (uint8_t)(x >> ((off & 7) * 8));
}

static void fill(uint8_t *b, size_t n, uint32_t seed, uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pat(seed, off + i);
}

/* Offset of the first wrong byte in b, or -1. */
static long check(const uint8_t *b, size_t n, uint32_t seed, uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != pat(seed, off + i))
			return (long)i;
	return -1;
}

static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	long port;

	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host))
		return -1;
	port = strtol(colon + 1, NULL, 10);
	if (port <= 0 || port > 65535)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		host[strlen(host) - 1] = '\0';
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;

	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	*len = sizeof(*a);
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

/* A blocking read that failed with EAGAIN/EINTR: worth retrying? tcp_bpf's
 * recvmsg on a spliced socket returns EAGAIN to a blocking reader when a
 * write from another thread woke the socket first (docs/design.md, kernel
 * fast path; 6.1 and 6.18), so EAGAIN is retried until IO_TIMEOUT_S has
 * passed without a byte (then it was SO_RCVTIMEO's).
 */
static atomic_uint_fast64_t st_eagain;

static bool retry_read(double *since)
{
	if (errno == EINTR)
		return true;
	if (errno != EAGAIN)
		return false;
	if (*since == 0)
		*since = now_s();
	if (now_s() - *since >= IO_TIMEOUT_S)
		return false;
	atomic_fetch_add(&st_eagain, 1);
	return true;
}

static void timeouts(int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void abort_conn(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Send n pattern bytes of seed (stop after lim if lim < n: a reset). */
static int send_pattern(int fd, uint32_t seed, uint64_t n, uint64_t lim)
{
	static _Thread_local uint8_t buf[256 << 10];
	uint64_t off = 0, end = lim < n ? lim : n;

	while (off < end) {
		size_t c = end - off < sizeof(buf) ? (size_t)(end - off) : sizeof(buf);

		fill(buf, c, seed, off);
		if (write_all(fd, buf, c))
			return -1;
		off += c;
	}
	return 0;
}

/* Read pattern bytes of seed: until n arrived (to_eof false) or until EOF
 * (to_eof true, bytes past n are wrong). *got the count, *bad the first
 * wrong offset or -1. Returns 0, 1 on an early EOF, -1 on a read error.
 */
static int recv_pattern(int fd, uint32_t seed, uint64_t n, bool to_eof, uint64_t *got, int64_t *bad)
{
	static _Thread_local uint8_t buf[256 << 10];
	double since = 0;

	*got = 0;
	*bad = -1;
	while (to_eof || *got < n) {
		uint64_t left = *got < n ? n - *got : 0;
		size_t want = left && left < sizeof(buf) ? (size_t)left : sizeof(buf);
		ssize_t r = recv(fd, buf, want, 0);
		long e;

		if (r < 0 && retry_read(&since))
			continue;
		if (r < 0)
			return -1;
		since = 0;
		if (r == 0)
			return *got < n ? 1 : 0;
		if ((uint64_t)r > left) {
			if (*bad < 0)
				*bad = (int64_t)(*got + left);
		} else if (*bad < 0 && (e = check(buf, (size_t)r, seed, *got)) >= 0) {
			*bad = (int64_t)(*got + (uint64_t)e);
		}
		*got += (uint64_t)r;
	}
	return 0;
}

/* After the last expected byte: 0 at EOF, 1 if more bytes came, -1 on an
 * error.
 */
static int recv_eof(int fd)
{
	double since = 0;
	char x;

	for (;;) {
		ssize_t r = recv(fd, &x, 1, 0);

		if (r < 0 && retry_read(&since))
			continue;
		return r == 0 ? 0 : r > 0 ? 1 : -1;
	}
}

static int recv_exact(int fd, void *p, size_t n)
{
	size_t k = 0;
	double since = 0;

	while (k < n) {
		ssize_t r = recv(fd, (char *)p + k, n - k, 0);

		if (r < 0 && retry_read(&since))
			continue;
		if (r <= 0)
			return -1;
		k += (size_t)r;
	}
	return 0;
}

/* ---- server ---------------------------------------------------------------- */

struct sconn {
	int fd;
	struct sockaddr_storage peer; /* from accept: the proxy's upstream end */
	struct hdr h;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool read_done;
	struct trailer t;
};

static void *server_writer(void *p)
{
	struct sconn *c = p;
	uint64_t lim = (c->h.flags & F_RESET_SERVER) ? c->h.down / 2 : c->h.down;

	if (send_pattern(c->fd, c->h.seed + 1, c->h.down, lim))
		return NULL;
	if (c->h.flags & F_RESET_SERVER)
		return NULL;
	pthread_mutex_lock(&c->mu);
	while (!c->read_done)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	if (write_all(c->fd, &c->t, sizeof(c->t)) == 0)
		shutdown(c->fd, SHUT_WR);
	return NULL;
}

static void *server_conn(void *p)
{
	struct sconn *c = p;
	pthread_t w;
	char peer[INET6_ADDRSTRLEN + 8];
	uint64_t got = 0;
	int64_t bad = -1;
	int rc, rerr;

	timeouts(c->fd);
	if (recv_exact(c->fd, &c->h, sizeof(c->h)))
		goto out;
	if (c->h.magic != MAGIC) {
		printf("server: bad header\n");
		goto out;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	pthread_create(&w, NULL, server_writer, c);
	if (c->h.flags & F_RESET_SERVER) {
		uint64_t half = c->h.up / 2;

		recv_pattern(c->fd, c->h.seed, half ? half : 1, false, &got, &bad);
		pthread_join(w, NULL);
		abort_conn(c->fd);
		c->fd = -1;
		goto done;
	}
	rc = recv_pattern(c->fd, c->h.seed, c->h.up, true, &got, &bad);
	rerr = errno;
	c->t.magic = TRAILER_OK;
	c->t.got = got;
	if (rc || bad >= 0 || got != c->h.up) {
		c->t.magic = TRAILER_BAD;
		if (!(c->h.flags & F_RESET_CLIENT))
			printf("server: seed %u from %s: up %" PRIu64 " bytes, got %" PRIu64
			       ", first wrong at %" PRId64 " %s\n",
			       c->h.seed, smc_addr_str(&c->peer, true, peer, sizeof(peer)), c->h.up,
			       got, bad, rc ? strerror(rerr) : "");
	}
	pthread_mutex_lock(&c->mu);
	c->read_done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(w, NULL);
	/* wait for the client's close before ours: no RST on unread bytes */
	while (recv_eof(c->fd) == 1)
		;
done:
	fflush(stdout);
out:
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return NULL;
}

static void *server_accept(void *p)
{
	int lfd = (int)(intptr_t)p;

	for (;;) {
		struct sockaddr_storage peer = { 0 };
		socklen_t len = sizeof(peer);
		struct sconn *c;
		pthread_t t;
		int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			perror("accept");
			exit(1);
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->peer = peer;
		if (pthread_create(&t, NULL, server_conn, c)) {
			close(fd);
			free(c);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

static int run_server(void)
{
	pthread_t t[MAX_TARGETS];

	for (int i = 0; i < n_targets; i++) {
		int one = 1, lfd = socket(targets[i].ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (targets[i].ss_family == AF_INET6)
			setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&targets[i], target_len[i]) ||
		    listen(lfd, 1024)) {
			perror("server: listen");
			return 1;
		}
		pthread_create(&t[i], NULL, server_accept, (void *)(intptr_t)lfd);
	}
	printf("server: listening\n");
	fflush(stdout);
	pthread_join(t[0], NULL);
	return 0;
}

/* ---- client ---------------------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Log-uniform in 1..max: as many 10-byte as 10-MiB transfers (a power of
 * two range picked uniformly, then a size in it).
 */
static uint64_t rnd_size(uint64_t *s)
{
	if (fixed_size)
		return fixed_size; /* --size: every transfer that long */
	unsigned int bits = 64 - (unsigned int)__builtin_clzll(max_size), b;
	uint64_t lo, v;

	b = (unsigned int)(rnd(s) % bits); /* 0..bits-1 */
	lo = 1ull << b;
	v = lo + rnd(s) % lo;
	return v > max_size ? max_size : v;
}

struct cconn {
	int fd;
	struct hdr h;
	int err;
};

static void *client_writer(void *p)
{
	struct cconn *c = p;
	uint64_t lim = (c->h.flags & F_RESET_CLIENT) ? c->h.up / 2 : c->h.up;

	c->err = send_pattern(c->fd, c->h.seed, c->h.up, lim);
	if (!c->err && !(c->h.flags & F_RESET_CLIENT))
		shutdown(c->fd, SHUT_WR);
	return NULL;
}

static int connect_target(int i)
{
	int fd = socket(targets[i].ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	timeouts(fd);
	if (connect(fd, (struct sockaddr *)&targets[i], target_len[i])) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One exchange; counts what went wrong. */
static void exchange(int ti, uint32_t seed, uint64_t up, uint64_t down, uint32_t flags)
{
	struct cconn c = {
		.h = { .magic = MAGIC, .flags = flags, .seed = seed, .up = up, .down = down }
	};
	struct trailer t = { 0 };
	struct sockaddr_storage local = { 0 };
	socklen_t llen = sizeof(local);
	char me[SMC_ADDR_STRLEN];
	pthread_t w;
	uint64_t got = 0;
	int64_t bad = -1;
	bool have_trailer = false;
	int rc, rerr;

	c.fd = connect_target(ti);
	if (c.fd < 0) {
		fprintf(stderr, "client: connect: %s\n", strerror(errno));
		atomic_fetch_add(&st_fail, 1);
		return;
	}
	/* a failure names this end, as the proxy's log and a capture do */
	if (getsockname(c.fd, (struct sockaddr *)&local, &llen))
		local.ss_family = AF_UNSPEC;
	smc_addr_str(&local, true, me, sizeof(me));
	if (write_all(c.fd, &c.h, sizeof(c.h))) {
		fprintf(stderr, "client: header: %s\n", strerror(errno));
		atomic_fetch_add(&st_fail, 1);
		close(c.fd);
		return;
	}
	pthread_create(&w, NULL, client_writer, &c);
	if (flags & F_RESET_CLIENT) {
		pthread_join(w, NULL);
		abort_conn(c.fd);
		atomic_fetch_add(&st_resets, 1);
		atomic_fetch_add(&st_conns, 1);
		return;
	}
	rc = recv_pattern(c.fd, seed + 1, down, false, &got, &bad);
	if (flags & F_RESET_SERVER) {
		/* the server sent half and reset: an error or a short read,
		 * never a wrong byte
		 */
		pthread_join(w, NULL);
		if (bad >= 0) {
			fprintf(stderr,
				"client: seed %u: wrong byte at %" PRId64 " before a reset\n", seed,
				bad);
			atomic_fetch_add(&st_corrupt, 1);
		}
		atomic_fetch_add(&st_resets, 1);
		atomic_fetch_add(&st_conns, 1);
		close(c.fd);
		return;
	}
	rerr = errno;
	if (!rc) {
		rc = recv_exact(c.fd, &t, sizeof(t));
		rerr = errno;
	}
	if (!rc) {
		have_trailer = true;
		rc = recv_eof(c.fd); /* then EOF */
		rerr = errno;
		rc = rc == 0 ? 0 : rc > 0 ? -2 : -3;
	}
	pthread_join(w, NULL);
	close(c.fd);
	if (bad >= 0) {
		fprintf(stderr,
			"client: seed %u from %s: down %" PRIu64 " bytes, first wrong at %" PRId64
			"\n",
			seed, me, down, bad);
		atomic_fetch_add(&st_corrupt, 1);
		return;
	}
	/* what the server said of the up bytes comes first, whatever followed it */
	if (have_trailer && !c.err && (t.magic != TRAILER_OK || t.got != up)) {
		fprintf(stderr,
			"client: seed %u from %s: the server got %" PRIu64 " of %" PRIu64
			" up bytes%s%s%s\n",
			seed, me, t.got, up, t.magic == TRAILER_BAD ? " (wrong or short)" : "",
			rc == -2 ? "; then bytes after the trailer" :
			rc == -3 ? "; then an error instead of EOF: " :
				   "",
			rc == -3 ? strerror(rerr) : "");
		atomic_fetch_add(&st_corrupt, 1);
		return;
	}
	if (rc || c.err) {
		fprintf(stderr,
			"client: seed %u from %s: down %" PRIu64 " bytes, got %" PRIu64 "%s%s%s\n",
			seed, me, down, got,
			rc == 1	 ? " (early EOF)" :
			rc == -1 ? " (read error or no trailer)" :
				   "",
			rc == -2 ? " (bytes after the trailer)" :
			rc == -3 ? " (an error instead of EOF after the trailer)" :
				   "",
			c.err ? " (write error)" : "");
		if (rc == -1 || rc == -3)
			fprintf(stderr, "client: seed %u: %s\n", seed, strerror(rerr));
		atomic_fetch_add(rc == -2 ? &st_corrupt : &st_fail, 1);
		return;
	}
	atomic_fetch_add(&st_bytes, up + down);
	atomic_fetch_add(&st_conns, 1);
}

static void *worker(void *p)
{
	uint64_t s = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull + base_seed;
	static atomic_uint next_seed;

	while (!atomic_load(&stop)) {
		uint32_t seed = atomic_fetch_add(&next_seed, 2) + base_seed * 1000003u;
		uint32_t flags = 0, r = (uint32_t)(rnd(&s) % 100);

		if (r < resets_pct)
			flags = (r & 1) ? F_RESET_SERVER : F_RESET_CLIENT;
		exchange((int)(rnd(&s) % (uint64_t)n_targets), seed, rnd_size(&s), rnd_size(&s),
			 flags);
		if (want_bytes && atomic_load(&st_bytes) >= want_bytes)
			atomic_store(&stop, true);
	}
	return NULL;
}

/* --churn: RATE small connections a second, opened and closed, by
 * CHURNERS threads (one slow exchange does not hold the rate back).
 */
#define CHURNERS 4

static void *churner(void *p)
{
	uint64_t s = 12345 + base_seed + (uintptr_t)p;
	double t0 = now_s(), next = t0, rate = (double)churn_rate / CHURNERS;
	unsigned long n = 0;

	while (!atomic_load(&stop)) {
		next = t0 + (double)++n / rate;
		exchange((int)(rnd(&s) % (uint64_t)n_targets), (uint32_t)rnd(&s), 1 + rnd(&s) % 64,
			 1 + rnd(&s) % 64, 0);
		atomic_fetch_add(&st_churn, 1);
		double d = next - now_s();

		if (d > 0)
			usleep((useconds_t)(d * 1e6));
	}
	return NULL;
}

/* TCP memory the kernel has allocated (pages, /proc/net/sockstat). */
static long tcp_mem_pages(void)
{
	char line[256];
	long mem = -1;
	FILE *f = fopen("/proc/net/sockstat", "re");

	while (f && fgets(line, sizeof(line), f)) {
		char *m = strstr(line, " mem ");

		if (!strncmp(line, "TCP:", 4) && m)
			mem = strtol(m + 5, NULL, 10);
	}
	if (f)
		fclose(f);
	return mem;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (*end == 'K' || *end == 'k')
		v *= 1024;
	else if (*end == 'M')
		v *= 1024 * 1024;
	else if (*end == 'G')
		v *= 1024.0 * 1024 * 1024;
	return (uint64_t)v;
}

static int run_client(unsigned int workers)
{
	pthread_t t[256], ct[CHURNERS];
	long base = tcp_mem_pages(), peak = base;
	double t0 = now_s(), el;
	uint64_t total;

	for (unsigned int i = 0; i < workers; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	for (int i = 0; churn_rate && i < CHURNERS; i++)
		pthread_create(&ct[i], NULL, churner, (void *)(uintptr_t)i);
	while (!atomic_load(&stop)) {
		long m = tcp_mem_pages();

		if (m > peak)
			peak = m;
		usleep(100000);
		if (duration_s > 0 && now_s() - t0 >= duration_s)
			atomic_store(&stop, true);
	}
	for (unsigned int i = 0; i < workers; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; churn_rate && i < CHURNERS; i++)
		pthread_join(ct[i], NULL);
	el = now_s() - t0;
	total = atomic_load(&st_bytes);
	printf("soak: bytes=%" PRIu64 " conns=%" PRIu64 " churn=%" PRIu64 " resets=%" PRIu64
	       " corruptions=%" PRIu64 " failures=%" PRIu64 " eagain_retries=%" PRIu64
	       " peak_tcp_mem_mib=%.1f duration_s=%.1f gbit_s=%.2f\n",
	       total, (uint64_t)atomic_load(&st_conns), (uint64_t)atomic_load(&st_churn),
	       (uint64_t)atomic_load(&st_resets), (uint64_t)atomic_load(&st_corrupt),
	       (uint64_t)atomic_load(&st_fail), (uint64_t)atomic_load(&st_eagain),
	       (double)(peak - base) * 4096 / (1 << 20), el, (double)total * 8 / el / 1e9);
	return atomic_load(&st_corrupt) || atomic_load(&st_fail) ? 1 : 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: sm-soak server ADDR:PORT...\n"
			"       sm-soak client [--bytes SIZE] [--duration S] [--workers N] "
			"[--max-size SIZE | --size SIZE] [--resets PCT] [--churn RATE] [--seed N] "
			"ADDR:PORT...\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned int workers = 4;
	bool server;
	int i;

	if (argc < 3)
		return usage();
	server = !strcmp(argv[1], "server");
	if (!server && strcmp(argv[1], "client"))
		return usage();
	signal(SIGPIPE, SIG_IGN);
	for (i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (a[0] != '-') {
			if (n_targets == MAX_TARGETS ||
			    parse_addr(a, &targets[n_targets], &target_len[n_targets])) {
				fprintf(stderr, "sm-soak: bad address '%s'\n", a);
				return 2;
			}
			n_targets++;
			continue;
		}
		if (!v)
			return usage();
		if (!strcmp(a, "--bytes"))
			want_bytes = parse_size(v);
		else if (!strcmp(a, "--duration"))
			duration_s = strtod(v, NULL);
		else if (!strcmp(a, "--workers"))
			workers = (unsigned int)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--max-size"))
			max_size = parse_size(v);
		else if (!strcmp(a, "--size"))
			fixed_size = parse_size(v);
		else if (!strcmp(a, "--resets"))
			resets_pct = (unsigned int)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--churn"))
			churn_rate = (unsigned int)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--seed"))
			base_seed = (unsigned int)strtoul(v, NULL, 10);
		else
			return usage();
		i++;
	}
	if (!n_targets || !workers || workers > 256 || !max_size || resets_pct > 100)
		return usage();
	if (server)
		return run_server();
	if (!want_bytes && duration_s <= 0)
		duration_s = 10;
	return run_client(workers);
}
