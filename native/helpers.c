#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "addon.h"

napi_value throw_errno(napi_env env, int err, const char *syscall_name) {
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

napi_value close_and_throw(napi_env env, int fd, int err, const char *syscall_name) {
  close(fd);
  return throw_errno(env, err, syscall_name);
}

napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

napi_value make_int(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}

napi_value count_or_null(napi_env env, ssize_t n, const char *syscall_name) {
  if (n >= 0) return make_int(env, n);
  if (errno != EAGAIN) return throw_errno(env, errno, syscall_name);
  napi_value null;
  napi_get_null(env, &null);
  return null;
}

void set_int(napi_env env, napi_value obj, const char *key, int64_t v) {
  napi_set_named_property(env, obj, key, make_int(env, v));
}

int arg_int(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

int arg_buffer(napi_env env, napi_value v, void **data, size_t *len) {
  bool is_buf = false;
  if (napi_is_buffer(env, v, &is_buf) != napi_ok || !is_buf) return 0;
  return napi_get_buffer_info(env, v, data, len) == napi_ok;
}

int arg_string(napi_env env, napi_value v, char *buf, size_t size) {
  size_t n;
  if (napi_get_value_string_utf8(env, v, buf, size, &n) != napi_ok) return 0;
  return n < size - 1;
}

int arg_typed(napi_env env, napi_value v, napi_typedarray_type want, size_t min, void **data) {
  bool is = false;
  napi_typedarray_type type;
  size_t length;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  if (napi_get_typedarray_info(env, v, &type, &length, data, NULL, NULL) != napi_ok) return 0;
  return type == want && length >= min;
}

int fill_sockaddr(const char *path, struct sockaddr_un *sa, socklen_t *len) {
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

napi_status export_functions(napi_env env, napi_value exports, const native_export *fns, size_t count) {
  for (size_t i = 0; i < count; i++) {
    napi_value f;
    napi_status s = napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
    if (s == napi_ok) s = napi_set_named_property(env, exports, fns[i].name, f);
    if (s != napi_ok) return s;
  }
  return napi_ok;
}

napi_status export_layout(napi_env env, napi_value exports, const char *name, const native_constant *constants,
                          size_t count) {
  napi_value obj;
  napi_status s = napi_create_object(env, &obj);
  for (size_t i = 0; s == napi_ok && i < count; i++) {
    napi_value v;
    s = napi_create_int64(env, constants[i].value, &v);
    if (s == napi_ok) s = napi_set_named_property(env, obj, constants[i].name, v);
  }
  if (s == napi_ok) s = napi_object_freeze(env, obj);
  return s == napi_ok ? napi_set_named_property(env, exports, name, obj) : s;
}
