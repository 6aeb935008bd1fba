/* Descriptor flags and locks (fcntl) and the descriptor limit (RLIMIT_NOFILE), which Node does not offer. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
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

/* RLIMIT_NOFILE as {soft, hard}; RLIM_INFINITY reads as -1. */
static napi_value limits_object(napi_env env, const struct rlimit *rl) {
  napi_value obj;
  CHECK(napi_create_object(env, &obj));
  set_int(env, obj, "soft", rl->rlim_cur == RLIM_INFINITY ? -1 : (int64_t)rl->rlim_cur);
  set_int(env, obj, "hard", rl->rlim_max == RLIM_INFINITY ? -1 : (int64_t)rl->rlim_max);
  return obj;
}

/* openFileLimit(): the current RLIMIT_NOFILE. */
static napi_value open_file_limit(napi_env env, napi_callback_info info) {
  (void)info;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return throw_errno(env, errno, "getrlimit");
  return limits_object(env, &rl);
}

/* setOpenFileSoftLimit(soft): sets the soft RLIMIT_NOFILE, keeps the hard one; returns both. */
static napi_value set_open_file_soft_limit(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t soft;
  struct rlimit rl;
  if (!arg_int(env, argv[0], &soft) || soft < 0) return throw_type(env, "setOpenFileSoftLimit(soft)");
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return throw_errno(env, errno, "getrlimit");
  rl.rlim_cur = (rlim_t)soft;
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0) return throw_errno(env, errno, "setrlimit");
  return limits_object(env, &rl);
}

napi_status export_descriptors(napi_env env, napi_value exports) {
  static const native_export fns[] = {
      {"fcntl", fcntl_fd},
      {"lockFile", lock_file},
      {"openFileLimit", open_file_limit},
      {"setOpenFileSoftLimit", set_open_file_soft_limit},
  };
  return EXPORT_ALL(env, exports, fns);
}
