/*
 * Thin N-API binding for pr-helper: the syscalls Node cannot make itself
 * (SCM_RIGHTS, SO_PEERCRED, SG_IO, capabilities, sd_notify). No policy here;
 * src/native/binding.ts is the only importer and adds the types.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <scsi/sg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#include "thread-credentials.h"

#define SENSE_LEN 96
#define MAX_FDS 253 /* SCM_MAX_FD: the kernel never delivers more per message */

#define CHECK(call)                                                           \
  do {                                                                        \
    if ((call) != napi_ok) return NULL;                                       \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char *syscall_name) {
  const char *name = strerrorname_np(err);
  napi_value code, msg, error, sc;
  char text[160];
  snprintf(text, sizeof text, "%s %s: %s", syscall_name, name ? name : "E?", strerror(err));
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, error, "syscall", sc);
  napi_create_int32(env, err, &sc);
  napi_set_named_property(env, error, "errno", sc);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static napi_value make_int(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}

static void set_int(napi_env env, napi_value obj, const char *key, int64_t v) {
  napi_set_named_property(env, obj, key, make_int(env, v));
}

static int arg_int(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static int arg_buffer(napi_env env, napi_value v, void **data, size_t *len) {
  bool is_buf = false;
  if (napi_is_buffer(env, v, &is_buf) != napi_ok || !is_buf) return 0;
  return napi_get_buffer_info(env, v, data, len) == napi_ok;
}

static int arg_string(napi_env env, napi_value v, char *buf, size_t size) {
  size_t n;
  if (napi_get_value_string_utf8(env, v, buf, size, &n) != napi_ok) return 0;
  return n < size - 1;
}

static int fill_sockaddr(const char *path, struct sockaddr_un *sa, socklen_t *len) {
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof sa->sun_path) return 0;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  memcpy(sa->sun_path, path, n);
  /* '@' names an abstract socket (systemd's NOTIFY_SOCKET convention). */
  if (path[0] == '@') sa->sun_path[0] = '\0';
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));
  return 1;
}

/* listenUnix(path, backlog, mode, gid) -> fd. The umask makes the inode appear
 * with its final mode, and the group (gid -1: keep) is set before listen(), so
 * no connection is possible while it is more permissive than asked. */
static napi_value listen_unix(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  int32_t backlog, mode, gid;
  struct sockaddr_un sa;
  socklen_t salen;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || !arg_string(env, argv[0], path, sizeof path) || !arg_int(env, argv[1], &backlog) ||
      !arg_int(env, argv[2], &mode) || !arg_int(env, argv[3], &gid))
    return throw_type(env, "listenUnix(path, backlog, mode, gid)");
  if (!fill_sockaddr(path, &sa, &salen)) return throw_errno(env, ENAMETOOLONG, "bind");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  mode_t old = umask((mode_t)(~mode & 0777));
  int rc = bind(fd, (struct sockaddr *)&sa, salen);
  int err = errno;
  umask(old);
  if (rc < 0) {
    close(fd);
    return throw_errno(env, err, "bind");
  }
  if (gid >= 0 && chown(path, (uid_t)-1, (gid_t)gid) < 0) {
    err = errno;
    close(fd);
    unlink(path);
    return throw_errno(env, err, "chown");
  }
  if (listen(fd, backlog) < 0) {
    err = errno;
    close(fd);
    return throw_errno(env, err, "listen");
  }
  return make_int(env, fd);
}

/* connectUnix(path) -> fd (blocking connect, then non-blocking). */
static napi_value connect_unix(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  struct sockaddr_un sa;
  socklen_t salen;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_string(env, argv[0], path, sizeof path)) return throw_type(env, "connectUnix(path)");
  if (!fill_sockaddr(path, &sa, &salen)) return throw_errno(env, ENAMETOOLONG, "connect");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  if (connect(fd, (struct sockaddr *)&sa, salen) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "connect");
  }
  return make_int(env, fd);
}

/* socketPair() -> [fd, fd], non-blocking, close-on-exec. */
static napi_value socket_pair(napi_env env, napi_callback_info info) {
  int sv[2];
  napi_value arr;
  (void)info;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
    return throw_errno(env, errno, "socketpair");
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, make_int(env, sv[0]));
  napi_set_element(env, arr, 1, make_int(env, sv[1]));
  return arr;
}

/* accept(fd) -> {fd, pid, uid, gid} or null when no connection is pending. */
static napi_value accept_conn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], obj;
  int32_t lfd;
  struct ucred cred;
  socklen_t len = sizeof cred;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &lfd)) return throw_type(env, "accept(fd)");
  int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    napi_value null;
    if (errno == EAGAIN || errno == ECONNABORTED || errno == EINTR) {
      napi_get_null(env, &null);
      return null;
    }
    return throw_errno(env, errno, "accept4");
  }
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "getsockopt");
  }
  napi_create_object(env, &obj);
  set_int(env, obj, "fd", fd);
  set_int(env, obj, "pid", cred.pid);
  set_int(env, obj, "uid", cred.uid);
  set_int(env, obj, "gid", cred.gid);
  return obj;
}

/* Int32Array (or Float64Array) argument with at least `min` elements. */
static int arg_typed(napi_env env, napi_value v, napi_typedarray_type want, size_t min, void **data) {
  bool is = false;
  napi_typedarray_type type;
  size_t length;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  if (napi_get_typedarray_info(env, v, &type, &length, data, NULL, NULL) != napi_ok) return 0;
  return type == want && length >= min;
}

/* recvmsg(fd, buffer, offset, length, meta) -> bytes, or null on EAGAIN;
 * bytes 0 means EOF. meta (Int32Array, 2 + 253 elements) receives the
 * descriptor count, the truncation flag (MSG_CTRUNC) and every descriptor
 * received, so that the caller can close what it does not keep. Results go
 * into the caller's array because building an object with named properties
 * from C costs more than the system call. */
#define RECV_META_LEN (2 + MAX_FDS)
static napi_value recv_msg(napi_env env, napi_callback_info info) {
  size_t argc = 5, len;
  napi_value argv[5];
  int32_t fd, off, want;
  int32_t *meta;
  void *data;
  union {
    char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
    struct cmsghdr align;
  } control;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5 || !arg_int(env, argv[0], &fd) || !arg_buffer(env, argv[1], &data, &len) ||
      !arg_int(env, argv[2], &off) || !arg_int(env, argv[3], &want) || off < 0 || want < 0 ||
      (size_t)off + (size_t)want > len || !arg_typed(env, argv[4], napi_int32_array, RECV_META_LEN, (void **)&meta))
    return throw_type(env, "recvmsg(fd, buffer, offset, length, meta)");
  struct iovec iov = {.iov_base = (char *)data + off, .iov_len = (size_t)want};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                       .msg_controllen = sizeof control.buf};
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) {
      napi_value null;
      napi_get_null(env, &null);
      return null;
    }
    return throw_errno(env, errno, "recvmsg");
  }
  int32_t count = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *p = (int *)CMSG_DATA(c);
    for (size_t i = 0; i < nfd && count < MAX_FDS; i++) meta[2 + count++] = p[i];
  }
  meta[0] = count;
  meta[1] = (msg.msg_flags & MSG_CTRUNC) != 0;
  return make_int(env, n);
}

/* sendmsg(fd, buffer, offset, length, fds?) -> bytes sent, or null on EAGAIN.
 * MSG_NOSIGNAL: a vanished peer must give EPIPE, never kill the daemon. */
static napi_value send_msg(napi_env env, napi_callback_info info) {
  size_t argc = 5, len;
  napi_value argv[5];
  int32_t fd, off, count;
  uint32_t nfds = 0;
  void *data;
  union {
    char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
    struct cmsghdr align;
  } control;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || !arg_int(env, argv[0], &fd) || !arg_buffer(env, argv[1], &data, &len) ||
      !arg_int(env, argv[2], &off) || !arg_int(env, argv[3], &count) || off < 0 || count < 0 ||
      (size_t)off + (size_t)count > len)
    return throw_type(env, "sendmsg(fd, buffer, offset, length, fds?)");
  struct iovec iov = {.iov_base = (char *)data + off, .iov_len = (size_t)count};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  bool is_array = false;
  if (argc > 4) napi_is_array(env, argv[4], &is_array);
  if (is_array) napi_get_array_length(env, argv[4], &nfds);
  if (nfds > MAX_FDS) return throw_type(env, "sendmsg: too many descriptors");
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    int *p = (int *)CMSG_DATA(c);
    for (uint32_t i = 0; i < nfds; i++) {
      napi_value v;
      napi_get_element(env, argv[4], i, &v);
      if (!arg_int(env, v, &p[i])) return throw_type(env, "sendmsg: fds must be integers");
    }
  }
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) {
      napi_value null;
      napi_get_null(env, &null);
      return null;
    }
    return throw_errno(env, errno, "sendmsg");
  }
  return make_int(env, n);
}

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

/* shutdown(fd, how): lets a client send end-of-stream while still reading. */
static napi_value shutdown_fd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd, how;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &how)) return throw_type(env, "shutdown(fd, how)");
  if (shutdown(fd, how) < 0) return throw_errno(env, errno, "shutdown");
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

/* ---- readiness watching (uv_poll) ---------------------------------------- */

typedef struct {
  uv_poll_t handle;
  napi_env env;
  napi_ref callback;
  napi_ref self; /* keeps the JS handle object alive while polling */
  napi_async_context context;
  int closed;
} poll_watch;

static void poll_closed(uv_handle_t *h) { free(h->data); }

static void poll_release(poll_watch *w) {
  if (w->closed) return;
  w->closed = 1;
  napi_delete_reference(w->env, w->callback);
  napi_delete_reference(w->env, w->self);
  napi_async_destroy(w->env, w->context);
  uv_close((uv_handle_t *)&w->handle, poll_closed);
}

static void poll_fired(uv_poll_t *h, int status, int events) {
  poll_watch *w = h->data;
  napi_env env = w->env;
  napi_handle_scope scope;
  napi_value cb, self, argv[2], result;
  if (w->closed) return;
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, w->callback, &cb);
  napi_get_reference_value(env, w->self, &self);
  argv[0] = make_int(env, status);
  argv[1] = make_int(env, events);
  /* make_callback drains nextTick/microtasks like Node's own I/O callbacks. */
  if (napi_make_callback(env, w->context, self, cb, 2, argv, &result) == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

static void poll_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  poll_release(data);
}

/* poll(fd, events, callback(status, events)) -> handle. Events: 1 readable, 2 writable. */
static napi_value poll_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], obj, name;
  int32_t fd, events;
  uv_loop_t *loop;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || !arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &events))
    return throw_type(env, "poll(fd, events, callback)");
  CHECK(napi_get_uv_event_loop(env, &loop));
  poll_watch *w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, ENOMEM, "poll");
  int rc = uv_poll_init(loop, &w->handle, fd);
  if (rc < 0) {
    free(w);
    return throw_errno(env, -rc, "uv_poll_init");
  }
  w->handle.data = w;
  w->env = env;
  napi_create_object(env, &obj);
  napi_create_reference(env, argv[2], 1, &w->callback);
  napi_create_reference(env, obj, 1, &w->self);
  napi_create_string_utf8(env, "pr-helper:poll", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, obj, name, &w->context);
  /* The finalizer only runs after pollClose() dropped the strong self reference,
   * or at environment teardown; poll_release is idempotent. */
  napi_wrap(env, obj, w, poll_finalize, NULL, NULL);
  rc = uv_poll_start(&w->handle, events, poll_fired);
  if (rc < 0) {
    poll_release(w);
    return throw_errno(env, -rc, "uv_poll_start");
  }
  return obj;
}

static poll_watch *unwrap_poll(napi_env env, napi_value v) {
  void *w = NULL;
  if (napi_unwrap(env, v, &w) != napi_ok) return NULL;
  return w;
}

/* pollUpdate(handle, events): events 0 pauses without closing. */
static napi_value poll_update(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t events;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  poll_watch *w = argc >= 2 ? unwrap_poll(env, argv[0]) : NULL;
  if (!w || !arg_int(env, argv[1], &events)) return throw_type(env, "pollUpdate(handle, events)");
  if (w->closed) return NULL;
  int rc = events ? uv_poll_start(&w->handle, events, poll_fired) : uv_poll_stop(&w->handle);
  if (rc < 0) return throw_errno(env, -rc, "uv_poll_start");
  return NULL;
}

static napi_value poll_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *w = NULL;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_remove_wrap(env, argv[0], &w) != napi_ok || !w) return NULL;
  poll_release(w);
  return NULL;
}

/* ---- SG_IO on worker threads --------------------------------------------- */

/* Every command gets a thread of its own at once, never a queue slot behind
 * other commands (so not libuv's 4-thread pool): a hung device must never hold
 * up commands to healthy devices, and the helper runs at most one command per
 * connection. Threads are kept after their command and reused: creating and
 * tearing down a thread per command (clone, stack mmap/munmap) cost more than
 * the rest of a request. A thread is reused only when it is idle; when none is
 * idle a new one starts, so the pool grows to the peak number of concurrent
 * commands, and threads idle for POOL_IDLE_SECONDS exit. */
#define POOL_IDLE_SECONDS 10

/* What a command resolves with: one allocation that becomes one Buffer,
 * 8 doubles (errno, status, masked_status, host_status, driver_status, resid,
 * sb_len_wr, duration in ns), then the 96 sense bytes, then for FROM_DEV the
 * data-in buffer. binding.ts turns it into the SgioResult object; building
 * that object (two Buffers and eight properties) from C cost more per command
 * than the SG_IO round trip to a thread. */
#define RESULT_INTS 8
#define RESULT_SENSE (RESULT_INTS * sizeof(double))
#define RESULT_DATA (RESULT_SENSE + SENSE_LEN)

typedef struct sgio_job {
  int fd, direction, timeout_ms, err;
  unsigned char cdb[16];
  unsigned char cdb_len;
  unsigned char *result; /* RESULT_DATA + data_len bytes (FROM_DEV), else RESULT_DATA */
  size_t result_len;
  unsigned char *data_out; /* TO_DEV: a copy of the caller's parameters */
  size_t data_len;
  sg_io_hdr_t hdr;
  int64_t duration_ns;
  napi_deferred deferred;
  napi_threadsafe_function tsfn;
} sgio_job;

/* Per environment (main thread or worker): one completion channel for all
 * its commands, holding the event loop open only while commands run. */
typedef struct {
  napi_threadsafe_function tsfn;
  uint32_t running; /* touched on the environment's own thread only */
} sgio_env;

/* An idle worker parks on its own semaphore; a submitter pops it off the idle
 * stack and posts the job to it directly, so a handoff is one short critical
 * section and at most one futex wake. */
typedef struct pool_worker {
  sem_t wake;
  sgio_job *job; /* written by the submitter before sem_post */
  struct pool_worker *next_idle;
} pool_worker;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pool_worker *pool_idle_top; /* LIFO: the most recently busy thread is reused first */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void free_external(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  free(data);
}

static void sgio_job_free(sgio_job *job) {
  free(job->result);
  free(job->data_out);
  free(job);
}

static void sgio_complete(napi_env env, napi_value js_cb, void *context, void *data) {
  sgio_job *job = data;
  sgio_env *state = context;
  napi_value result;
  void *copy;
  (void)js_cb;
  if (env) {
    double *ints = (double *)job->result;
    ints[0] = job->err;
    ints[1] = job->hdr.status;
    ints[2] = job->hdr.masked_status;
    ints[3] = job->hdr.host_status;
    ints[4] = job->hdr.driver_status;
    ints[5] = job->hdr.resid;
    ints[6] = job->hdr.sb_len_wr;
    ints[7] = (double)job->duration_ns;
    /* The block becomes the Buffer's memory (freed when it is collected). */
    if (napi_create_external_buffer(env, job->result_len, job->result, free_external, NULL, &result) == napi_ok) {
      job->result = NULL;
    } else {
      napi_create_buffer_copy(env, job->result_len, job->result, &copy, &result);
    }
    napi_resolve_deferred(env, job->deferred, result);
    if (state && --state->running == 0) napi_unref_threadsafe_function(env, state->tsfn);
  }
  sgio_job_free(job);
}

static void run_job(sgio_job *job) {
  memset(&job->hdr, 0, sizeof job->hdr);
  job->hdr.interface_id = 'S';
  job->hdr.cmd_len = job->cdb_len;
  job->hdr.cmdp = job->cdb;
  job->hdr.mx_sb_len = SENSE_LEN;
  job->hdr.sbp = job->result + RESULT_SENSE;
  job->hdr.dxfer_direction = job->direction;
  job->hdr.dxferp = !job->data_len ? NULL : job->direction == SG_DXFER_FROM_DEV ? job->result + RESULT_DATA : job->data_out;
  job->hdr.dxfer_len = (unsigned)job->data_len;
  job->hdr.timeout = (unsigned)job->timeout_ms;
  int64_t start = now_ns();
  job->err = ioctl(job->fd, SG_IO, &job->hdr) < 0 ? errno : 0;
  job->duration_ns = now_ns() - start;
  /* The queue is unbounded: this never blocks. */
  napi_call_threadsafe_function(job->tsfn, job, napi_tsfn_nonblocking);
}

/* Takes `self` off the idle stack; false when a submitter popped it first. */
static int pool_unpark(pool_worker *self) {
  for (pool_worker **p = &pool_idle_top; *p; p = &(*p)->next_idle) {
    if (*p == self) {
      *p = self->next_idle;
      return 1;
    }
  }
  return 0;
}

static void *pool_thread(void *arg) {
  pool_worker *self = arg;
  sigset_t all;
  /* Signals are for the main thread (libuv's handlers); none may interrupt an ioctl here. */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  for (;;) {
    sgio_job *job = self->job;
    self->job = NULL;
    run_job(job);

    pthread_mutex_lock(&pool_lock);
    self->next_idle = pool_idle_top;
    pool_idle_top = self;
    pthread_mutex_unlock(&pool_lock);

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += POOL_IDLE_SECONDS;
    int rc;
    do rc = sem_clockwait(&self->wake, CLOCK_MONOTONIC, &deadline);
    while (rc < 0 && errno == EINTR);
    if (rc == 0) continue;
    /* Idle long enough: leave, unless a submitter took this thread meanwhile. */
    pthread_mutex_lock(&pool_lock);
    int leave = pool_unpark(self);
    pthread_mutex_unlock(&pool_lock);
    if (leave) break;
    do rc = sem_wait(&self->wake);
    while (rc < 0 && errno == EINTR);
  }
  sem_destroy(&self->wake);
  free(self);
  return NULL;
}

/* Hands the job to an idle thread, or starts one. Returns 0 or an errno. */
static int pool_submit(sgio_job *job) {
  pthread_mutex_lock(&pool_lock);
  pool_worker *w = pool_idle_top;
  if (w) pool_idle_top = w->next_idle;
  pthread_mutex_unlock(&pool_lock);
  if (w) {
    w->job = job;
    sem_post(&w->wake);
    return 0;
  }
  w = calloc(1, sizeof *w);
  if (!w) return ENOMEM;
  sem_init(&w->wake, 0, 0);
  w->job = job;
  pthread_attr_t attr;
  pthread_t tid;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  int rc = pthread_create(&tid, &attr, pool_thread, w);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    sem_destroy(&w->wake);
    free(w);
  }
  return rc;
}

static void sgio_env_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  /* The environment is going away; Node closes the threadsafe function itself. */
  free(data);
}

static sgio_env *get_sgio_env(napi_env env) {
  sgio_env *state = NULL;
  napi_value name;
  if (napi_get_instance_data(env, (void **)&state) == napi_ok && state) return state;
  state = calloc(1, sizeof *state);
  if (!state) return NULL;
  napi_create_string_utf8(env, "pr-helper:sgio", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, state, sgio_complete, &state->tsfn) !=
      napi_ok) {
    free(state);
    return NULL;
  }
  napi_unref_threadsafe_function(env, state->tsfn);
  if (napi_set_instance_data(env, state, sgio_env_finalize, NULL) != napi_ok) {
    napi_release_threadsafe_function(state->tsfn, napi_tsfn_abort);
    free(state);
    return NULL;
  }
  return state;
}

/* sgio(fd, cdb, direction, data|length, timeoutMs) -> Promise<Buffer> laid
 * out as described at RESULT_INTS. direction: -2 TO_DEV (data is a Buffer,
 * copied), -3 FROM_DEV (data is the length to read), -1 NONE. No JS memory is
 * shared with the worker thread: the result block becomes JS memory only after
 * the thread is done with it. */
static napi_value sgio(napi_env env, napi_callback_info info) {
  size_t argc = 5, len;
  napi_value argv[5], promise;
  int32_t fd, direction, timeout_ms, want = 0;
  void *cdb, *data = NULL;
  size_t data_len = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5 || !arg_int(env, argv[0], &fd) || !arg_buffer(env, argv[1], &cdb, &len) || len == 0 ||
      len > 16 || !arg_int(env, argv[2], &direction) || !arg_int(env, argv[4], &timeout_ms) || timeout_ms < 0)
    return throw_type(env, "sgio(fd, cdb, direction, data, timeoutMs)");
  if (direction == SG_DXFER_TO_DEV) {
    if (!arg_buffer(env, argv[3], &data, &data_len)) return throw_type(env, "sgio: TO_DEV needs a Buffer");
  } else if (direction == SG_DXFER_FROM_DEV) {
    if (!arg_int(env, argv[3], &want) || want < 0 || want > (1 << 20))
      return throw_type(env, "sgio: FROM_DEV needs a length");
    data_len = (size_t)want;
  } else if (direction != SG_DXFER_NONE) {
    return throw_type(env, "sgio: bad direction");
  }
  sgio_env *state = get_sgio_env(env);
  if (!state) return throw_errno(env, ENOMEM, "sgio");
  sgio_job *job = calloc(1, sizeof *job);
  if (!job) return throw_errno(env, ENOMEM, "sgio");
  /* Zeroed: sense and data-in read as zeros where the device wrote nothing. */
  job->result_len = RESULT_DATA + (direction == SG_DXFER_FROM_DEV ? data_len : 0);
  job->result = calloc(1, job->result_len);
  job->data_out = direction == SG_DXFER_TO_DEV && data_len ? malloc(data_len) : NULL;
  if (!job->result || (direction == SG_DXFER_TO_DEV && data_len && !job->data_out)) {
    sgio_job_free(job);
    return throw_errno(env, ENOMEM, "sgio");
  }
  if (job->data_out) memcpy(job->data_out, data, data_len);
  memcpy(job->cdb, cdb, len);
  job->cdb_len = (unsigned char)len;
  job->fd = fd;
  job->direction = direction;
  job->timeout_ms = timeout_ms;
  job->data_len = data_len;
  job->tsfn = state->tsfn;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) {
    sgio_job_free(job);
    return throw_errno(env, ENOMEM, "sgio");
  }
  if (state->running++ == 0) napi_ref_threadsafe_function(env, state->tsfn);
  int rc = pool_submit(job);
  if (rc != 0) {
    /* Report like a failed ioctl so the caller maps it (EAGAIN -> ABORTED COMMAND). */
    job->err = rc;
    napi_call_threadsafe_function(job->tsfn, job, napi_tsfn_nonblocking);
  }
  return promise;
}

/* ---- sd_notify ----------------------------------------------------------- */

/* sdNotify(socketPath, message): one datagram, like sd_notify(3). */
static napi_value sd_notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1], message[1024];
  struct sockaddr_un sa;
  socklen_t salen;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !arg_string(env, argv[0], path, sizeof path) || !arg_string(env, argv[1], message, sizeof message))
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

/* ---- privileges ---------------------------------------------------------- */

static napi_value prctl_call(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t option, a2 = 0, a3 = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &option) || (argc > 1 && !arg_int(env, argv[1], &a2)) ||
      (argc > 2 && !arg_int(env, argv[2], &a3)))
    return throw_type(env, "prctl(option, arg2?, arg3?)");
  if (option != PR_SET_KEEPCAPS && option != PR_CAPBSET_DROP && option != PR_CAPBSET_READ &&
      option != PR_CAP_AMBIENT)
    return throw_type(env, "prctl: unsupported option");
  int r = prctl(option, (unsigned long)a2, (unsigned long)a3, 0UL, 0UL);
  if (r < 0) return throw_errno(env, errno, "prctl");
  return make_int(env, r);
}

/* capGet() -> {effective, permitted, inheritable} as 64-bit masks (BigInt). */
static napi_value cap_get(napi_env env, napi_callback_info info) {
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  napi_value obj, v;
  (void)info;
  if (syscall(SYS_capget, &hdr, d) < 0) return throw_errno(env, errno, "capget");
  napi_create_object(env, &obj);
  napi_create_bigint_uint64(env, ((uint64_t)d[1].effective << 32) | d[0].effective, &v);
  napi_set_named_property(env, obj, "effective", v);
  napi_create_bigint_uint64(env, ((uint64_t)d[1].permitted << 32) | d[0].permitted, &v);
  napi_set_named_property(env, obj, "permitted", v);
  napi_create_bigint_uint64(env, ((uint64_t)d[1].inheritable << 32) | d[0].inheritable, &v);
  napi_set_named_property(env, obj, "inheritable", v);
  return obj;
}

/* capSet(effective, permitted, inheritable) for the calling thread (BigInts). */
static napi_value cap_set(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint64_t m[3];
  bool lossless;
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_type(env, "capSet(effective, permitted, inheritable)");
  for (int i = 0; i < 3; i++)
    if (napi_get_value_bigint_uint64(env, argv[i], &m[i], &lossless) != napi_ok)
      return throw_type(env, "capSet: masks must be BigInts");
  for (int i = 0; i < 2; i++) {
    d[i].effective = (uint32_t)(m[0] >> (32 * i));
    d[i].permitted = (uint32_t)(m[1] >> (32 * i));
    d[i].inheritable = (uint32_t)(m[2] >> (32 * i));
  }
  if (syscall(SYS_capset, &hdr, d) < 0) return throw_errno(env, errno, "capset");
  return NULL;
}

/* execve(path, argv, env): only returns by throwing. */
static napi_value exec_ve(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char *strs[2][1024] = {{0}};
  uint32_t counts[2];
  char path[4096];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || !arg_string(env, argv[0], path, sizeof path)) return throw_type(env, "execve(path, argv, env)");
  for (int k = 0; k < 2; k++) {
    if (napi_get_array_length(env, argv[k + 1], &counts[k]) != napi_ok || counts[k] >= 1024)
      return throw_type(env, "execve: argv/env must be arrays");
    for (uint32_t i = 0; i < counts[k]; i++) {
      napi_value v;
      size_t n;
      napi_get_element(env, argv[k + 1], i, &v);
      if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) return throw_type(env, "execve: strings only");
      strs[k][i] = malloc(n + 1);
      if (strs[k][i]) napi_get_value_string_utf8(env, v, strs[k][i], n + 1, &n);
    }
  }
  execve(path, strs[0], strs[1]);
  int err = errno;
  for (int k = 0; k < 2; k++)
    for (uint32_t i = 0; i < counts[k]; i++) free(strs[k][i]);
  return throw_errno(env, err, "execve");
}

static napi_value init(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"listenUnix", listen_unix}, {"connectUnix", connect_unix}, {"socketPair", socket_pair},
      {"accept", accept_conn},     {"recvmsg", recv_msg},         {"sendmsg", send_msg},
      {"close", close_fd},         {"shutdown", shutdown_fd},     {"fstat", fstat_fd},           {"fcntl", fcntl_fd},
      {"isListeningSocket", is_listening_socket}, {"lockFile", lock_file},                 {"poll", poll_start},
      {"pollUpdate", poll_update}, {"pollClose", poll_close},     {"sgio", sgio},
      {"sdNotify", sd_notify},     {"prctl", prctl_call},         {"capGet", cap_get},
      {"capSet", cap_set},         {"execve", exec_ve},
      {"applyToAllThreads", apply_to_all_threads},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    CHECK(napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f));
    CHECK(napi_set_named_property(env, exports, fns[i].name, f));
  }
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
