/* ioctl(SG_IO) on a pool of worker threads, resolving a Promise per command. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <scsi/sg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "addon.h"

#define SENSE_LEN 96

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
 * RESULT_NUMBERS doubles indexed as below, then the SENSE_LEN sense bytes,
 * then for FROM_DEV the data-in buffer. binding.ts turns it into the
 * SgioResult object, reading the offsets from the exported sgioResult layout;
 * building that object (two Buffers and eight properties) from C cost more
 * per command than the SG_IO round trip to a thread. */
enum {
  R_ERRNO, /* 0 when the ioctl itself succeeded */
  R_STATUS,
  R_MASKED_STATUS,
  R_HOST_STATUS,
  R_DRIVER_STATUS,
  R_RESID,
  R_SENSE_WRITTEN, /* sb_len_wr */
  R_DURATION_NS,
  RESULT_NUMBERS
};
#define RESULT_SENSE (RESULT_NUMBERS * sizeof(double))
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
    double *numbers = (double *)job->result;
    numbers[R_ERRNO] = job->err;
    numbers[R_STATUS] = job->hdr.status;
    numbers[R_MASKED_STATUS] = job->hdr.masked_status;
    numbers[R_HOST_STATUS] = job->hdr.host_status;
    numbers[R_DRIVER_STATUS] = job->hdr.driver_status;
    numbers[R_RESID] = job->hdr.resid;
    numbers[R_SENSE_WRITTEN] = job->hdr.sb_len_wr;
    numbers[R_DURATION_NS] = (double)job->duration_ns;
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
 * out as described at RESULT_NUMBERS. direction: -2 TO_DEV (data is a Buffer,
 * copied), -3 FROM_DEV (data is the length to read), -1 NONE. No JS memory is
 * shared with the worker thread: the result block becomes JS memory only after
 * the thread is done with it. */
static napi_value sgio(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  size_t len;
  napi_value promise;
  int32_t fd, direction, timeout_ms, want = 0;
  void *cdb, *data = NULL;
  size_t data_len = 0;
  if (!arg_int(env, argv[0], &fd) || !arg_buffer(env, argv[1], &cdb, &len) || len == 0 ||
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

napi_status export_sgio(napi_env env, napi_value exports) {
  static const native_export fns[] = {{"sgio", sgio}};
  /* Byte offsets into the result block, named as the SgioResult fields. */
  static const native_constant layout[] = {
      {"errno", R_ERRNO * sizeof(double)},
      {"status", R_STATUS * sizeof(double)},
      {"maskedStatus", R_MASKED_STATUS * sizeof(double)},
      {"hostStatus", R_HOST_STATUS * sizeof(double)},
      {"driverStatus", R_DRIVER_STATUS * sizeof(double)},
      {"resid", R_RESID * sizeof(double)},
      {"senseLength", R_SENSE_WRITTEN * sizeof(double)},
      {"durationNs", R_DURATION_NS * sizeof(double)},
      {"sense", RESULT_SENSE},
      {"data", RESULT_DATA},
  };
  /* How long an idle worker waits for work before it exits (tools wait that long to see the pool shrink). */
  static const native_constant pool[] = {{"idleSeconds", POOL_IDLE_SECONDS}};
  napi_status s = EXPORT_ALL(env, exports, fns);
  if (s == napi_ok) s = export_layout(env, exports, "sgioResult", layout, sizeof layout / sizeof layout[0]);
  return s == napi_ok ? export_layout(env, exports, "sgioPool", pool, 1) : s;
}
