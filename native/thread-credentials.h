#ifndef PR_NATIVE_THREAD_CREDENTIALS_H
#define PR_NATIVE_THREAD_CREDENTIALS_H
#include <node_api.h>

napi_value apply_to_all_threads(napi_env env, napi_callback_info info);

#endif
