/*
 * Shared by the files of the pr_native addon (compiled as one addon, see
 * binding.gyp): the thin N-API binding for the syscalls Node cannot make
 * itself (SCM_RIGHTS, SO_PEERCRED, SG_IO, capabilities, sd_notify). No policy
 * here; src/native/binding.ts is the only importer and adds the types.
 */
#ifndef PR_NATIVE_ADDON_H
#define PR_NATIVE_ADDON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <node_api.h>

#define CHECK(call)                                                           \
  do {                                                                        \
    if ((call) != napi_ok) return NULL;                                       \
  } while (0)

/* The prologue of every exported function taking arguments: declares
 * argv[n] and argc (the number the caller gave). Arguments not given read as
 * undefined, which every arg_* reader below refuses. */
#define GET_ARGS(n)                                                           \
  size_t argc = (n);                                                          \
  napi_value argv[(n)];                                                       \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

/* A string argument naming a Unix socket fits in this (sun_path plus one
 * byte, so that an over-long name is detected rather than cut). */
#define UNIX_PATH_SIZE (sizeof(((struct sockaddr_un *)0)->sun_path) + 1)

napi_value throw_errno(napi_env env, int err, const char *syscall_name);
/* For a descriptor the failing call made itself: closes it, then throws err
 * (passed in, so that close() cannot change it first). */
napi_value close_and_throw(napi_env env, int fd, int err, const char *syscall_name);
napi_value throw_type(napi_env env, const char *msg);
napi_value make_int(napi_env env, int64_t v);
/* The result of a non-blocking call: its count, null for EAGAIN, else a throw. */
napi_value count_or_null(napi_env env, ssize_t n, const char *syscall_name);
void set_int(napi_env env, napi_value obj, const char *key, int64_t v);

int arg_int(napi_env env, napi_value v, int32_t *out);
int arg_buffer(napi_env env, napi_value v, void **data, size_t *len);
int arg_string(napi_env env, napi_value v, char *buf, size_t size);
/* A typed array of type `want` with at least `min` elements. */
int arg_typed(napi_env env, napi_value v, napi_typedarray_type want, size_t min, void **data);

int fill_sockaddr(const char *path, struct sockaddr_un *sa, socklen_t *len);

typedef struct {
  const char *name;
  napi_callback fn;
} native_export;

/* A named integer of a result layout (an index or a byte offset). */
typedef struct {
  const char *name;
  int64_t value;
} native_constant;

napi_status export_functions(napi_env env, napi_value exports, const native_export *fns, size_t count);
/* exports[name] = {constant.name: constant.value, ...}, so that binding.ts reads
 * a layout from here instead of spelling its numbers again. */
napi_status export_layout(napi_env env, napi_value exports, const char *name, const native_constant *constants,
                          size_t count);

#define EXPORT_ALL(env, exports, table) export_functions(env, exports, table, sizeof table / sizeof table[0])

/* One per file: adds that file's functions to the module's exports. */
napi_status export_sockets(napi_env env, napi_value exports);
napi_status export_descriptors(napi_env env, napi_value exports);
napi_status export_poll(napi_env env, napi_value exports);
napi_status export_sgio(napi_env env, napi_value exports);
napi_status export_notify(napi_env env, napi_value exports);
napi_status export_credentials(napi_env env, napi_value exports);

#endif
