/* sd_notify(3) for Type=notify services: one datagram to $NOTIFY_SOCKET. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "addon.h"

/* sdNotify(socketPath, message): one datagram, like sd_notify(3). */
static napi_value sd_notify(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  char path[UNIX_PATH_SIZE], message[1024];
  struct sockaddr_un sa;
  socklen_t salen;
  if (!arg_string(env, argv[0], path, sizeof path) || !arg_string(env, argv[1], message, sizeof message))
    return throw_type(env, "sdNotify(socketPath, message)");
  if (!fill_sockaddr(path, &sa, &salen)) return throw_errno(env, ENAMETOOLONG, "sendto");
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  ssize_t n = sendto(fd, message, strlen(message), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
  int err = errno;
  close(fd);
  if (n < 0) return throw_errno(env, err, "sendto");
  return NULL;
}

napi_status export_notify(napi_env env, napi_value exports) {
  static const native_export fns[] = {{"sdNotify", sd_notify}};
  return EXPORT_ALL(env, exports, fns);
}
