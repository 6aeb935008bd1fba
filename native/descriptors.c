/* Descriptor flags and locks (fcntl), which Node's fs does not offer. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "addon.h"

/* fcntl(fd, cmd, arg?) for F_GETFL/F_SETFL/F_GETFD/F_SETFD only. */
static napi_value fcntl_fd(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int32_t fd, cmd, arg = 0;
  if (!arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &cmd) || (argc > 2 && !arg_int(env, argv[2], &arg)))
    return throw_type(env, "fcntl(fd, cmd, arg?)");
  if (cmd != F_GETFL && cmd != F_SETFL && cmd != F_GETFD && cmd != F_SETFD)
    return throw_type(env, "fcntl: unsupported command");
  int r = fcntl(fd, cmd, arg);
  if (r < 0) return throw_errno(env, errno, "fcntl");
  return make_int(env, r);
}

/* lockFile(fd): a whole-file write lock (F_SETLK), as lockf() takes it; EAGAIN/EACCES when held. */
static napi_value lock_file(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t fd;
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  if (!arg_int(env, argv[0], &fd)) return throw_type(env, "lockFile(fd)");
  if (fcntl(fd, F_SETLK, &fl) < 0) return throw_errno(env, errno, "fcntl");
  return NULL;
}

napi_status export_descriptors(napi_env env, napi_value exports) {
  static const native_export fns[] = {{"fcntl", fcntl_fd}, {"lockFile", lock_file}};
  return EXPORT_ALL(env, exports, fns);
}
