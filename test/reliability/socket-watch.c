/*
 * socket-watch: spins on a socket path while a daemon starts, recording every
 * (mode, gid) the inode is seen with and whether connect() succeeds. Run it
 * under the identity whose access must be refused (e.g. setpriv --reuid=65534
 * --regid=0): any successful connect is a window in which that identity could
 * reach the daemon.
 *
 *   socket-watch PATH DURATION_MS REQUESTED_MODE(octal) REQUESTED_GID
 *
 * Stops after DURATION_MS or on SIGINT/SIGTERM, then prints one JSON line:
 *   {"samples":N,"seen":["0600:0",...],"wider":W,"foreignGroup":G,"connects":C}
 * wider: samples whose permission bits exceed REQUESTED_MODE;
 * foreignGroup: samples with group bits set while the group is not REQUESTED_GID.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_SEEN 64

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned seen_mode[MAX_SEEN];
	long seen_gid[MAX_SEEN];
	int nseen = 0;
	long long samples = 0, wider = 0, foreign = 0, connects = 0;
	if (argc != 5) {
		fprintf(stderr, "usage: socket-watch PATH DURATION_MS MODE GID\n");
		return 2;
	}
	const char *path = argv[1];
	long long until = now_ms() + atoll(argv[2]);
	unsigned requested = (unsigned)strtoul(argv[3], NULL, 8);
	long gid = atol(argv[4]);
	if (strlen(path) >= sizeof sa.sun_path)
		return 2;
	strcpy(sa.sun_path, path);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (!stop && now_ms() < until) {
		for (int spin = 0; spin < 256; spin++) {
			struct stat st;
			if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
				continue;
			samples++;
			unsigned mode = st.st_mode & 07777;
			if (mode & ~requested)
				wider++;
			if ((mode & 070) && (long)st.st_gid != gid)
				foreign++;
			int known = 0;
			for (int i = 0; i < nseen; i++)
				if (seen_mode[i] == mode && seen_gid[i] == (long)st.st_gid)
					known = 1;
			if (!known && nseen < MAX_SEEN) {
				seen_mode[nseen] = mode;
				seen_gid[nseen++] = (long)st.st_gid;
			}
			int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fd >= 0) {
				if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
					connects++;
				close(fd);
			}
		}
	}
	printf("{\"samples\":%lld,\"seen\":[", samples);
	for (int i = 0; i < nseen; i++)
		printf("%s\"%04o:%ld\"", i ? "," : "", seen_mode[i], seen_gid[i]);
	printf("],\"wider\":%lld,\"foreignGroup\":%lld,\"connects\":%lld}\n", wider, foreign, connects);
	return 0;
}
