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
#include <sys/un.h>

#include <node_api.h>

#define CHECK(call)                                                           \
  do {                                                                        \
    if ((call) != napi_ok) return NULL;                                       \
  } while (0)

napi_value throw_errno(napi_env env, int err, const char *syscall_name);
napi_value throw_type(napi_env env, const char *msg);
napi_value make_int(napi_env env, int64_t v);
void set_int(napi_env env, napi_value obj, const char *key, int64_t v);
int arg_int(napi_env env, napi_value v, int32_t *out);
int arg_buffer(napi_env env, napi_value v, void **data, size_t *len);
int arg_string(napi_env env, napi_value v, char *buf, size_t size);
/* Int32Array (or Float64Array) argument with at least `min` elements. */
int arg_typed(napi_env env, napi_value v, napi_typedarray_type want, size_t min, void **data);
int fill_sockaddr(const char *path, struct sockaddr_un *sa, socklen_t *len);

typedef struct {
  const char *name;
  napi_callback fn;
} native_export;

napi_status export_functions(napi_env env, napi_value exports, const native_export *fns, size_t count);

/* One per file: adds that file's functions to the module's exports. */
napi_status export_sockets(napi_env env, napi_value exports);
napi_status export_descriptors(napi_env env, napi_value exports);
napi_status export_poll(napi_env env, napi_value exports);
napi_status export_sgio(napi_env env, napi_value exports);
napi_status export_notify(napi_env env, napi_value exports);
napi_status export_credentials(napi_env env, napi_value exports);

#endif
