/* Unix stream sockets: listen, connect, accept with peer credentials, and
 * messages carrying descriptors (SCM_RIGHTS). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/fsuid.h>
#include <sys/un.h>
#include <unistd.h>

#include "addon.h"

#define MAX_FDS 253 /* SCM_MAX_FD: the kernel never delivers more per message */

/* What recvmsg() writes into the caller's Int32Array, by index. */
enum { META_COUNT, META_TRUNCATED, META_FDS, META_LENGTH = META_FDS + MAX_FDS };

/* Room for the most descriptors one message can carry, aligned for cmsghdr. */
typedef union {
  char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
  struct cmsghdr align;
} fd_control;

/* listenUnix(path, backlog, mode, gid) -> fd. The node is born with its final
 * mode (umask) and group (the calling thread's fsgid, gid -1: ours), and the
 * path is never touched again: a chown() by path after bind() would follow
 * whatever a writer of the directory swapped in (setfsgid(2) is per thread). */
static napi_value listen_unix(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  char path[UNIX_PATH_SIZE];
  int32_t backlog, mode, gid;
  struct sockaddr_un sa;
  socklen_t salen;
  if (!arg_string(env, argv[0], path, sizeof path) || !arg_int(env, argv[1], &backlog) ||
      !arg_int(env, argv[2], &mode) || !arg_int(env, argv[3], &gid))
    return throw_type(env, "listenUnix(path, backlog, mode, gid)");
  if (!fill_sockaddr(path, &sa, &salen)) return throw_errno(env, ENAMETOOLONG, "bind");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  int old_fsgid = setfsgid((gid_t)-1);
  if (gid >= 0) {
    setfsgid((gid_t)gid);
    /* setfsgid() reports no error; it fails silently without CAP_SETGID. */
    if (setfsgid((gid_t)-1) != gid) {
      setfsgid((gid_t)old_fsgid);
      return close_and_throw(env, fd, EPERM, "setfsgid");
    }
  }
  mode_t old = umask((mode_t)(~mode & 0777));
  int rc = bind(fd, (struct sockaddr *)&sa, salen);
  int err = errno;
  umask(old);
  setfsgid((gid_t)old_fsgid);
  if (rc < 0) return close_and_throw(env, fd, err, "bind");
  if (listen(fd, backlog) < 0) return close_and_throw(env, fd, errno, "listen");
  return make_int(env, fd);
}

/* connectUnix(path) -> fd (blocking connect, then non-blocking). */
static napi_value connect_unix(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  char path[UNIX_PATH_SIZE];
  struct sockaddr_un sa;
  socklen_t salen;
  if (!arg_string(env, argv[0], path, sizeof path)) return throw_type(env, "connectUnix(path)");
  if (!fill_sockaddr(path, &sa, &salen)) return throw_errno(env, ENAMETOOLONG, "connect");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  if (connect(fd, (struct sockaddr *)&sa, salen) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
    return close_and_throw(env, fd, errno, "connect");
  return make_int(env, fd);
}

/* socketPair() -> [fd, fd], non-blocking, close-on-exec (tests and tools). */
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
  GET_ARGS(1);
  napi_value obj;
  int32_t lfd;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (!arg_int(env, argv[0], &lfd)) return throw_type(env, "accept(fd)");
  int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    napi_value null;
    if (errno == EAGAIN || errno == ECONNABORTED || errno == EINTR) {
      napi_get_null(env, &null);
      return null;
    }
    return throw_errno(env, errno, "accept4");
  }
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return close_and_throw(env, fd, errno, "getsockopt");
  napi_create_object(env, &obj);
  set_int(env, obj, "fd", fd);
  set_int(env, obj, "pid", cred.pid);
  set_int(env, obj, "uid", cred.uid);
  set_int(env, obj, "gid", cred.gid);
  return obj;
}

/* recvmsg(fd, buffer, offset, length, meta) -> bytes, or null on EAGAIN;
 * bytes 0 means EOF. meta (Int32Array laid out as recvmsgMeta) receives the
 * descriptor count, the truncation flag (MSG_CTRUNC) and every descriptor
 * received, so that the caller can close what it does not keep. Results go
 * into the caller's array because building an object with named properties
 * from C costs more than the system call. */
static napi_value recv_msg(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  size_t len;
  int32_t fd, off, want;
  int32_t *meta;
  void *data;
  fd_control control;
  if (!arg_int(env, argv[0], &fd) || !arg_buffer(env, argv[1], &data, &len) || !arg_int(env, argv[2], &off) ||
      !arg_int(env, argv[3], &want) || off < 0 || want < 0 || (size_t)off + (size_t)want > len ||
      !arg_typed(env, argv[4], napi_int32_array, META_LENGTH, (void **)&meta))
    return throw_type(env, "recvmsg(fd, buffer, offset, length, meta)");
  struct iovec iov = {.iov_base = (char *)data + off, .iov_len = (size_t)want};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                       .msg_controllen = sizeof control.buf};
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return count_or_null(env, n, "recvmsg");
  int32_t count = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *p = (int *)CMSG_DATA(c);
    for (size_t i = 0; i < nfd && count < MAX_FDS; i++) meta[META_FDS + count++] = p[i];
  }
  meta[META_COUNT] = count;
  meta[META_TRUNCATED] = (msg.msg_flags & MSG_CTRUNC) != 0;
  return make_int(env, n);
}

/* sendmsg(fd, buffer, offset, length, fds?) -> bytes sent, or null on EAGAIN.
 * MSG_NOSIGNAL: a vanished peer must give EPIPE, never kill the daemon. */
static napi_value send_msg(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  size_t len;
  int32_t fd, off, count;
  uint32_t nfds = 0;
  void *data;
  fd_control control;
  if (!arg_int(env, argv[0], &fd) || !arg_buffer(env, argv[1], &data, &len) || !arg_int(env, argv[2], &off) ||
      !arg_int(env, argv[3], &count) || off < 0 || count < 0 || (size_t)off + (size_t)count > len)
    return throw_type(env, "sendmsg(fd, buffer, offset, length, fds?)");
  struct iovec iov = {.iov_base = (char *)data + off, .iov_len = (size_t)count};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  bool is_array = false;
  napi_is_array(env, argv[4], &is_array);
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
  return count_or_null(env, n, "sendmsg");
}

/* socketOption(fd, level, name) -> the int getsockopt() reports. */
static napi_value socket_option(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int32_t fd, level, name;
  int value = 0;
  socklen_t len = sizeof value;
  if (!arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &level) || !arg_int(env, argv[2], &name))
    return throw_type(env, "socketOption(fd, level, name)");
  if (getsockopt(fd, level, name, &value, &len) < 0) return throw_errno(env, errno, "getsockopt");
  return make_int(env, value);
}

/* shutdown(fd, how): lets a client send end-of-stream while still reading. */
static napi_value shutdown_fd(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd, how;
  if (!arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &how)) return throw_type(env, "shutdown(fd, how)");
  if (shutdown(fd, how) < 0) return throw_errno(env, errno, "shutdown");
  return NULL;
}

napi_status export_sockets(napi_env env, napi_value exports) {
  static const native_export fns[] = {
      {"listenUnix", listen_unix}, {"connectUnix", connect_unix}, {"socketPair", socket_pair},
      {"accept", accept_conn},     {"recvmsg", recv_msg},         {"sendmsg", send_msg},
      {"shutdown", shutdown_fd},   {"socketOption", socket_option},
  };
  static const native_constant meta[] = {
      {"count", META_COUNT}, {"truncated", META_TRUNCATED}, {"fds", META_FDS}, {"length", META_LENGTH}};
  napi_status s = EXPORT_ALL(env, exports, fns);
  return s == napi_ok ? export_layout(env, exports, "recvmsgMeta", meta, sizeof meta / sizeof meta[0]) : s;
}
