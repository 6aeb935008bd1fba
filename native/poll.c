/* Readiness watching of any descriptor on the Node event loop (uv_poll). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <uv.h>

#include "addon.h"

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
  GET_ARGS(3);
  napi_value obj, name;
  napi_valuetype callback_type;
  int32_t fd, events;
  uv_loop_t *loop;
  if (!arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &events) ||
      napi_typeof(env, argv[2], &callback_type) != napi_ok || callback_type != napi_function)
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
  GET_ARGS(2);
  int32_t events;
  poll_watch *w = unwrap_poll(env, argv[0]);
  if (!w || !arg_int(env, argv[1], &events)) return throw_type(env, "pollUpdate(handle, events)");
  if (w->closed) return NULL;
  int rc = events ? uv_poll_start(&w->handle, events, poll_fired) : uv_poll_stop(&w->handle);
  if (rc < 0) return throw_errno(env, -rc, "uv_poll_start");
  return NULL;
}

static napi_value poll_close(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  void *w = NULL;
  if (napi_remove_wrap(env, argv[0], &w) != napi_ok || !w) return NULL;
  poll_release(w);
  return NULL;
}

napi_status export_poll(napi_env env, napi_value exports) {
  static const native_export fns[] = {{"poll", poll_start}, {"pollUpdate", poll_update}, {"pollClose", poll_close}};
  return EXPORT_ALL(env, exports, fns);
}
