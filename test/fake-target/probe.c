/*
 * probe: issues SG_IO on a path and prints what came back as one JSON line per
 * call, so the fake target can be tested without the project's native binding.
 *
 * usage: probe [-r] [-d none|to|from] [-l dxfer_len] [-w hex] [-T timeout]
 *              [-n calls] [-t threads] [-c] PATH CDB_HEX
 *   -r  open O_RDONLY (default O_RDWR)      -w  data-out bytes (TO_DEV)
 *   -n  calls per thread (default 1)        -t  threads (default 1, all share the fd)
 *   -c  odd-numbered threads drop CAP_SYS_RAWIO from their own effective set
 *       first (capabilities are per thread, which is what the fake target reports)
 * Exit status 0 unless the arguments or open() were bad.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <scsi/sg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fd, dir = SG_DXFER_FROM_DEV, calls = 1, drop_in_odd_threads;
static unsigned dxfer_len = 8192, timeout_ms = 1;
static unsigned char cdb[64], out_data[65536];
static size_t cdb_len, out_len;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t from_hex(const char *s, unsigned char *b, size_t max)
{
	size_t n = 0;
	unsigned v;
	while (s[0] && s[1] && n < max && sscanf(s, "%2x", &v) == 1) {
		b[n++] = (unsigned char)v;
		s += 2;
	}
	if (*s) {
		fprintf(stderr, "probe: bad or too long hex\n");
		exit(2);
	}
	return n;
}

static void print_hex(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
}

/* capset() through the raw syscall with pid 0 changes only the calling thread. */
static void drop_rawio_in_this_thread(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct caps[2];
	if (syscall(SYS_capget, &hdr, caps) == 0) {
		caps[0].effective &= ~(1u << CAP_SYS_RAWIO);
		if (syscall(SYS_capset, &hdr, caps) != 0)
			perror("probe: capset");
	}
}

static void *run(void *index)
{
	if (drop_in_odd_threads && ((long)index & 1))
		drop_rawio_in_this_thread();
	for (int i = 0; i < calls; i++) {
		unsigned char sense[96] = { 0 }, *buf = calloc(1, dxfer_len ? dxfer_len : 1);
		sg_io_hdr_t h;
		int ret, err;
		memset(&h, 0, sizeof h);
		if (dir == SG_DXFER_TO_DEV)
			memcpy(buf, out_data, out_len < dxfer_len ? out_len : dxfer_len);
		h.interface_id = 'S';
		h.cmd_len = (unsigned char)cdb_len;
		h.cmdp = cdb;
		h.mx_sb_len = sizeof sense;
		h.sbp = sense;
		h.timeout = timeout_ms;
		h.dxfer_direction = dir;
		h.dxferp = dir == SG_DXFER_NONE ? NULL : buf;
		h.dxfer_len = dir == SG_DXFER_NONE ? 0 : dxfer_len;
		ret = ioctl(fd, SG_IO, &h);
		err = ret < 0 ? errno : 0;
		pthread_mutex_lock(&print_lock);
		printf("{\"ret\":%d,\"errno\":%d,\"status\":%u,\"masked_status\":%u,\"host_status\":%u,"
		       "\"driver_status\":%u,\"resid\":%d,\"sb_len_wr\":%u,\"duration\":%u,\"info\":%u,\"sense\":\"",
		       ret, err, h.status, h.masked_status, h.host_status, h.driver_status, h.resid,
		       h.sb_len_wr, h.duration, h.info);
		print_hex(sense, sizeof sense);
		printf("\",\"data\":\"");
		if (dir == SG_DXFER_FROM_DEV)
			print_hex(buf, dxfer_len);
		printf("\"}\n");
		fflush(stdout);
		pthread_mutex_unlock(&print_lock);
		free(buf);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int opt, flags = O_RDWR, threads = 1;
	pthread_t tids[64];
	while ((opt = getopt(argc, argv, "rd:l:w:T:n:t:c")) != -1) {
		switch (opt) {
		case 'r': flags = O_RDONLY; break;
		case 'd': dir = !strcmp(optarg, "none") ? SG_DXFER_NONE : !strcmp(optarg, "to") ? SG_DXFER_TO_DEV : SG_DXFER_FROM_DEV; break;
		case 'l': dxfer_len = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'w': out_len = from_hex(optarg, out_data, sizeof out_data); break;
		case 'T': timeout_ms = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'n': calls = atoi(optarg); break;
		case 't': threads = atoi(optarg); break;
		case 'c': drop_in_odd_threads = 1; break;
		default: return 2;
		}
	}
	if (optind + 2 != argc || threads < 1 || threads > 64) {
		fprintf(stderr, "usage: probe [-r] [-d none|to|from] [-l len] [-w hex] [-T ms] [-n calls] [-t threads] [-c] PATH CDB_HEX\n");
		return 2;
	}
	cdb_len = from_hex(argv[optind + 1], cdb, sizeof cdb);
	if ((fd = open(argv[optind], flags | O_CLOEXEC)) < 0) {
		perror("probe: open");
		return 2;
	}
	for (long i = 0; i < threads; i++)
		pthread_create(&tids[i], NULL, run, (void *)i);
	for (int i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
	close(fd);
	return 0;
}
