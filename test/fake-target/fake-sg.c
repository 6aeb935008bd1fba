/*
 * fake-sg.so: an LD_PRELOAD ioctl() interposer that plays a scripted SCSI
 * target, so SG_IO success and failure paths can be tested without hardware.
 *
 * Only SG_IO on a descriptor whose path (readlink /proc/self/fd/N) lies under
 * $FAKE_SG_DIR is faked; every other ioctl goes to libc untouched.
 * For a marked file X:
 *   X.sg    script, re-read on every call so tests can rewrite it (atomically,
 *           by rename). One key=value per line; '#' comments and blank lines
 *           are ignored; numbers are decimal or 0x-hex; hex may contain blanks.
 *           Keys: errno status host_status driver_status resid sense data
 *           delay_ms. Sections separated by a "---" line form a queue: call k
 *           (0-based) gets section min(k, last), so the last one repeats.
 *   X.sg.n  queue position. It lives in a file (not in memory) so it is shared
 *           by every process and thread using X and survives across processes;
 *           it is read and bumped under flock(), and only touched when the
 *           script has more than one section. Delete it to restart the queue.
 *   X.log   one line per call, appended with one write() on an O_APPEND fd so
 *           lines from concurrent threads never interleave.
 * Defaults: GOOD, no sense, resid = dxfer_len - bytes of data copied for
 * FROM_DEV (what a short read looks like), else 0. driver_status is never
 * set implicitly (a real kernel would add DRIVER_SENSE along with sense).
 * A missing or malformed script answers EIO and logs error=<reason>.
 * Bad pointers inside the header are not checked (the kernel would EFAULT).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <scsi/sg.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SCRIPT (1 << 20)
#define MAX_LOGGED_DATA 65536
#define CAP_SYS_RAWIO_BIT 17

typedef int (*ioctl_fn)(int, unsigned long, ...);
static ioctl_fn real_ioctl;
static char *fake_dir; /* canonical $FAKE_SG_DIR; written once before main() */

struct resp {
	long err, status, host, driver, resid, delay_ms;
	int has_resid;
	unsigned char *sense, *data;
	size_t sense_len, data_len;
};

static ioctl_fn get_real_ioctl(void)
{
	/* Resolved lazily too: other libraries' constructors may call ioctl before ours runs. */
	ioctl_fn f = __atomic_load_n(&real_ioctl, __ATOMIC_ACQUIRE);
	if (!f) {
		f = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
		__atomic_store_n(&real_ioctl, f, __ATOMIC_RELEASE);
	}
	return f;
}

__attribute__((constructor)) static void fake_sg_init(void)
{
	const char *d = getenv("FAKE_SG_DIR");
	get_real_ioctl();
	if (d && *d)
		fake_dir = realpath(d, NULL); /* readlink() reports canonical paths */
}

/* Whole file as a C string; *len = bytes read (a NUL inside makes strlen differ). */
static char *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && st.st_size < MAX_SCRIPT && (buf = malloc(st.st_size + 1))) {
		ssize_t n;
		while (got < (size_t)st.st_size && (n = read(fd, buf + got, st.st_size - got)) > 0)
			got += n;
		buf[got] = '\0';
	}
	close(fd);
	*len = got;
	return buf;
}

static char *trim(char *s)
{
	char *e = s + strlen(s);
	while (*s == ' ' || *s == '\t' || *s == '\r')
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int parse_num(const char *s, long min, long max, long *out)
{
	char *end;
	long v;
	errno = 0;
	v = strtol(s, &end, (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : 10);
	if (end == s || *end || errno || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_hex(const char *s, unsigned char **out, size_t *len)
{
	unsigned char *b = malloc(strlen(s) / 2 + 1);
	size_t n = 0;
	int hi = -1, v;
	if (!b)
		return -1;
	for (; *s; s++) {
		if (*s == ' ' || *s == '\t')
			continue;
		if (*s >= '0' && *s <= '9') v = *s - '0';
		else if (*s >= 'a' && *s <= 'f') v = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F') v = *s - 'A' + 10;
		else break;
		if (hi < 0) hi = v;
		else { b[n++] = (unsigned char)(hi << 4 | v); hi = -1; }
	}
	if (*s || hi >= 0) {
		free(b);
		return -1;
	}
	free(*out);
	*out = b;
	*len = n;
	return 0;
}

static long count_sections(const char *t)
{
	long n = 1;
	for (const char *l = t; l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		size_t len = strcspn(l, "\n");
		while (len && (l[len - 1] == '\r' || l[len - 1] == ' ' || l[len - 1] == '\t')) len--;
		while (len && (*l == ' ' || *l == '\t')) l++, len--;
		if (len == 3 && !strncmp(l, "---", 3)) n++;
	}
	return n;
}

/* Fills r from section `want` of the script (destroyed); returns an error word or NULL. */
static const char *parse_section(char *text, long want, struct resp *r)
{
	char *save = NULL, *line;
	long sect = 0;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq, *key, *val;
		line = trim(line);
		if (!*line || *line == '#') continue;
		if (!strcmp(line, "---")) { sect++; continue; }
		if (sect != want) continue;
		if (!(eq = strchr(line, '='))) return "malformed-line";
		*eq = '\0';
		key = trim(line);
		val = trim(eq + 1);
		if (!strcmp(key, "errno")) { if (parse_num(val, 0, 4095, &r->err)) return "bad-errno"; }
		else if (!strcmp(key, "status")) { if (parse_num(val, 0, 255, &r->status)) return "bad-status"; }
		else if (!strcmp(key, "host_status")) { if (parse_num(val, 0, 65535, &r->host)) return "bad-host_status"; }
		else if (!strcmp(key, "driver_status")) { if (parse_num(val, 0, 65535, &r->driver)) return "bad-driver_status"; }
		else if (!strcmp(key, "resid")) { if (parse_num(val, INT_MIN, INT_MAX, &r->resid)) return "bad-resid"; r->has_resid = 1; }
		else if (!strcmp(key, "delay_ms")) { if (parse_num(val, 0, 3600000, &r->delay_ms)) return "bad-delay_ms"; }
		else if (!strcmp(key, "sense")) { if (parse_hex(val, &r->sense, &r->sense_len)) return "bad-sense"; }
		else if (!strcmp(key, "data")) { if (parse_hex(val, &r->data, &r->data_len)) return "bad-data"; }
		else return "unknown-key";
	}
	return NULL;
}

/* Returns this call's 0-based queue slot (capped at nsect - 1), or -1. */
static long next_slot(const char *script, long nsect)
{
	char path[PATH_MAX + 16], buf[32] = "";
	long used = 0;
	int fd, len;
	if (nsect <= 1)
		return 0;
	snprintf(path, sizeof path, "%s.n", script);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666)) < 0)
		return -1;
	if (flock(fd, LOCK_EX) == 0 && pread(fd, buf, sizeof buf - 1, 0) >= 0) {
		used = strtol(buf, NULL, 10);
		used = used < 0 ? 0 : used;
		len = snprintf(buf, sizeof buf, "%ld\n", used + 1);
		if (ftruncate(fd, 0) || pwrite(fd, buf, len, 0) != len)
			used = -1;
	} else {
		used = -1;
	}
	close(fd); /* also drops the lock */
	return used < 0 ? -1 : used < nsect - 1 ? used : nsect - 1;
}

/* 1/0 = CAP_SYS_RAWIO in the calling thread's effective set, -1 = unknown. */
static int thread_has_rawio(void)
{
	char buf[8192], *p;
	ssize_t n, got = 0;
	int fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (got < (ssize_t)sizeof buf - 1 && (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
		got += n;
	close(fd);
	buf[got] = '\0';
	if (!(p = strstr(buf, "\nCapEff:")))
		return -1;
	return (int)((strtoull(p + 8, NULL, 16) >> CAP_SYS_RAWIO_BIT) & 1);
}

static char *put_hex(char *o, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; p && i < n; i++) {
		*o++ = digits[p[i] >> 4];
		*o++ = digits[p[i] & 15];
	}
	return o;
}

static void log_call(const char *path, const sg_io_hdr_t *h, long slot, long err, const char *why)
{
	int to_dev = h->dxfer_direction == SG_DXFER_TO_DEV || h->dxfer_direction == SG_DXFER_TO_FROM_DEV;
	size_t out_len = to_dev && h->dxferp ? (h->dxfer_len < MAX_LOGGED_DATA ? h->dxfer_len : MAX_LOGGED_DATA) : 0;
	char *line = malloc(512 + 2 * (size_t)h->cmd_len + 2 * out_len), *o;
	int fd;
	if (!line)
		return;
	o = line + sprintf(line, "pid=%d tid=%d cdb=", (int)getpid(), (int)gettid());
	o = put_hex(o, h->cmdp, h->cmd_len);
	o += sprintf(o, " dir=%d len=%u timeout=%u iface=%d mx_sb_len=%u out=", h->dxfer_direction,
		     h->dxfer_len, h->timeout, h->interface_id, h->mx_sb_len);
	o = put_hex(o, h->dxferp, out_len);
	o += sprintf(o, " rawio=%d slot=%ld errno=%ld%s%s\n", thread_has_rawio(), slot, err,
		     why ? " error=" : "", why ? why : "");
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666)) >= 0) {
		if (write(fd, line, o - line) < 0) { /* nowhere to report it */ }
		close(fd);
	}
	free(line);
}

static int fake_sg_io(const char *target, sg_io_hdr_t *h)
{
	char script[PATH_MAX + 8], logpath[PATH_MAX + 8];
	struct resp r = { 0 };
	const char *why = NULL;
	long slot = 0;
	char *text;
	size_t text_len = 0;
	int from_dev = h->dxfer_direction == SG_DXFER_FROM_DEV || h->dxfer_direction == SG_DXFER_TO_FROM_DEV;
	size_t copied = 0;

	snprintf(script, sizeof script, "%s.sg", target);
	snprintf(logpath, sizeof logpath, "%s.log", target);
	if (!(text = read_file(script, &text_len)))
		why = "no-script";
	else if (strlen(text) != text_len)
		why = "nul-byte";
	else if ((slot = next_slot(script, count_sections(text))) < 0)
		why = "counter";
	else if (h->iovec_count)
		why = "iovec-unsupported";
	else
		why = parse_section(text, slot, &r);
	free(text);
	if (why)
		r.err = EIO;
	log_call(logpath, h, slot, r.err, why);

	if (r.delay_ms) {
		struct timespec ts = { r.delay_ms / 1000, (r.delay_ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
	}
	if (!r.err) {
		h->status = (unsigned char)r.status;
		h->masked_status = (unsigned char)((r.status >> 1) & 0x7f);
		h->msg_status = 0;
		h->host_status = (unsigned short)r.host;
		h->driver_status = (unsigned short)r.driver;
		h->sb_len_wr = 0;
		if (h->sbp && r.sense_len) {
			h->sb_len_wr = (unsigned char)(r.sense_len < h->mx_sb_len ? r.sense_len : h->mx_sb_len);
			memcpy(h->sbp, r.sense, h->sb_len_wr);
		}
		if (from_dev && h->dxferp) {
			copied = r.data_len < h->dxfer_len ? r.data_len : h->dxfer_len;
			memcpy(h->dxferp, r.data, copied);
		}
		h->resid = r.has_resid ? (int)r.resid : from_dev ? (int)(h->dxfer_len - copied) : 0;
		h->duration = (unsigned int)r.delay_ms;
		h->info = (r.status || r.host || r.driver) ? SG_INFO_CHECK : SG_INFO_OK;
	}
	free(r.sense);
	free(r.data);
	if (r.err) {
		errno = (int)r.err;
		return -1;
	}
	return 0;
}

int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;
	char link[64], target[PATH_MAX];
	ssize_t n;
	size_t dl;

	va_start(ap, request);
	arg = va_arg(ap, void *); /* every ioctl takes at most one pointer-sized argument */
	va_end(ap);

	if (request == SG_IO && fake_dir) {
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof target - 1);
		dl = strlen(fake_dir);
		if (n > 0 && (size_t)n > dl && !strncmp(target, fake_dir, dl) && target[dl] == '/') {
			target[n] = '\0';
			if (!arg) {
				errno = EFAULT;
				return -1;
			}
			return fake_sg_io(target, arg);
		}
	}
	return get_real_ioctl()(fd, request, arg);
}
