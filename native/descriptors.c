#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addon.h"

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return throw_type(env, "close(fd)");
  /* Linux releases the descriptor even when close() reports EINTR/EIO, so
   * retrying would close someone else's fd. */
  if (close(fd) < 0 && errno == EBADF) return throw_errno(env, errno, "close");
  return NULL;
}

/* fstat(fd, out): out (Float64Array of 6) receives mode, dev, ino, rdev, uid, gid. */
static napi_value fstat_fd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  double *out;
  struct stat st;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !arg_int(env, argv[0], &fd) || !arg_typed(env, argv[1], napi_float64_array, 6, (void **)&out))
    return throw_type(env, "fstat(fd, out)");
  if (fstat(fd, &st) < 0) return throw_errno(env, errno, "fstat");
  out[0] = st.st_mode;
  out[1] = (double)st.st_dev;
  out[2] = (double)st.st_ino;
  out[3] = (double)st.st_rdev;
  out[4] = st.st_uid;
  out[5] = st.st_gid;
  return NULL;
}

/* fcntl(fd, cmd, arg?) for F_GETFL/F_SETFL/F_GETFD/F_SETFD only. */
static napi_value fcntl_fd(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd, cmd, arg = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &cmd) ||
      (argc > 2 && !arg_int(env, argv[2], &arg)))
    return throw_type(env, "fcntl(fd, cmd, arg?)");
  if (cmd != F_GETFL && cmd != F_SETFL && cmd != F_GETFD && cmd != F_SETFD)
    return throw_type(env, "fcntl: unsupported command");
  int r = fcntl(fd, cmd, arg);
  if (r < 0) return throw_errno(env, errno, "fcntl");
  return make_int(env, r);
}

/* lockFile(fd): a whole-file write lock (F_SETLK), as lockf() takes it; EAGAIN/EACCES when held. */
static napi_value lock_file(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return throw_type(env, "lockFile(fd)");
  if (fcntl(fd, F_SETLK, &fl) < 0) return throw_errno(env, errno, "fcntl");
  return NULL;
}

/* isListeningSocket(fd) -> boolean, for an inherited (socket-activated) fd. */
static napi_value is_listening_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], r;
  int32_t fd;
  int val = 0, type = 0;
  socklen_t len = sizeof val;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return throw_type(env, "isListeningSocket(fd)");
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &len) < 0) {
    if (errno == ENOTSOCK) val = 0;
    else return throw_errno(env, errno, "getsockopt");
  }
  len = sizeof type;
  if (val && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) return throw_errno(env, errno, "getsockopt");
  napi_get_boolean(env, val && type == SOCK_STREAM, &r);
  return r;
}

napi_status export_descriptors(napi_env env, napi_value exports) {
  static const native_export fns[] = {
      {"close", close_fd},
      {"fstat", fstat_fd},
      {"fcntl", fcntl_fd},
      {"isListeningSocket", is_listening_socket},
      {"lockFile", lock_file},
  };
  return export_functions(env, exports, fns, sizeof fns / sizeof fns[0]);
}
