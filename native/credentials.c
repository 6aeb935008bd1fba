/* Capabilities, prctl and execve for the privilege drop (policy: src/daemon/privileges.ts). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "addon.h"

static napi_value prctl_call(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int32_t option, a2 = 0, a3 = 0;
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
  GET_ARGS(3);
  uint64_t m[3];
  bool lossless;
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
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
  GET_ARGS(3);
  char *strs[2][1024] = {{0}};
  uint32_t counts[2];
  char path[4096];
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

napi_status export_credentials(napi_env env, napi_value exports) {
  static const native_export fns[] = {
      {"prctl", prctl_call}, {"capGet", cap_get}, {"capSet", cap_set}, {"execve", exec_ve}};
  return EXPORT_ALL(env, exports, fns);
}
