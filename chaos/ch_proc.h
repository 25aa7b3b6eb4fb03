/* ch_proc.h — the controller's child processes: start one inside a node's
 * network namespace, signal it, reap it, and sample its CPU and memory.
 *
 * A spawned child: runs in the namespace given (setns before exec), has
 * stdin on /dev/null and stdout + stderr appended to a log file, inherits no
 * descriptor but those three, leads its own process group (so a terminal's
 * Ctrl-C reaches only the controller, which then stops its children in
 * order), and gets SIGKILL if the controller dies (PR_SET_PDEATHSIG — tied to
 * the spawning *thread*, so spawn from the controller's main thread). */
#ifndef CH_PROC_H
#define CH_PROC_H

#include <stdint.h>
#include <sys/types.h>

#include "ch_error.h"

/* Start argv[0] (a path; no PATH search) with argv. ns_path: a network
 * namespace file (/run/netns/...) or NULL to stay in the caller's. log_path:
 * created or appended to; NULL inherits the caller's stdout/stderr. 0 with
 * *pid set, or a negative errno with err naming what failed (opening the
 * namespace or log, or exec — reported by the child before it exits). */
int ch_proc_spawn(const char *ns_path, char *const argv[], const char *log_path, pid_t *pid, ch_error *err);

/* Send sig to the child's whole process group (crash = SIGKILL, pause =
 * SIGSTOP, resume = SIGCONT). 0 or a negative errno (-ESRCH: gone). */
int ch_proc_kill(pid_t pid, int sig);

/* Non-blocking: 1 when the child has exited (*status as from waitpid, may be
 * NULL), 0 while it runs, or a negative errno (-ECHILD: not our child or
 * already reaped). */
int ch_proc_reap(pid_t pid, int *status);

/* Orderly stop: SIGTERM, up to grace_ms for it to exit, then SIGKILL and wait.
 * 0 with *status set (may be NULL), or a negative errno. */
int ch_proc_stop(pid_t pid, int grace_ms, int *status);

/* Resource sampling state, one per process; zero-initialise before the first
 * sample. */
typedef struct ch_proc_usage {
    uint64_t cpu_ticks;   /* utime + stime at the last sample */
    uint64_t wall_ns;     /* CLOCK_MONOTONIC at the last sample */
    uint64_t start_ticks; /* the process's start time, to notice PID reuse */
} ch_proc_usage;

/* CPU use since the previous sample (the first sample: since the process
 * started), in percent of one core (a process busy on two cores reads 200),
 * and resident memory in bytes. Counts the process itself, not its children.
 * *state gets the /proc state letter (R, S, T stopped, Z zombie...), may be
 * NULL. 0 or a negative errno (-ESRCH: no such process). */
int ch_proc_sample(pid_t pid, ch_proc_usage *u, double *cpu_pct, uint64_t *rss_bytes, char *state);

/* Start time of a process in clock ticks since boot (/proc/<pid>/stat field
 * 22): with the PID it names one process for good. 0 or a negative errno. */
int ch_proc_start_ticks(pid_t pid, uint64_t *ticks);

#endif
