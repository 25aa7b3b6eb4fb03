/* ch_proc.c — spawn into a namespace, signal, reap, sample (see ch_proc.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ch_proc.h"

/* What the child reports through the close-on-exec pipe when it cannot exec;
 * end of file on the pipe means exec succeeded. */
enum { STAGE_PDEATHSIG = 1, STAGE_SETNS, STAGE_FDS, STAGE_EXEC };
typedef struct child_report { int stage; int err; } child_report;

static const char *stage_name(int stage)
{
    switch (stage) {
    case STAGE_PDEATHSIG: return "prctl(PR_SET_PDEATHSIG)";
    case STAGE_SETNS: return "setns into the node's network namespace";
    case STAGE_FDS: return "redirecting stdin/stdout/stderr";
    default: return "exec";
    }
}

/* Keep the parent's own descriptors out of 0..2, so that in the child every
 * dup2 onto 0..2 is a real copy (which clears close-on-exec). */
static int fd_above_stdio(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int saved = errno;
    close(fd);
    errno = saved;
    return high;
}

/* After fork: only async-signal-safe calls until exec or _exit. */
static void child_exec(int ns_fd, int log_fd, int null_fd, int report_fd, pid_t parent, char *const argv[])
{
    child_report rep = {0, 0};
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Ignored signals would stay ignored across exec: start from defaults. */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &dfl, NULL);
    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        rep = (child_report){STAGE_PDEATHSIG, errno};
        goto fail;
    }
    if (getppid() != parent) /* the controller died before prctl took hold */
        _exit(127);
    if (ns_fd >= 0 && setns(ns_fd, CLONE_NEWNET) != 0) {
        rep = (child_report){STAGE_SETNS, errno};
        goto fail;
    }
    if (dup2(null_fd, 0) < 0 || (log_fd >= 0 && (dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0))) {
        rep = (child_report){STAGE_FDS, errno};
        goto fail;
    }
    /* Nothing but 0..2 survives exec (the report pipe is already CLOEXEC). */
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
        for (int fd = 3; fd < 4096; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    execv(argv[0], argv);
    rep = (child_report){STAGE_EXEC, errno};
fail:
    if (write(report_fd, &rep, sizeof rep) < 0) {
        /* nothing more to do: the parent sees the exit status */
    }
    _exit(127);
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

int ch_proc_spawn(const char *ns_path, char *const argv[], const char *log_path, pid_t *pid, ch_error *err)
{
    if (!argv || !argv[0] || !pid) {
        snprintf(err->msg, sizeof err->msg, "spawn: no program given");
        return -EINVAL;
    }
    /* fds: namespace, log, /dev/null, pipe read end, pipe write end */
    int fds[5] = {-1, -1, -1, -1, -1};
    if (ns_path && (fds[0] = fd_above_stdio(open(ns_path, O_RDONLY | O_CLOEXEC))) < 0) {
        int e = errno;
        snprintf(err->msg, sizeof err->msg, "%s: cannot open network namespace: %s", ns_path, strerror(e));
        return -e;
    }
    if (log_path && (fds[1] = fd_above_stdio(open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644))) < 0) {
        int e = errno;
        snprintf(err->msg, sizeof err->msg, "%s: cannot open log file: %s", log_path, strerror(e));
        close_all(fds, 5);
        return -e;
    }
    int p[2];
    if ((fds[2] = fd_above_stdio(open("/dev/null", O_RDONLY | O_CLOEXEC))) < 0 || pipe2(p, O_CLOEXEC) != 0) {
        int e = errno;
        snprintf(err->msg, sizeof err->msg, "spawn %s: %s", argv[0], strerror(e));
        close_all(fds, 5);
        return -e;
    }
    fds[3] = p[0];
    fds[4] = p[1];
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0)
        child_exec(fds[0], fds[1], fds[2], fds[4], parent, argv);
    int fork_errno = errno;
    close(fds[4]);
    fds[4] = -1;
    if (child < 0) {
        snprintf(err->msg, sizeof err->msg, "spawn %s: fork: %s", argv[0], strerror(fork_errno));
        close_all(fds, 5);
        return -fork_errno;
    }
    setpgid(child, child); /* also done by the child; whichever runs first wins the race */
    child_report rep;
    ssize_t r;
    do
        r = read(fds[3], &rep, sizeof rep);
    while (r < 0 && errno == EINTR);
    close_all(fds, 5);
    if (r == (ssize_t)sizeof rep) {
        waitpid(child, NULL, 0);
        snprintf(err->msg, sizeof err->msg, "spawn %s: %s failed: %s", argv[0], stage_name(rep.stage),
                 strerror(rep.err));
        return rep.err > 0 ? -rep.err : -EIO;
    }
    *pid = child;
    return 0;
}

int ch_proc_kill(pid_t pid, int sig)
{
    if (pid <= 0)
        return -EINVAL;
    if (kill(-pid, sig) == 0)
        return 0;
    /* Not a group leader (yet): signal the process itself. */
    return kill(pid, sig) == 0 ? 0 : -errno;
}

int ch_proc_reap(pid_t pid, int *status)
{
    int st = 0;
    pid_t r;
    do
        r = waitpid(pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (r == 0)
        return 0;
    if (status)
        *status = st;
    return 1;
}

int ch_proc_stop(pid_t pid, int grace_ms, int *status)
{
    int rc = ch_proc_reap(pid, status);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    ch_proc_kill(pid, SIGTERM);
    ch_proc_kill(pid, SIGCONT); /* a paused process must run to see SIGTERM */
    for (int waited = 0; waited < grace_ms; waited += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if ((rc = ch_proc_reap(pid, status)) != 0)
            return rc < 0 ? rc : 0;
    }
    ch_proc_kill(pid, SIGKILL);
    int st = 0;
    pid_t r;
    do
        r = waitpid(pid, &st, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (status)
        *status = st;
    return 0;
}

/* ---------- /proc sampling ---------- */

typedef struct proc_stat {
    char state;
    uint64_t cpu_ticks;   /* utime + stime */
    uint64_t start_ticks;
} proc_stat;

static int read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    ssize_t n;
    do
        n = read(fd, buf, cap - 1);
    while (n < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (n < 0)
        return e == ESRCH ? -ESRCH : -e;
    buf[n] = '\0';
    return (int)n;
}

/* /proc/<pid>/stat: the command name may hold spaces and parentheses, so the
 * fields are counted from the last ')'. */
static int read_stat(pid_t pid, proc_stat *out)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int n = read_small(path, buf, sizeof buf);
    if (n < 0)
        return n;
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -EIO;
    p += 2;
    /* field 3 (state) is token 0; utime 14 -> 11, stime 15 -> 12, starttime 22 -> 19 */
    uint64_t utime = 0, stime = 0, start = 0;
    int tok = 0;
    out->state = *p;
    for (char *save = NULL, *t = strtok_r(p, " ", &save); t && tok <= 19; t = strtok_r(NULL, " ", &save), tok++) {
        if (tok == 11)
            utime = strtoull(t, NULL, 10);
        else if (tok == 12)
            stime = strtoull(t, NULL, 10);
        else if (tok == 19)
            start = strtoull(t, NULL, 10);
    }
    if (tok <= 19)
        return -EIO;
    out->cpu_ticks = utime + stime;
    out->start_ticks = start;
    return 0;
}

int ch_proc_start_ticks(pid_t pid, uint64_t *ticks)
{
    proc_stat st;
    int rc = read_stat(pid, &st);
    if (rc == 0)
        *ticks = st.start_ticks;
    return rc;
}

int ch_proc_sample(pid_t pid, ch_proc_usage *u, double *cpu_pct, uint64_t *rss_bytes, char *state)
{
    proc_stat st;
    int rc = read_stat(pid, &st);
    if (rc < 0)
        return rc;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    if ((rc = read_small(path, buf, sizeof buf)) < 0)
        return rc;
    unsigned long long size_pages = 0, rss_pages = 0;
    if (sscanf(buf, "%llu %llu", &size_pages, &rss_pages) != 2)
        return -EIO;
    long tck = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (tck <= 0 || page <= 0)
        return -EIO;
    /* Start times count from boot, so CLOCK_BOOTTIME makes "since the process
     * started" the same formula as "since the last sample". */
    struct timespec now;
    clock_gettime(CLOCK_BOOTTIME, &now);
    uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
    if (u->start_ticks != st.start_ticks || u->wall_ns == 0) { /* first sample, or the PID was reused */
        u->start_ticks = st.start_ticks;
        u->cpu_ticks = 0;
        u->wall_ns = st.start_ticks * 1000000000ull / (uint64_t)tck;
    }
    uint64_t d_ticks = st.cpu_ticks >= u->cpu_ticks ? st.cpu_ticks - u->cpu_ticks : 0;
    uint64_t d_ns = now_ns > u->wall_ns ? now_ns - u->wall_ns : 0;
    if (cpu_pct)
        *cpu_pct = d_ns ? 100.0 * ((double)d_ticks / (double)tck) / ((double)d_ns / 1e9) : 0.0;
    if (rss_bytes)
        *rss_bytes = (uint64_t)rss_pages * (uint64_t)page;
    if (state)
        *state = st.state;
    u->cpu_ticks = st.cpu_ticks;
    u->wall_ns = now_ns;
    return 0;
}
