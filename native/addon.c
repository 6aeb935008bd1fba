/* The module entry point: each file of native/ adds its own exports. */
#include "addon.h"

static napi_value init(napi_env env, napi_value exports) {
  CHECK(export_sockets(env, exports));
  CHECK(export_descriptors(env, exports));
  CHECK(export_poll(env, exports));
  CHECK(export_sgio(env, exports));
  CHECK(export_notify(env, exports));
  CHECK(export_credentials(env, exports));
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
