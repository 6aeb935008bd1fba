/*
 * bind-racer.so: an LD_PRELOAD bind() interposer that plays the attacker who
 * can write the socket's directory, at the worst moment. Right after the real
 * bind() of $RACE_PATH succeeds it renames the fresh socket to
 * $RACE_PATH.moved and puts a symlink to $RACE_VICTIM in its place, once per
 * process. Whatever the daemon then does to $RACE_PATH lands on the victim.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	static int done;
	bind_fn real = (bind_fn)dlsym(RTLD_NEXT, "bind");
	int rc = real(fd, addr, len);
	const char *path = getenv("RACE_PATH"), *victim = getenv("RACE_VICTIM");
	if (rc != 0 || done || !path || !victim || addr->sa_family != AF_UNIX) return rc;
	if (strcmp(((const struct sockaddr_un *)addr)->sun_path, path) != 0) return rc;
	char moved[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	snprintf(moved, sizeof moved, "%s.moved", path);
	done = 1;
	if (rename(path, moved) == 0 && symlink(victim, path) == 0) return rc;
	abort();
}
