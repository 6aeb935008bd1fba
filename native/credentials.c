/*
 * Credentials (policy: src/daemon/privileges.ts): capGet for the calling
 * thread, and one credential change applied to every thread of the process.
 *
 * Linux keeps uids, gids, supplementary groups, capability sets, securebits
 * and no_new_privs per thread (credentials(7), capabilities(7)), and Node
 * starts its threads (V8 platform workers, the libuv threadpool, the
 * inspector's SIGUSR1 watchdog) before the first line of JavaScript runs. A
 * capset() on the main thread alone would leave all of them with root's
 * capabilities, and glibc's set*id() broadcast changes ids only. So each
 * thread makes the change itself: the calling thread directly, every other
 * thread from a signal handler. Threads created later by the calling thread
 * (the SG_IO pool) inherit its result; threads that already exist get no
 * capability at all.
 *
 * The signal is glibc's SIGCANCEL (__SIGRTMIN): glibc's pthread_sigmask never
 * lets a thread block it, so it also reaches the inspector watchdog, which
 * blocks every other signal. Nothing in Node cancels threads, and the
 * previous action is restored before returning. glibc's sigaction() refuses
 * this signal, so the handler is installed with the raw rt_sigaction call,
 * using the sa_restorer glibc put on a scratch signal. The handler makes raw
 * system calls only (async-signal-safe); a glibc set*id() wrapper there would
 * start its own broadcast and deadlock.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "addon.h"

#define CANCEL_SIGNAL __SIGRTMIN
#define MAX_THREADS 256
#define WAIT_NS 2000000000LL

/* The kernel's struct for rt_sigaction on x86_64 and aarch64. */
struct kernel_sigaction {
  void (*handler)(int, siginfo_t *, void *);
  unsigned long flags;
  void (*restorer)(void);
  uint64_t mask;
};

struct plan {
  int change_ids;
  uid_t uid;
  gid_t gid;
  uint64_t drop_bounding;
  int no_new_privs;
};

enum step { STEP_NONE, STEP_BOUNDING, STEP_GROUPS, STEP_GID, STEP_KEEPCAPS, STEP_UID, STEP_CAPSET, STEP_AMBIENT, STEP_NNP };
static const char *const step_names[] = {"", "PR_CAPBSET_DROP", "setgroups", "setresgid", "PR_SET_KEEPCAPS", "setresuid",
                                         "capset", "PR_CAP_AMBIENT_CLEAR_ALL", "PR_SET_NO_NEW_PRIVS"};

static struct plan the_plan;
static pid_t acked[MAX_THREADS];
static atomic_int acked_count;
/* The first failure on any thread: step << 16 | errno. */
static atomic_int first_failure;

static long raw_prctl(int option, unsigned long a2) { return syscall(SYS_prctl, option, a2, 0UL, 0UL, 0UL); }

/* Returns 0, or the failing step << 16 | errno. `keep` is the permitted and
 * effective set this thread ends with; inheritable and ambient end empty. */
static int apply(uint64_t keep) {
  const struct plan *p = &the_plan;
  for (int cap = 0; cap < 64; cap++) {
    if (!(p->drop_bounding & (1ULL << cap)) || raw_prctl(PR_CAPBSET_READ, (unsigned long)cap) != 1) continue;
    if (raw_prctl(PR_CAPBSET_DROP, (unsigned long)cap) < 0) return STEP_BOUNDING << 16 | errno;
  }
  if (p->change_ids) {
    if (syscall(SYS_setgroups, 0, NULL) < 0) return STEP_GROUPS << 16 | errno;
    if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0) return STEP_GID << 16 | errno;
    /* Without keep-caps, moving every uid off 0 clears the permitted set. */
    if (keep && raw_prctl(PR_SET_KEEPCAPS, 1) < 0) return STEP_KEEPCAPS << 16 | errno;
    if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0) return STEP_UID << 16 | errno;
  }
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  for (int i = 0; i < 2; i++) d[i].effective = d[i].permitted = (uint32_t)(keep >> (32 * i));
  if (syscall(SYS_capset, &hdr, d) < 0) return STEP_CAPSET << 16 | errno;
  if (syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0UL, 0UL, 0UL) < 0) return STEP_AMBIENT << 16 | errno;
  if (p->change_ids && keep && raw_prctl(PR_SET_KEEPCAPS, 0) < 0) return STEP_KEEPCAPS << 16 | errno;
  if (p->no_new_privs && raw_prctl(PR_SET_NO_NEW_PRIVS, 1) < 0) return STEP_NNP << 16 | errno;
  return 0;
}

static void on_signal(int sig, siginfo_t *info, void *context) {
  (void)sig;
  (void)context;
  /* Only our own tgkill() from this process. */
  if (info->si_code != SI_TKILL || info->si_pid != getpid()) return;
  int saved = errno;
  int failure = apply(0);
  if (failure) {
    int none = 0;
    atomic_compare_exchange_strong(&first_failure, &none, failure);
  }
  int slot = atomic_fetch_add(&acked_count, 1);
  if (slot < MAX_THREADS) acked[slot] = (pid_t)syscall(SYS_gettid);
  errno = saved;
}

static int was_acked(pid_t tid) {
  int n = atomic_load(&acked_count);
  for (int i = 0; i < n && i < MAX_THREADS; i++)
    if (acked[i] == tid) return 1;
  return 0;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Signals every thread not yet reached; returns how many are still pending,
 * or -errno. `signalled` remembers whom we already sent to: SIGCANCEL is a
 * real-time signal and would queue a second delivery. */
static int signal_pending(pid_t self, pid_t *signalled, int *nsignalled) {
  DIR *dir = opendir("/proc/self/task");
  if (!dir) return -errno;
  int pending = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    pid_t tid = (pid_t)atoi(e->d_name);
    if (tid <= 0 || tid == self || was_acked(tid)) continue;
    int sent = 0;
    for (int i = 0; i < *nsignalled; i++) sent |= signalled[i] == tid;
    if (!sent) {
      if (*nsignalled == MAX_THREADS) {
        closedir(dir);
        return -EMFILE;
      }
      if (syscall(SYS_tgkill, getpid(), tid, CANCEL_SIGNAL) < 0) {
        if (errno == ESRCH) continue; /* it exited: nothing left to change */
        int err = errno;
        closedir(dir);
        return -err;
      }
      signalled[(*nsignalled)++] = tid;
    }
    pending++;
  }
  closedir(dir);
  return pending;
}

static int install_handler(struct kernel_sigaction *previous) {
  struct sigaction scratch = {0}, saved;
  struct kernel_sigaction k;
  scratch.sa_sigaction = on_signal;
  scratch.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&scratch.sa_mask);
  if (sigaction(SIGRTMAX, &scratch, &saved) < 0) return -errno;
  long r = syscall(SYS_rt_sigaction, SIGRTMAX, NULL, &k, sizeof k.mask);
  int err = errno;
  sigaction(SIGRTMAX, &saved, NULL);
  if (r < 0) return -err;
  if (syscall(SYS_rt_sigaction, CANCEL_SIGNAL, &k, previous, sizeof k.mask) < 0) return -errno;
  return 0;
}

static int get_u32(napi_env env, napi_value obj, const char *key, uint32_t *out) {
  napi_value v;
  return napi_get_named_property(env, obj, key, &v) == napi_ok && napi_get_value_uint32(env, v, out) == napi_ok;
}

static int get_u64(napi_env env, napi_value obj, const char *key, uint64_t *out) {
  napi_value v;
  bool lossless;
  return napi_get_named_property(env, obj, key, &v) == napi_ok &&
         napi_get_value_bigint_uint64(env, v, out, &lossless) == napi_ok;
}

static int get_bool(napi_env env, napi_value obj, const char *key, int *out) {
  napi_value v;
  bool b;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_get_value_bool(env, v, &b) != napi_ok) return 0;
  *out = b;
  return 1;
}

/* applyToAllThreads({changeIds, uid, gid, keep, dropBounding, noNewPrivs})
 * -> number of threads changed, this one included. */
static napi_value apply_to_all_threads(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  napi_value arg = argv[0];
  uint32_t uid = 0, gid = 0;
  uint64_t keep = 0;
  struct plan p = {0};
  if (argc < 1 || !get_bool(env, arg, "changeIds", &p.change_ids) || !get_u32(env, arg, "uid", &uid) ||
      !get_u32(env, arg, "gid", &gid) || !get_u64(env, arg, "keep", &keep) ||
      !get_u64(env, arg, "dropBounding", &p.drop_bounding) || !get_bool(env, arg, "noNewPrivs", &p.no_new_privs)) {
    napi_throw_type_error(env, NULL, "applyToAllThreads({changeIds, uid, gid, keep, dropBounding, noNewPrivs})");
    return NULL;
  }
  p.uid = uid;
  p.gid = gid;
  the_plan = p;
  atomic_store(&acked_count, 0);
  atomic_store(&first_failure, 0);

  struct kernel_sigaction previous;
  int r = install_handler(&previous);
  if (r < 0) return throw_errno(env, -r, "rt_sigaction");
  pid_t self = (pid_t)syscall(SYS_gettid);
  int failure = apply(keep);
  pid_t signalled[MAX_THREADS];
  int nsignalled = 0, pending = 0;
  int64_t deadline = now_ns() + WAIT_NS;
  while (!failure && (pending = signal_pending(self, signalled, &nsignalled)) > 0 && now_ns() < deadline) {
    struct timespec pause = {0, 1000000};
    nanosleep(&pause, NULL);
  }
  syscall(SYS_rt_sigaction, CANCEL_SIGNAL, &previous, NULL, sizeof previous.mask);

  if (failure) return throw_errno(env, failure & 0xffff, step_names[failure >> 16]);
  if (pending < 0) return throw_errno(env, -pending, "signalling threads");
  if (pending > 0) return throw_errno(env, ETIMEDOUT, "waiting for threads");
  failure = atomic_load(&first_failure);
  if (failure) return throw_errno(env, failure & 0xffff, step_names[failure >> 16]);
  napi_value count;
  napi_create_int32(env, atomic_load(&acked_count) + 1, &count);
  return count;
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

napi_status export_credentials(napi_env env, napi_value exports) {
  static const native_export fns[] = {{"capGet", cap_get}, {"applyToAllThreads", apply_to_all_threads}};
  return EXPORT_ALL(env, exports, fns);
}
